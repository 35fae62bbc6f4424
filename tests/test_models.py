"""Networks: shapes, parameter counts (analytic), flip features, serialisation."""

import functools
import logging

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_face.errors import AssetMissingError  # noqa: E402
from tf_face.losses import perceptual_loss  # noqa: E402
from tf_face.models import (FlipConcat, VGGPerceptual, build_bnet, build_drn,  # noqa: E402
                            build_fan, build_patchgan, merge_bnet_output,
                            patchgan_receptive_field, split_bnet_output)
from tf_face.models import vgg as vgg_module  # noqa: E402

K = 199


# ---------------------------------------------------------------- analytic counts
def conv(k, cin, cout, bias):
    return k * k * cin * cout + (cout if bias else 0)


def bnet_params(num_albedo, stages=(128, 256, 512, 1024), stem=64):
    bn = lambda c: 4 * c  # gamma, beta, moving mean, moving variance  # noqa: E731
    total = conv(7, 3, stem, False) + bn(stem)
    cin = stem
    for width in stages:
        for block in range(2):
            total += conv(3, cin, width, False) + bn(width) + conv(3, width, width, False) + bn(width)
            if block == 0:  # projection: stride 2, or 64 -> 128 in stage 1
                total += conv(1, cin, width, False) + bn(width)
            cin = width
    return total + stages[-1] * (num_albedo + 27) + (num_albedo + 27)


def unet_params(ngf, in_ch, out_ch, chans, up_kernel=4):
    """chans = [c0 (flip concat), c1..cn]; instance norm = 2 params / channel;
    up_kernel 4 (transposed conv) or 3 (the resize variants' conv)."""
    n = len(chans) - 1
    total = conv(3, in_ch, ngf, True)
    for i in range(1, n + 1):
        innermost = i == n
        total += conv(4, chans[i - 1], chans[i], innermost) + (0 if innermost else 2 * chans[i])
    for i in range(n, 0, -1):
        cin = chans[n] if i == n else 2 * chans[i]
        total += conv(up_kernel, cin, chans[i - 1], False) + 2 * chans[i - 1]
    return total + conv(3, 2 * chans[0], out_ch, True)


# the paper's plan, written out by hand: ngf 16, flip doubles c0, 8 stride-2 levels
PAPER_CHANS = [32, 32, 64, 128, 128, 128, 128, 128, 128]


def patchgan_params(ndf=64, in_ch=3):
    return (conv(4, in_ch, ndf, True) + conv(4, ndf, 2 * ndf, False) + 2 * 2 * ndf
            + conv(4, 2 * ndf, 4 * ndf, False) + 2 * 4 * ndf
            + conv(4, 4 * ndf, 8 * ndf, False) + 2 * 8 * ndf + conv(4, 8 * ndf, 1, True))


# ---------------------------------------------------------------- cached models
@functools.lru_cache(maxsize=None)
def bnet256():
    return build_bnet(K, input_size=256)


@functools.lru_cache(maxsize=None)
def fan256():
    return build_fan(256)


@functools.lru_cache(maxsize=None)
def small_fan():
    return build_fan(input_size=32, ngf=4, num_downs=5, name="small_fan")


