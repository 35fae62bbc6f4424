"""Shared pieces of the command-line entry points: image listing, batch loop,
one-line errors and exit codes, interrupts.

Interrupts: SIGINT (Ctrl-C) and SIGTERM end a photo CLI with one line
(``interrupted (SIGINT): ...``) and exit code 128 + signal (130, 143). The
photo being written is dropped (its temp folder removed), finished photo
folders stay, and a batch writes ``failures.json`` for the photos it finished.
Rerunning the same batch command resumes: photos whose output folder exists
are skipped (``--overwrite`` redoes them), and temp folders that killed runs
(SIGKILL, power loss) left behind are removed first.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from tf_face.errors import TfFaceError, describe_error  # noqa: F401 - re-exported
from tf_face.image_io import IMAGE_SUFFIXES  # noqa: F401 - re-exported
from tf_face.outputs import (check_output_free, check_output_writable, defer_signal,
                             in_critical_section, remove_stale_temp, uninterruptible, write_json)
from tf_face.pipeline import read_inputs
from tf_face.tf_import import quiet_tensorflow  # noqa: F401 - the entry points' one call
from tf_face.tf_import import quiet_tf_logs



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


def run_command_step(title: str, cmd: list, cwd, what: str = "step", hint: str = "") -> float:
    """Print ``=== title`` and the command, run it (``cwd`` on PYTHONPATH) and
    return its wall seconds; a non-zero exit is a one-line ``TfFaceError``.
    The steps of ``make demo`` and ``train.release``."""
    cmd = [str(c) for c in cmd]
    print(f"\n=== {title}\n$ {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
    env = quiet_tf_logs(dict(os.environ, PYTHONPATH=str(cwd) + os.pathsep
                             + os.environ.get("PYTHONPATH", "")))
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env)
    if res.returncode != 0:
        raise TfFaceError(f"{what} '{title}' failed (exit code {res.returncode}); "
                          f"the command is printed above{hint}")
    return time.perf_counter() - t


def print_error(err: BaseException, debug: bool = False) -> int:
    """Print ``err`` as the CLIs do and return the exit code: one line
    ``error: ...`` (1 for our ``TfFaceError``s, 2 for anything else); with
    ``debug`` (``--debug``) the full traceback comes first, with the exception
    a ``TfFaceError`` wraps (its ``__cause__``: ``raise ... from exc``)."""
    if debug:
        traceback.print_exception(err, file=sys.stderr)
    if isinstance(err, TfFaceError):
        print(f"error: {err}", file=sys.stderr)
        return 1
    hint = "" if debug else " (rerun with --debug for the traceback)"
    print(f"error: {describe_error(err)}{hint}", file=sys.stderr)
    return 2


def run_single(fn: Callable[[], object], debug: bool = False) -> int:
    """Run ``fn``; print one line and return the exit code instead of a traceback
    (``debug``: the traceback too, see ``print_error``)."""
    try:
        fn()
        return 0
    except Exception as e:  # noqa: BLE001 - the CLI promises one line, not a traceback
        return print_error(e, debug)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived (raised by the handler ``interrupt_handlers`` installs)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


def _as_interrupted(err: KeyboardInterrupt) -> Interrupted:
    return err if isinstance(err, Interrupted) else Interrupted(signal.SIGINT)


#: the last SIGINT / SIGTERM received inside ``interrupt_handlers`` (None: none)
_received: list = []


def received_signal():
    """The signal an interrupt was raised for, if one arrived (else None)."""
    return _received[-1] if _received else None


def _on_signal(signum, frame):
    _received.append(signum)
    if in_critical_section():   # a folder swap / clean-up: raise when it is done
        defer_signal(signum)
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupt_handlers():
    """SIGINT and SIGTERM raise ``Interrupted`` (a KeyboardInterrupt) while inside,
    so ``finally`` blocks and ``atomic_output_dir`` clean up; restored after."""
    _received.clear()
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue   # ignored by whoever started us (nohup, `cmd &`): keep it so
            previous[sig] = signal.signal(sig, _on_signal)
    except ValueError:   # not the main thread: leave the handlers alone
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_batch(paths: list[Path], fn: Callable[[Path], object], out_dir: Path,
              desc: str = "photos", skip: Callable[[Path], bool] | None = None) -> dict:
    """Run ``fn(path)`` for each path with a progress bar; failures never stop
    the batch and are listed in ``out_dir/failures.json``. Paths for which
    ``skip(path)`` is true are counted as skipped. An interrupt stops the
    batch: ``failures.json`` is still written for the photos finished, and the
    summary says ``interrupted`` (the signal number)."""
    failures = []
    ok = skipped = 0
    interrupted = None
    bar = tqdm(paths, desc=desc, unit="photo", file=sys.stderr)
    try:
        with bar:
            for p in bar:
                if skip is not None and skip(p):
                    skipped += 1
                    continue
                try:
                    fn(p)
                    ok += 1
                except Exception as e:  # noqa: BLE001 - one bad photo never stops the batch
                    if received_signal() is not None:
                        # the interrupt was raised inside library code that turned
                        # it into another error (seen: a TypeError from a file
                        # write's clean-up): it is still the interrupt
                        raise Interrupted(received_signal()) from e
                    failures.append({"image": str(p), "error": describe_error(e),
                                     "type": type(e).__name__})
    except KeyboardInterrupt as e:
        interrupted = _as_interrupted(e)
    summary = {"total": len(paths), "succeeded": ok, "skipped": skipped,
               "failed": len(failures),
               "interrupted": interrupted.signum if interrupted is not None else None}
    record = out_dir / "failures.json"
    with uninterruptible():
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_json(record, failures)
        except OSError as e:
            summary["record_error"] = f"could not write {record}: {e.strerror or e}"
    done = f"{ok}/{len(paths)} photos done"
    if skipped:
        done += f", {skipped} skipped (output folder exists; --overwrite redoes them)"
    done += f", {len(failures)} failed"
    where = (f"(see {record})" if "record_error" not in summary
             else f"({summary['record_error']})")
    if interrupted is not None:
        left = len(paths) - ok - skipped - len(failures)
        print(f"interrupted ({interrupted.signal_name}): {done}, {left} not done {where}; "
              f"rerun the same command to resume", file=sys.stderr)
    elif "record_error" in summary:
        print(f"error: {done} {where}", file=sys.stderr)
    else:
        print(f"{done} {where}", file=sys.stderr)
    return summary


def _batch_output_done(out_dir: Path) -> bool:
    """A photo's output folder is there (they are written atomically, so complete)."""
    try:
        return out_dir.is_dir() and any(out_dir.iterdir())
    except OSError:
        return False


