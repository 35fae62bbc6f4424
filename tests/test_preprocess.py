"""The preprocessing job: collection layouts, shards + failures.json, resumption
after a simulated kill, settings guard, and the real pipeline on real photos."""

import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import FACES, REPO, require_shared
from tf_face.data import make_dataset_with_report
from tf_face.data.collection import list_collection
from tf_face.data.preprocess import run_preprocess
from tf_face.data.shards import index_path
from tf_face.errors import NoFaceError, TfFaceError
from tf_face.types import UVSample

UV = 16
CALLS = []


class FakePipeline:
    """Stands in for GeometryPipeline: 'no face' on dark images, else a UV sample
    whose texture is the photo resized (so records can be traced to photos)."""

    def __init__(self, model, uv_size):
        self.model, self.uv = model, uv_size

    def run(self, image):
        CALLS.append(image.shape)
        if image.mean() < 20:
            raise NoFaceError("no face found in the image")
        tex = cv2.resize(image, (self.uv, self.uv), interpolation=cv2.INTER_AREA) / 255.0
        n = np.zeros((self.uv, self.uv, 3), np.float32)
        n[..., 2] = 1
        mask = np.ones((self.uv, self.uv), bool)
        fitted = types.SimpleNamespace(model_name=self.model, scale=1.0, rotation=np.eye(3),
                                       translation=np.zeros(2), landmark_rmse_iod=0.01,
                                       image_size=image.shape[:2])
        return types.SimpleNamespace(sample=UVSample(tex.astype(np.float32), mask, n, n * 5),
                                     fitted=fitted)


def fake_factory(model, uv_size):
    return FakePipeline(model, uv_size)


def write_photo(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((40, 30, 3), value, np.uint8))


def test_collection_lists_ffhq_and_celebahq_layouts(tmp_path):
    write_photo(tmp_path / "ffhq" / "01000" / "01000.png", 100)
    write_photo(tmp_path / "ffhq" / "00000" / "00001.png", 100)
    write_photo(tmp_path / "ffhq" / "00000" / "00000.png", 100)
    write_photo(tmp_path / "ffhq" / ".cache" / "x.png", 100)
    (tmp_path / "ffhq" / "LICENSE.txt").write_text("not an image")
    write_photo(tmp_path / "celeba" / "CelebA-HQ-img" / "10.jpg", 100)
    write_photo(tmp_path / "celeba" / "CelebA-HQ-img" / "2.jpg", 100)
    ids = [i for i, _ in list_collection(tmp_path / "ffhq")]
    assert ids == ["00000/00000.png", "00000/00001.png", "01000/01000.png"]
    ids = [i for i, _ in list_collection(tmp_path / "celeba")]
    assert ids == ["CelebA-HQ-img/10.jpg", "CelebA-HQ-img/2.jpg"]
    ids = [i for i, _ in list_collection(str(tmp_path / "ffhq" / "*" / "*.png"))]
    assert ids == ["00000/00000.png", "00000/00001.png", "01000/01000.png"]
    ids = [i for i, _ in list_collection(tmp_path, exclude=tmp_path / "celeba")]
    assert ids == ["ffhq/00000/00000.png", "ffhq/00000/00001.png", "ffhq/01000/01000.png"]
    with pytest.raises(TfFaceError, match="no such folder"):
        list_collection(tmp_path / "missing")


def make_fake_collection(root):
    for i in range(5):
        write_photo(root / f"{i // 3:05d}" / f"{i:05d}.png", 60 + 30 * i)
    write_photo(root / "00001" / "dark.png", 5)                 # NoFaceError
    (root / "00001" / "bad.jpg").write_text("this is not a jpeg")  # ImageError
    return 7


