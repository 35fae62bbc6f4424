"""Detail geometry on the texel grid, in TF (differentiable): DRN's displaced
detail mesh and its normals (METHOD.md (e)-(f), DESIGN.md "UV atlas").

Every valid texel of the UV atlas is a vertex of the detail mesh; its base
position and normal come from the UV sample's position and normal maps.
DRN predicts a moving rate r_d; the displacement is Δd = r_d · n and the
detail vertex is v' = v + Δd.

Detail normals (ours): finite-difference normals of a position map are
piecewise constant over the base triangles (the base mesh is piecewise linear
in UV), so using them directly would print the triangle edges into the
shading. We use the smooth interpolated base normal plus the *change* that the
displacement makes to the finite-difference normal:

    n' = normalize(n + (fd(P + Δd) − fd(P)))

which is exactly n where Δd = 0 and follows the displaced surface otherwise.
``fd`` uses central differences where both neighbours are valid texels and
0 elsewhere (the base normal is kept at the atlas border).

Positions are divided by the fit's weak-perspective scale first, so Δd is in
the face model's units whatever the photo's resolution.
"""

from __future__ import annotations

import tensorflow as tf


def _shift(x, dr: int, dc: int):
    """x[:, r + dr, c + dc] with zero padding (x: [B, H, W, C])."""
    pad = [[0, 0], [max(-dr, 0), max(dr, 0)], [max(-dc, 0), max(dc, 0)], [0, 0]]
    y = tf.pad(x, pad)
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    return y[:, max(dr, 0):max(dr, 0) + h, max(dc, 0):max(dc, 0) + w, :]


def fd_normals(position, valid):
    """Un-normalised finite-difference normals of a position map [B,H,W,3].

    ``valid`` [B,H,W,1] float (1 = texel of the detail mesh). Oriented so that
    a surface whose u axis runs along +x and v axis along -y (camera frame,
    UV v down) gets +z normals; zero where a central difference is missing.
    """
    du = _shift(position, 0, 1) - _shift(position, 0, -1)
    dv = _shift(position, 1, 0) - _shift(position, -1, 0)
    ok = (_shift(valid, 0, 1) * _shift(valid, 0, -1) * _shift(valid, 1, 0)
          * _shift(valid, -1, 0) * valid)
    return tf.linalg.cross(dv, du) * ok


def detail_normals(position, normals, displacement, valid, orientation=None):
    """Normals of the displaced detail mesh (see module doc).

    position [B,H,W,3] (already divided by the fit scale), normals [B,H,W,3]
    unit base normals, displacement [B,H,W,3] (Δd), valid [B,H,W,1].
    ``orientation`` [B,1,1,1] ±1 flips the finite-difference normals when the
    UV layout's handedness is opposite (computed by ``fd_orientation``).
    """
    if orientation is None:
        orientation = fd_orientation(position, normals, valid)
    base = fd_normals(position, valid)
    moved = fd_normals(position + displacement, valid)
    scale = tf.norm(base, axis=-1, keepdims=True) + 1e-12
    # express the change relative to the local size of the finite-difference
    # normal, so it is a unitless tilt added to the unit base normal
    delta = orientation * (moved - base) / scale
    n = normals + delta * tf.cast(scale > 1e-9, normals.dtype)
    return tf.math.l2_normalize(n, axis=-1) * valid


def fd_orientation(position, normals, valid):
    """+1 / -1 per sample: the sign that makes fd normals agree with ``normals``."""
    fd = fd_normals(position, valid)
    agree = tf.reduce_sum(fd * normals, axis=[1, 2, 3], keepdims=True)
    return tf.where(agree >= 0, 1.0, -1.0)


def displacement_from_rate(rate, normals, valid):
    """Δd = r_d · n, [B,H,W,1] x [B,H,W,3] -> [B,H,W,3], zero off the mesh."""
    return rate * normals * valid


def gather_texels(values, texel_index):
    """[B,H,W,C] -> [B,V,C] at the detail-mesh texels (row-major flat ids)."""
    b = tf.shape(values)[0]
    c = values.shape[-1]
    flat = tf.reshape(values, [b, -1, c])
    return tf.gather(flat, texel_index, axis=1)
