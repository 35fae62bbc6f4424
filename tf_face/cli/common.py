"""Shared pieces of the command-line entry points: image listing, batch loop,
one-line errors and exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Callable

from tf_face.errors import TfFaceError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def list_images(directory) -> list[Path]:
    """Image files directly in ``directory`` (sorted; hidden files skipped)."""
    d = Path(directory)
    if not d.is_dir():
        raise TfFaceError(f"--image_dir {d} is not a directory")
    return sorted(p for p in d.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in IMAGE_SUFFIXES)


def output_names(paths: list[Path]) -> dict:
    """Per-photo output folder names: the stem, or stem_ext when stems collide."""
    stems = [p.stem for p in paths]
    return {p: (p.stem if stems.count(p.stem) == 1 else f"{p.stem}_{p.suffix.lstrip('.')}")
            for p in paths}


def describe_error(err: BaseException) -> str:
    """One line: the message of our own errors, type + message of anything else."""
    if isinstance(err, TfFaceError):
        return str(err)
    return f"internal error ({type(err).__name__}): {err}"


def run_single(fn: Callable[[], object], debug: bool = False) -> int:
    """Run ``fn``; print one line and return the exit code instead of a traceback."""
    try:
        fn()
        return 0
    except TfFaceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the CLI promises one line, not a traceback
        if debug:
            traceback.print_exc()
        print(f"error: {describe_error(e)} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return 2


def run_batch(paths: list[Path], fn: Callable[[Path], object], out_dir: Path,
              desc: str = "photos") -> dict:
    """Run ``fn(path)`` for each path with a progress bar; failures never stop
    the batch and are listed in ``out_dir/failures.json``."""
    from tqdm import tqdm

    from tf_face.outputs import write_json

    failures = []
    ok = 0
    for p in tqdm(paths, desc=desc, unit="photo", file=sys.stderr):
        try:
            fn(p)
            ok += 1
        except Exception as e:  # noqa: BLE001 - one bad photo never stops the batch
            failures.append({"image": str(p), "error": describe_error(e),
                             "type": type(e).__name__})
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "failures.json", failures)
    summary = {"total": len(paths), "succeeded": ok, "failed": len(failures)}
    print(f"{ok}/{len(paths)} photos done, {len(failures)} failed "
          f"(see {out_dir / 'failures.json'})", file=sys.stderr)
    return summary


def run_photo_cli(flag_values, make_worker: Callable[[], object],
                  process: Callable[..., str]) -> int:
    """The main of the photo CLIs (unwrap, reconstruct).

    Checks the arguments; in single-photo mode reads and checks the photo,
    the landmark file and the output folder *before* ``make_worker()`` loads
    any model; then ``process(worker, image_path, out_dir, landmarks_path,
    inputs)`` (returns a line to print) for the photo, or for every photo of
    ``--image_dir`` with a progress bar and ``failures.json``.
    """
    from tf_face.outputs import check_output_free
    from tf_face.pipeline import read_inputs

    f = flag_values
    if bool(f.image) == bool(f.image_dir):
        print("error: give exactly one of --image or --image_dir", file=sys.stderr)
        return 2
    if not f.out_dir:
        print("error: --out_dir is required", file=sys.stderr)
        return 2
    if f.image_dir and f.landmarks:
        print("error: --landmarks works with --image only", file=sys.stderr)
        return 2
    out = Path(f.out_dir)
    holder: dict = {}
    steps = []
    if f.image:
        def check():
            check_output_free(out, f.overwrite)
            holder["inputs"] = read_inputs(f.image, f.landmarks)
        steps.append(check)
    else:
        steps.append(lambda: holder.__setitem__("paths", list_images(f.image_dir)))
    steps.append(lambda: holder.__setitem__("worker", make_worker()))
    for step in steps:
        rc = run_single(step, f.debug)
        if rc:
            return rc
    worker = holder["worker"]
    if f.image:
        return run_single(lambda: print(process(worker, f.image, out, f.landmarks,
                                                holder["inputs"])), f.debug)
    names = output_names(holder["paths"])
    summary = run_batch(holder["paths"],
                        lambda p: process(worker, p, out / names[p], None, None), out)
    return 0 if summary["succeeded"] else 1
