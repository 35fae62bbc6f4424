"""Pure-TF reference of the custom ops: this file is the specification.

The C++/CUDA kernels (``ops/``) compute exactly these functions; tests compare
them forward and backward. Gradients here come from TF autodiff.
"""

from __future__ import annotations

import tensorflow as tf

from tf_face.render.sh import sh_basis


def sh_shade_reference(albedo, normals, sh):
    """``albedo * sum_i sh[:, i] * H_i(normals / |normals|)``.

    albedo, normals [B, H, W, 3]; sh [B, 9, 3]. See ``tf_face.render.sh``.
    """
    basis = sh_basis(normals)                                 # [B, H, W, 9]
    irradiance = tf.einsum("bhwi,bic->bhwc", basis, sh)       # [B, H, W, 3]
    return albedo * irradiance


def mesh_laplacian_smoothness_reference(values, row_ptr, col_idx):
    """``E[b] = sum_i sum_{j in N(i)} |x_i - x_j|^2`` for a CSR adjacency.

    values [B, V, C]; row_ptr [V + 1] int32; col_idx [nnz] int32. Each listed
    (i, j) pair counts once, so a symmetric adjacency counts every edge twice.
    """
    row_ptr = tf.convert_to_tensor(row_ptr, tf.int32)
    col_idx = tf.convert_to_tensor(col_idx, tf.int32)
    num_vertices = tf.shape(row_ptr)[0] - 1
    rows = tf.repeat(tf.range(num_vertices), row_ptr[1:] - row_ptr[:-1])
    diff = tf.gather(values, rows, axis=1) - tf.gather(values, col_idx, axis=1)
    return tf.reduce_sum(tf.square(diff), axis=[1, 2])
