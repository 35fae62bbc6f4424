"""The one sRGB transfer curve (tf_face.srgb): analytic values, inverse, TF twin == numpy."""

import numpy as np
import pytest

from tf_face import srgb


def test_linear_to_srgb_analytic_values():
    x = [-1.0, 0.0, 0.002, srgb.LINEAR_KNEE, 0.2, 0.5, 1.0, 2.0]
    want = [0.0, 0.0, 0.002 * 12.92, 0.0031308 * 12.92, 1.055 * 0.2 ** (1 / 2.4) - 0.055,
            1.055 * 0.5 ** (1 / 2.4) - 0.055, 1.0, 1.0]
    np.testing.assert_allclose(srgb.linear_to_srgb(x), want, rtol=0, atol=1e-12)
    assert srgb.linear_to_srgb(0.5) == pytest.approx(0.7353569830524495, abs=1e-12)


def test_srgb_to_linear_analytic_values():
    x = [-0.5, 0.0, 0.04045, 0.5, 1.0, 1.5]
    want = [0.0, 0.0, 0.04045 / 12.92, ((0.5 + 0.055) / 1.055) ** 2.4, 1.0, 1.0]
    np.testing.assert_allclose(srgb.srgb_to_linear(x), want, rtol=0, atol=1e-12)
    assert srgb.srgb_to_linear(0.5) == pytest.approx(0.21404114048223255, abs=1e-12)


def test_curve_is_continuous_and_inverse():
    # both branches meet at the knee (to the published constants' precision)
    low = srgb.SLOPE * srgb.LINEAR_KNEE
    high = (1 + srgb.A) * srgb.LINEAR_KNEE ** (1 / srgb.GAMMA) - srgb.A
    assert abs(low - high) < 1e-7 and abs(low - srgb.ENCODED_KNEE) < 1e-5
    x = np.linspace(0.0, 1.0, 1001)
    np.testing.assert_allclose(srgb.srgb_to_linear(srgb.linear_to_srgb(x)), x, atol=1e-9)
    np.testing.assert_allclose(srgb.linear_to_srgb(srgb.srgb_to_linear(x)), x, atol=1e-9)


def test_tf_twins_agree_with_numpy():
    import tensorflow as tf
    x = np.concatenate([np.linspace(-0.1, 1.1, 997), [srgb.LINEAR_KNEE, srgb.ENCODED_KNEE]])
    for np_fn, tf_fn in ((srgb.linear_to_srgb, srgb.linear_to_srgb_tf),
                         (srgb.srgb_to_linear, srgb.srgb_to_linear_tf)):
        np.testing.assert_allclose(tf_fn(tf.constant(x, tf.float64)).numpy(), np_fn(x),
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(tf_fn(tf.constant(x, tf.float32)).numpy(), np_fn(x),
                                   rtol=0, atol=1e-6)
    # finite gradients everywhere, also at 0 where pow's branch is discarded
    v = tf.constant([0.0, 1e-6, 0.5], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(v)
        y = tf.reduce_sum(srgb.linear_to_srgb_tf(v))
    assert np.all(np.isfinite(tape.gradient(y, v).numpy()))


def test_uint8_table_is_the_curve():
    """``srgb_uint8_to_linear`` (a table) gives ``srgb_to_linear(x / 255)`` for
    every uint8 value, in an array of any shape, and refuses other dtypes."""
    srgb_to_linear, srgb_uint8_to_linear = srgb.srgb_to_linear, srgb.srgb_uint8_to_linear
    x = np.arange(256, dtype=np.uint8)
    np.testing.assert_allclose(srgb_uint8_to_linear(x), srgb_to_linear(x / 255.0), rtol=1e-6,
                               atol=1e-9)
    img = np.random.default_rng(0).integers(0, 256, (7, 5, 3)).astype(np.uint8)
    got = srgb_uint8_to_linear(img)
    assert got.shape == img.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, srgb_to_linear(img / 255.0), rtol=1e-6, atol=1e-9)
    with pytest.raises(TypeError):
        srgb_uint8_to_linear(img.astype(np.float32))
