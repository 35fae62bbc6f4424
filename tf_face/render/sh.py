"""Second-order real spherical harmonics with Lambertian convolution (pure TF).

The TF twin of ``tf_face.sh`` (constants, convention and the numpy basis are
there, shared with the C++/CUDA kernels' ``ops/kernels/sh_math.h``): shading is
``I_c = albedo_c * sum_i sh[i, c] * H_i(n_hat)`` with ``sh`` ``[B, 9, 3]``; a
zero normal has ``n_hat = 0`` and zero gradient.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# the constants are shared with the numpy basis (one definition)
from tf_face.sh import LAMBERT_BAND, SH_K, SH_NUM_COEFFS  # noqa: F401 - re-exported by tf_face.render


def normalize_normals(normals: tf.Tensor) -> tf.Tensor:
    """n / |n| on the last axis; a zero vector stays zero (zero gradient)."""
    sq = tf.reduce_sum(tf.square(normals), axis=-1, keepdims=True)
    positive = sq > 0
    inv = tf.where(positive, tf.math.rsqrt(tf.where(positive, sq, tf.ones_like(sq))),
                   tf.zeros_like(sq))
    return normals * inv


def sh_basis(normals: tf.Tensor, normalize: bool = True) -> tf.Tensor:
    """Lambertian-convolved SH basis ``[..., 9]`` of normals ``[..., 3]``."""
    n = normalize_normals(normals) if normalize else normals
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    k0, k1, k2, k3, k4 = (tf.constant(k, n.dtype) for k in SH_K)
    return tf.stack([
        k0 * tf.ones_like(x),
        k1 * y,
        k1 * z,
        k1 * x,
        k2 * x * y,
        k2 * y * z,
        k3 * (3.0 * z * z - 1.0),
        k2 * x * z,
        k4 * (x * x - y * y),
    ], axis=-1)


def ambient_sh(batch: int, irradiance: float = 1.0, dtype=np.float32) -> np.ndarray:
    """``[batch, 9, 3]`` SH whose shading is ``irradiance * albedo`` everywhere."""
    sh = np.zeros((batch, SH_NUM_COEFFS, 3), dtype)
    sh[:, 0, :] = irradiance / SH_K[0]
    return sh
