"""FAN and DRN generators (METHOD.md (c)-(f)): pix2pix UNet-8 with flip features.

Changes to pix2pix's ``unet_256`` that the paper asks for: ngf = 16; the first
and last convolutions are stride 1, kernel 3; one extra (8ngf, 8ngf) skip block
so that with 8 stride-2 downsamplings after the stride-1 first conv the deepest
map is 1x1 at 256x256; "flip features": the first conv's output f0 is
concatenated with its horizontal mirror (``FlipConcat``) before the UNet body.

Channel plan (S = input size, n = num_downs = log2(S) by default, i.e. 8 at
256, ngf = 16 -> numbers in []):

    first_conv  3x3/1  C_in -> ngf             S        [16 @ 256]
    flip        concat(f0, flip_w(f0))  = s0   S        [32 @ 256]
    down_i      LReLU(0.2), conv 4x4/2, norm   S / 2^i  c_i channels, i = 1..n
                c_i = ngf * min(2^i, 8)        [32@128, 64@64, 128@32, 128@16,
                                                128@8, 128@4, 128@2, 128@1]
                (down_n, the innermost, has no norm: its map is 1x1)
    up_i        ReLU, conv-transpose 4x4/2, norm -> c_{i-1} channels, then
                concat [s_{i-1}, up_i]  (i = n..1; c_0 = 2 ngf for the flip)
                [256@2 .. 256@32, 128@64, 64@128, 64@256 after the concats]
    last_conv   ReLU, conv 3x3/1, 4 ngf -> C_out, output activation

Upsampling (``upsample``; the paper's is ``transpose``):
  transpose    conv-transpose 4x4/2 (pix2pix). Its output pixels take their
               taps from the kernel by parity, so even a constant input gives
               a period-2 pattern (the "checkerboard" of Odena et al. 2016,
               seen as a grid in a FAN albedo) unless training cancels it.
  resize_conv  nearest-neighbour x2, then conv 3x3 (Odena et al.'s remedy):
               a constant input stays constant; 9/4 = 2.25x the
               multiply-adds of ``transpose`` per up level.
  conv_resize  conv 3x3 at the low resolution, then bilinear x2: a constant
               input stays constant; 9/16 of ``transpose``'s multiply-adds per
               up level (the up path's fine detail then comes from the skips).
               Trained as v1 (README, "Upsampling"): FAN 13% faster in TF,
               4-5% worse same-texel albedo error, no grid; DRN loses a fifth
               of its wrinkle gain.

Our choices (*, the paper is silent): inputs in [0, 1] are rescaled to
[-1, 1] inside the model; normalisation defaults to instance norm
(``GroupNormalization(groups=-1)``, batch-size independent; ``norm="batch"``
gives pix2pix's BatchNorm); no dropout (pix2pix uses it as its noise source,
we want a deterministic regressor); all convs initialised N(0, 0.02) as in
pix2pix, normed convs without bias.

FAN output: ``sigmoid`` -> albedo in [0, 1] (same colour space as the input
texture; sigmoid(x) = (tanh(x/2) + 1) / 2, i.e. pix2pix's tanh mapped to
[0, 1]). DRN output: ``max_displacement * tanh`` -> the moving rate r_d along
the vertex normal, in the units of the detail-mesh positions the trainer uses
(Δd = r_d n); a fresh DRN outputs r_d close to 0.
"""

from __future__ import annotations

import keras

from tf_face.models.layers import FlipConcat, check_norm, check_size, normalization

_INIT_STD = 0.02


def _init():
    return keras.initializers.RandomNormal(stddev=_INIT_STD)


def unet_channels(ngf: int, num_downs: int) -> list[int]:
    """Encoder channels ``[c_0, c_1, ..., c_n]`` (c_0 = flip-concat width)."""
    return [2 * ngf] + [ngf * min(2 ** i, 8) for i in range(1, num_downs + 1)]


UPSAMPLE_KINDS = ("transpose", "resize_conv", "conv_resize")


def _up_layer(x, kind: str, channels: int, use_bias: bool, i: int):
    """One x2 upsampling to ``channels`` (module doc, "Upsampling")."""
    if kind == "transpose":
        return keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same",
                                            use_bias=use_bias, kernel_initializer=_init(),
                                            name=f"up{i}_convt")(x)
    conv = keras.layers.Conv2D(channels, 3, padding="same", use_bias=use_bias,
                               kernel_initializer=_init(), name=f"up{i}_conv")
    if kind == "resize_conv":
        return conv(keras.layers.UpSampling2D(2, interpolation="nearest",
                                              name=f"up{i}_resize")(x))
    return keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{i}_resize")(conv(x))


