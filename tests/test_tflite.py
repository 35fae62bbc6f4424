"""TFLite conversion of B-Net/FAN/DRN vs TensorFlow on a real unwrapped texture.

Bounds (stated in tf_face.serving.compare / the export report):
* float32: max abs diff <= 1e-4 on every output (conversion reorders float
  ops; ~1e-5 is typical);
* float16 weights: albedo (B-Net's R_a and FAN's) max abs diff <= 2/255 both
  in the output space and after the sRGB display curve;
* int8 dynamic range: albedo max abs diff <= 12/255 after the display curve,
  DRN moving rate within 10 % of its bound ``drn_max_displacement``.
"""

import numpy as np
import pytest
import skimage.data

K = 10
CONVERTED = {"bnet": ("float32", "float16"), "fan": ("float32", "float16", "int8"),
             "drn": ("float32", "int8")}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from tf_face.facemodel import load_face_model
    from tf_face.pipeline import GeometryPipeline
    from tf_face.serving.backends import TFBackend
    from tf_face.testing.random_weights import write_random_weights
    from tf_face.serving.tflite import export_tflite
    from tf_face.serving.weights import load_albedo_model, load_networks, read_weights_config
    from tf_face.uv import get_atlas

    w = write_random_weights(tmp_path_factory.mktemp("weights"), num_albedo=K, bnet_width=4,
                             ngf=4, p_a_std=0.5, sh_std=0.1, seed=5)
    cfg = read_weights_config(w)
    nets = load_networks(w)
    folder = tmp_path_factory.mktemp("tflite")
    # every precision for FAN; the albedo-relevant ones for B-Net, fp32/int8 for DRN
    # (each conversion costs ~7 s of CPU)
    for net, precs in CONVERTED.items():
        export_tflite(nets, folder, cfg.uv_size, cfg.num_albedo, precisions=precs, nets=(net,))
    face = load_face_model(cfg.model)
    backend = TFBackend(w, cfg, load_albedo_model(cfg, face), networks=nets)
    texture = GeometryPipeline("default").run(skimage.data.astronaut()).sample.texture
    return {"cfg": cfg, "folder": folder, "backend": backend, "texture": texture, "nets": nets,
            "mask": get_atlas(face, size=cfg.uv_size).mask}


@pytest.fixture(scope="module")
def rows(setup):
    from tf_face.serving.compare import compare_tflite
    out = []
    for net, precs in CONVERTED.items():
        out += compare_tflite(setup["backend"], setup["folder"], [setup["texture"]],
                              setup["mask"], setup["cfg"].color_space, precisions=precs,
                              nets=(net,), repeats=1)
    return out


def test_every_network_and_precision_is_compared(rows):
    assert {(r["net"], r["precision"]) for r in rows} == {
        (n, p) for n, precs in CONVERTED.items() for p in precs}
    for r in rows:
        assert r["size_mb"] > 0 and r["ms_tflite"] > 0 and np.isfinite(r["max_abs"])


def test_sizes_shrink_with_precision(rows):
    size = {(r["net"], r["precision"]): r["size_mb"] for r in rows}
    assert size[("bnet", "float16")] < 0.6 * size[("bnet", "float32")]
    assert size[("fan", "float16")] < 0.6 * size[("fan", "float32")]
    assert size[("fan", "int8")] < 0.6 * size[("fan", "float16")]
    assert size[("drn", "int8")] < 0.4 * size[("drn", "float32")]


def test_differences_within_the_stated_bounds(rows, setup):
    for r in rows:
        if r["precision"] == "float32":
            assert r["max_abs"] <= 1e-4, r
        elif r["precision"] == "float16":
            if r["net"] in ("bnet", "fan"):
                assert r["max_abs"] <= 2 / 255 and r["max_abs_display_255"] <= 2.0, r
            else:
                assert r["max_abs"] <= 0.02 * setup["cfg"].drn_max_displacement, r
        else:
            if r["net"] in ("bnet", "fan"):
                assert r["max_abs_display_255"] <= 12.0, r
            else:
                assert r["max_abs"] <= 0.1 * setup["cfg"].drn_max_displacement, r
        assert r["mean_abs"] <= r["max_abs"]


