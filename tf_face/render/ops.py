"""One API for the training ops: custom C++/CUDA op or pure-TF reference.

``backend``: ``"auto"`` (op if the library is built, else the reference, with
a one-time warning), ``"op"`` (raise ``OpsUnavailableError`` if not built) or
``"reference"``. The environment variable ``TF_FACE_OPS=reference`` makes
``"auto"`` use the reference. Both backends compute the same maths
(``tf_face.render.reference`` is the specification) and are differentiable
w.r.t. the float inputs marked below; adjacency inputs are
constants (no gradient). These ops are for training graphs; exported
inference models must not contain them (TFLite cannot run custom ops).
"""

from __future__ import annotations

import os

import tensorflow as tf

from tf_face.render import _library
from tf_face.render import reference as ref

BACKENDS = ("auto", "op", "reference")


def ops_available() -> bool:
    """True when the compiled custom-op library is loaded."""
    return _library.library() is not None


def _lib(backend: str):
    """The op module to use, or None for the reference."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "reference":
        return None
    if backend == "auto" and os.environ.get("TF_FACE_OPS", "").strip().lower() == "reference":
        return None
    lib = _library.library()
    if lib is None:
        if backend == "op":
            raise _library.OpsUnavailableError(
                f"backend='op' requested but {_library.load_error()}")
        _library.warn_fallback_once()
    return lib


def sh_shade(albedo, normals, sh, backend: str = "auto"):
    """Lambertian SH shading ``[B, H, W, 3]`` (see ``tf_face.render.sh``).

    albedo, normals [B, H, W, 3] (normals in the camera frame, any length;
    normalised inside), sh [B, 9, 3]. Differentiable w.r.t. all three.
    """
    lib = _lib(backend)
    albedo = tf.convert_to_tensor(albedo)
    normals = tf.convert_to_tensor(normals, albedo.dtype)
    sh = tf.convert_to_tensor(sh, albedo.dtype)
    if lib is None:
        return ref.sh_shade_reference(albedo, normals, sh)
    return lib.tf_face_sh_shade(albedo, normals, sh)


def mesh_laplacian_smoothness(values, row_ptr, col_idx, backend: str = "auto"):
    """``E[b] = sum_i sum_{j in N(i)} |x_i - x_j|^2``, shape [B].

    values [B, V, C]; (row_ptr [V + 1], col_idx [nnz]) int32 CSR adjacency,
    e.g. from ``mesh_adjacency`` or ``grid_adjacency`` (symmetric: each edge
    counted in both directions). Differentiable w.r.t. ``values``; any CSR
    (symmetric or not) gets the exact gradient.
    """
    lib = _lib(backend)
    values = tf.convert_to_tensor(values)
    row_ptr = tf.convert_to_tensor(row_ptr, tf.int32)
    col_idx = tf.convert_to_tensor(col_idx, tf.int32)
    if lib is None:
        return ref.mesh_laplacian_smoothness_reference(values, row_ptr, col_idx)
    return lib.tf_face_laplacian_smoothness(values, row_ptr, col_idx)