def rand(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


# ---------------------------------------------------------------- B-Net
def test_bnet_shapes_and_params():
    model = bnet256()
    n = model.count_params()
    print(f"B-Net (K={K}, 256^2): {n} parameters")
    assert n == bnet_params(K)
    assert model.get_layer("stage4_block2_out").output.shape[1:] == (8, 8, 1024)
    assert model.get_layer("features").output.shape[1:] == (1024,)
    assert model.output_shape == (None, K + 27)  # forward passes: the small B-Net below


def test_bnet_rejects_wrong_input():
    with pytest.raises(ValueError, match="256"):
        bnet256()(np.zeros((1, 128, 128, 3), np.float32))
    with pytest.raises(ValueError, match="multiple of 32"):
        build_bnet(K, input_size=100)
    with pytest.raises(ValueError, match="num_albedo"):
        build_bnet(-1)


def test_bnet_split_layout_and_ambient():
    y = np.arange(2 * (4 + 27), dtype=np.float32).reshape(2, 31)
    p_a, gamma = split_bnet_output(y, 4, ambient=0.8)
    assert p_a.shape == (2, 4) and gamma.shape == (2, 9, 3)
    np.testing.assert_array_equal(p_a, y[:, :4])
    # gamma[b, c] = y[K + 3 b + c], plus 0.8 on the ambient (b = 0) row only
    for b in range(9):
        for c in range(3):
            expect = y[:, 4 + 3 * b + c] + (0.8 if b == 0 else 0.0)
            np.testing.assert_allclose(np.asarray(gamma)[:, b, c], expect, rtol=1e-6)
    np.testing.assert_allclose(merge_bnet_output(p_a, gamma), y, rtol=1e-6)
    with pytest.raises(ValueError, match="27"):
        split_bnet_output(y, 5)


# ---------------------------------------------------------------- FAN / DRN
def test_fan_shapes_params_and_1x1_bottleneck():
    model = fan256()
    n = model.count_params()
    print(f"FAN (ngf 16, 256^2): {n} parameters")
    assert n == unet_params(16, 3, 3, PAPER_CHANS)
    assert model.get_layer("first_conv").output.shape[1:] == (256, 256, 16)
    assert model.get_layer("flip_features").output.shape[1:] == (256, 256, 32)
    assert model.get_layer("down8_conv").output.shape[1:] == (1, 1, 128)  # deepest map 1x1
    assert model.get_layer("last_conv").input.shape[1:] == (256, 256, 64)
    out = model(rand((1, 256, 256, 3)), training=False).numpy()
    assert out.shape == (1, 256, 256, 3)
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("kind", ["resize_conv", "conv_resize"])
def test_resize_upsampling_unets_have_the_planned_shapes_and_params(kind):
    model = build_fan(256, upsample=kind)
    assert model.count_params() == unet_params(16, 3, 3, PAPER_CHANS, up_kernel=3)
    assert model.get_layer("up1_norm").output.shape[1:] == (256, 256, 32)
    assert model.get_layer("last_conv").input.shape[1:] == (256, 256, 64)
    drn = build_drn(32, ngf=4, num_downs=5, upsample=kind, max_displacement=0.5)
    out = drn(rand((2, 32, 32, 3)), training=False).numpy()
    assert out.shape == (2, 32, 32, 1) and np.abs(out).max() < 0.5
    with pytest.raises(ValueError, match="upsample must be one of"):
        build_fan(32, ngf=4, num_downs=5, upsample="pixel_shuffle")


def test_only_the_transposed_conv_turns_a_constant_map_into_a_checkerboard():
    """Odena et al. 2016: a 4x4/2 transposed conv takes each output pixel's taps
    from the kernel by parity, so a constant input gives a period-2 pattern;
    the two resize variants give a constant interior (random N(0, 0.02)
    weights, no training to hide the difference)."""
    from tf_face.models.unet import UPSAMPLE_KINDS, _up_layer
    x = np.full((1, 8, 8, 6), 0.7, np.float32)
    spread = {}
    for kind in UPSAMPLE_KINDS:
        keras.utils.set_random_seed(5)
        inp = keras.Input((8, 8, 6))
        layer_model = keras.Model(inp, _up_layer(inp, kind, 4, False, 1))
        y = layer_model(x).numpy()[0, 3:-3, 3:-3]        # interior: no border effects
        assert y.shape == (10, 10, 4)
        spread[kind] = float(np.ptp(y, axis=(0, 1)).max() / np.abs(y).mean())
    assert spread["transpose"] > 0.1, spread
    assert spread["resize_conv"] < 1e-5 and spread["conv_resize"] < 1e-5, spread


def test_training_flags_offer_exactly_the_unet_upsample_kinds():
    from tf_face.models.unet import UPSAMPLE_KINDS
    from train.job_flags import UPSAMPLE_KINDS as flag_kinds
    assert list(UPSAMPLE_KINDS) == flag_kinds


def test_drn_shapes_params_and_range():
    model = build_drn(256, max_displacement=0.5)
    n = model.count_params()
    print(f"DRN (ngf 16, 256^2): {n} parameters")
    assert n == unet_params(16, 3, 1, PAPER_CHANS)
    assert model.output_shape == (None, 256, 256, 1)
    assert model.get_layer("down8_conv").output.shape[1:] == (1, 1, 128)
    # r_d = max_displacement * tanh(.)
    small = build_drn(32, ngf=4, num_downs=5, max_displacement=0.5)
    x = rand((1, 32, 32, 3))
    r = small(x).numpy()
    t = keras.Model(small.input, small.get_layer("tanh").output)(x).numpy()
    np.testing.assert_allclose(r, 0.5 * t, rtol=1e-6)
    assert np.all(np.abs(r) < 0.5)


def test_unet_default_depth_gives_1x1_at_any_power_of_two():
    model = build_fan(input_size=64, ngf=2)  # 6 stride-2 levels
    assert model.get_layer("down6_conv").output.shape[1:] == (1, 1, 16)
    assert model.count_params() == unet_params(2, 3, 3, [4, 4, 8, 16, 16, 16, 16])


def test_unet_rejects_bad_sizes():
    with pytest.raises(ValueError, match="power of two"):
        build_fan(input_size=96)
    with pytest.raises(ValueError, match="multiple of 256"):
        build_fan(input_size=128, num_downs=8)
    with pytest.raises(ValueError, match="normalisation"):
        build_fan(input_size=32, num_downs=5, norm="layer")
    with pytest.raises(ValueError, match="max_displacement"):
        build_drn(32, num_downs=5, max_displacement=0.0)
    with pytest.raises(ValueError, match="32"):
        small_fan()(np.zeros((1, 64, 64, 3), np.float32))


def test_flip_layer_is_concat_of_mirror():
    x = rand((2, 5, 7, 3))
    out = FlipConcat()(x).numpy()
    np.testing.assert_array_equal(out, np.concatenate([x, x[:, :, ::-1]], axis=-1))
    assert FlipConcat().compute_output_shape((None, 5, 7, 3)) == (None, 5, 7, 6)


def test_flip_features_see_the_mirrored_input():
    """Perturb one input texel at column 3: the first ngf channels after the flip
    change only around column 3, the mirrored ngf channels only around 28 = W-1-3."""
    model = small_fan()
    ngf = model.get_layer("first_conv").output.shape[-1]
    feats = keras.Model(model.input, model.get_layer("flip_features").output)
    x = rand((1, 32, 32, 3))
    x2 = x.copy()
    x2[0, 10, 3, :] += 0.5
    d = np.abs(feats(x2).numpy() - feats(x).numpy())[0]  # [H, W, 2 ngf]
    direct = d[..., :ngf].max(axis=(0, 2))
    mirrored = d[..., ngf:].max(axis=(0, 2))
    assert direct[3] > 0 and mirrored[28] > 0
    assert set(np.nonzero(direct)[0]) <= {2, 3, 4}
    assert set(np.nonzero(mirrored)[0]) <= {27, 28, 29}
    np.testing.assert_allclose(d[..., ngf:], d[:, ::-1, :ngf], atol=1e-7)


@pytest.mark.parametrize("make", [
    small_fan,
    lambda: build_drn(32, ngf=4, num_downs=5, norm="batch", max_displacement=2.0),
    lambda: build_patchgan(64, ndf=8, n_layers=2, norm="batch"),
])
def test_config_round_trip_identical_outputs(make):
    model = make()
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x = rand((1, *model.input_shape[1:]), seed=3)
    np.testing.assert_array_equal(clone(x, training=False).numpy(),
                                  model(x, training=False).numpy())
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]


