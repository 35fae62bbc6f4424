"""Loss terms on hand-made inputs with values computed by hand, against a
float64 numpy reference of both reductions (sum = the paper's L1 norms per
image, batch mean; mean = per texel); empty masks give 0; finite gradients."""

import math

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_face.losses import (LossWeights, albedo_reg, displacement_const,  # noqa: E402
                            gan_d_loss, gan_g_loss, gradient_loss, perceptual_distance,
                            pixel_loss, smoothness_loss)


def img(rows):
    """[[...]] H x W x C nested list -> [1, H, W, C] float32."""
    return np.asarray(rows, np.float32)[None]


def softplus(x):
    return math.log1p(math.exp(x))


# 2x2 RGB target/prediction; the top-right texel is invisible
T = img([[[0.1, 0.2, 0.3], [0.9, 0.9, 0.9]],
         [[0.5, 0.5, 0.5], [0.0, 1.0, 0.0]]])
P = img([[[0.2, 0.2, 0.1], [0.0, 0.0, 0.0]],
         [[0.5, 0.6, 0.5], [0.0, 0.5, 0.5]]])
M = np.asarray([[[1, 0], [1, 1]]], np.float32)  # [1, 2, 2]


def test_pixel_loss_by_hand():
    # visible |T - P|: (0.1 + 0 + 0.2) + (0 + 0.1 + 0) + (0 + 0.5 + 0.5) = 1.4 over 3 texels x 3 ch
    assert float(pixel_loss(T, P, M)) == pytest.approx(1.4, rel=1e-6)      # default: sum
    expect = 1.4 / 9
    assert float(pixel_loss(T, P, M, "mean")) == pytest.approx(expect, rel=1e-6)
    assert float(pixel_loss(T, P, M[..., None], "mean")) == pytest.approx(expect, rel=1e-6)
    # the invisible texel does not count however wrong it is
    P2 = P.copy()
    P2[0, 0, 1] = 7.0
    assert float(pixel_loss(T, P2, M, "mean")) == pytest.approx(expect, rel=1e-6)
    assert float(pixel_loss(T, P2, M, "sum")) == pytest.approx(1.4, rel=1e-6)
    # unmasked: all four texels, 1.4 + 2.7 = 4.1 over 12
    assert float(pixel_loss(T, P, np.ones_like(M), "mean")) == pytest.approx(4.1 / 12, rel=1e-6)
    assert float(pixel_loss(T, P, np.ones_like(M), "sum")) == pytest.approx(4.1, rel=1e-6)
    for red in ("sum", "mean"):
        assert float(pixel_loss(T, P, np.zeros_like(M), red)) == 0.0
    # batch pooling: two samples, mask mass 3 and 4 -> (1.4 + 4.1) / (3 * 7);
    # sum: each image's L1 norm, batch mean -> (1.4 + 4.1) / 2
    args = (np.concatenate([T, T]), np.concatenate([P, P]), np.concatenate([M, np.ones_like(M)]))
    assert float(pixel_loss(*args, reduction="mean")) == pytest.approx(5.5 / 21, rel=1e-6)
    assert float(pixel_loss(*args, reduction="sum")) == pytest.approx(5.5 / 2, rel=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        pixel_loss(T, P, M, "median")


def test_pixel_loss_shape_errors():
    with pytest.raises(ValueError, match="shape"):
        pixel_loss(T, P[:, :1], M)
    with pytest.raises(ValueError, match="mask"):
        pixel_loss(T, P, np.ones((1, 2, 2, 3), np.float32))


def test_albedo_reg_by_hand():
    assert float(albedo_reg([[1.0, 2.0], [3.0, 0.0]])) == pytest.approx((5 + 9) / 2)
    with pytest.raises(ValueError):
        albedo_reg([1.0, 2.0])


def test_gradient_loss_by_hand():
    # one channel, 2 x 3 map; diff = T - P
    t = img([[[0.0], [1.0], [3.0]], [[2.0], [2.0], [0.0]]])
    p = np.zeros_like(t)
    m = np.asarray([[[1, 1, 1], [1, 1, 0]]], np.float32)
    # x pairs: row0 (0,1):1 (1,3):2 ; row1 (2,2):0, (2,0) invalid -> 3 valid, sum 3
    # y pairs: col0 (0,2):2, col1 (1,2):1, col2 invalid -> 2 valid, sum 3
    assert float(gradient_loss(t, p, m, "mean")) == pytest.approx(6 / 5, rel=1e-6)
    assert float(gradient_loss(t, p, m)) == pytest.approx(6, rel=1e-6)
    # a constant offset between the two maps has no gradient difference
    for red in ("sum", "mean"):
        assert float(gradient_loss(t, t + 0.3, np.ones_like(m), red)) == pytest.approx(0, abs=1e-6)


def test_displacement_const_by_hand():
    delta = img([[[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]])  # lengths 5 and 0
    assert float(displacement_const(delta, reduction="mean")) == pytest.approx(2.5)
    assert float(displacement_const(delta)) == pytest.approx(5)
    one = np.asarray([[[1, 0]]], np.float32)
    assert float(displacement_const(delta, one, "mean")) == pytest.approx(5)
    assert float(displacement_const(delta, one, "sum")) == pytest.approx(5)
    r = img([[[-0.5], [0.25]]])  # moving rate only: |r_d|
    assert float(displacement_const(r, reduction="mean")) == pytest.approx(0.375)
    assert float(displacement_const(r, reduction="sum")) == pytest.approx(0.75)


def _np_masked(err, mask, reduction):
    """float64 reference: per-image sum / batch, or sum / (C * mask mass)."""
    m = np.asarray(mask, np.float64)
    m = m if m.ndim == 4 else m[..., None]
    total = (err * m).sum()
    if reduction == "sum":
        return total / err.shape[0]
    mass = err.shape[-1] * m.sum()
    return total / mass if mass > 0 else 0.0


def _np_grad(t, p, mask, reduction):
    d = t.astype(np.float64) - p
    m = np.asarray(mask, np.float64)[..., None]
    dx, dy = d[:, :, 1:] - d[:, :, :-1], d[:, 1:] - d[:, :-1]
    mx, my = m[:, :, 1:] * m[:, :, :-1], m[:, 1:] * m[:, :-1]
    num = (np.abs(dx) * mx).sum() + (np.abs(dy) * my).sum()
    if reduction == "sum":
        return num / d.shape[0]
    mass = d.shape[-1] * (mx.sum() + my.sum())
    return num / mass if mass > 0 else 0.0


def _random_batch(seed, b=3, h=7, w=9, c=3):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, (b, h, w, c)).astype(np.float32)
    p = rng.uniform(0, 1, (b, h, w, c)).astype(np.float32)
    m = (rng.uniform(0, 1, (b, h, w)) > 0.4).astype(np.float32)
    m[-1] = 0.0                      # one image with nothing visible
    return t, p, m


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_image_losses_match_a_float64_reference(reduction):
    t, p, m = _random_batch(0)
    soft = m * np.random.default_rng(9).uniform(0.2, 1.0, m.shape).astype(np.float32)
    for mask in (m, soft, m[..., None]):
        want = _np_masked(np.abs(t.astype(np.float64) - p), mask, reduction)
        assert float(pixel_loss(t, p, mask, reduction)) == pytest.approx(want, rel=1e-5)
        mk = mask if mask.ndim == 3 else mask[..., 0]
        assert float(gradient_loss(t, p, mk, reduction)) == pytest.approx(
            _np_grad(t, p, mk, reduction), rel=1e-5)
        length = np.linalg.norm(p.astype(np.float64), axis=-1, keepdims=True)
        assert float(displacement_const(p, mask, reduction)) == pytest.approx(
            _np_masked(length, mask, reduction), rel=1e-5)
    # sum: the batch mean of per-image L1 norms, so it grows with the image
    big = [np.tile(x, (1, 2, 2) + (1,) * (x.ndim - 3)) for x in (t, p, m)]
    ratio = float(pixel_loss(*big, reduction)) / float(pixel_loss(t, p, m, reduction))
    assert ratio == pytest.approx(4.0 if reduction == "sum" else 1.0, rel=1e-5)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_empty_masks_give_zero_not_nan(reduction):
    t, p, m = _random_batch(1)
    z = np.zeros_like(m)
    for value in (pixel_loss(t, p, z, reduction), gradient_loss(t, p, z, reduction),
                  displacement_const(p, z, reduction)):
        assert float(value) == 0.0
    x = tf.Variable(p)
    with tf.GradientTape() as tape:
        loss = pixel_loss(t, x, z, reduction) + gradient_loss(t, x, z, reduction)
    g = tape.gradient(loss, x).numpy()
    assert np.all(g == 0)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_smoothness_loss_matches_the_double_sum(reduction, backend):
    """E_smooth = sum_i sum_{j in 1-ring(i)} |x_i - x_j|^2 per image, batch mean
    (sum); divided by the vertex count (mean)."""
    from tf_face.render import grid_adjacency
    rng = np.random.default_rng(4)
    mask = rng.uniform(0, 1, (8, 10)) > 0.25
    adj = grid_adjacency(mask)
    v = len(adj.texel_index)
    x = rng.normal(size=(2, v, 3)).astype(np.float32)
    want = 0.0
    for i in range(v):
        for j in adj.col_idx[adj.row_ptr[i]:adj.row_ptr[i + 1]]:
            want += ((x[:, i].astype(np.float64) - x[:, j]) ** 2).sum()
    want /= 2
    if reduction == "mean":
        want /= v
    got = smoothness_loss(x, adj.row_ptr, adj.col_idx, reduction, backend=backend)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_perceptual_distance_by_hand():
    # layer 1: [1,1,2,2] with diff entries (3, 4, 0, 0) -> norm 5 / 4 ; layer 2: [1,1,1,1] diff 2 -> 2 / 1
    a1 = np.asarray([[[[3.0, 4.0], [0.0, 0.0]]]], np.float32)
    a2 = np.asarray([[[[2.0]]]], np.float32)
    d = perceptual_distance([a1, a2], [np.zeros_like(a1), np.zeros_like(a2)])
    assert float(d) == pytest.approx((5 / 4 + 2 / 1) / 2)


def test_gan_losses_by_hand():
    real, fake = np.asarray([1.0, 3.0]), np.asarray([0.0, 2.0])
    assert float(gan_d_loss(real, fake, "lsgan")) == pytest.approx((0 + 4) / 2 + (0 + 4) / 2)
    assert float(gan_g_loss(fake, "lsgan")) == pytest.approx((1 + 1) / 2)
    d_log = (softplus(-1) + softplus(-3)) / 2 + (softplus(0) + softplus(2)) / 2
    assert float(gan_d_loss(real, fake, "log")) == pytest.approx(d_log, rel=1e-6)
    assert float(gan_d_loss(real, fake, "nonsaturating")) == pytest.approx(d_log, rel=1e-6)
    # -log sigmoid(f) and log(1 - sigmoid(f))
    ns = -(math.log(1 / (1 + math.exp(-0.0))) + math.log(1 / (1 + math.exp(-2.0)))) / 2
    lg = (math.log(1 - 1 / (1 + math.exp(-0.0))) + math.log(1 - 1 / (1 + math.exp(-2.0)))) / 2
    assert float(gan_g_loss(fake, "nonsaturating")) == pytest.approx(ns, rel=1e-6)
    assert float(gan_g_loss(fake, "log")) == pytest.approx(lg, rel=1e-6)
    with pytest.raises(ValueError, match="kind"):
        gan_g_loss(fake, "wgan")


def test_loss_weights_paper_values():
    w = LossWeights()
    assert (w.w_a, w.w_pixel, w.w_percep, w.w_grad, w.w_const, w.w_smooth) == \
        (1.0, 0.005, 0.3, 0.5, 1.0, 20.0)
    nf = LossWeights.near_frontal()
    assert (nf.w_pixel, nf.w_percep, nf.w_grad) == (0.008, 0.7, 0.5)
    assert LossWeights.near_frontal(w_smooth=5.0).w_smooth == 5.0
    assert w.as_dict()["w_pixel"] == 0.005
    assert w.reduction == "sum" and w.as_dict()["reduction"] == "sum"
    assert LossWeights(reduction="mean").reduction == "mean"
    assert LossWeights(**LossWeights(reduction="mean").as_dict()) == LossWeights(reduction="mean")
    with pytest.raises(ValueError, match="reduction"):
        LossWeights(reduction="avg")


def test_gradients_finite_at_kinks():
    """At target == pred and Δd = 0 (where |x| and ||x|| have kinks) gradients are finite."""
    x = tf.Variable(T)
    d = tf.Variable(np.zeros((1, 2, 2, 3), np.float32))
    f = tf.Variable(np.ones((1, 2, 2, 4), np.float32))
    with tf.GradientTape(persistent=True) as tape:
        losses = [pixel_loss(T, x, M), gradient_loss(T, x, M), displacement_const(d, M),
                  perceptual_distance([f], [tf.ones_like(f)]), pixel_loss(T, x, M, "mean"),
                  gradient_loss(T, x, M, "mean"), displacement_const(d, M, "mean")]
    for loss, var in zip(losses, [x, x, d, f, x, x, d]):
        g = tape.gradient(loss, var)
        assert g is not None and np.all(np.isfinite(g.numpy()))


def test_gradients_match_finite_differences():
    """tf.test.compute_gradient in float32 at a point away from the kinks."""
    t = np.random.default_rng(0).uniform(0, 1, (1, 4, 5, 2)).astype(np.float32)
    m = (np.random.default_rng(1).uniform(0, 1, (1, 4, 5)) > 0.3).astype(np.float32)
    p0 = t + np.random.default_rng(2).uniform(0.2, 0.4, t.shape).astype(np.float32) * \
        np.sign(np.random.default_rng(3).standard_normal(t.shape)).astype(np.float32)
    for fn in (lambda p: pixel_loss(t, p, m), lambda p: displacement_const(p, m),
               lambda p: pixel_loss(t, p, m, "mean"), lambda p: gradient_loss(t, p, m),
               lambda p: gan_d_loss(p, -p, "log"), lambda p: gan_g_loss(p, "nonsaturating")):
        theo, numer = tf.test.compute_gradient(fn, [tf.constant(p0)], delta=1e-3)
        np.testing.assert_allclose(theo[0], numer[0], atol=2e-3)
