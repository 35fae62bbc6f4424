"""UV interpolate op vs its pure-TF reference: values, gradients, input checks."""

import numpy as np
import pytest
import tensorflow as tf

from tf_face import render
from tf_face.testing.random_atlas import random_atlas

needs_op = pytest.mark.needs_ops


def _atlas(num_vertices=60, size=24, seed=0):
    return random_atlas(num_vertices, size, size + 3, seed=seed, drop_fraction=0.1)


def _rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)


def test_reference_matches_numpy_loop():
    at = _atlas(20, 10, seed=3)
    attr = np.random.default_rng(1).normal(size=(2, 20, 4))
    out = render.uv_interpolate(attr, at.tri_id, at.bary.astype(np.float64), at.triangles, at.mask,
                                backend="reference").numpy()
    expect = np.zeros_like(out)
    for h in range(at.tri_id.shape[0]):
        for w in range(at.tri_id.shape[1]):
            t = at.tri_id[h, w]
            if at.mask[h, w] and t >= 0:
                for k in range(3):
                    expect[:, h, w] += at.bary[h, w, k] * attr[:, at.triangles[t, k]]
    np.testing.assert_allclose(out, expect, rtol=1e-6, atol=1e-7)
    assert np.all(out[:, ~at.mask] == 0)
    assert at.mask.sum() > 10 and (~at.mask).sum() > 10


def test_random_atlas_barycentrics_reproduce_uv():
    at = random_atlas(50, 32, 32, seed=5)
    uv_map = render.uv_interpolate(at.uv[None].astype(np.float32), at.tri_id, at.bary, at.triangles,
                                   at.mask, backend="reference").numpy()[0]
    rows, cols = np.nonzero(at.mask)
    np.testing.assert_allclose(uv_map[rows, cols, 0], (cols + 0.5) / 32, atol=1e-5)
    np.testing.assert_allclose(uv_map[rows, cols, 1], (rows + 0.5) / 32, atol=1e-5)


@needs_op
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_op_matches_reference_forward_backward(dtype):
    at = _atlas()
    rng = np.random.default_rng(0)
    attr = tf.constant(rng.normal(size=(3, 60, 5)).astype(dtype))
    upstream = tf.constant(rng.normal(size=(3, 24, 27, 5)).astype(dtype))
    outs, grads = [], []
    for backend in ("op", "reference"):
        with tf.GradientTape() as tape:
            tape.watch(attr)
            out = render.uv_interpolate(attr, at.tri_id, at.bary.astype(dtype), at.triangles, at.mask,
                                        backend=backend)
            loss = tf.reduce_sum(out * upstream)
        outs.append(out.numpy())
        grads.append(tape.gradient(loss, attr).numpy())
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert _rel_err(outs[0], outs[1]) < tol
    assert _rel_err(grads[0], grads[1]) < tol
    assert outs[0].dtype == dtype and grads[0].dtype == dtype


@needs_op
def test_op_gradient_numeric():
    at = _atlas(12, 6, seed=2)
    attr = tf.constant(np.random.default_rng(4).normal(size=(2, 12, 2)))
    bary = at.bary.astype(np.float64)

    def f(a):
        return render.uv_interpolate(a, at.tri_id, bary, at.triangles, at.mask, backend="op")

    theoretical, numerical = tf.test.compute_gradient(f, [attr])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-8)
    assert np.abs(theoretical[0]).max() > 0.1


@needs_op
def test_op_backward_is_deterministic():
    at = random_atlas(300, 64, 64, seed=7)
    attr = tf.constant(np.random.default_rng(0).normal(size=(2, 300, 3)).astype(np.float32))
    up = tf.constant(np.random.default_rng(1).normal(size=(2, 64, 64, 3)).astype(np.float32))
    grads = []
    for _ in range(3):
        with tf.GradientTape() as tape:
            tape.watch(attr)
            loss = tf.reduce_sum(up * render.uv_interpolate(attr, at.tri_id, at.bary, at.triangles,
                                                            at.mask, backend="op"))
        grads.append(tape.gradient(loss, attr).numpy())
    assert all(np.array_equal(grads[0], g) for g in grads[1:])


def _invalid_cases():
    at = _atlas(20, 8, seed=1)
    attr = np.zeros((2, 20, 3), np.float32)
    good = dict(attributes=attr, tri_id=at.tri_id, bary=at.bary, triangles=at.triangles, mask=at.mask)
    bad_tri_hi = at.tri_id.copy()
    bad_tri_hi[0, 0] = len(at.triangles)
    bad_tri_lo = at.tri_id.copy()
    bad_tri_lo[1, 1] = -2
    bad_vert = at.triangles.copy()
    bad_vert[0, 1] = 20
    neg_vert = at.triangles.copy()
    neg_vert[-1, 2] = -1
    return {
        "attributes_rank": dict(good, attributes=attr[0]),
        "tri_id_rank": dict(good, tri_id=at.tri_id.ravel()),
        "bary_last_dim": dict(good, bary=at.bary[..., :2]),
        "bary_size": dict(good, bary=at.bary[:-1]),
        "triangles_shape": dict(good, triangles=at.triangles[:, :2]),
        "mask_size": dict(good, mask=at.mask[:, :-1]),
        "tri_id_too_large": dict(good, tri_id=bad_tri_hi),
        "tri_id_below_minus_one": dict(good, tri_id=bad_tri_lo),
        "vertex_id_too_large": dict(good, triangles=bad_vert),
        "vertex_id_negative": dict(good, triangles=neg_vert),
        "empty_batch": dict(good, attributes=attr[:0]),
    }


@needs_op
@pytest.mark.parametrize("case", sorted(_invalid_cases()))
def test_op_rejects_invalid_input(case):
    kwargs = _invalid_cases()[case]
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=r"."):
        render.uv_interpolate(**kwargs, backend="op")
    # Same inputs with unknown static shapes: the kernel's own checks must catch it.
    args = [tf.constant(kwargs[k]) for k in ("attributes", "tri_id", "bary", "triangles", "mask")]
    fn = tf.function(lambda *a: render.uv_interpolate(*a, backend="op"),
                     input_signature=[tf.TensorSpec(None, a.dtype) for a in args])
    with pytest.raises(tf.errors.InvalidArgumentError):
        fn(*args)