def run_photo_cli(flag_values, make_worker: Callable[[], object],
                  process: Callable[..., str]) -> int:
    """The main of the photo CLIs (unwrap, reconstruct).

    Checks the arguments; reads and checks the photo and the landmark file
    (single-photo mode) and checks that the output folder can be written
    *before* ``make_worker()`` loads any model; then ``process(worker,
    image_path, out_dir, landmarks_path, inputs)`` (returns a line to print)
    for the photo, or for every photo of ``--image_dir`` with a progress bar
    and ``failures.json``. Batch mode skips photos whose output folder exists
    unless ``--overwrite`` (so a rerun resumes). SIGINT / SIGTERM: one line,
    exit code 130 / 143 (see the module docstring).
    """
    with interrupt_handlers():
        try:
            return _run_photo_cli(flag_values, make_worker, process)
        except KeyboardInterrupt as e:
            err = _as_interrupted(e)
            print(f"interrupted ({err.signal_name})", file=sys.stderr)
            return err.exit_code
        except Exception:  # noqa: BLE001 - see run_batch: an interrupt in disguise
            if received_signal() is None:
                raise
            err = Interrupted(received_signal())
            print(f"interrupted ({err.signal_name})", file=sys.stderr)
            return err.exit_code


def _run_photo_cli(flag_values, make_worker, process) -> int:
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
            check_output_writable(out, sibling=True)
            holder["inputs"] = read_inputs(f.image, f.landmarks)
            remove_stale_temp(out.parent, out.name)
        steps.append(check)
    else:
        def check_batch():
            holder["paths"] = list_images(f.image_dir)
            check_output_writable(out)
            if out.is_dir():
                remove_stale_temp(out)
        steps.append(check_batch)
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
    skip = None if f.overwrite else (lambda p: _batch_output_done(out / names[p]))
    summary = run_batch(holder["paths"],
                        lambda p: process(worker, p, out / names[p], None, None), out,
                        skip=skip)
    if summary["interrupted"] is not None:
        return 128 + summary["interrupted"]
    if "record_error" in summary:
        return 1
    return 0 if summary["succeeded"] or summary["skipped"] else 1
