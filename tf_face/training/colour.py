"""Colour spaces of training.

Decision (METHOD.md leaves it open): shading is computed in **linear RGB**
(Lambertian SH shading is linear in light), so textures sampled from photos
(sRGB) are converted with the exact sRGB transfer curve (``tf_face.srgb``) before they are
compared with I_syn, and every albedo (B-Net's R_a, FAN's A) is linear RGB.
Albedo PNGs written for people are converted back to sRGB. ``--color_space=srgb``
in the trainers turns the conversion off (shading in display space, as many
face-reconstruction codes do).
"""

from __future__ import annotations

import tensorflow as tf

from tf_face.srgb import linear_to_srgb_tf, srgb_to_linear_tf


def to_shading_space(x, color_space: str):
    if color_space == "linear":
        return srgb_to_linear_tf(x)
    if color_space == "srgb":
        return x
    raise ValueError(f"color_space must be 'linear' or 'srgb', got {color_space!r}")


def to_display_space(x, color_space: str):
    if color_space == "linear":
        return linear_to_srgb_tf(x)
    if color_space == "srgb":
        return tf.clip_by_value(x, 0.0, 1.0)
    raise ValueError(f"color_space must be 'linear' or 'srgb', got {color_space!r}")
