"""Listing a photo collection and splitting it into shards deterministically.

``list_collection(dir_or_glob)`` finds image files (``IMAGE_SUFFIXES``)
recursively, so flat folders, the CelebA-HQ layout (``CelebA-HQ-img/0.jpg``)
and the FFHQ layout (``00000/00000.png`` nested folders) work as they are.
Each photo gets an *image id*: its path relative to the folder (for a glob:
relative to the glob's non-wildcard leading folder), with ``/`` separators.
The list is sorted by image id, so the shard split does not depend on the
file system's listing order. Hidden files and folders are skipped and folder
symlinks are not followed (no loops).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Optional

from tf_face.image_io import IMAGE_SUFFIXES
from tf_face.errors import TfFaceError

_MAGIC = set("*?[")


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    root = []
    for p in parts:
        if any(c in _MAGIC for c in p):
            break
        root.append(p)
    return Path(*root) if root else Path(".")


def _is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def list_collection(dir_or_glob, exclude: Optional[Path] = None) -> list[tuple[str, Path]]:
    """Sorted ``[(image_id, path)]`` of the images under a folder or matching a glob.

    ``exclude``: a folder whose contents are skipped (the job's own output
    when it lies inside the input).
    """
    s = os.fspath(dir_or_glob)
    excl = Path(exclude).resolve() if exclude is not None else None
    out = []
    if os.path.isdir(s):
        root = Path(s)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")
                           and (excl is None or (Path(dirpath) / d).resolve() != excl)]
            for name in filenames:
                p = Path(dirpath) / name
                if _is_image(name) and p.is_file():
                    out.append((p.relative_to(root).as_posix(), p))
    elif any(c in _MAGIC for c in s):
        root = _glob_root(s)
        for m in glob.glob(s, recursive=True):
            p = Path(m)
            if _is_image(p.name) and p.is_file() and not any(
                    part.startswith(".") for part in p.relative_to(root).parts[:-1]):
                if excl is not None and excl in p.resolve().parents:
                    continue
                out.append((p.relative_to(root).as_posix(), p))
    elif os.path.exists(s):
        raise TfFaceError(f"--input {s} is not a folder or a glob pattern")
    else:
        raise TfFaceError(f"--input {s}: no such folder")
    out.sort(key=lambda t: t[0])
    return out


def shard_plan(items: list, shard_size: int) -> list[list]:
    """Consecutive chunks of ``shard_size`` items (the last one may be shorter)."""
    if shard_size < 1:
        raise TfFaceError(f"--shard_size must be >= 1, got {shard_size}")
    return [items[i:i + shard_size] for i in range(0, len(items), shard_size)]


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.tfrecord"