def test_bnet_small_width_and_config_round_trip():
    model = build_bnet(5, input_size=64, width=8)  # stages 16/32/64/128, pool 2
    assert model.count_params() == bnet_params(5, (16, 32, 64, 128), 8)
    assert model.get_layer("avg_pool").pool_size == (2, 2)
    config = model.get_config()
    assert config["layers"][-1]["config"]["units"] == 5 + 27
    clone = keras.Model.from_config(config)
    clone.set_weights(model.get_weights())
    x = rand((2, 64, 64, 3), seed=4)
    y = model(x, training=False).numpy()
    assert y.shape == (2, 5 + 27) and np.all(np.isfinite(y))
    np.testing.assert_array_equal(clone(x, training=False).numpy(), y)


def test_keras_file_round_trip(tmp_path):
    model = small_fan()
    path = tmp_path / "fan.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = rand((1, 32, 32, 3), seed=5)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert isinstance(loaded.get_layer("flip_features"), FlipConcat)


# ---------------------------------------------------------------- PatchGAN
def test_patchgan_shapes_and_params():
    model = build_patchgan(256)
    n = model.count_params()
    print(f"PatchGAN (ndf 64, n_layers 3, 256^2): {n} parameters")
    assert n == patchgan_params()
    assert model.output_shape == (None, 30, 30, 1)


