"""Training jobs on toy UV shards with known albedo and lighting.

* a few steps lower each stage's loss (B-Net, FAN, DRN);
* kill -9 in the middle and resume ends with the same step and the same
  weights as an uninterrupted run;
* non-finite losses stop with a clear message, or are skipped by flag;
* MultiWorkerMirroredStrategy with 2 local workers keeps both in sync.
"""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
UV = 64  # small UV maps keep the CPU tests fast; the maths is size-independent
SMALL = dict(uv_size=UV, batch_size=4, learning_rate=1e-3, bnet_width=8, num_albedo=8, ngf=8,
             deterministic=False, progress=False, log_every=2, image_every=1000,
             checkpoint_every=1000, w_percep=0.0)


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    from tf_face.testing.toy_data import make_toy_shards
    d = tmp_path_factory.mktemp("toy")
    make_toy_shards(d, num_samples=8, num_shards=2, seed=0, uv_size=UV)
    return d


@contextlib.contextmanager
def _fd2_into(path):
    """File descriptor 2 (where TF's C++ logging writes) into ``path``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as f:
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


@pytest.fixture(scope="module")
def trained(toy_data, tmp_path_factory):
    """B-Net, then FAN, then DRN, each for a few steps, in one weights folder."""
    from tf_face.training.jobs import JobConfig, train_bnet, train_drn, train_fan
    out = tmp_path_factory.mktemp("weights")
    summaries = {}
    summaries["bnet"] = train_bnet(JobConfig(str(toy_data), str(out), steps=30, **SMALL))
    # the adversarial term is kept small here: at this test's high learning
    # rate (1e-3, for speed) an equal-weight LSGAN term makes 20 steps noisy
    fan_stderr = out / "fan_stderr.txt"
    with _fd2_into(fan_stderr):   # what TF's C++ side prints during the FAN job
        summaries["fan"] = train_fan(JobConfig(str(toy_data), str(out), steps=20,
                                               **{**SMALL, "batch_size": 2, "w_pixel": 1.0,
                                                  "w_gan": 0.02, "disc_learning_rate": 1e-4}))
    summaries["fan_stderr"] = fan_stderr.read_text(errors="replace")
    summaries["drn"] = train_drn(JobConfig(str(toy_data), str(out), steps=12,
                                           **{**SMALL, "batch_size": 2}))
    return out, summaries


def _falls(history, frac=0.8, n=4):
    h = np.asarray(history)
    return h[-n:].mean() < frac * h[:n].mean(), (h[:n].mean(), h[-n:].mean())


def test_bnet_steps_lower_its_loss(trained):
    out, s = trained
    ok, vals = _falls(s["bnet"]["loss_history"]["pixel"])
    assert ok, vals
    assert (out / "bnet.keras").exists() and (out / "bnet.weights.h5").exists()
    cfg = json.loads((out / "tf_face_weights.json").read_text())
    assert cfg["num_albedo"] == 8 and set(cfg["stages"]) == {"bnet", "fan", "drn"}


def test_fan_steps_lower_its_pixel_loss(trained):
    _, s = trained
    ok, vals = _falls(s["fan"]["loss_history"]["pixel"])
    assert ok, vals
    assert all(np.isfinite(s["fan"]["loss_history"]["d_total"]))


def test_fan_job_prints_no_grappler_error(trained):
    """The FAN job switches grappler's remapper off (it failed on the PatchGAN's
    conv -> LeakyReLU gradient with an E0000 line at every trace)."""
    _, s = trained
    assert "remapper failed" not in s["fan_stderr"], s["fan_stderr"][-2000:]
    assert "meta_optimizer" not in s["fan_stderr"], s["fan_stderr"][-2000:]


def test_drn_steps_lower_its_loss(trained):
    out, s = trained
    ok, vals = _falls(s["drn"]["loss_history"]["total"], frac=0.9)
    assert ok, vals
    assert (out / "drn.keras").exists()


def test_tensorboard_logs_have_every_loss_term(trained):
    import tensorflow as tf
    out, _ = trained
    tags = set()
    for f in (out / "logs" / "bnet").glob("events.*"):
        for e in tf.compat.v1.train.summary_iterator(str(f)):
            tags |= {v.tag for v in e.summary.value}
    assert {"loss/total", "loss/pixel", "loss/albedo_reg", "grid"} <= tags


def test_loss_reduction_is_a_recorded_switch(toy_data, trained, tmp_path):
    """Default "sum" (the paper's L1 norms) in every stage's config; "mean" trains
    too and its first E_pixel is the summed one / (C * visible texels)."""
    from tf_face.facemodel import load_face_model
    from tf_face.training.jobs import JobConfig, train_bnet
    from tf_face.uv import get_atlas
    out, s = trained
    cfg = json.loads((out / "tf_face_weights.json").read_text())
    for stage in ("bnet", "fan", "drn"):
        assert cfg["stages"][stage]["loss_reduction"] == "sum"
        assert cfg["stages"][stage]["loss_weights"]["reduction"] == "sum"
    mean = train_bnet(JobConfig(str(toy_data), str(tmp_path / "mean"), steps=2,
                                loss_reduction="mean", **SMALL))
    cfg = json.loads((tmp_path / "mean" / "tf_face_weights.json").read_text())
    assert cfg["stages"]["bnet"]["loss_reduction"] == "mean"
    visible = int(get_atlas(load_face_model("default"), size=UV).mask.sum())
    first_sum, first_mean = s["bnet"]["loss_history"]["pixel"][0], mean["loss_history"]["pixel"][0]
    assert first_sum == pytest.approx(3 * visible * first_mean, rel=1e-3)
    bad = subprocess.run([sys.executable, "-m", "train.train_bnet", "--data=x", "--output_dir=y",
                          "--loss_reduction=median"], cwd=REPO, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "loss_reduction" in bad.stderr


def test_fan_loads_the_trained_bnet_and_missing_stage_is_a_clear_error(toy_data, tmp_path):
    from tf_face.errors import TfFaceError
    from tf_face.training.jobs import JobConfig, train_fan
    with pytest.raises(TfFaceError, match="train.train_bnet"):
        train_fan(JobConfig(str(toy_data), str(tmp_path / "empty"), steps=1, **SMALL))


def test_nan_stops_with_a_clear_message_or_is_skipped(toy_data, tmp_path):
    from tf_face.training.jobs import JobConfig, train_bnet
    from tf_face.training.loop import TrainingDivergedError
    bad = {**SMALL, "learning_rate": 1e30}
    with pytest.raises(TrainingDivergedError, match="non-finite"):
        train_bnet(JobConfig(str(toy_data), str(tmp_path / "stop"), steps=8, **bad))
    s = train_bnet(JobConfig(str(toy_data), str(tmp_path / "skip"), steps=8,
                             **{**bad, "nan_policy": "skip"}))
    assert s["steps"] == 8 and s["skipped_steps"] >= 1


def _weights(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset)
                     else None)
    return out


def _job_cmd(data, out, steps, extra=()):
    return [sys.executable, "-m", "train.train_bnet", f"--data={data}", f"--output_dir={out}",
            f"--steps={steps}", "--batch_size=2", "--bnet_width=4", "--num_albedo=4",
            "--learning_rate=1e-3", "--checkpoint_every=1", "--noprogress", "--seed=3",
            f"--uv_size={UV}", *extra]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO),
                OMP_NUM_THREADS="1")


def test_kill_and_resume_matches_an_uninterrupted_run(toy_data, tmp_path):
    steps = 8
    full = subprocess.run(_job_cmd(toy_data, tmp_path / "full", steps), cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr[-2000:]
    # no TF chatter in a job's output: AutoGraph warnings about the op loader's
    # file hashing (it runs inside the traced step) or the saver's INFO lines
    assert "AutoGraph could not transform" not in full.stderr, full.stderr[-2000:]
    assert "Sharding callback" not in full.stderr, full.stderr[-2000:]
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(_job_cmd(toy_data, killed_dir, steps), cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = killed_dir / "checkpoints" / "bnet" / "checkpoint"   # CheckpointManager's pointer
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        text = state.read_text() if state.exists() else ""
        m = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', text, re.M)
        if m and int(m.group(1)) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the job finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed_dir / "bnet.weights.h5").exists()
    resumed = subprocess.run(_job_cmd(toy_data, killed_dir, steps), cwd=REPO, env=_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stderr
    summary = json.loads((killed_dir / "bnet_summary.json").read_text())
    assert summary["steps"] == steps and 3 <= summary["resumed_from"] < steps
    a, b = _weights(tmp_path / "full" / "bnet.weights.h5"), _weights(killed_dir / "bnet.weights.h5")
    assert a.keys() == b.keys() and a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_local_workers_train_the_same_weights(toy_data, tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = _env()
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        cmd = _job_cmd(toy_data, tmp_path / "mw", 3, ["--strategy=multi_worker"])
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-1500:] for o in outs)
    chief = _weights(tmp_path / "mw" / "bnet.weights.h5")
    other = _weights(tmp_path / "mw" / "worker_1" / "bnet.weights.h5")
    assert chief.keys() == other.keys() and chief
    for k in chief:
        np.testing.assert_allclose(chief[k], other[k], rtol=0, atol=1e-6, err_msg=k)
    summary = json.loads((tmp_path / "mw" / "bnet_summary.json").read_text())
    assert summary["steps"] == 3


def test_weights_config_takes_each_width_from_its_own_stage(tmp_path):
    """A FAN/DRN job's --bnet_width default (64) must not overwrite the trained
    B-Net's width in tf_face_weights.json; each stage records its architecture."""
    from types import SimpleNamespace
    from tf_face.training.jobs import JobConfig, _write_weights_config
    ctx = SimpleNamespace(num_albedo=8, detail_unit=1.0)
    atlas = SimpleNamespace(size=UV)
    out = str(tmp_path / "w")
    _write_weights_config(JobConfig("d", out, bnet_width=12, ngf=4), "bnet", ctx, atlas)
    _write_weights_config(JobConfig("d", out, ngf=8, upsample="conv_resize"), "fan", ctx, atlas)
    _write_weights_config(JobConfig("d", out, ngf=8), "drn", ctx, atlas)
    cfg = json.loads((tmp_path / "w" / "tf_face_weights.json").read_text())
    assert cfg["bnet_width"] == 12 and cfg["ngf"] == 8 and "upsample" not in cfg
    assert cfg["stages"]["bnet"]["bnet_width"] == 12
    assert cfg["stages"]["fan"]["upsample"] == "conv_resize"
    assert cfg["stages"]["drn"]["upsample"] == "transpose"
