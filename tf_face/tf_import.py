"""Importing TensorFlow quietly (entry points and worker processes call this first)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys


@contextlib.contextmanager
def muted_stderr():
    """File descriptor 2 -> /dev/null inside the block (C++ libraries' prints,
    e.g. TFLite's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.");
    a no-op with ``TF_FACE_VERBOSE_TF=1`` or without a real stderr."""
    if os.environ.get("TF_FACE_VERBOSE_TF"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):   # no real stderr (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_tf_logs(env=None):
    """The one place ``TF_CPP_MIN_LOG_LEVEL`` is set: to 2 (TF's C++ INFO and
    WARNING lines hidden) in ``env`` (default ``os.environ``; pass a copy for a
    child process) unless it is set already or ``TF_FACE_VERBOSE_TF`` is.
    Returns ``env``. Does not import TensorFlow."""
    env = os.environ if env is None else env
    if not env.get("TF_FACE_VERBOSE_TF"):
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


VERBOSE_HELP = "Show TensorFlow's own start-up and log lines (default: only tf_face's)."


def quiet_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow (once) without its start-up noise.

    ``verbose=True`` (the entry points' ``--verbose``) sets ``TF_FACE_VERBOSE_TF=1``
    for this process and the ones it starts, which keeps everything.

    ``TF_CPP_MIN_LOG_LEVEL=2`` (``quiet_tf_logs``) hides TF's C++ INFO/WARNING lines, but not the
    ones its libraries print while they load, before absl logging starts (the
    oneDNN notice, "Could not find cuda drivers"), nor the ``E0000 ... failed
    call to cuInit`` ERROR line a GPU-less machine prints at the first op. So
    the import and the device discovery run with file descriptor 2 pointed at
    /dev/null; ERROR lines after that still show, and a failing import still
    raises its Python exception. TF's Python INFO lines (e.g. the checkpoint
    saver's "Sharding callback duration", logged through absl) are hidden too:
    the ``tensorflow`` and ``absl`` loggers are set to WARNING (tf_face's own
    loggers are not touched). ``TF_FACE_VERBOSE_TF=1`` keeps everything.
    """
    if verbose:
        os.environ["TF_FACE_VERBOSE_TF"] = "1"
    quiet_tf_logs()
    if not os.environ.get("TF_FACE_VERBOSE_TF"):
        for name in ("tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if "tensorflow" in sys.modules:
        return
    with muted_stderr():
        import tensorflow as tf
        tf.config.list_physical_devices()
