"""Fast dense-grid detail normals for inference (numpy, no index lists).

Same result as ``tf_face.export.detail_mesh.detail_normals(moved, valid,
reference_normals=base_normals, base_positions=base)`` -- the texel-grid
triangulation of ``tf_face.render.adjacency.grid_triangles`` (each 2x2 block
split into (r,c)-(r+1,c)-(r+1,c+1) and (r,c)-(r+1,c+1)-(r,c+1), a triangle
exists iff its three texels are valid), area-weighted vertex normals, the
orientation chosen by a majority vote against the reference normals, and

    n = normalise(n_ref + sign * (n_grid(moved) - n_grid(base)))

-- computed with shifted views of the [H, W] maps instead of triangle index
arrays and ``bincount`` (float32; it runs once per photo).
"""

from __future__ import annotations

import numpy as np


def _unit(x):
    n = np.sqrt(np.einsum("...c,...c->...", x, x))[..., None]
    return x / np.where(n > 0, n, np.inf)


def _cross(a, b):
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=-1)


def grid_vertex_normals(pos, valid):
    """Unit area-weighted vertex normals [H,W,3] of the texel grid (0: no triangle)."""
    pos = np.asarray(pos, np.float32)
    v = np.asarray(valid, bool)
    p00, p10, p11, p01 = pos[:-1, :-1], pos[1:, :-1], pos[1:, 1:], pos[:-1, 1:]
    v00, v10, v11, v01 = v[:-1, :-1], v[1:, :-1], v[1:, 1:], v[:-1, 1:]
    e11 = p11 - p00
    n1 = _cross(p10 - p00, e11) * (v00 & v10 & v11)[..., None]
    n2 = _cross(e11, p01 - p00) * (v00 & v11 & v01)[..., None]
    acc = np.zeros_like(pos)
    both = n1 + n2
    acc[:-1, :-1] += both
    acc[1:, 1:] += both
    acc[1:, :-1] += n1
    acc[:-1, 1:] += n2
    return _unit(acc)


def displace_np(position, normals, displacement, valid):
    """``P + d * n_hat`` inside ``valid``, ``P`` elsewhere (float32 [H,W,3])."""
    pos = np.asarray(position, np.float32)
    out = pos + np.asarray(displacement, np.float32)[..., None] * _unit(np.asarray(normals,
                                                                                   np.float32))
    return np.where(np.asarray(valid, bool)[..., None], out, pos).astype(np.float32)


def detail_normals_np(moved, base, reference_normals, valid):
    """Detail normal map [H,W,3] float32 (module doc); 0 outside ``valid``."""
    v = np.asarray(valid, bool)
    ref = _unit(np.asarray(reference_normals, np.float32))
    vn = grid_vertex_normals(moved, v)
    agree = np.einsum("hwc,hwc->hw", vn, ref)[v]
    sign = -1.0 if np.sum(agree < 0) > np.sum(agree > 0) else 1.0
    bn = grid_vertex_normals(base, v)
    out = _unit(ref + sign * (vn - bn))
    return np.where(v[..., None], out, 0.0).astype(np.float32)
