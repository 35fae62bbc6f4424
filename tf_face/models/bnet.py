"""B-Net (METHOD.md (b), Eqs. 2-4): texture map -> albedo coeffs p_a + SH gamma.

Architecture (ours where the paper is silent, marked *):

* input: texture I_t(UV) [B, S, S, C] float32 in [0, 1] (C = 3 by default),
  rescaled to [-1, 1] inside the model (*).
* stem (torchvision ResNet): conv 7x7/2, 64 ch, BN, ReLU, max-pool 3x3/2.
* ResNet-18 body, basic blocks [2, 2, 2, 2], "expansion 2": both 3x3 convs of a
  block are twice the ResNet-18 width (*the paper only says "expansion 2 ->
  1024 features"), so the stages are 128 / 256 / 512 / 1024 channels at
  S/4, S/8, S/16, S/32; strides 1, 2, 2, 2; a 1x1/stride conv + BN projection
  shortcut where the shape changes (the first block of every stage, stage 1
  included because 64 != 128).
* average pooling with pool size S/32 (= 8 for 256x256, as in the paper) ->
  1024 features, then one Dense layer to K + 27 numbers.

Output layout (the flat vector ``y`` [B, K + 27]):
``y[:, :K]`` = p_a (albedo PCA coefficients, in the face model's unit-variance
units), ``y[:, K + 3*b + c]`` = gamma[b, c] for SH basis b in
(l, m) order (0,0), (1,-1), (1,0), (1,1), (2,-2), (2,-1), (2,0), (2,1), (2,2)
and colour channel c in R, G, B. The SH basis functions H_b themselves (with
or without the Lambertian convolution constants) are the renderer's; this
module only fixes the order.

Initialisation (*): the head is drawn with a small std (1e-3), so a fresh
B-Net outputs p_a ~ 0 (the mean albedo) and gamma ~ 0; ``split_bnet_output``
then adds ``ambient`` (default 0.8) to gamma[0, :], i.e. a grey ambient light,
so early shading is ``albedo * 0.8 * H_0`` instead of black (with
``tf_face.render.sh``'s Lambert-convolved basis H_0 = 0.886: irradiance 0.71;
``ambient = 1 / H_0`` would make the initial shading the albedo itself).
The (l, m) order above is ``tf_face.render.sh``'s (H1..H3 = y, z, x). The offset lives
in the split helper (not in the weights), so it is part of every consumer's
maths and must be used by both training and inference.
"""

from __future__ import annotations

import keras

from tf_face.models.layers import check_size

NUM_SH = 9
SH_OUTPUTS = NUM_SH * 3
DEFAULT_AMBIENT = 0.8
STAGE_BLOCKS = (2, 2, 2, 2)
PAPER_WIDTH = 64  # ResNet base width: stem 64, stages 2 * 64 * (1, 2, 4, 8)


def bnet_stage_widths(width: int = PAPER_WIDTH) -> tuple[int, ...]:
    """Stage widths for base ``width`` ("expansion 2"): 128/256/512/1024 at 64."""
    return tuple(2 * width * m for m in (1, 2, 4, 8))


def _conv_bn(x, filters, kernel, stride, name, sync=False):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same",
                            use_bias=False, kernel_initializer="he_normal",
                            name=f"{name}_conv")(x)
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=sync,
                                           name=f"{name}_bn")(x)


def _basic_block(x, filters, stride, name, sync=False):
    shortcut = x
    y = _conv_bn(x, filters, 3, stride, f"{name}_a", sync)
    y = keras.layers.ReLU(name=f"{name}_a_relu")(y)
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", sync)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_proj", sync)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def build_bnet(num_albedo: int, input_size: int = 256, in_channels: int = 3,
               width: int = PAPER_WIDTH, name: str = "bnet",
               sync_batchnorm: bool = False) -> keras.Model:
    """Build B-Net: [B, S, S, C] texture in [0, 1] -> [B, num_albedo + 27].

    ``input_size`` must be a multiple of 32 (the body downsamples 32x); the
    last average pooling is S/32 wide, 8 at 256. ``width`` is the ResNet base
    width (the paper's 64 gives 1024 features; smaller values are for CPU
    smoke runs and tests, features = 16 * width). Split the output with
    ``split_bnet_output``. ``sync_batchnorm`` synchronises the batch
    statistics across replicas (multi-GPU / multi-worker training), so every
    worker keeps identical moving statistics.
    """
    if isinstance(num_albedo, bool) or not isinstance(num_albedo, int) or num_albedo < 0:
        raise ValueError(f"build_bnet: num_albedo must be an int >= 0, got {num_albedo!r}")
    check_size(input_size, 32, "build_bnet")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"build_bnet: in_channels must be a positive int, got {in_channels!r}")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"build_bnet: width must be a positive int, got {width!r}")
    inputs = keras.Input((input_size, input_size, in_channels), name="texture")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(inputs)
    x = _conv_bn(x, width, 7, 2, "stem", sync_batchnorm)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (filters, blocks) in enumerate(zip(bnet_stage_widths(width), STAGE_BLOCKS),
                                            start=1):
        for block in range(blocks):
            stride = 2 if (block == 0 and stage > 1) else 1
            x = _basic_block(x, filters, stride, f"stage{stage}_block{block + 1}",
                             sync_batchnorm)
    pool = input_size // 32
    x = keras.layers.AveragePooling2D(pool_size=pool, name="avg_pool")(x)
    x = keras.layers.Flatten(name="features")(x)
    outputs = keras.layers.Dense(
        num_albedo + SH_OUTPUTS, name="head",
        kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3))(x)
    return keras.Model(inputs, outputs, name=name)


def split_bnet_output(y, num_albedo: int, ambient: float = DEFAULT_AMBIENT):
    """Split B-Net's flat output into ``(p_a [B, K], gamma [B, 9, 3])``.

    ``gamma[:, 0, :] += ambient`` (grey ambient light offset; see module doc).
    Works on tensors of any backend dtype via ``keras.ops``.
    """
    width = y.shape[-1]
    if width is not None and width != num_albedo + SH_OUTPUTS:
        raise ValueError(f"split_bnet_output: expected last dim {num_albedo + SH_OUTPUTS} "
                         f"(K={num_albedo} + 27), got {width}")
    p_a = y[:, :num_albedo]
    gamma = keras.ops.reshape(y[:, num_albedo:], (-1, NUM_SH, 3))
    offset = keras.ops.convert_to_tensor(
        [[ambient, ambient, ambient]] + [[0.0, 0.0, 0.0]] * (NUM_SH - 1), dtype=gamma.dtype)
    return p_a, gamma + offset


def merge_bnet_output(p_a, gamma, ambient: float = DEFAULT_AMBIENT):
    """Inverse of ``split_bnet_output`` (e.g. to build targets): [B, K + 27]."""
    offset = keras.ops.convert_to_tensor(
        [[ambient, ambient, ambient]] + [[0.0, 0.0, 0.0]] * (NUM_SH - 1), dtype=gamma.dtype)
    flat = keras.ops.reshape(gamma - offset, (-1, SH_OUTPUTS))
    return keras.ops.concatenate([p_a, flat], axis=-1)
