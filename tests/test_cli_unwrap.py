"""End-to-end: the unwrap CLI on real photos and on every bad input of issue 2.

Each bad input must give a one-line error (non-zero exit code for a single
photo, an entry in failures.json in batch mode), never a traceback and never a
partial output folder.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from tf_face.errors import FaceModelError, LandmarkError, NoFaceError, TfFaceError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def pipe():
    from tf_face.pipeline import GeometryPipeline
    return GeometryPipeline("default")


def write_bgr(path, rgb, params=()):
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), list(params))
    return path


def run_cli(*args, cwd=REPO):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "tf_face.cli.unwrap", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


def unwrap(pipe, path, out, **kw):
    from tf_face.cli.unwrap import unwrap_one
    return unwrap_one(pipe, path, out, **kw)


def test_astronaut_outputs(pipe, astronaut, tmp_path):
    photo = write_bgr(tmp_path / "astronaut.png", astronaut)
    files = unwrap(pipe, photo, tmp_path / "out")
    assert {"texture.png", "mask.png", "normals.png", "position.npy", "overlay.png",
            "fit.json"} <= set(files)
    tex = cv2.imread(str(tmp_path / "out" / "texture.png"))
    mask = cv2.imread(str(tmp_path / "out" / "mask.png"), cv2.IMREAD_GRAYSCALE)
    assert tex.shape == (256, 256, 3) and mask.shape == (256, 256)
    visible = mask > 0
    assert 0.2 < visible.mean() < 0.9
    # skin in the astronaut photo is bright and reddish: R > B on visible texels
    assert tex[visible][:, 2].mean() > tex[visible][:, 0].mean()
    fit = json.loads((tmp_path / "out" / "fit.json").read_text())
    R = np.array(fit["rotation"])
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)
    assert fit["landmark_rmse_iod"] < 0.1
    assert fit["num_faces"] == 1
    assert {"detect", "landmarks", "fit", "unwrap"} <= set(fit["timings_ms"])
    pos = np.load(tmp_path / "out" / "position.npy", allow_pickle=False)
    assert pos.shape == (256, 256, 3)
    # camera-frame position of visible texels: x within the photo, y = -row
    assert 0 <= pos[visible][:, 0].min() and pos[visible][:, 0].max() <= 512
    assert -512 <= pos[visible][:, 1].min() and pos[visible][:, 1].max() <= 0


def test_existing_output_is_not_overwritten(pipe, astronaut, tmp_path):
    photo = write_bgr(tmp_path / "a.png", astronaut)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(TfFaceError, match="--overwrite"):
        unwrap(pipe, photo, out)
    assert (out / "keep.txt").read_text() == "mine"
    unwrap(pipe, photo, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "texture.png").exists()


@pytest.mark.parametrize("kind", ["png16", "rgba", "gray"])
def test_image_variants_work(pipe, astronaut, tmp_path, kind):
    if kind == "png16":
        img = astronaut.astype(np.uint16) * 257
        path = write_bgr(tmp_path / "x.png", img)
    elif kind == "rgba":
        bgra = np.dstack([astronaut[..., ::-1], np.full(astronaut.shape[:2], 255, np.uint8)])
        path = tmp_path / "x.png"
        cv2.imwrite(str(path), bgra)
    else:
        path = tmp_path / "x.png"
        cv2.imwrite(str(path), cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY))
    unwrap(pipe, path, tmp_path / "out")
    fit = json.loads((tmp_path / "out" / "fit.json").read_text())
    assert fit["landmark_rmse_iod"] < 0.1


def test_huge_image_works(pipe, astronaut, tmp_path):
    big = cv2.resize(astronaut, (10000, 10000), interpolation=cv2.INTER_LINEAR)
    path = write_bgr(tmp_path / "big.jpg", big, (cv2.IMWRITE_JPEG_QUALITY, 80))
    del big
    unwrap(pipe, path, tmp_path / "out")
    fit = json.loads((tmp_path / "out" / "fit.json").read_text())
    assert fit["image_size"] == [10000, 10000]
    # the face box scales with the image (astronaut face ~ x 170..260 at 512 px)
    box = np.array(fit["detection"]["box"]) * 512 / 10000
    assert 100 < box[0] < 260 and 200 < box[2] < 330
    overlay = cv2.imread(str(tmp_path / "out" / "overlay.png"))
    assert max(overlay.shape[:2]) <= 1600


def test_several_faces_and_face_index(pipe, astronaut, tmp_path):
    # two copies of the photo side by side, the right one smaller
    small = cv2.resize(astronaut, (384, 384))
    canvas = np.zeros((512, 512 + 384, 3), np.uint8)
    canvas[:, :512] = astronaut
    canvas[64:448, 512:] = small
    path = write_bgr(tmp_path / "two.png", canvas)
    unwrap(pipe, path, tmp_path / "f0")
    unwrap(pipe, path, tmp_path / "f1", face_index=1)
    f0 = json.loads((tmp_path / "f0" / "fit.json").read_text())
    f1 = json.loads((tmp_path / "f1" / "fit.json").read_text())
    assert f0["num_faces"] == f1["num_faces"] == 2
    assert f0["detection"]["box"][0] < 512 <= f1["detection"]["box"][0]  # largest first
    with pytest.raises(NoFaceError, match="face_index"):
        unwrap(pipe, path, tmp_path / "f5", face_index=5)
    assert not (tmp_path / "f5").exists()


def test_no_face(pipe, tmp_path):
    rng = np.random.default_rng(0)
    path = write_bgr(tmp_path / "noise.png", rng.integers(0, 255, (300, 400, 3), np.uint8))
    with pytest.raises(NoFaceError):
        unwrap(pipe, path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extreme_crop_fits_the_half_face_and_a_sliver_says_why(pipe, astronaut, tmp_path):
    # the face's box spans x 178..272 of the photo: a cut at x=215 leaves the
    # image-right ~60 % of the face, which is still found and fitted where the
    # whole photo's fit puts it; a cut at x=260 leaves a sliver, refused in one line
    full = write_bgr(tmp_path / "full.png", astronaut)
    unwrap(pipe, full, tmp_path / "full")
    ref = json.loads((tmp_path / "full" / "fit.json").read_text())
    half = write_bgr(tmp_path / "half.png", np.ascontiguousarray(astronaut[:, 215:]))
    unwrap(pipe, half, tmp_path / "half")
    fit = json.loads((tmp_path / "half" / "fit.json").read_text())
    assert (tmp_path / "half" / "texture.png").is_file()
    assert fit["num_faces"] == 1 and fit["landmark_rmse_iod"] < 0.15
    moved = np.subtract(ref["translation"], [215.0, 0.0])
    size = ref["detection"]["box"][2] - ref["detection"]["box"][0]
    assert np.linalg.norm(np.subtract(fit["translation"], moved)) < 0.1 * size
    assert abs(fit["scale"] / ref["scale"] - 1) < 0.15
    # about half the texels seen in the whole photo are seen in the half face
    assert 0.3 < fit["visible_texels"] / ref["visible_texels"] < 0.75
    sliver = write_bgr(tmp_path / "sliver.png", np.ascontiguousarray(astronaut[:, 260:]))
    with pytest.raises(NoFaceError, match="no face found") as e:
        unwrap(pipe, sliver, tmp_path / "sliver")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "sliver").exists()


def test_landmark_file_wrong_count(pipe, astronaut, tmp_path):
    photo = write_bgr(tmp_path / "a.png", astronaut)
    lm = tmp_path / "a.txt"
    lm.write_text("\n".join(f"{x} {x}" for x in range(7)))
    with pytest.raises(LandmarkError):
        unwrap(pipe, photo, tmp_path / "out", landmarks_path=lm)
    assert not (tmp_path / "out").exists()


def test_five_point_landmark_file_drives_the_fit(pipe, astronaut, tmp_path):
    from tf_face.landmarks import FaceDetector, FaceMeshLandmarker
    det = FaceDetector()(astronaut)[0]
    pts = FaceMeshLandmarker()(astronaut, det)
    d = pipe.default
    l68 = pts[d.landmarks68, :2]
    five = np.stack([l68[36:42].mean(0), l68[42:48].mean(0), l68[30], l68[48], l68[54]])
    lm = tmp_path / "a.txt"
    lm.write_text("\n".join(f"{x:.2f} {y:.2f}" for x, y in five))
    photo = write_bgr(tmp_path / "a.png", astronaut)
    unwrap(pipe, photo, tmp_path / "out", landmarks_path=lm)
    fit = json.loads((tmp_path / "out" / "fit.json").read_text())
    assert fit["landmark_source"] == "file"
    assert fit["landmark_rmse_iod"] < 0.15


@pytest.mark.slow   # ~2 min: a dozen CLI processes, each importing TF
def test_cli_bad_inputs_one_line_errors(astronaut, tmp_path):
    """Single-photo CLI: non-zero exit, one line, no traceback, no output folder."""
    bad = {
        "text.jpg": b"this is not an image\n",
        "empty.png": b"",
    }
    ok, buf = cv2.imencode(".jpg", astronaut[..., ::-1])
    bad["truncated.jpg"] = buf.tobytes()[: len(buf) // 2]
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    wrong_model = tmp_path / "model.mat"
    wrong_model.write_bytes(b"MATLAB 5.0 MAT-file garbage" + bytes(200))
    cases = [[f"--image={tmp_path / n}"] for n in bad]
    cases.append([f"--image={tmp_path / 'missing.jpg'}"])
    cases.append([f"--image={write_bgr(tmp_path / 'a.png', astronaut)}",
                  f"--model=bfm2009:{wrong_model}"])
    cases.append([f"--image={tmp_path / 'a.png'}", "--model=nonsense:xyz"])
    for i, args in enumerate(cases):
        out = tmp_path / f"out{i}"
        res = run_cli(*args, f"--out_dir={out}")
        assert res.returncode != 0, args
        assert "Traceback" not in res.stderr, (args, res.stderr)
        err_lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(err_lines) == 1, (args, res.stderr)
        assert not out.exists(), args


def test_cli_batch_with_bad_photos(astronaut, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_bgr(photos / "good.jpg", astronaut)
    write_bgr(photos / "good2.png", astronaut[:, ::-1])
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    write_bgr(photos / "noface.png", np.full((200, 200, 3), 127, np.uint8))
    out = tmp_path / "out"
    res = run_cli(f"--image_dir={photos}", f"--out_dir={out}")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    failures = json.loads((out / "failures.json").read_text())
    assert sorted(Path(f["image"]).name for f in failures) == ["broken.jpg", "noface.png"]
    assert all(f["error"] and "\n" not in f["error"] for f in failures)
    assert (out / "good" / "texture.png").exists() and (out / "good2" / "fit.json").exists()
    assert not (out / "broken").exists() and not (out / "noface").exists()


def test_face_model_of_wrong_shape_is_refused(tmp_path):
    import scipy.io
    from tf_face.facemodel import load_face_model
    path = tmp_path / "01_MorphableModel.mat"
    scipy.io.savemat(path, {"shapeMU": np.zeros((10, 1)), "shapePC": np.zeros((11, 2))})
    with pytest.raises(FaceModelError):
        load_face_model(f"bfm2009:{path}")


@pytest.mark.slow   # ~1.5 min: whole unwrap + train-job processes
def test_a_clean_run_prints_no_tensorflow_start_up_noise(astronaut, tmp_path):
    """A successful unwrap prints no TF/TFLite start-up lines (oneDNN notice,
    "Could not find cuda drivers", the cuInit ERROR, the XNNPACK INFO) -- and
    with TF_FACE_VERBOSE_TF=1 or --verbose they are back (so the check can fail)."""
    photo = tmp_path / "a.png"
    write_bgr(photo, astronaut)
    noise = ("cuInit", "oneDNN", "XNNPACK", "cuda drivers", "absl::InitializeLog")
    quiet_env = dict(os.environ, PYTHONPATH=str(REPO))
    quiet_env.pop("TF_CPP_MIN_LOG_LEVEL", None)     # TF's own default (0) / the Makefile's 2
    quiet_env.pop("TF_FACE_VERBOSE_TF", None)
    res = subprocess.run([sys.executable, "-m", "tf_face.cli.unwrap", f"--image={photo}",
                          f"--out_dir={tmp_path / 'o'}"], cwd=REPO, capture_output=True,
                         text=True, env=quiet_env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert not [ln for ln in res.stderr.splitlines() if any(n in ln for n in noise)], res.stderr
    # a training job that fails early says exactly one line (its flags are defined
    # before main, so nothing on that path may import TF unquietly)
    job = subprocess.run([sys.executable, "-m", "train.train_bnet", f"--data={tmp_path / 'none'}",
                          f"--output_dir={tmp_path / 'w'}"], cwd=REPO, capture_output=True,
                         text=True, env=quiet_env, timeout=300)
    assert job.returncode == 1 and job.stderr.strip().splitlines() == [
        f"error: no .tfrecord shards found at {tmp_path / 'none'}"], job.stderr
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_FACE_VERBOSE_TF="1")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    loud = subprocess.run([sys.executable, "-m", "tf_face.cli.unwrap", f"--image={photo}",
                           f"--out_dir={tmp_path / 'o2'}"], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=300)
    assert loud.returncode == 0 and any(n in loud.stderr for n in noise), loud.stderr[-2000:]
    # --verbose does the same from the command line
    flag = subprocess.run([sys.executable, "-m", "tf_face.cli.unwrap", f"--image={photo}",
                           f"--out_dir={tmp_path / 'o3'}", "--verbose"], cwd=REPO,
                          capture_output=True, text=True, env=quiet_env, timeout=300)
    assert flag.returncode == 0 and any(n in flag.stderr for n in noise), flag.stderr[-2000:]
