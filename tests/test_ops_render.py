"""Fused UV render op (interpolate normals + SH shade) vs the reference chain."""

import numpy as np
import pytest
import tensorflow as tf

from tf_face import render
from tf_face.testing.random_atlas import random_atlas

pytestmark = pytest.mark.needs_ops


def _inputs(dtype, num_vertices=40, size=14, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    at = random_atlas(num_vertices, size, size + 2, seed=seed, drop_fraction=0.1)
    normals = rng.normal(size=(batch, num_vertices, 3)).astype(dtype)
    albedo = rng.uniform(0.2, 0.9, size=(batch, size, size + 2, 3)).astype(dtype)
    sh = (render.ambient_sh(batch) + rng.normal(scale=0.3, size=(batch, 9, 3))).astype(dtype)
    return at, normals, albedo, sh


def _rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_matches_reference(dtype):
    at, normals, albedo, sh = _inputs(dtype)
    geo = (at.tri_id, at.bary.astype(dtype), at.triangles, at.mask)
    variables = [tf.constant(normals), tf.constant(albedo), tf.constant(sh)]
    up = tf.constant(np.random.default_rng(5).normal(size=albedo.shape).astype(dtype))
    results = []
    for backend, fused in (("op", True), ("op", False), ("reference", False)):
        with tf.GradientTape() as tape:
            tape.watch(variables)
            out = render.uv_render(*variables, *geo, backend=backend, fused=fused)
            loss = tf.reduce_sum(out * up)
        results.append([out] + tape.gradient(loss, variables))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for candidate in results[:2]:
        for got, want in zip(candidate, results[2]):
            assert _rel_err(got, want) < tol


def test_fused_gradient_numeric():
    at, normals, albedo, sh = _inputs(np.float64, num_vertices=10, size=5, seed=2)
    geo = (at.tri_id, at.bary.astype(np.float64), at.triangles, at.mask)
    f = lambda n, a, s: render.uv_render(n, a, s, *geo, backend="op", fused=True)  # noqa: E731
    theoretical, numerical = tf.test.compute_gradient(f, [tf.constant(normals), tf.constant(albedo),
                                                          tf.constant(sh)], delta=1e-6)
    for th, nu in zip(theoretical, numerical):
        np.testing.assert_allclose(th, nu, atol=1e-6)
        assert np.abs(th).max() > 0.01


@pytest.mark.parametrize("case", ["vertex_id", "tri_id", "albedo_size", "sh_batch", "empty_batch"])
def test_fused_rejects_invalid_input(case):
    at, normals, albedo, sh = _inputs(np.float32)
    tri_id, triangles = at.tri_id.copy(), at.triangles.copy()
    if case == "vertex_id":
        triangles[3, 1] = normals.shape[1]
    elif case == "tri_id":
        tri_id[2, 2] = len(triangles)
    elif case == "albedo_size":
        albedo = albedo[:, :-1]
    elif case == "sh_batch":
        sh = sh[:1]
    else:
        normals, albedo, sh = normals[:0], albedo[:0], sh[:0]
    args = [tf.constant(x) for x in (normals, albedo, sh, tri_id, at.bary, triangles, at.mask)]
    with pytest.raises(tf.errors.InvalidArgumentError):
        render.uv_render(*args, backend="op", fused=True)
    fn = tf.function(lambda *a: render.uv_render(*a, backend="op", fused=True),
                     input_signature=[tf.TensorSpec(None, a.dtype) for a in args])
    with pytest.raises(tf.errors.InvalidArgumentError):
        fn(*args)
