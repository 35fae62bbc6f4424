"""Small custom Keras layers shared by the tf_face networks.

Everything here is built from ``keras.ops`` primitives that TFLite supports
as builtins (reverse/slice/concat), so models using them export to SavedModel
and convert to TFLite without Flex ops.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="tf_face")
class FlipConcat(keras.layers.Layer):
    """``concat([x, flip_w(x)], axis=-1)`` for NHWC maps ("flip features").

    The flip mirrors the width axis (axis 2, UV ``u``): column ``w`` of the
    second half holds column ``W - 1 - w`` of ``x``. A UV face map is
    left/right symmetric about its vertical centre line, so every texel sees
    its mirrored partner from the first layer on (METHOD.md (c)). The output
    has twice the channels of the input.
    """

    def call(self, inputs):
        return keras.ops.concatenate([inputs, keras.ops.flip(inputs, axis=2)], axis=-1)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"FlipConcat expects NHWC input (rank 4), got shape {input_shape}")
        channels = None if input_shape[-1] is None else 2 * input_shape[-1]
        return (*input_shape[:-1], channels)


def normalization(kind: str, name: str) -> keras.layers.Layer:
    """Normalisation layer by name: ``batch``, ``instance`` or ``none``.

    ``instance`` is ``GroupNormalization(groups=-1)`` (one group per channel,
    learned scale and offset), the Keras 3 stand-in for InstanceNorm; it does
    not depend on the batch size, so training at batch 1..8 and inference
    behave the same (pix2pix trains at batch 1, where BatchNorm is instance norm).
    """
    if kind == "batch":
        return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)
    if kind == "instance":
        return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)
    if kind == "none":
        return keras.layers.Identity(name=name)
    raise ValueError(f"unknown normalisation {kind!r}; use 'batch', 'instance' or 'none'")


def check_norm(kind: str) -> None:
    """Raise ``ValueError`` early for an unknown normalisation name."""
    if kind not in ("batch", "instance", "none"):
        raise ValueError(f"unknown normalisation {kind!r}; use 'batch', 'instance' or 'none'")


def check_size(input_size, multiple: int, what: str) -> int:
    """Validate a square input size: a positive int divisible by ``multiple``."""
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size <= 0:
        raise ValueError(f"{what}: input_size must be a positive int, got {input_size!r}")
    if input_size % multiple:
        raise ValueError(f"{what}: input_size {input_size} must be a multiple of {multiple}")
    return input_size