def test_outputs_are_not_trivially_equal(setup):
    """The comparison is meaningful: the random networks give varied outputs."""
    from tf_face.serving.tflite import TFLiteNetwork
    x = setup["texture"][None].astype(np.float32)
    fan = TFLiteNetwork(setup["folder"] / "fan_float32.tflite")(x)["albedo"]
    drn = TFLiteNetwork(setup["folder"] / "drn_float32.tflite")(x)["moving_rate"]
    bnet = TFLiteNetwork(setup["folder"] / "bnet_float32.tflite")(x)
    assert fan.shape == (1, 256, 256, 3) and fan.std() > 1e-3
    assert drn.shape == (1, 256, 256, 1) and np.abs(drn).max() > 1e-5
    assert bnet["p_a"].shape == (1, K) and bnet["sh"].shape == (1, 9, 3)
    ref = setup["backend"].run_network("bnet", x)
    np.testing.assert_allclose(bnet["sh"], ref["sh"], atol=1e-5)
    # the split is B-Net's raw output [p_a | 27 SH values] with the grey ambient
    # offset added to gamma[0] (the Keras network's own output as the reference)
    from tf_face.models.bnet import DEFAULT_AMBIENT
    raw = np.asarray(setup["nets"]["bnet"](x, training=False))
    gamma = raw[:, K:].reshape(1, 9, 3).copy()
    gamma[:, 0, :] += DEFAULT_AMBIENT
    np.testing.assert_allclose(bnet["p_a"], raw[:, :K], atol=1e-4)
    np.testing.assert_allclose(bnet["sh"], gamma, atol=1e-4)
    assert np.abs(raw[:, K:]).max() > 1e-3      # the offset is not all there is


def test_only_builtin_ops(setup):
    from tf_face.serving.tflite import TFLiteNetwork
    for path in setup["folder"].glob("*.tflite"):
        ops = {o["op_name"] for o in TFLiteNetwork(path).interpreter._get_ops_details()}
        assert not any(o.startswith("Flex") or o == "CUSTOM" for o in ops), (path.name, ops)


# what each .tflite's signature outputs are called: the SavedModel's bnet / fan / drn
# signature output keys (bnet's raw ``coeffs`` stays in the SavedModel only)
EXPECTED_OUTPUTS = {"bnet": ["p_a", "sh"], "fan": ["albedo"], "drn": ["moving_rate"]}


def test_signature_outputs_are_named(setup):
    """A client that did not write tf_face (the TFLite / LiteRT interpreter's
    signature runner) sees named outputs, not ``output_0``, ``output_1``, and
    reads them by name with the TF values."""
    import warnings

    import tensorflow as tf
    x = setup["texture"][None].astype(np.float32)
    for net, precs in CONVERTED.items():
        ref = setup["backend"].run_network(net, x)
        for prec in precs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                it = tf.lite.Interpreter(model_path=str(setup["folder"] / f"{net}_{prec}.tflite"))
            assert it.get_signature_list() == {"serving_default": {
                "inputs": ["texture"], "outputs": EXPECTED_OUTPUTS[net]}}, (net, prec)
            out = it.get_signature_runner()(texture=x)
            assert sorted(out) == EXPECTED_OUTPUTS[net]
            if prec == "float32":
                for name in EXPECTED_OUTPUTS[net]:
                    np.testing.assert_allclose(out[name], ref[name], atol=1e-4, err_msg=name)


