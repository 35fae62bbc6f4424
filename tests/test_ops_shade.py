"""SH shade op vs its pure-TF reference, analytic cases and input checks."""

import numpy as np
import pytest
import tensorflow as tf

from tf_face import render

needs_op = pytest.mark.needs_ops


def _inputs(dtype, b=2, h=9, w=7, seed=0):
    rng = np.random.default_rng(seed)
    albedo = rng.uniform(0.1, 1.0, size=(b, h, w, 3)).astype(dtype)
    normals = rng.normal(size=(b, h, w, 3)).astype(dtype)
    normals[0, 0, 0] = 0.0  # zero normal: n_hat = 0, zero gradient
    sh = rng.normal(scale=0.5, size=(b, 9, 3)).astype(dtype)
    return albedo, normals, sh


def _rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


def test_sh_basis_constants_and_orthogonality():
    # Band-0 constant is pi * Y00; dividing the basis by the band factors gives
    # the orthonormal real SH: check orthonormality by quadrature on the sphere.
    n = 400
    theta = (np.arange(n) + 0.5) * np.pi / n
    phi = (np.arange(2 * n) + 0.5) * np.pi / n
    t, p = np.meshgrid(theta, phi, indexing="ij")
    dirs = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1)
    basis = render.sh_basis(tf.constant(dirs)).numpy()
    band = np.array(render.LAMBERT_BAND)[[0, 1, 1, 1, 2, 2, 2, 2, 2]]
    y = basis / band
    weights = (np.sin(t) * (np.pi / n) ** 2)[..., None]
    gram = np.einsum("ijk,ijl->kl", y * weights, y)
    np.testing.assert_allclose(gram, np.eye(9), atol=2e-4)


def test_ambient_sh_gives_albedo_and_cosine_lobe():
    albedo, normals, _ = _inputs(np.float64)
    out = render.sh_shade(albedo, normals, render.ambient_sh(2, dtype=np.float64), backend="reference")
    np.testing.assert_allclose(out.numpy(), albedo, rtol=1e-12)
    # Light = SH projection of a unit delta at +z, i.e. sh_i = Y_i(+z); shading
    # a normal along +z gives sum_l A_l (2l+1)/(4 pi) = 1/4 + 1/2 + 5/16.
    sh = np.zeros((1, 9, 3))
    sh[0, 0] = 0.5 * np.sqrt(1 / np.pi)
    sh[0, 2] = np.sqrt(3 / (4 * np.pi))
    sh[0, 6] = 0.25 * np.sqrt(5 / np.pi) * 2.0
    one = np.ones((1, 1, 1, 3))
    up = np.array([0.0, 0.0, 2.5]).reshape(1, 1, 1, 3)
    e = render.sh_shade(one, up, sh, backend="reference").numpy()
    np.testing.assert_allclose(e, 0.25 + 0.5 + 5 / 16, rtol=1e-12)


@needs_op
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_op_matches_reference(dtype):
    albedo, normals, sh = (tf.constant(x) for x in _inputs(dtype))
    up = tf.constant(np.random.default_rng(9).normal(size=albedo.shape).astype(dtype))
    results = []
    for backend in ("op", "reference"):
        with tf.GradientTape() as tape:
            tape.watch([albedo, normals, sh])
            out = render.sh_shade(albedo, normals, sh, backend=backend)
            loss = tf.reduce_sum(out * up)
        results.append([out] + tape.gradient(loss, [albedo, normals, sh]))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for got, want in zip(*results):
        assert _rel_err(got, want) < tol
    assert np.all(results[0][2].numpy()[0, 0, 0] == 0)  # zero normal -> zero gradient


@needs_op
def test_op_gradients_numeric():
    albedo, normals, sh = (tf.constant(x) for x in _inputs(np.float64, b=2, h=3, w=2, seed=3))
    normals = normals + 0.0  # keep the zero normal out: numeric diff is undefined there
    normals = tf.tensor_scatter_nd_update(normals, [[0, 0, 0]], [[0.3, -0.2, 0.9]])
    f = lambda a, n, s: render.sh_shade(a, n, s, backend="op")  # noqa: E731
    theoretical, numerical = tf.test.compute_gradient(f, [albedo, normals, sh], delta=1e-6)
    for th, nu in zip(theoretical, numerical):
        np.testing.assert_allclose(th, nu, atol=1e-7)
        assert np.abs(th).max() > 0.01


def _invalid_cases():
    albedo, normals, sh = _inputs(np.float32)
    good = dict(albedo=albedo, normals=normals, sh=sh)
    return {
        "albedo_rank": dict(good, albedo=albedo[0], normals=normals[0]),
        "albedo_channels": dict(good, albedo=np.concatenate([albedo, albedo[..., :1]], -1)),
        "normals_mismatch": dict(good, normals=normals[:, :-1]),
        "sh_coeffs": dict(good, sh=sh[:, :8]),
        "sh_batch": dict(good, sh=sh[:1]),
        "empty_batch": dict(albedo=albedo[:0], normals=normals[:0], sh=sh[:0]),
    }


@needs_op
@pytest.mark.parametrize("case", sorted(_invalid_cases()))
def test_op_rejects_invalid_input(case):
    kwargs = _invalid_cases()[case]
    with pytest.raises(tf.errors.InvalidArgumentError):
        render.sh_shade(**kwargs, backend="op")
    args = [tf.constant(kwargs[k]) for k in ("albedo", "normals", "sh")]
    fn = tf.function(lambda *a: render.sh_shade(*a, backend="op"),
                     input_signature=[tf.TensorSpec(None, tf.float32)] * 3)
    with pytest.raises(tf.errors.InvalidArgumentError):
        fn(*args)


@needs_op
def test_op_sh_gradient_is_deterministic():
    # d_sh is a reduction over all texels: fixed-size blocks summed in order.
    albedo, normals, sh = (tf.constant(x) for x in _inputs(np.float32, b=2, h=96, w=80, seed=6))
    grads = []
    for _ in range(3):
        with tf.GradientTape() as tape:
            tape.watch(sh)
            loss = tf.reduce_sum(render.sh_shade(albedo, normals, sh, backend="op"))
        grads.append(tape.gradient(loss, sh).numpy())
    assert all(np.array_equal(grads[0], g) for g in grads[1:])
