"""PatchGAN discriminator (Isola et al. 2017, pix2pix ``NLayerDiscriminator``).

With ``n_layers = 3`` it is the "70x70 PatchGAN": every output logit sees a
70x70 input window. Layers (ndf = 64), each conv 4x4 with 1 pixel of zero
padding on every side (pix2pix geometry, reproduced with ``ZeroPadding2D(1)``
+ a 'valid' conv so the receptive field is exact):

    C64/2 (no norm) - C128/2 - C256/2 - C512/1 - C1/1, LeakyReLU(0.2) between
    widths ndf * min(2^i, 8); 256x256 -> 128 -> 64 -> 32 -> 31 -> 30x30 logits.

The receptive field for other depths is ``patchgan_receptive_field(n_layers)``
(70 for 3, 34 for 2, 142 for 4).

Ours (*): unconditional (it sees only the albedo map, real = B-Net albedo,
fake = FAN albedo, METHOD.md (c)); inputs in [0, 1] rescaled to [-1, 1];
outputs raw logits (the GAN losses in ``tf_face.losses`` take logits);
instance norm by default (``norm="batch"`` for pix2pix's default); N(0, 0.02)
init; normed convs without bias.
"""

from __future__ import annotations

import keras

from tf_face.models.layers import check_norm, normalization


def patchgan_receptive_field(n_layers: int = 3) -> int:
    """Receptive field (pixels) of one output logit for ``n_layers``."""
    strides = [2] * n_layers + [1, 1]
    field = 1
    for s in reversed(strides):
        field = (field - 1) * s + 4
    return field


def build_patchgan(input_size: int = 256, ndf: int = 64, n_layers: int = 3,
                   in_channels: int = 3, norm: str = "instance",
                   name: str = "patchgan") -> keras.Model:
    """PatchGAN: [B, S, S, in_channels] in [0, 1] -> logits [B, P, P, 1].

    P = S / 2^n_layers - 2 (30 for 256 and n_layers = 3). ``input_size`` must
    leave P >= 1.
    """
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"build_patchgan: n_layers must be an int >= 1, got {n_layers!r}")
    if not isinstance(input_size, int) or input_size <= 0 or input_size % (2 ** n_layers):
        raise ValueError(f"build_patchgan: input_size must be a positive multiple of "
                         f"{2 ** n_layers}, got {input_size!r}")
    if input_size // 2 ** n_layers - 2 < 1:
        raise ValueError(f"build_patchgan: input_size {input_size} too small for "
                         f"n_layers={n_layers} (no output patch left)")
    if not isinstance(ndf, int) or ndf < 1:
        raise ValueError(f"build_patchgan: ndf must be a positive int, got {ndf!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"build_patchgan: in_channels must be a positive int, got {in_channels!r}")
    check_norm(norm)
    init = keras.initializers.RandomNormal(stddev=0.02)
    use_bias = norm == "none"

    inputs = keras.Input((input_size, input_size, in_channels), name="albedo")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(inputs)
    specs = [(ndf * min(2 ** i, 8), 2) for i in range(n_layers)]
    specs.append((ndf * min(2 ** n_layers, 8), 1))
    for i, (filters, stride) in enumerate(specs):
        x = keras.layers.ZeroPadding2D(1, name=f"pad{i}")(x)
        x = keras.layers.Conv2D(filters, 4, strides=stride, use_bias=use_bias or i == 0,
                                kernel_initializer=init, name=f"conv{i}")(x)
        if i > 0:
            x = normalization(norm, f"norm{i}")(x)
        x = keras.layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)
    x = keras.layers.ZeroPadding2D(1, name=f"pad{len(specs)}")(x)
    outputs = keras.layers.Conv2D(1, 4, kernel_initializer=init, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