def test_litert_runs_every_exported_file_by_output_name(setup, tmp_path):
    """LiteRT (``ai-edge-litert`` 2.3.0, pinned wheel, a fresh interpreter
    without TensorFlow: ``tests/litert_client.py``) opens all of our .tflite
    files, sees the named signature outputs and returns TF's values (float32
    to 1e-4; reduced precisions within the bounds above)."""
    from tests import conftest, litert_client
    why = litert_client.platform_mismatch()
    if why:
        conftest.missing(why)
    try:
        site = litert_client.fetch(tmp_path / "litert")
    except Exception as e:       # no network / registry: skip, or fail under CI=true
        conftest.missing(f"cannot fetch {litert_client.REQUIREMENT}: {e}")
    x = setup["texture"][None].astype(np.float32)
    models = sorted(setup["folder"].glob("*.tflite"))
    assert len(models) == sum(len(p) for p in CONVERTED.values())
    report = litert_client.run(site, models, x, tmp_path / "client")
    for path in models:
        net, prec = path.stem.split("_", 1)
        got = report[str(path)]
        assert got["signatures"] == {"serving_default": {
            "inputs": ["texture"], "outputs": EXPECTED_OUTPUTS[net]}}, path.name
        ref = setup["backend"].run_network(net, x)
        bound = {"float32": 1e-4, "float16": 0.02, "int8": 0.1}[prec]
        for name in EXPECTED_OUTPUTS[net]:
            scale = setup["cfg"].drn_max_displacement if net == "drn" else 1.0
            assert got["outputs"][name].shape == np.shape(ref[name]), (path.name, name)
            np.testing.assert_allclose(got["outputs"][name], ref[name], atol=bound * scale,
                                       err_msg=f"{path.name}: {name}")


