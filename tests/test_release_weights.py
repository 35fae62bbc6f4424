"""Release weights: the folder format (fp16 npz + manifest), its checks, the
shipped weights, synthetic supervision, and train.release end to end."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small training-layout weights folder (random networks, UV 64)."""
    from tf_face.testing.random_weights import write_random_weights
    return write_random_weights(tmp_path_factory.mktemp("train"), num_albedo=6, uv_size=64,
                                bnet_width=4, ngf=4, p_a_std=0.3, sh_std=0.05, seed=3)


@pytest.fixture(scope="module")
def release(trained, tmp_path_factory):
    from tf_face.serving.weights import write_release
    out = tmp_path_factory.mktemp("rel") / "release"
    write_release(trained, out, dtype="float16")
    return out


def _outputs(nets, x):
    return {k: np.asarray(m(x, training=False), np.float64) for k, m in nets.items()}


def test_release_round_trip_matches_training_weights(trained, release, tmp_path):
    """fp16 release: outputs within fp16 rounding of the fp32 networks; fp32
    release: identical. No optimiser state, discriminator or checkpoints."""
    from tf_face.serving.weights import load_networks, read_weights_config, write_release
    x = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    ref = _outputs(load_networks(trained), x)
    half = _outputs(load_networks(release), x)
    for k in ref:
        scale = np.abs(ref[k]).max() + 1e-6
        err = np.abs(ref[k] - half[k]).max() / scale
        assert 0 < err < 5e-3, (k, err)     # fp16 changes something, not much
    full_dir = tmp_path / "full"
    write_release(trained, full_dir, dtype="float32")
    full = _outputs(load_networks(full_dir), x)
    for k in ref:
        np.testing.assert_allclose(full[k], ref[k], rtol=0, atol=1e-6)
    names = {p.name for p in release.iterdir()}
    assert names == {"bnet.json", "bnet.weights.npz", "fan.json", "fan.weights.npz",
                     "drn.json", "drn.weights.npz", "tf_face_weights.json", "manifest.json"}
    cfg = read_weights_config(release)
    assert cfg.uv_size == 64 and cfg.num_albedo == 6
    with np.load(release / "fan.weights.npz", allow_pickle=False) as z:
        assert all(z[k].dtype == np.float16 for k in z.files)


def _copy(release, tmp_path):
    dst = tmp_path / "w"
    shutil.copytree(release, dst)
    return dst


@pytest.mark.parametrize("damage,words", [("flip", "corrupt"), ("truncate", "truncated"),
                                          ("delete", "missing")])
def test_damaged_release_file_is_one_line_naming_it(release, tmp_path, damage, words):
    from tf_face.serving.weights import WeightsError, load_networks
    w = _copy(release, tmp_path)
    path = w / "fan.weights.npz"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 3]))
    else:
        path.unlink()
    with pytest.raises(WeightsError) as e:
        load_networks(w)
    msg = str(e.value)
    assert "fan.weights.npz" in msg and words in msg and "\n" not in msg


def test_mismatched_weights_name_file_and_expected_shape(release, trained, tmp_path):
    """DRN weights of another width under a consistent manifest: the shape check
    names the file, the variable and the expected shape."""
    from tf_face.models import build_drn
    from tf_face.serving.weights import WeightsError, _write_manifest, load_networks
    w = _copy(release, tmp_path)
    other = build_drn(input_size=64, ngf=8)
    arrays = {f"w{i:04d}": np.asarray(v.numpy(), np.float16) for i, v in enumerate(other.weights)}
    with open(w / "drn.weights.npz", "wb") as f:
        np.savez(f, **arrays)
    _write_manifest(w, "float16")
    with pytest.raises(WeightsError) as e:
        load_networks(w)
    msg = str(e.value)
    assert "drn.weights.npz" in msg and "expected (" in msg and "\n" not in msg