def test_patchgan_receptive_field_is_70():
    assert patchgan_receptive_field(3) == 70
    # empirical: gradient support of one interior logit (no norm -> purely local)
    model = build_patchgan(128, ndf=4, n_layers=3, norm="none")
    x = tf.constant(rand((1, 128, 128, 3)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        logit = model(x)[0, 7, 7, 0]
    g = np.abs(tape.gradient(logit, x).numpy()[0]).sum(-1)
    rows, cols = np.nonzero(g)
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


# ---------------------------------------------------------------- VGG
@functools.lru_cache(maxsize=None)
def vgg_small():
    return VGGPerceptual(weights=None, resize_to=32)


def test_vgg_features_preprocessing_and_loss():
    v = vgg_small()
    a = rand((2, 48, 48, 3), 1)
    feats = v(a)
    assert [tuple(f.shape) for f in feats] == [(2, 32, 32, 64), (2, 16, 16, 128),
                                             (2, 8, 8, 256), (2, 4, 4, 512)]
    # caffe preprocessing of one constant colour, computed by hand
    # (the 2x2 -> 32x32 resize keeps a constant image constant)
    pre = v._preprocess(np.full((1, 2, 2, 3), [0.2, 0.4, 0.6], np.float32)).numpy()
    np.testing.assert_allclose(pre[0, 0, 0], [0.6 * 255 - 103.939, 0.4 * 255 - 116.779,
                                              0.2 * 255 - 123.68], rtol=1e-5)
    assert float(perceptual_loss(v, a, a)) == 0.0
    b = tf.Variable(rand((2, 48, 48, 3), 2))
    with tf.GradientTape() as tape:
        loss = perceptual_loss(v, a, b)
    g = tape.gradient(loss, b).numpy()
    assert float(loss) > 0 and np.all(np.isfinite(g)) and np.abs(g).max() > 0
    assert not v.trainable_weights
    with pytest.raises(ValueError, match="RGB"):
        v(np.zeros((1, 8, 8, 1), np.float32))


def test_vgg_random_weights_warn_once_and_config_round_trip(caplog, monkeypatch):
    monkeypatch.setattr(vgg_module, "_warned_random", False)
    with caplog.at_level(logging.WARNING, logger=vgg_module.__name__):
        v = VGGPerceptual(weights=None, layers=("block1_conv2", "block2_conv2"), resize_to=32)
        clone = VGGPerceptual.from_config(v.get_config())
    assert sum("RANDOM weights" in r.getMessage() for r in caplog.records) == 1
    assert clone.layer_names == v.layer_names and clone.resize_to == 32
    clone.extractor.set_weights(v.extractor.get_weights())
    x = rand((1, 40, 40, 3), 7)
    for fa, fb in zip(clone(x), v(x)):
        np.testing.assert_array_equal(fa.numpy(), fb.numpy())


def test_vgg_loads_keras_notop_h5_and_round_trips(tmp_path):
    from keras.src.legacy.saving import legacy_h5_format

    ref = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:  # the legacy layout of Keras's published file
        legacy_h5_format.save_weights_to_hdf5_group(f, ref)
    v = VGGPerceptual(weights=str(path), layers=("block1_conv2", "block3_conv3"))
    for w_ref, w in zip(ref.get_weights(), v.extractor.get_weights()):
        np.testing.assert_array_equal(w, w_ref)
    assert v.get_config()["weights"] == str(path)
    with pytest.raises(AssetMissingError):
        VGGPerceptual(weights=str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match="unknown VGG16 layer"):
        VGGPerceptual(layers=("relu1_2",))


def test_small_fan_converts_to_tflite_builtins_only(tmp_path):
    """Flip layer, instance norm and transposed convs need no Flex/custom ops,
    through the product's path (tf_face.serving.tflite: Keras export archive ->
    TFLiteConverter.from_saved_model)."""
    from tf_face.serving.tflite import TFLiteNetwork, convert_network
    model = build_fan(input_size=16, ngf=2, num_downs=4, name="tiny_fan")
    path = tmp_path / "fan_float32.tflite"
    path.write_bytes(convert_network(model, "fan", "float32", size=16)["float32"])
    net = TFLiteNetwork(path)
    ops = {o["op_name"] for o in net.interpreter._get_ops_details()}
    assert not any(o.startswith("Flex") or o == "CUSTOM" for o in ops), ops
    x = rand((1, 16, 16, 3), 8)
    np.testing.assert_allclose(net(x)["albedo"], model(x).numpy(), atol=1e-5)
