"""Detail geometry on the texel grid, in TF (differentiable): DRN's displaced
detail mesh and its normals (METHOD.md (e)-(f), DESIGN.md "UV atlas").

Every valid texel of the UV atlas is a vertex of the detail mesh; its base
position and normal come from the UV sample's position and normal maps.
DRN predicts a moving rate r_d; the displacement is Δd = r_d · n and the
detail vertex is v' = v + Δd.

Detail normals: the TF twin of ``tf_face.detail.np_ops`` (numpy; serving and
export) -- the same formula with the same shifted views of the dense maps:
area-weighted vertex normals of the texel-grid triangulation, the
orientation by a majority vote of the base grid normals against the
reference normals, and

    n = normalise(n_ref + sign * (n_grid(P + Δd) - n_grid(P)))

See that module's doc for the formula's reasons and for the displacement
conventions (training positions are divided by fit scale × detail unit, so
Δd = r_d · n is in inter-ocular distances; serving displaces in pixels by
r_d · scale · detail_unit -- the same geometry, and grid normals are
scale-invariant). ``tests/test_detail_normals.py`` checks that both paths
agree to 1e-5.

All functions work in the dtype of ``position`` (float32 in training;
float64 for gradient checks); ``valid`` is [B,H,W,1] with 1 = texel of the
detail mesh (values > 0.5 count as valid).
"""

from __future__ import annotations

import tensorflow as tf


def _shift(x, dr: int, dc: int):
    """x[:, r + dr, c + dc] with zero padding (x: [B, H, W, C])."""
    pad = [[0, 0], [max(-dr, 0), max(dr, 0)], [max(-dc, 0), max(dc, 0)], [0, 0]]
    y = tf.pad(x, pad)
    h, w = tf.shape(x)[1], tf.shape(x)[2]
    return y[:, max(dr, 0):max(dr, 0) + h, max(dc, 0):max(dc, 0) + w, :]


def _unit(x):
    """x / |x| over the last axis; 0 (with a zero gradient) where |x| = 0."""
    sq = tf.reduce_sum(tf.square(x), axis=-1, keepdims=True)
    ok = sq > 0
    return tf.where(ok, x * tf.math.rsqrt(tf.where(ok, sq, tf.ones_like(sq))),
                    tf.zeros_like(x))


def _binary(valid, dtype):
    return tf.cast(tf.convert_to_tensor(valid) > 0.5, dtype)


def grid_vertex_normals(position, valid):
    """Unit area-weighted vertex normals [B,H,W,3] of the texel-grid mesh.

    0 at texels in no grid triangle (``tf_face.detail.np_ops.grid_vertex_normals``
    per sample).
    """
    position = tf.convert_to_tensor(position)
    v = _binary(valid, position.dtype)
    p10, p11, p01 = _shift(position, 1, 0), _shift(position, 1, 1), _shift(position, 0, 1)
    v10, v11, v01 = _shift(v, 1, 0), _shift(v, 1, 1), _shift(v, 0, 1)
    # the two triangles of the 2x2 block whose top-left texel is (r, c)
    e11 = p11 - position
    n1 = tf.linalg.cross(p10 - position, e11) * (v * v10 * v11)
    n2 = tf.linalg.cross(e11, p01 - position) * (v * v11 * v01)
    both = n1 + n2
    # each triangle's normal goes to its three corners
    acc = both + _shift(both, -1, -1) + _shift(n1, -1, 0) + _shift(n2, 0, -1)
    return _unit(acc)


def grid_orientation(position, normals, valid):
    """+1 / -1 per sample [B,1,1,1]: the majority vote of the grid normals of
    ``position`` against ``normals`` over the valid texels (-1 iff more
    disagree than agree)."""
    position = tf.convert_to_tensor(position)
    v = _binary(valid, position.dtype)[..., 0] > 0
    agree = tf.reduce_sum(grid_vertex_normals(position, valid)
                          * _unit(tf.cast(normals, position.dtype)), axis=-1)
    pos = tf.reduce_sum(tf.cast(tf.logical_and(v, agree > 0), tf.int32), axis=[1, 2])
    neg = tf.reduce_sum(tf.cast(tf.logical_and(v, agree < 0), tf.int32), axis=[1, 2])
    sign = tf.where(neg > pos, tf.constant(-1.0, position.dtype),
                    tf.constant(1.0, position.dtype))
    return tf.stop_gradient(tf.reshape(sign, [-1, 1, 1, 1]))


# the name the callers used when the detail normals were central differences
fd_orientation = grid_orientation


def detail_normals(position, normals, displacement, valid, orientation=None,
                   base_grid_normals=None):
    """Normals of the displaced detail mesh [B,H,W,3] (module doc); 0 off ``valid``.

    position [B,H,W,3] (in training divided by fit scale × detail unit),
    normals [B,H,W,3] base normals (normalised here), displacement [B,H,W,3]
    (Δd, 0 off ``valid``), valid [B,H,W,1]. ``orientation`` [B,1,1,1] ±1
    (``grid_orientation(position, normals, valid)`` when None).
    ``base_grid_normals``: ``grid_vertex_normals(position, valid)`` when the
    caller has it (an optimiser that moves only the displacement).
    """
    position = tf.convert_to_tensor(position)
    dtype = position.dtype
    ref = _unit(tf.cast(normals, dtype))
    if orientation is None:
        orientation = grid_orientation(position, normals, valid)
    base = grid_vertex_normals(position, valid) if base_grid_normals is None \
        else tf.cast(base_grid_normals, dtype)
    moved = grid_vertex_normals(position + tf.cast(displacement, dtype), valid)
    n = _unit(ref + tf.cast(orientation, dtype) * (moved - base))
    return n * _binary(valid, dtype)


def displacement_from_rate(rate, normals, valid):
    """Δd = r_d · n̂, [B,H,W,1] x [B,H,W,3] -> [B,H,W,3], zero off the mesh."""
    rate = tf.convert_to_tensor(rate)
    return rate * _unit(tf.cast(normals, rate.dtype)) * tf.cast(valid, rate.dtype)


def gather_texels(values, texel_index):
    """[B,H,W,C] -> [B,V,C] at the detail-mesh texels (row-major flat ids)."""
    b = tf.shape(values)[0]
    c = values.shape[-1]
    flat = tf.reshape(values, [b, -1, c])
    return tf.gather(flat, texel_index, axis=1)