def test_runner_refuses_unnamed_outputs(tmp_path):
    """A .tflite with the converter's default names (``output_0``, ...: what
    tf_face wrote before) is refused with a one-line WeightsError, not
    silently read by position."""
    import keras
    import tensorflow as tf

    from tf_face.serving.tflite import TFLiteNetwork
    from tf_face.serving.weights import WeightsError
    inp = keras.Input((4, 4, 3), batch_size=1, name="texture")
    model = keras.Model(inp, [keras.layers.Flatten()(inp), keras.layers.Identity()(inp)])
    model.export(str(tmp_path / "sm"), format="tf_saved_model", verbose=False)
    (tmp_path / "old.tflite").write_bytes(
        tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm")).convert())
    with pytest.raises(WeightsError, match="output_0, output_1 are not tf_face's named outputs"):
        TFLiteNetwork(tmp_path / "old.tflite")


def _float64_twin(model):
    """The Keras model recomputed in float64 (same layers and weights)."""
    import keras

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float64"})
    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    return twin


@pytest.mark.parametrize("net,norm", [("fan", "instance"), ("fan", "none"), ("fan", "batch"),
                                      ("drn", "instance")])   # "none": convs with bias
def test_inference_model_equals_the_keras_model(net, norm):
    """``inference_model`` (what the TF backend runs and every .tflite is
    converted from) rewrites the transposed convs, the instance norms, the last
    conv (3 or 1 output channels) and the ReLU after each skip join, and
    computes the same function, checked against a float64 evaluation of the
    Keras model."""
    import keras

    from tf_face.models.unet import build_drn, build_fan
    from tf_face.serving.inference_model import inference_model
    build = build_fan if net == "fan" else build_drn
    model = build(input_size=32, ngf=3, num_downs=5, norm=norm)
    rng = np.random.default_rng(2)
    for w in model.weights:                                    # biases non-zero too
        w.assign(rng.normal(0, 0.2, w.shape).astype(np.float32))
    if norm == "batch":                                        # inference statistics
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
    twin = inference_model(model)
    names = {type(layer).__name__ for layer in twin.layers}
    assert "Conv2DTranspose" not in names and "SubPixelConvTranspose" in names
    assert ("GroupNormalization" in names) is False
    assert ("InstanceNorm4D" in names) == (norm == "instance")
    assert ("BatchNormalization" in names) == (norm == "batch")
    assert type(twin.get_layer("last_conv")).__name__ == "ShiftSumConv"
    joins = [layer for layer in twin.layers if type(layer).__name__ == "ReluConcat"]
    assert len(joins) == 5 and type(twin.get_layer("last_relu")).__name__ == "Identity"
    # as many weights, but a transposed conv's bias is repeated per output parity and
    # the last conv's bias has k*k slots (one used) and a constant one-hot tap kernel
    extra = sum(3 * layer.bias.shape[0] for layer in model.layers
                if isinstance(layer, keras.layers.Conv2DTranspose) and layer.use_bias)
    for layer in model.layers:
        if type(twin.get_layer(layer.name)).__name__ == "ShiftSumConv":
            kk = layer.kernel_size[0] * layer.kernel_size[1]
            extra += layer.filters * kk * (kk + 1) - (layer.filters if layer.use_bias else 0)
    assert sum(w.size for w in twin.get_weights()) == \
        sum(w.size for w in model.get_weights()) + extra
    x = rng.random((2, 32, 32, 3), dtype=np.float32)
    ref64 = _float64_twin(model)(x.astype(np.float64)).numpy()
    np.testing.assert_allclose(model(x).numpy(), ref64, atol=1e-5)
    np.testing.assert_allclose(twin(x).numpy(), ref64, atol=1e-5)
    assert np.abs(twin(x).numpy() - np.median(ref64)).max() > 1e-3   # not a constant output


def test_relu_concat_rewrite_skips_a_shared_relu():
    """A ReLU layer called twice (on a concat and elsewhere) is not replaced."""
    import keras

    from tf_face.serving.inference_model import _relu_after_concat, inference_model
    a = keras.Input((4, 4, 2), name="x")
    relu = keras.layers.ReLU(name="shared_relu")
    joined = keras.layers.Concatenate(name="join")([a, keras.layers.Conv2D(2, 1, name="b")(a)])
    y = keras.layers.Concatenate(name="out")([relu(joined), relu(a)])
    model = keras.Model(a, y)
    assert _relu_after_concat(model) == {}
    x = np.random.default_rng(1).normal(size=(1, 4, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(inference_model(model)(x).numpy(), model(x).numpy(), atol=1e-6)


def test_shift_sum_conv_equals_the_conv_at_every_border():
    """``ShiftSumConv`` (pointwise conv, one-hot tap shifts, sum over taps) is a
    "same" k x k conv, bias included, on a map whose border pixels are large
    (a wrong shift direction or padding would show there first), against
    float64 numpy; 1 and 3 output channels, k = 3 and 5, batch 2."""
    import tensorflow as tf

    from tf_face.serving.inference_model import (_shift_sum_conv_layer_class,
                                                 shift_sum_kernels)
    rng = np.random.default_rng(7)
    layer_class = _shift_sum_conv_layer_class()
    for cout, k in ((1, 3), (3, 3), (1, 5)):
        x = rng.normal(size=(2, 9, 7, 4))
        x[:, [0, -1]] *= 10
        x[:, :, [0, -1]] *= 10
        w = rng.normal(size=(k, k, 4, cout))
        b = rng.normal(size=cout)
        r = k // 2
        xp = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
        ref = np.zeros((2, 9, 7, cout)) + b
        for i in range(k):
            for j in range(k):
                ref += np.einsum("bhwi,io->bhwo", xp[:, i:i + 9, j:j + 7], w[i, j])
        layer = layer_class(cout, k)
        layer.build((None, 9, 7, 4))
        pointwise, bias, taps = shift_sum_kernels(w.astype(np.float32), b.astype(np.float32))
        layer.pointwise.assign(pointwise)
        layer.bias.assign(bias)
        layer.taps.assign(taps)
        out = layer(tf.constant(x, tf.float32)).numpy()
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, atol=2e-4 * np.abs(ref).max())
    with pytest.raises(ValueError, match="odd square kernel"):
        shift_sum_kernels(np.zeros((2, 2, 1, 1), np.float32), None)


def test_relu_concat_rewrite_only_where_the_relu_is_the_only_reader():
    """A concat also read by another layer (or a model output) keeps its ReLU."""
    import keras

    from tf_face.serving.inference_model import _relu_after_concat, inference_model
    a = keras.Input((4, 4, 2))
    b = keras.layers.Conv2D(2, 1, name="b")(a)
    joined = keras.layers.Concatenate(name="join")([a, b])
    shared = keras.layers.Concatenate(name="shared")([a, b])
    y = keras.layers.Add(name="sum")([keras.layers.ReLU(name="r1")(joined),
                                      keras.layers.ReLU(name="r2")(shared),
                                      shared])
    model = keras.Model(a, [y, keras.layers.Concatenate(name="out_join")([a, b])])
    assert _relu_after_concat(model) == {"join": "r1"}
    twin = inference_model(model)
    assert type(twin.get_layer("join")).__name__ == "ReluConcat"
    assert type(twin.get_layer("r2")).__name__ == "ReLU"
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 2)).astype(np.float32)
    for got, want in zip(twin(x), model(x)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)


