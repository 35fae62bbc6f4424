"""Mesh-Laplacian smoothness op, its reference and the adjacency builders."""

import numpy as np
import pytest
import tensorflow as tf

from tf_face import render
from tf_face.testing.random_atlas import random_atlas

needs_op = pytest.mark.needs_ops


def _rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


def test_mesh_adjacency_of_two_triangles():
    adj = render.mesh_adjacency(np.array([[0, 1, 2], [2, 1, 3]]), 5)
    rows = [adj.col_idx[adj.row_ptr[i]:adj.row_ptr[i + 1]].tolist() for i in range(5)]
    assert rows == [[1, 2], [0, 2, 3], [0, 1, 3], [1, 2], []]
    assert adj.row_ptr.dtype == np.int32 and adj.col_idx.dtype == np.int32


def test_grid_adjacency_six_neighbours_and_mask():
    mask = np.ones((5, 6), bool)
    mask[0, 0] = False
    adj = render.grid_adjacency(mask)
    assert adj.texel_index.tolist() == list(range(1, 30))
    degree = np.diff(adj.row_ptr)
    vertex_of = {t: v for v, t in enumerate(adj.texel_index)}
    centre = vertex_of[2 * 6 + 3]
    nbrs = sorted(adj.texel_index[adj.col_idx[adj.row_ptr[centre]:adj.row_ptr[centre + 1]]])
    assert nbrs == sorted([2 * 6 + 2, 2 * 6 + 4, 1 * 6 + 3, 3 * 6 + 3, 1 * 6 + 2, 3 * 6 + 4])
    assert degree.max() == 6
    # symmetric
    pairs = {(i, j) for i in range(len(degree)) for j in adj.col_idx[adj.row_ptr[i]:adj.row_ptr[i + 1]]}
    assert all((j, i) in pairs for i, j in pairs)


def test_reference_energy_of_a_path():
    # path 0-1-2 (symmetric CSR): E = 2 * (|x0-x1|^2 + |x1-x2|^2)
    row_ptr = np.array([0, 1, 3, 4], np.int32)
    col_idx = np.array([1, 0, 2, 1], np.int32)
    x = np.array([[[0.0, 1.0], [2.0, 1.0], [2.0, 4.0]]])
    e = render.mesh_laplacian_smoothness(x, row_ptr, col_idx, backend="reference").numpy()
    np.testing.assert_allclose(e, [2 * (4.0 + 9.0)])


def _grid_problem(dtype, b=2, c=3, size=20, seed=0):
    mask = random_atlas(40, size, size, seed=seed).mask
    adj = render.grid_adjacency(mask)
    v = len(adj.row_ptr) - 1
    x = np.random.default_rng(seed).normal(size=(b, v, c)).astype(dtype)
    return x, adj


@needs_op
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_op_matches_reference(dtype):
    x, adj = _grid_problem(dtype)
    x = tf.constant(x)
    up = tf.constant(np.array([0.7, -1.3], dtype))
    results = []
    for backend in ("op", "reference"):
        with tf.GradientTape() as tape:
            tape.watch(x)
            e = render.mesh_laplacian_smoothness(x, adj.row_ptr, adj.col_idx, backend=backend)
            loss = tf.reduce_sum(e * up)
        results.append((e.numpy(), tape.gradient(loss, x).numpy()))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert _rel_err(results[0][0], results[1][0]) < tol
    assert _rel_err(results[0][1], results[1][1]) < tol


@needs_op
def test_op_gradient_numeric_nonsymmetric_csr():
    # A non-symmetric adjacency exercises the transposed term of the gradient.
    row_ptr = np.array([0, 2, 3, 3, 5], np.int32)
    col_idx = np.array([1, 3, 2, 0, 2], np.int32)
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 4, 2)))
    f = lambda v: render.mesh_laplacian_smoothness(v, row_ptr, col_idx, backend="op")  # noqa: E731
    theoretical, numerical = tf.test.compute_gradient(f, [x])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-7)
    ref = render.mesh_laplacian_smoothness(x, row_ptr, col_idx, backend="reference")
    np.testing.assert_allclose(f(x).numpy(), ref.numpy(), rtol=1e-12)


@needs_op
def test_op_is_deterministic():
    x, adj = _grid_problem(np.float32, size=64)
    x = tf.constant(x)
    runs = []
    for _ in range(3):
        with tf.GradientTape() as tape:
            tape.watch(x)
            e = render.mesh_laplacian_smoothness(x, adj.row_ptr, adj.col_idx, backend="op")
        runs.append((e.numpy(), tape.gradient(e, x).numpy()))
    assert all(np.array_equal(runs[0][0], r[0]) and np.array_equal(runs[0][1], r[1]) for r in runs)


def _invalid_cases():
    row_ptr = np.array([0, 1, 3, 4], np.int32)
    col_idx = np.array([1, 0, 2, 1], np.int32)
    x = np.zeros((2, 3, 2), np.float32)
    good = dict(values=x, row_ptr=row_ptr, col_idx=col_idx)
    return {
        "values_rank": dict(good, values=x[0]),
        "row_ptr_length": dict(good, row_ptr=row_ptr[:-1]),
        "row_ptr_end": dict(good, row_ptr=np.array([0, 1, 3, 3], np.int32)),
        "row_ptr_decreasing": dict(good, row_ptr=np.array([0, 3, 1, 4], np.int32)),
        "col_idx_too_large": dict(good, col_idx=np.array([1, 0, 3, 1], np.int32)),
        "col_idx_negative": dict(good, col_idx=np.array([1, -1, 2, 1], np.int32)),
        "empty_batch": dict(good, values=x[:0]),
    }


@needs_op
@pytest.mark.parametrize("case", sorted(_invalid_cases()))
def test_op_rejects_invalid_input(case):
    kwargs = _invalid_cases()[case]
    with pytest.raises(tf.errors.InvalidArgumentError):
        render.mesh_laplacian_smoothness(**kwargs, backend="op")
    args = [tf.constant(kwargs[k]) for k in ("values", "row_ptr", "col_idx")]
    fn = tf.function(lambda *a: render.mesh_laplacian_smoothness(*a, backend="op"),
                     input_signature=[tf.TensorSpec(None, a.dtype) for a in args])
    with pytest.raises(tf.errors.InvalidArgumentError):
        fn(*args)
