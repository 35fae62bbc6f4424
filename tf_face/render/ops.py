"""One API for the render ops: custom C++/CUDA op or pure-TF reference.

``backend``: ``"auto"`` (op if the library is built, else the reference, with
a one-time warning), ``"op"`` (raise ``OpsUnavailableError`` if not built) or
``"reference"``. The environment variable ``TF_FACE_OPS=reference`` makes
``"auto"`` use the reference. Both backends compute the same maths
(``tf_face.render.reference`` is the specification) and are differentiable
w.r.t. the float inputs marked below; atlas and adjacency inputs are
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


def uv_interpolate(attributes, tri_id, bary, triangles, mask, backend: str = "auto"):
    """Per-vertex attributes [B, V, C] -> per-texel [B, H, W, C] (zeros off-mask).

    tri_id [H, W] int32 (-1 outside), bary [H, W, 3] (same float dtype as
    attributes), triangles [T, 3] int32, mask [H, W] bool. Differentiable
    w.r.t. ``attributes``; the op's backward is a deterministic CSR gather
    (vertex -> texels, built per call in O(H W)).
    """
    lib = _lib(backend)
    attributes = tf.convert_to_tensor(attributes)
    bary = tf.convert_to_tensor(bary, attributes.dtype)
    tri_id = tf.convert_to_tensor(tri_id, tf.int32)
    triangles = tf.convert_to_tensor(triangles, tf.int32)
    mask = tf.convert_to_tensor(mask, tf.bool)
    if lib is None:
        return ref.uv_interpolate_reference(attributes, tri_id, bary, triangles, mask)
    return lib.tf_face_uv_interpolate(attributes, tri_id, bary, triangles, mask)


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


def uv_render(vertex_normals, albedo, sh, tri_id, bary, triangles, mask,
              backend: str = "auto", fused: bool | None = None):
    """The training UV renderer: ``sh_shade(albedo, uv_interpolate(normals), sh)``.

    vertex_normals [B, V, 3] (camera frame), albedo [B, H, W, 3], sh [B, 9, 3];
    texels outside ``mask & (tri_id >= 0)`` are zero. Returns [B, H, W, 3].
    Differentiable w.r.t. vertex_normals, albedo and sh. With the op backend
    the fused CPU kernel (one pass per texel, no normal map in memory) is used
    unless a GPU is visible (it has no GPU kernel) or ``fused=False``.
    """
    lib = _lib(backend)
    if fused is None:
        fused = not tf.config.list_logical_devices("GPU")
    if lib is not None and fused:
        vertex_normals = tf.convert_to_tensor(vertex_normals)
        dtype = vertex_normals.dtype
        return lib.tf_face_uv_render(
            vertex_normals, tf.convert_to_tensor(albedo, dtype), tf.convert_to_tensor(sh, dtype),
            tf.convert_to_tensor(tri_id, tf.int32), tf.convert_to_tensor(bary, dtype),
            tf.convert_to_tensor(triangles, tf.int32), tf.convert_to_tensor(mask, tf.bool))
    normal_map = uv_interpolate(vertex_normals, tri_id, bary, triangles, mask, backend)
    shaded = sh_shade(albedo, normal_map, sh, backend)
    drawn = tf.logical_and(tf.convert_to_tensor(mask, tf.bool), tf.convert_to_tensor(tri_id, tf.int32) >= 0)
    return shaded * tf.cast(drawn, shaded.dtype)[..., None]


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