def test_fake_pipeline_failures_and_resume_after_kill(tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    make_fake_collection(src)
    CALLS.clear()
    s = run_preprocess(src, out, shard_size=3, workers=0, uv_size=UV, progress=False,
                       pipeline_factory=fake_factory)
    assert (s.shards, s.shards_written, s.shards_skipped) == (3, 3, 0)
    assert len(CALLS) == 6  # bad.jpg never reaches the pipeline
    failures = json.loads((out / "failures.json").read_text())
    assert {f["image"]: f["type"] for f in failures} == {"00001/bad.jpg": "ImageError",
                                                         "00001/dark.png": "NoFaceError"}
    assert all(f["error"] and "\n" not in f["error"] for f in failures)
    meta = json.loads((out / "dataset.json").read_text())
    assert (meta["num_images"], meta["num_records"], meta["num_failed"]) == (7, 5, 2)
    ds, report = make_dataset_with_report(out, 8, shuffle=False)
    ids = sorted(i.decode() for b in ds for i in b["image_id"].numpy())
    assert ids == [f"{i // 3:05d}/{i:05d}.png" for i in range(5)]
    # a record carries its photo: the fake texture is the photo's grey value
    b = next(iter(make_dataset_with_report(out, 8, shuffle=False)[0]))
    for image_id, tex in zip(b["image_id"].numpy(), b["texture"].numpy()):
        i = int(image_id.decode().split("/")[1][:5])
        assert abs(tex.mean() * 255 - (60 + 30 * i)) < 1

    # simulate a kill after shard 1's rename but before its index, and mid-write of another
    index_path(out / "shard-00001.tfrecord").unlink()
    (out / ".shard-00002.tfrecord.tmp-dead").write_bytes(b"partial")
    (out / "failures.json").unlink()
    _, report = make_dataset_with_report(out, 8)
    assert [Path(p).name for p, _ in report.ignored] == ["shard-00001.tfrecord"]
    mtimes = {n: (out / n).stat().st_mtime_ns for n in ("shard-00000.tfrecord",
                                                        "shard-00002.tfrecord")}
    CALLS.clear()
    s = run_preprocess(src, out, shard_size=3, workers=0, uv_size=UV, progress=False,
                       pipeline_factory=fake_factory)
    assert (s.shards_skipped, s.shards_written, s.photos_processed) == (2, 1, 3)
    assert len(CALLS) == 2  # shard 1 = 00001/00003.png, 00001/00004.png, 00001/bad.jpg
    assert {n: (out / n).stat().st_mtime_ns for n in mtimes} == mtimes
    assert not list(out.glob(".*tmp-*"))
    merged = json.loads((out / "failures.json").read_text())
    assert sorted(f["image"] for f in merged) == ["00001/bad.jpg", "00001/dark.png"]
    _, report = make_dataset_with_report(out, 8)
    assert report.records == 5 and not report.ignored


def test_other_settings_need_overwrite(tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    make_fake_collection(src)
    run_preprocess(src, out, shard_size=4, workers=0, uv_size=UV, progress=False,
                   pipeline_factory=fake_factory)
    with pytest.raises(TfFaceError, match="--overwrite"):
        run_preprocess(src, out, shard_size=3, workers=0, uv_size=UV, progress=False,
                       pipeline_factory=fake_factory)
    s = run_preprocess(src, out, shard_size=3, workers=0, uv_size=UV, progress=False,
                       overwrite=True, pipeline_factory=fake_factory)
    assert s.shards_written == 3 and sorted(p.name for p in out.glob("*.tfrecord")) == [
        "shard-00000.tfrecord", "shard-00001.tfrecord", "shard-00002.tfrecord"]


def test_pipeline_that_cannot_be_built_stops_the_job(tmp_path):
    src = tmp_path / "photos"
    make_fake_collection(src)
    with pytest.raises(TfFaceError, match="could not build the geometry pipeline"):
        run_preprocess(src, tmp_path / "out", shard_size=3, workers=0, progress=False,
                       model="no-such-model:/nowhere")


def test_real_photos_two_workers_cli(tmp_path):
    """The real geometry pipeline in 2 spawned workers, through the CLI."""
    photos = require_shared(FACES / "package_photos")
    src, out = tmp_path / "photos", tmp_path / "out"
    src.mkdir()
    for name in ("obama.jpg", "biden.jpg", "Tom_Hanks_54745.png"):
        shutil.copy(photos / name, src / name)
    (src / "bad.jpg").write_text("a text file, not a photo")
    cmd = [sys.executable, "-m", "train.preprocess", f"--input={src}", f"--output={out}",
           "--shard_size=2", "--workers=2"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    failures = json.loads((out / "failures.json").read_text())
    failed = {f["image"] for f in failures}
    assert "bad.jpg" in failed
    assert failed <= {"bad.jpg", "obama.jpg", "biden.jpg", "Tom_Hanks_54745.png"}
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["num_records"] + meta["num_failed"] == 4 and meta["num_records"] >= 1
    ds, report = make_dataset_with_report(out, 4, shuffle=False)
    b = next(iter(ds))
    assert sorted(i.decode() for i in b["image_id"].numpy()) == sorted(
        {"obama.jpg", "biden.jpg", "Tom_Hanks_54745.png"} - failed)
    mask = b["mask"].numpy()[..., 0] > 0
    assert mask.sum(axis=(1, 2)).min() > 1000               # faces have visible texels
    norms = np.linalg.norm(b["normals"].numpy(), axis=-1)[mask]
    np.testing.assert_allclose(norms, 1.0, atol=1e-3)
    # second run: every shard is already done, no photo is processed again
    r2 = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert "(2 already done, 0 written)" in r2.stderr
    assert json.loads((out / "failures.json").read_text()) == failures


def test_sidecar_extras_are_stored_and_checked(tmp_path):
    src, out = tmp_path / "photos", tmp_path / "out"
    rng = np.random.default_rng(4)
    truth = {}
    for i in range(4):
        write_photo(src / f"f{i}.png", 80 + 20 * i)
        if i != 2:  # f2 lacks its ground truth
            truth[f"f{i}.png"] = {"sh": rng.normal(size=(9, 3)),
                                  "albedo": rng.random((UV, UV, 3)),
                                  "occlusion": rng.random((UV, UV)) > 0.5}
            np.savez(src / f"f{i}.extras.npz", **truth[f"f{i}.png"])
    s = run_preprocess(src, out, shard_size=2, workers=0, uv_size=UV, progress=False,
                       pipeline_factory=fake_factory)
    failures = json.loads((out / "failures.json").read_text())
    assert [(f["image"], "no extras sidecar" in f["error"]) for f in failures] == [
        ("f2.png", True)]
    assert s.records == 3
    ds, report = make_dataset_with_report(out, 4, shuffle=False)
    assert report.extras["sh"] == {"kind": "float", "shape": [9, 3]}
    b = next(iter(ds))
    for j, image_id in enumerate(b["image_id"].numpy()):
        t = truth[image_id.decode()]
        np.testing.assert_allclose(b["extras"]["sh"][j].numpy(), t["sh"], atol=1e-6)
        assert np.abs(b["extras"]["albedo"][j].numpy() - t["albedo"]).max() < 1e-4
        np.testing.assert_array_equal(b["extras"]["occlusion"][j].numpy()[..., 0],
                                      t["occlusion"])


def test_bad_model_spec_leaves_no_output_folder(tmp_path):
    """A --model that cannot be loaded fails with TfFaceError and removes the
    output folder this run created (no empty dataset folder left behind)."""
    from tf_face.data.preprocess import run_preprocess
    from tf_face.errors import TfFaceError

    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), np.full((64, 64, 3), 128, np.uint8))
    out = tmp_path / "out"
    with pytest.raises(TfFaceError, match="nope.mat"):
        run_preprocess(photos, out, workers=1, model=f"bfm2009:{tmp_path / 'nope.mat'}",
                       progress=False)
    assert not out.exists()
    # a folder that existed before is kept
    out.mkdir()
    with pytest.raises(TfFaceError):
        run_preprocess(photos, out, workers=1, model=f"bfm2009:{tmp_path / 'nope.mat'}",
                       progress=False)
    assert out.is_dir()


def test_no_usable_photo_is_an_error_not_an_empty_dataset(tmp_path):
    """Every photo fails (no face): a one-line TfFaceError naming failures.json,
    which lists each photo, instead of rc 0 and 0-record shards."""
    src, out = tmp_path / "photos", tmp_path / "out"
    for i in range(3):
        write_photo(src / f"{i}.png", 5)
    with pytest.raises(TfFaceError) as e:
        run_preprocess(src, out, shard_size=2, workers=0, uv_size=UV, progress=False,
                       pipeline_factory=fake_factory)
    msg = str(e.value)
    assert "no photo" in msg and "3 of 3 failed" in msg and "failures.json" in msg
    assert "\n" not in msg
    failures = json.loads((out / "failures.json").read_text())
    assert sorted(f["image"] for f in failures) == ["0.png", "1.png", "2.png"]


def test_pool_workers_run_the_landmark_models_on_one_thread():
    """Pool workers share the cores: _init_worker sets the MediaPipe models to
    one TFLite thread (the in-process path, ignore_sigint=False, keeps 2)."""
    import signal
    from tf_face.data import preprocess
    from tf_face.landmarks.tflite_model import set_small_model_threads, small_model_threads
    handler = signal.getsignal(signal.SIGINT)
    try:
        preprocess._init_worker("default", 64, preprocess.default_pipeline_factory, False)
        assert small_model_threads() == min(2, len(os.sched_getaffinity(0)))
        preprocess._init_worker("default", 64, preprocess.default_pipeline_factory, True)
        assert small_model_threads() == 1
    finally:
        signal.signal(signal.SIGINT, handler)
        set_small_model_threads(None)
        preprocess._STATE.clear()
