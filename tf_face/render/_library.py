"""Loads the custom-op library (``_tf_face_ops*.so``) and registers gradients.

The library is built by ``make ops`` (``setup.py build_ext --inplace``). If it
is missing or fails to load, ``library()`` returns None and the callers use the
pure-TF reference; ``warn_fallback_once`` logs that once per process.
"""

from __future__ import annotations

import glob
import logging
import os
import threading

import tensorflow as tf

from tf_face.errors import TfFaceError

_LOG = logging.getLogger(__name__)
_LOCK = threading.Lock()
_STATE = {"loaded": False, "lib": None, "error": None, "warned": False}


class OpsUnavailableError(TfFaceError):
    """backend="op" was requested but the custom-op library is not built."""


def _candidates() -> list[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    return sorted(glob.glob(os.path.join(here, "_tf_face_ops*.so")), key=os.path.getmtime)


def _register_gradients(lib) -> None:
    @tf.RegisterGradient("TfFaceShShade")
    def _sh_grad(op, grad):  # pylint: disable=unused-variable
        albedo, normals, sh = op.inputs
        return list(lib.tf_face_sh_shade_grad(grad, albedo, normals, sh))

    @tf.RegisterGradient("TfFaceLaplacianSmoothness")
    def _lap_grad(op, grad):  # pylint: disable=unused-variable
        values, row_ptr, col_idx = op.inputs
        t_row_ptr, t_col_idx = lib.tf_face_csr_transpose(row_ptr, col_idx)
        return [lib.tf_face_laplacian_smoothness_grad(values, row_ptr, col_idx,
                                                      t_row_ptr, t_col_idx, grad),
                None, None]


def library():
    """The loaded op module, or None when the library is absent/unloadable."""
    with _LOCK:
        if not _STATE["loaded"]:
            _STATE["loaded"] = True
            paths = _candidates()
            if not paths:
                _STATE["error"] = "custom-op library not built (run `make ops`)"
            else:
                try:
                    lib = tf.load_op_library(paths[-1])
                    _register_gradients(lib)
                    _STATE["lib"] = lib
                except (tf.errors.NotFoundError, OSError, KeyError) as err:
                    _STATE["error"] = f"custom-op library failed to load: {err}".splitlines()[0]
        return _STATE["lib"]


def load_error() -> str | None:
    library()
    return _STATE["error"]


def warn_fallback_once() -> None:
    with _LOCK:
        if _STATE["warned"]:
            return
        _STATE["warned"] = True
    _LOG.warning("tf_face.render: %s; using the pure-TF reference (slower).",
                 _STATE["error"])