@pytest.mark.parametrize("version,word", [(0, "older"), (99, "newer")])
def test_release_format_version_is_checked(release, tmp_path, version, word):
    from tf_face.serving.weights import MANIFEST, WeightsError, load_networks
    w = _copy(release, tmp_path)
    m = json.loads((w / MANIFEST).read_text())
    m["format_version"] = version
    (w / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(WeightsError, match=word):
        load_networks(w)


def test_shipped_weights_verify_and_fit_the_budget():
    """The package ships release weights: manifest verified, <= 30 MB, the
    default face model's 256 UV size, a model card, listed as package data."""
    from tf_face.serving.weights import (DEFAULT_WEIGHTS_DIR, MODEL_CARD, read_weights_config,
                                         resolve_weights_dir, verify_manifest)
    folder = resolve_weights_dir(None)
    assert folder == DEFAULT_WEIGHTS_DIR
    manifest = verify_manifest(folder)
    total = sum(int(e["bytes"]) for e in manifest["files"].values())
    assert total <= 30 * 2 ** 20, total
    assert MODEL_CARD in manifest["files"] and "benchmark.json" in manifest["files"]
    cfg = read_weights_config(folder)
    assert cfg.uv_size == 256 and cfg.model == "default" and cfg.color_space == "linear"
    assert "tf_face/weights" in (REPO / "setup.py").read_text()


def test_release_defaults_are_the_shipped_weights_recipe():
    """`make weights` / `python -m train.release --output_dir=W` with no other
    flag trains with exactly the settings in the shipped model card's table
    (the held-out benchmark's size and seed do not change the weights)."""
    from tf_face.serving.weights import DEFAULT_WEIGHTS_DIR
    card = (DEFAULT_WEIGHTS_DIR / "MODEL_CARD.md").read_text()
    table = card.split("## Settings", 1)[1].split("\n\n", 2)[1]
    shipped = {}
    for line in table.splitlines()[2:]:
        key, value = (c.strip() for c in line.strip("|").split("|"))
        shipped[key] = value
    code = ("import json, sys; from train import release as r; r.define_flags(); "
            "r.FLAGS(['release']); print(json.dumps(r.settings_from_flags()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stderr[-2000:]
    defaults = {k: str(v) for k, v in json.loads(out.stdout.splitlines()[-1]).items()}
    def weights_settings(d):
        return {k: v for k, v in d.items() if not k.startswith("bench_")}
    assert len(shipped) > 10 and "bench_faces" in defaults
    assert weights_settings(defaults) == weights_settings(shipped)


def test_supervised_loss_matches_numpy_and_needs_ground_truth():
    import tensorflow as tf

    from tf_face.errors import TfFaceError
    from tf_face.training.stages import _ground_truth, supervised_loss
    rng = np.random.default_rng(1)
    truth, pred = rng.uniform(size=(2, 8, 8, 3)), rng.uniform(size=(2, 8, 8, 3))
    valid = rng.uniform(size=(1, 8, 8, 1)) > 0.4
    expect_sum = (np.abs(truth - pred) * valid).sum() / 2
    expect_mean = (np.abs(truth - pred) * valid).sum() / (3 * 2 * valid.sum())
    for red, expect in (("sum", expect_sum), ("mean", expect_mean)):
        got = float(supervised_loss(tf.constant(truth, tf.float32), tf.constant(pred, tf.float32),
                                    valid, red))
        assert abs(got - expect) < 1e-4 * max(1.0, expect), (red, got, expect)
    with pytest.raises(TfFaceError, match="w_sup"):
        _ground_truth({"extras": {}}, "gt_albedo")
    g = _ground_truth({"extras": {"gt_displacement": tf.zeros([2, 8, 8])}}, "gt_displacement")
    assert g.shape == (2, 8, 8, 1)


def test_supervision_pulls_bnet_albedo_to_the_truth():
    """B-Net objective with w_sup > 0: E_sup is |R_a - gt_albedo| over the atlas,
    and its gradient steps move R_a towards the truth."""
    import tensorflow as tf

    from tf_face.losses import LossWeights
    from tf_face.training.stages import StageContext, bnet_forward
    rng = np.random.default_rng(2)
    s, k = 16, 3
    mean = rng.uniform(0.3, 0.6, (s, s, 3)).astype(np.float32)
    basis = rng.normal(0, 0.05, (s, s, 3, k)).astype(np.float32)
    atlas = np.zeros((s, s), bool)
    atlas[2:14, 2:14] = True
    ctx = StageContext(tf.constant(mean), tf.constant(basis), atlas,
                       LossWeights(w_sup=1.0, w_a=0.0))
    p_true = np.array([1.0, -0.5, 0.8], np.float32)
    gt = mean + basis @ p_true
    head = tf.Variable(tf.zeros([1, k + 27]))

    def bnet(x, training=False):
        del training
        return tf.tile(head, [tf.shape(x)[0], 1])
    batch = {"texture": tf.fill([2, s, s, 3], 0.5), "mask": tf.zeros([2, s, s, 1]),
             "normals": tf.constant(np.broadcast_to([0, 0, 1.0], (2, s, s, 3)), tf.float32),
             "extras": {"gt_albedo": tf.constant(np.broadcast_to(gt, (2, s, s, 3)))}}
    _, terms, _ = bnet_forward(bnet, batch, ctx, training=True)
    expect = np.abs(gt - mean)[atlas].sum()
    assert abs(float(terms["sup"]) - expect) < 1e-3 * expect
    losses = []
    for _ in range(60):
        with tf.GradientTape() as tape:
            total, terms, _ = bnet_forward(bnet, batch, ctx, training=True)
        g = tape.gradient(total, head)
        head.assign_sub(0.05 * g / (tf.norm(g) + 1e-9))
        losses.append(float(terms["sup"]))
    assert losses[-1] < 0.3 * losses[0], losses[::10]


def test_albedo_supervision_in_srgb_compares_the_encoded_albedos():
    """sup_space="srgb": E_sup is |srgb(truth) - srgb(albedo)| (float64 numpy
    reference, tf_face.srgb); equal linear errors on a dark (0.05) and a light
    (0.5) albedo then weigh ~3.6x more on the dark one, "linear" equally."""
    import tensorflow as tf

    from tf_face.losses import LossWeights
    from tf_face.srgb import linear_to_srgb
    from tf_face.training.stages import StageContext, albedo_supervision
    s = 8
    atlas = np.zeros((s, s), bool)
    atlas[1:7, 1:7] = True
    zeros = tf.zeros([s, s, 3])

    def loss(space, truth, pred):
        ctx = StageContext(zeros, tf.zeros([s, s, 3, 1]), atlas,
                           LossWeights(w_sup=1.0, sup_space=space))
        batch = {"extras": {"gt_albedo": tf.constant(truth, tf.float32)}}
        return float(albedo_supervision(batch, tf.constant(pred, tf.float32), ctx))

    rng = np.random.default_rng(4)
    truth = rng.uniform(0.02, 0.8, (2, s, s, 3))
    pred = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1)
    expect = (np.abs(linear_to_srgb(truth) - linear_to_srgb(pred)) * atlas[..., None]).sum() / 2
    assert abs(loss("srgb", truth, pred) - expect) < 1e-4 * expect
    expect_lin = (np.abs(truth - pred) * atlas[..., None]).sum() / 2
    assert abs(loss("linear", truth, pred) - expect_lin) < 1e-4 * expect_lin
    dark, light = np.full((1, s, s, 3), 0.05), np.full((1, s, s, 3), 0.5)
    ratio_srgb = loss("srgb", dark, dark + 0.01) / loss("srgb", light, light + 0.01)
    ratio_lin = loss("linear", dark, dark + 0.01) / loss("linear", light, light + 0.01)
    enc = linear_to_srgb
    expect_ratio = (enc(0.06) - enc(0.05)) / (enc(0.51) - enc(0.5))   # ~3.6
    assert abs(ratio_lin - 1) < 1e-3, ratio_lin
    assert abs(ratio_srgb - expect_ratio) < 1e-3 * expect_ratio and ratio_srgb > 3, ratio_srgb
    with pytest.raises(ValueError, match="sup_space"):
        LossWeights(sup_space="lab")


@pytest.mark.slow
def test_release_recipe_end_to_end_and_resume(tmp_path):
    """train.release with tiny settings: shards, three jobs, release folder with
    model card and benchmark, learning curves; a rerun skips the finished
    training; other settings in the same folder are refused."""
    out = tmp_path / "rel"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    args = [sys.executable, "-m", "train.release", f"--output_dir={out}", "--num_faces=2",
            "--bnet_steps=1", "--fan_steps=1", "--drn_steps=1", "--bnet_batch=1",
            "--fan_batch=1", "--drn_batch=1", "--bench_faces=1", "--workers=1", "--ngf=4",
            "--bnet_width=8"]
    res = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    from tf_face.serving.weights import verify_manifest
    m = verify_manifest(out / "release")
    assert {"MODEL_CARD.md", "benchmark.json", "learning_curves.png"} <= set(m["files"])
    card = (out / "release" / "MODEL_CARD.md").read_text()
    assert "python -m train.release" in card and "--num_faces=2" in card
    assert "w_sup_bnet" in card and "B-Net PCA" in card
    bench = json.loads((out / "benchmark.json").read_text())
    assert "albedo_error_fan_visible" in bench and "detail_error_drn_wrinkle_deg" in bench
    import cv2
    curves = cv2.imread(str(out / "learning_curves.png"))
    assert curves is not None and curves.shape[1] == 3 * 420
    assert not list(out.glob("train/*.keras")) == []
    res2 = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res2.returncode == 0, res2.stderr[-3000:]
    assert res2.stdout.count("skipped") == 3
    res3 = subprocess.run(args[:-1] + ["--bnet_width=12"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert res3.returncode == 1 and "other settings (bnet_width)" in res3.stderr
    assert "Traceback" not in res3.stderr


def test_networks_of_another_uv_size_are_refused(release, tmp_path):
    """tf_face_weights.json says uv_size 128, the networks take 64: one line
    naming the network file and the expected input shape."""
    from tf_face.serving.weights import (CONFIG_FILE, WeightsError, _write_manifest,
                                         load_networks)
    w = _copy(release, tmp_path)
    cfg = json.loads((w / CONFIG_FILE).read_text())
    cfg["uv_size"] = 128
    (w / CONFIG_FILE).write_text(json.dumps(cfg))
    _write_manifest(w, "float16")
    with pytest.raises(WeightsError) as e:
        load_networks(w)
    msg = str(e.value)
    assert "bnet.json" in msg and "(None, 128, 128, 3)" in msg and "\n" not in msg