def test_unets_have_no_transpose_conv_and_no_5d_tensors(setup):
    """FAN/DRN .tflite files carry no TRANSPOSE_CONV (TFLite's int8 hybrid
    kernel for it is a slow reference loop: 18-38x float32 without XNNPACK;
    the latencies are measured by eval/bench_reconstruct.py, not asserted
    here) but DEPTH_TO_SPACE (the sub-pixel form of the upsampling), and their
    last conv as a pointwise conv + one-hot DEPTHWISE_CONV_2D shifts."""
    from tf_face.serving.tflite import TFLiteNetwork

    for path in setup["folder"].glob("*.tflite"):
        interpreter = TFLiteNetwork(path).interpreter
        ops = {o["op_name"] for o in interpreter._get_ops_details()}
        assert "TRANSPOSE_CONV" not in ops, (path.name, ops)
        assert ("DEPTH_TO_SPACE" in ops) == (not path.name.startswith("bnet")), path.name
        assert ("DEPTHWISE_CONV_2D" in ops) == (not path.name.startswith("bnet")), path.name
        # instance norms on 4D maps: Keras's 5D reshape ran outside XNNPACK (2x slower FAN)
        ranks = {len(t["shape"]) for t in interpreter.get_tensor_details()}
        assert max(ranks) <= 4, (path.name, ranks)


def test_fused_tf_call_equals_the_three_separate_calls(setup):
    """TFBackend runs B-Net, FAN and DRN in one tf.function by default; its
    outputs are those of the per-network calls (same graph ops, same inputs)."""
    from tf_face.serving.backends import TFBackend
    sep = setup["backend"]
    fused = TFBackend(None, setup["cfg"], sep.albedo_model, networks=setup["nets"])
    assert fused.fused and sep.fused   # the default
    separate = TFBackend(None, setup["cfg"], sep.albedo_model, networks=setup["nets"],
                         fused=False)
    a, b = fused(setup["texture"]), separate(setup["texture"])
    assert set(a.timings_ms) == {"networks", "albedo_pca"}
    assert {"bnet", "fan", "drn", "networks"} <= set(b.timings_ms)
    for k in ("p_a", "sh", "albedo_pca", "albedo", "moving_rate"):
        x, y = getattr(a, k), getattr(b, k)
        assert x.shape == y.shape
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=k)
    assert np.abs(a.albedo).max() > 0 and np.abs(a.moving_rate).max() > 0


def test_tflite_networks_use_every_usable_core_by_default(setup):
    """The interpreter's own default is one thread; ours is the affinity mask's size."""
    import os
    from tf_face.serving.tflite import TFLiteNetwork, tflite_name, usable_cpus
    assert usable_cpus() == len(os.sched_getaffinity(0))
    path = setup["folder"] / tflite_name("fan", "float32")
    assert TFLiteNetwork(path).num_threads == usable_cpus()
    assert TFLiteNetwork(path, num_threads=1).num_threads == 1


def test_mediapipe_models_use_two_threads_unless_told_otherwise():
    """The ~1 ms landmark models: min(2, usable cores) by default; a worker
    process that splits the cores (the preprocessing pool) sets 1."""
    import os
    from tf_face.landmarks import FaceDetector, FaceMeshLandmarker
    from tf_face.landmarks.tflite_model import (set_small_model_threads, small_model_threads,
                                                usable_cpus)
    assert usable_cpus() == len(os.sched_getaffinity(0))
    assert small_model_threads() == min(2, usable_cpus())
    assert FaceMeshLandmarker().model.num_threads == small_model_threads()
    assert FaceDetector().short.model.num_threads == small_model_threads()
    try:
        set_small_model_threads(1)
        assert FaceMeshLandmarker().model.num_threads == 1
        assert FaceDetector().full.model.num_threads == 1
        assert FaceMeshLandmarker(num_threads=3).model.num_threads == 3
        with pytest.raises(ValueError, match=">= 1"):
            set_small_model_threads(0)
    finally:
        set_small_model_threads(None)
    assert small_model_threads() == min(2, usable_cpus())
