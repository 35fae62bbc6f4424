"""Colour spaces of training.

Decision (METHOD.md leaves it open): shading is computed in **linear RGB**
(Lambertian SH shading is linear in light), so textures sampled from photos
(sRGB) are converted with the exact sRGB transfer curve before they are
compared with I_syn, and every albedo (B-Net's R_a, FAN's A) is linear RGB.
Albedo PNGs written for people are converted back to sRGB. ``--color_space=srgb``
in the trainers turns the conversion off (shading in display space, as many
face-reconstruction codes do).
"""

from __future__ import annotations

import tensorflow as tf


def srgb_to_linear(x):
    x = tf.clip_by_value(x, 0.0, 1.0)
    return tf.where(x <= 0.04045, x / 12.92, tf.pow((x + 0.055) / 1.055, 2.4))


def linear_to_srgb(x):
    x = tf.clip_by_value(x, 0.0, 1.0)
    return tf.where(x <= 0.0031308, x * 12.92,
                    1.055 * tf.pow(tf.maximum(x, 1e-8), 1.0 / 2.4) - 0.055)


def to_shading_space(x, color_space: str):
    if color_space == "linear":
        return srgb_to_linear(x)
    if color_space == "srgb":
        return x
    raise ValueError(f"color_space must be 'linear' or 'srgb', got {color_space!r}")


def to_display_space(x, color_space: str):
    if color_space == "linear":
        return linear_to_srgb(x)
    if color_space == "srgb":
        return tf.clip_by_value(x, 0.0, 1.0)
    raise ValueError(f"color_space must be 'linear' or 'srgb', got {color_space!r}")
