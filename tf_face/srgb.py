"""The sRGB transfer curve (IEC 61966-2-1), the one copy, numpy and TF twins.

``srgb_to_linear`` / ``linear_to_srgb`` (numpy, float64: serving, synthetic
photos, renders, skin tones; ``srgb_uint8_to_linear``: the first as a table
for uint8 photos) and ``srgb_to_linear_tf`` / ``linear_to_srgb_tf``
(TensorFlow, differentiable: training) share the constants below. Every
function clips its input to [0, 1] first. ``tests/test_srgb.py`` pins the
curve at analytic points and checks that the twins agree.

TensorFlow is imported inside the TF twins only, so the numpy callers (the
synthetic-data and render code, cheap CLIs) do not load it.
"""

from __future__ import annotations

import numpy as np

#: encoded = SLOPE * linear below LINEAR_KNEE, else (1 + A) * linear ** (1 / GAMMA) - A
SLOPE = 12.92
A = 0.055
GAMMA = 2.4
LINEAR_KNEE = 0.0031308
ENCODED_KNEE = 0.04045   # = SLOPE * LINEAR_KNEE, to the curve's published digits


def linear_to_srgb(x) -> np.ndarray:
    """sRGB encoding of linear values (clipped to [0, 1]), float64."""
    x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
    return np.where(x <= LINEAR_KNEE, SLOPE * x,
                    (1.0 + A) * np.power(np.maximum(x, LINEAR_KNEE), 1.0 / GAMMA) - A)


def srgb_to_linear(x) -> np.ndarray:
    """Linear values of sRGB-encoded ones (clipped to [0, 1]), float64."""
    x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
    return np.where(x <= ENCODED_KNEE, x / SLOPE, np.power((x + A) / (1.0 + A), GAMMA))


#: float32 ``srgb_to_linear(i / 255)`` for i = 0..255
_UINT8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)


def srgb_uint8_to_linear(x) -> np.ndarray:
    """``srgb_to_linear(x / 255)`` of a uint8 array, float32, by a 256-entry
    table of that function (the same values, ~10x faster on a photo)."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise TypeError(f"srgb_uint8_to_linear takes uint8, got {x.dtype}")
    return _UINT8_TO_LINEAR[x]


def linear_to_srgb_tf(x):
    """``linear_to_srgb`` in TensorFlow (the input's float dtype)."""
    import tensorflow as tf  # deferred: numpy callers do not need TF

    x = tf.clip_by_value(x, 0.0, 1.0)
    # the max keeps pow's gradient finite on the branch tf.where discards
    return tf.where(x <= LINEAR_KNEE, x * SLOPE,
                    (1.0 + A) * tf.pow(tf.maximum(x, LINEAR_KNEE), 1.0 / GAMMA) - A)


def srgb_to_linear_tf(x):
    """``srgb_to_linear`` in TensorFlow (the input's float dtype)."""
    import tensorflow as tf  # deferred: numpy callers do not need TF

    x = tf.clip_by_value(x, 0.0, 1.0)
    return tf.where(x <= ENCODED_KNEE, x / SLOPE, tf.pow((x + A) / (1.0 + A), GAMMA))