def check_upsample(kind, what: str = "UNet") -> str:
    if kind not in UPSAMPLE_KINDS:
        raise ValueError(f"{what}: upsample must be one of {', '.join(UPSAMPLE_KINDS)}; "
                         f"got {kind!r}")
    return kind


def _build_unet(out_channels: int, head, input_size: int, ngf: int, in_channels: int,
                num_downs: int, norm: str, name: str, upsample: str = "transpose") -> keras.Model:
    what = f"build {name}"
    check_upsample(upsample, what)
    if num_downs is None:  # as many levels as make the deepest map 1x1
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 2 \
                or input_size & (input_size - 1):
            raise ValueError(f"{what}: input_size must be a power of two >= 2 when num_downs "
                             f"is not given, got {input_size!r}")
        num_downs = input_size.bit_length() - 1
    if isinstance(num_downs, bool) or not isinstance(num_downs, int) or num_downs < 1:
        raise ValueError(f"{what}: num_downs must be an int >= 1, got {num_downs!r}")
    check_size(input_size, 2 ** num_downs, what)
    if not isinstance(ngf, int) or ngf < 1:
        raise ValueError(f"{what}: ngf must be a positive int, got {ngf!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"{what}: in_channels must be a positive int, got {in_channels!r}")
    check_norm(norm)
    chans = unet_channels(ngf, num_downs)
    use_bias = norm == "none"

    inputs = keras.Input((input_size, input_size, in_channels), name="texture")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(inputs)
    x = keras.layers.Conv2D(ngf, 3, padding="same", kernel_initializer=_init(),
                            name="first_conv")(x)
    skips = [FlipConcat(name="flip_features")(x)]
    x = skips[0]
    for i in range(1, num_downs + 1):
        x = keras.layers.LeakyReLU(0.2, name=f"down{i}_lrelu")(x)
        innermost = i == num_downs
        x = keras.layers.Conv2D(chans[i], 4, strides=2, padding="same",
                                use_bias=use_bias or innermost,
                                kernel_initializer=_init(), name=f"down{i}_conv")(x)
        if not innermost:
            x = normalization(norm, f"down{i}_norm")(x)
            skips.append(x)
    for i in range(num_downs, 0, -1):
        x = keras.layers.ReLU(name=f"up{i}_relu")(x)
        x = _up_layer(x, upsample, chans[i - 1], use_bias, i)
        x = normalization(norm, f"up{i}_norm")(x)
        x = keras.layers.Concatenate(name=f"up{i}_skip")([skips[i - 1], x])
    x = keras.layers.ReLU(name="last_relu")(x)
    x = keras.layers.Conv2D(out_channels, 3, padding="same", kernel_initializer=_init(),
                            name="last_conv")(x)
    outputs = head(x)
    return keras.Model(inputs, outputs, name=name)


def build_fan(input_size: int = 256, ngf: int = 16, in_channels: int = 3,
              num_downs: int | None = None, norm: str = "instance",
              name: str = "fan", upsample: str = "transpose") -> keras.Model:
    """FAN: texture [B, S, S, in_channels] in [0, 1] -> albedo [B, S, S, 3] in [0, 1].

    ``num_downs`` (stride-2 levels) defaults to log2(input_size), so the
    deepest map is 1x1 for any power-of-two size (8 levels at the paper's 256).
    Given explicitly, ``input_size`` must be a multiple of 2**num_downs and the
    deepest map is ``input_size / 2**num_downs``. ``upsample``: module doc.
    """
    head = keras.layers.Activation("sigmoid", name="albedo")
    return _build_unet(3, head, input_size, ngf, in_channels, num_downs, norm, name, upsample)


def build_drn(input_size: int = 256, ngf: int = 16, in_channels: int = 3,
              num_downs: int | None = None, norm: str = "instance",
              max_displacement: float = 1.0, name: str = "drn",
              upsample: str = "transpose") -> keras.Model:
    """DRN: texture [B, S, S, in_channels] -> moving rate r_d [B, S, S, 1].

    r_d = max_displacement * tanh(.) in (-max_displacement, max_displacement);
    sizes as in ``build_fan``.
    """
    if not max_displacement > 0:
        raise ValueError(f"build_drn: max_displacement must be > 0, got {max_displacement!r}")

    def head(x):
        x = keras.layers.Activation("tanh", name="tanh")(x)
        return keras.layers.Rescaling(float(max_displacement), name="moving_rate")(x)

    return _build_unet(1, head, input_size, ngf, in_channels, num_downs, norm, name, upsample)
