"""Which op library belongs to this checkout: the build manifest and the sources digest.

``setup.py build_ext`` writes ``_tf_face_ops.build.json`` beside the library:
the library's file name, its sha256 and the sha256 of the op sources
(``ops/cc``, ``ops/kernels``, ``ops/cuda``) it was built from. The loader
(``tf_face.render._library``) loads exactly that file, and refuses it when the
file changed or, in a checkout, when the sources changed since the build.
No TensorFlow import here: ``setup.py`` loads this file by path.
"""

from __future__ import annotations

import hashlib
import json
import os

MANIFEST_NAME = "_tf_face_ops.build.json"
SOURCE_DIRS = ("ops/cc", "ops/kernels", "ops/cuda")
SOURCE_SUFFIXES = (".h", ".cc")


def source_files(root: str) -> list[str]:
    """The op sources under ``root`` (the repository), sorted, relative paths."""
    found = []
    for sub in SOURCE_DIRS:
        base = os.path.join(root, sub)
        for dirpath, _, names in os.walk(base):
            for name in names:
                if name.endswith(SOURCE_SUFFIXES):
                    found.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return sorted(found)


def sources_digest(root: str) -> str | None:
    """sha256 over the op sources' paths and bytes; None when ``root`` has none."""
    files = source_files(root)
    if not files:
        return None
    digest = hashlib.sha256()
    for rel in files:
        with open(os.path.join(root, rel), "rb") as handle:
            data = handle.read()
        digest.update(f"{rel}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def file_digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def write_manifest(library_path: str, root: str, cuda: bool) -> str:
    """Writes the manifest beside ``library_path``; returns its path."""
    manifest = {"library": os.path.basename(library_path), "library_sha256": file_digest(library_path),
                "sources_sha256": sources_digest(root), "cuda": bool(cuda)}
    path = os.path.join(os.path.dirname(library_path), MANIFEST_NAME)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1)
    return path


def find_library(directory: str, root: str | None) -> tuple[str | None, str | None]:
    """``(path, None)`` of the library built for this checkout, or ``(None, reason)``.

    ``directory`` holds the library and its manifest; ``root`` is the
    repository whose ``ops/`` sources the library must match (None, or a root
    without sources, as in an installed wheel: only the file's digest is
    checked).
    """
    manifest_path = os.path.join(directory, MANIFEST_NAME)
    if not os.path.exists(manifest_path):
        if any(n.startswith("_tf_face_ops") and n.endswith(".so") for n in os.listdir(directory)):
            return None, ("custom-op library has no build manifest "
                          f"({MANIFEST_NAME}; built by an older setup.py?): run `make ops`")
        return None, ("custom-op library not built (`make ops` in a checkout, "
                      "`pip install --no-build-isolation .` for an install)")
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
        path = os.path.join(directory, manifest["library"])
        want_file, want_sources = manifest["library_sha256"], manifest["sources_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return None, f"unreadable {MANIFEST_NAME} ({err}): run `make ops`"
    if not os.path.exists(path):
        return None, f"custom-op library {manifest['library']} named by {MANIFEST_NAME} is missing: run `make ops`"
    if file_digest(path) != want_file:
        return None, f"custom-op library {manifest['library']} is not the file its build wrote: run `make ops`"
    have_sources = sources_digest(root) if root else None
    if have_sources is not None and have_sources != want_sources:
        return None, ("custom-op library is stale: the sources in ops/ changed since it was built "
                      "(run `make ops`)")
    return path, None
