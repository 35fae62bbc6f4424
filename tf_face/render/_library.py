"""Loads the custom-op library (``_tf_face_ops*.so``) and registers gradients.

The library is built by ``make ops`` (``setup.py build_ext --inplace``), which
also writes its build manifest (``tf_face.render.op_sources``): the loader
loads the file the manifest names, not the newest ``.so`` by mtime, and
refuses it when it is stale (the ``ops/`` sources of this checkout changed
since the build) or is not the file the build wrote. ``TF_FACE_OPS_LIBRARY=
/path/to.so`` loads that file instead, unchecked (e.g. a Bazel build). If the
library is missing, refused or fails to load, ``library()`` returns None and
the callers use the pure-TF reference; ``warn_fallback_once`` logs the reason
once per process.
"""

from __future__ import annotations

import logging
import os
import threading

import tensorflow as tf

from tf_face.errors import TfFaceError
from tf_face.render import op_sources

_LOG = logging.getLogger(__name__)
_LOCK = threading.Lock()
_STATE = {"loaded": False, "lib": None, "error": None, "warned": False}


class OpsUnavailableError(TfFaceError):
    """backend="op" was requested but the custom-op library is not built."""


def _select() -> tuple[str | None, str | None]:
    """(path, None) of the library to load, or (None, why not)."""
    explicit = os.environ.get("TF_FACE_OPS_LIBRARY", "").strip()
    if explicit:
        if not os.path.exists(explicit):
            return None, f"TF_FACE_OPS_LIBRARY={explicit} does not exist"
        return explicit, None
    here = os.path.dirname(os.path.abspath(__file__))
    return op_sources.find_library(here, os.path.dirname(os.path.dirname(here)))


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


# plain Python (file hashing, os.walk) that runs inside traced functions: not for AutoGraph
@tf.autograph.experimental.do_not_convert
def library():
    """The loaded op module, or None when the library is absent/unloadable."""
    with _LOCK:
        if not _STATE["loaded"]:
            _STATE["loaded"] = True
            path, error = _select()
            if path is None:
                _STATE["error"] = error
            else:
                try:
                    lib = tf.load_op_library(path)
                    _register_gradients(lib)
                    _STATE["lib"] = lib
                except (tf.errors.NotFoundError, OSError, KeyError) as err:
                    _STATE["error"] = f"custom-op library failed to load: {err}".splitlines()[0]
        return _STATE["lib"]


# plain Python (file hashing, os.walk) that runs inside traced functions: not for AutoGraph
@tf.autograph.experimental.do_not_convert
def load_error() -> str | None:
    library()
    return _STATE["error"]


# plain Python (file hashing, os.walk) that runs inside traced functions: not for AutoGraph
@tf.autograph.experimental.do_not_convert
def warn_fallback_once() -> None:
    with _LOCK:
        if _STATE["warned"]:
            return
        _STATE["warned"] = True
    _LOG.warning("tf_face.render: %s; using the pure-TF reference (slower).",
                 _STATE["error"])
