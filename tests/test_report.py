"""report.html: content, offline viewer assets, and a real headless-Chromium screenshot."""

import base64
import hashlib
import io
import os
import re
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.chromium import CHROMIUM, capture_report
from tests.test_export import checker_png, hemisphere_mesh
from tf_face.errors import AssetMissingError
from tf_face.files import mesh_files as mf
from tf_face.files import report, viewer_assets



def _write_mesh(out: Path):
    v, t, uv = hemisphere_mesh(17)
    _, png = checker_png()
    (out / "albedo.png").write_bytes(png)
    mf.write_glb(out / "mesh.glb", mf.image_to_export(v), t, uv, png)
    return png


def _fake_cache(tmp_path, monkeypatch, with_js: bool) -> Path:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("TF_FACE_CACHE", str(cache))
    if with_js:
        (cache / viewer_assets.VIEWER_JS).write_text("/* fake viewer */")
        (cache / viewer_assets.VIEWER_LICENSE).write_text("BSD-3-Clause")
    return cache


def test_report_without_viewer_says_how_to_fetch_it(tmp_path, monkeypatch):
    _fake_cache(tmp_path, monkeypatch, with_js=False)
    out = tmp_path / "out"
    out.mkdir()
    _write_mesh(out)
    path = report.write_report(out, "A <b>title</b> & more", {"photo": "albedo.png",
                                                                "gone": "renders/none.png"},
                               {"albedo": "albedo.png"}, {"fit": 12.345, "note": "n/a"})
    text = path.read_text()
    assert "A &lt;b&gt;title&lt;/b&gt; &amp; more" in text and "<b>title" not in text
    assert 'src="albedo.png"' in text and "missing (renders/none.png)" in text
    assert "12.3 ms" in text and "n/a" in text
    assert "python -m tf_face.files.viewer_assets" in text
    assert "<model-viewer" not in text and not (out / viewer_assets.VIEWER_JS).exists()


def test_report_with_viewer_embeds_the_glb(tmp_path, monkeypatch):
    _fake_cache(tmp_path, monkeypatch, with_js=True)
    out = tmp_path / "out"
    out.mkdir()
    _write_mesh(out)
    text = report.write_report(out, "t", {}, {}, {}).read_text()
    assert (out / viewer_assets.VIEWER_JS).read_text() == "/* fake viewer */"
    assert (out / viewer_assets.VIEWER_LICENSE).is_file()
    assert f'<script src="{viewer_assets.VIEWER_JS}"></script>' in text
    m = re.search(r'<model-viewer id="viewer3d" src="data:model/gltf-binary;base64,([^"]+)"', text)
    assert m and base64.b64decode(m.group(1)) == (out / "mesh.glb").read_bytes()


def test_report_without_glb(tmp_path, monkeypatch):
    _fake_cache(tmp_path, monkeypatch, with_js=True)
    text = report.write_report(tmp_path, "t", {}, {}, {}).read_text()
    assert "mesh.glb is missing" in text and "<model-viewer" not in text


@pytest.mark.parametrize("bad", ["../x.png", "/etc/passwd", "http://example.com/x.png",
                                 "a/../../x.png", "//host/x.png"])
def test_report_rejects_paths_outside_the_folder(tmp_path, monkeypatch, bad):
    _fake_cache(tmp_path, monkeypatch, with_js=False)
    with pytest.raises(ValueError):
        report.write_report(tmp_path, "t", {"x": bad}, {}, {})


def _tarball(members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_integrity_check_and_extraction(tmp_path):
    data = _tarball({viewer_assets.JS_MEMBER: b"js!", viewer_assets.LICENSE_MEMBER: b"lic",
                     "package/evil/../../x": b"no"})
    good = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    viewer_assets.check_integrity(data, good)
    with pytest.raises(AssetMissingError):
        viewer_assets.check_integrity(data + b"x", good)
    with pytest.raises(AssetMissingError):
        viewer_assets.check_integrity(data)          # not the pinned package
    dest = tmp_path / "cache"
    viewer_assets.extract_members(data, {viewer_assets.JS_MEMBER: dest / "a.js",
                                         viewer_assets.LICENSE_MEMBER: dest / "L.txt"})
    assert (dest / "a.js").read_bytes() == b"js!" and (dest / "L.txt").read_bytes() == b"lic"
    assert sorted(p.name for p in dest.iterdir()) == ["L.txt", "a.js"]
    with pytest.raises(AssetMissingError):
        viewer_assets.extract_members(data, {"package/dist/other.js": dest / "o.js"})


def test_viewer_check_command(tmp_path, monkeypatch):
    _fake_cache(tmp_path, monkeypatch, with_js=False)
    assert viewer_assets.main(["--check"]) == 1
    (tmp_path / "cache" / viewer_assets.VIEWER_JS).write_text("x")
    assert viewer_assets.main(["--check"]) == 0


# ---------------------------------------------------------------- real browser

def test_report_renders_the_mesh_in_headless_chromium(tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    js = viewer_assets.viewer_js_path()
    if js is None:
        pytest.skip(f"viewer script not fetched (run {viewer_assets.FETCH_COMMAND})")
    out = tmp_path / "report"
    out.mkdir()
    _write_mesh(out)
    page = report.write_report(out, "browser test", {"albedo": "albedo.png"}, {}, {"x": 1.0})
    shot = tmp_path / "screenshot.png"
    state, png = capture_report(page, tmp_path / "chrome-profile", 900, 900)
    shot.write_bytes(png)
    keep = os.environ.get("TF_FACE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(keep) / "report_screenshot.png")
    assert state and state["loaded"] and state["visible"], state
    img = cv2.imread(str(shot))[..., ::-1].astype(np.float64)
    x, y, w, h = (int(round(c)) for c in state["box"])
    assert w > 100 and h > 100
    box = img[y + 2:y + h - 2, x + 2:x + w - 2]
    assert box.size and box.std() > 20.0                      # not a blank viewer
    r, g, b = box[..., 0], box[..., 1], box[..., 2]
    orange = (r > 100) & (r > 1.3 * g) & (g > 1.3 * b)         # the texture's colour
    assert orange.mean() > 0.05, orange.mean()


def test_save_images_round_trip(tmp_path, monkeypatch):
    _fake_cache(tmp_path, monkeypatch, with_js=False)
    img = np.zeros((8, 10, 3))
    img[..., 0] = 1.0                                  # pure red, RGB order
    rel = report.save_images(tmp_path, {"yaw +30/x": img, "u8": np.full((4, 4, 3), 7, np.uint8)})
    assert rel == {"yaw +30/x": "renders/yaw_+30_x.png", "u8": "renders/u8.png"}
    back = cv2.imread(str(tmp_path / rel["yaw +30/x"]))[..., ::-1]
    assert back.shape == (8, 10, 3) and (back == [255, 0, 0]).all()
    text = report.write_report(tmp_path, "t", rel, {}, {}).read_text()
    assert 'src="renders/yaw_%2B30_x.png"' in text
    with pytest.raises(ValueError):
        report.save_images(tmp_path, {"a": img}, subdir="../up")
