"""reconstruct CLI end to end (random small networks in the weights-folder layout):
every output file, OBJ/MTL/GLB parse back, renders and relighting direction,
batch mode with bad photos, the TFLite backend vs TF, the same one-line
errors as the unwrap CLI, and the report in headless Chromium."""

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

REPO = Path(__file__).resolve().parents[1]
K = 10
EXPECTED = ["mesh.obj", "mesh.mtl", "albedo.png", "albedo_pca.png", "lighting.json",
            "displacement.png", "displacement.json", "detail_normals.png", "mesh_detailed.obj",
            "mesh_detailed.mtl", "mesh.glb", "mesh_detailed.glb", "report.html", "photo.png",
            "texture.png", "fit.json", "reconstruction.json"]
RENDERS = ["overlay", "rerender", "relit_image_left", "relit_image_right", "relit_top",
           "relit_coloured", "yaw_-30", "yaw_+30"]
BG = round(0.18 * 255)


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from tf_face.testing.random_weights import write_random_weights
    return write_random_weights(tmp_path_factory.mktemp("weights"), num_albedo=K, bnet_width=4,
                                ngf=4, p_a_std=0.3, sh_std=0.05, seed=7)


@pytest.fixture(scope="module")
def batch_out(weights, astronaut, tmp_path_factory):
    """The CLI in batch mode: the astronaut, a broken JPEG and a photo without a face."""
    root = tmp_path_factory.mktemp("batch")
    photos = root / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "astronaut.png"), astronaut[..., ::-1])
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    cv2.imwrite(str(photos / "noface.png"), np.full((200, 200, 3), 127, np.uint8))
    out = root / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run([sys.executable, "-m", "tf_face.cli.reconstruct",
                          f"--image_dir={photos}", f"--out_dir={out}",
                          f"--weights_dir={weights}", "--appearance=net"], cwd=REPO,
                         capture_output=True,
                         text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    return out


def test_single_photo_line_reports_the_networks_time(weights, astronaut, tmp_path):
    """The closing line of a one-photo run says how long the networks took
    (their fused call's time, not a sum of per-network keys it lacks)."""
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), astronaut[..., ::-1])
    res = subprocess.run([sys.executable, "-m", "tf_face.cli.reconstruct", f"--image={photo}",
                          f"--out_dir={tmp_path / 'out'}", f"--weights_dir={weights}",
                          "--appearance=net", "--renders=none"], cwd=REPO, capture_output=True,
                         text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    times = [float(m) for m in re.findall(r"networks (\d+) ms \(tf\)", res.stdout + res.stderr)]
    assert len(times) == 1 and times[0] > 0, (res.stdout + res.stderr)[-2000:]


@pytest.fixture(scope="module")
def recon(weights):
    from tf_face.serving.reconstruct import Reconstructor
    return Reconstructor(weights, backend="tf", appearance="net")


def test_batch_mode_failures_and_outputs(batch_out):
    failures = json.loads((batch_out / "failures.json").read_text())
    assert sorted(Path(f["image"]).name for f in failures) == ["broken.jpg", "noface.png"]
    assert all(f["error"] and "\n" not in f["error"] for f in failures)
    assert not (batch_out / "broken").exists() and not (batch_out / "noface").exists()
    d = batch_out / "astronaut"
    for name in EXPECTED:
        assert (d / name).is_file(), name
    for name in RENDERS:
        assert (d / "renders" / f"{name}.png").is_file() and \
            (d / "renders" / f"{name}_base.png").is_file(), name
    assert not [p for p in batch_out.iterdir() if p.name.startswith(".")]  # no temp dirs


def _trimesh_load(path):
    """The one mesh in ``path`` as trimesh (an independent parser) reads it."""
    import trimesh
    loaded = trimesh.load(path, process=False, maintain_order=True)
    meshes = list(loaded.geometry.values()) if hasattr(loaded, "geometry") else [loaded]
    assert len(meshes) == 1
    return meshes[0]


def test_mesh_files_parse_back(batch_out, recon):
    d = batch_out / "astronaut"
    model = recon.model
    albedo = cv2.imread(str(d / "albedo.png"))[..., ::-1]
    assert albedo.shape == (256, 256, 3)
    # padded beyond the atlas: every outside texel is a copy of its nearest atlas texel
    from tf_face.files.mesh_files import pad_texture
    np.testing.assert_array_equal(pad_texture(albedo, recon.atlas.mask), albedo)
    obj = _trimesh_load(d / "mesh.obj")
    assert obj.vertices.shape == (model.num_vertices, 3)
    assert obj.vertex_normals.shape == (model.num_vertices, 3)
    np.testing.assert_array_equal(obj.faces, model.triangles)
    np.testing.assert_allclose(obj.visual.uv[:, 1], 1.0 - model.uv[:, 1], atol=1e-5)  # v flipped
    assert "mtllib mesh.mtl\n" in (d / "mesh.obj").read_text()
    assert "map_Kd albedo.png" in (d / "mesh.mtl").read_text()
    np.testing.assert_array_equal(np.asarray(obj.visual.material.image.convert("RGB")), albedo)

    glb = _trimesh_load(d / "mesh.glb")
    assert glb.faces.size == model.triangles.size
    np.testing.assert_allclose(glb.vertices, obj.vertices, atol=1e-5)
    np.testing.assert_array_equal(
        np.asarray(glb.visual.material.baseColorTexture.convert("RGB")), albedo)

    # the dense detail mesh: one vertex per valid texel (atlas texel with a base normal)
    normals = np.load(d / "normals.npy")
    valid = recon.atlas.mask & np.any(normals != 0, axis=-1)
    det = _trimesh_load(d / "mesh_detailed.obj")
    assert det.vertices.shape == (int(valid.sum()), 3)
    assert len(det.faces) > 1.5 * len(det.vertices)
    assert "mtllib mesh_detailed.mtl\n" in (d / "mesh_detailed.obj").read_text()
    assert "map_Kd albedo.png" in (d / "mesh_detailed.mtl").read_text()
    assert _trimesh_load(d / "mesh_detailed.glb").vertices.shape == det.vertices.shape
    # the detail mesh sits on the base mesh (same frame and units)
    ext = obj.vertices.max(0) - obj.vertices.min(0)
    assert np.all(np.abs(det.vertices.min(0) - obj.vertices.min(0)) < 0.1 * ext)
    assert np.all(np.abs(det.vertices.max(0) - obj.vertices.max(0)) < 0.1 * ext)


def test_displacement_and_lighting(batch_out, recon):
    from tf_face.files.detail_mesh import read_displacement_png
    d = batch_out / "astronaut"
    light = json.loads((d / "lighting.json").read_text())
    assert np.asarray(light["sh"]).shape == (9, 3) and len(light["albedo_pca_coeffs"]) == K
    disp, meta = read_displacement_png(d / "displacement.png")
    assert meta["scale"] == light["displacement"]["scale"]
    cfg = recon.cfg
    lo, hi = light["displacement"]["moving_rate_range_detail_units"]
    assert -cfg.drn_max_displacement <= lo < hi <= cfg.drn_max_displacement
    # stored in model units = moving rate * detail unit (to 16-bit quantisation)
    q = meta["scale"] / 65535 + 1e-9
    assert disp.min() == pytest.approx(lo * cfg.detail_unit, abs=q)
    assert disp.max() == pytest.approx(hi * cfg.detail_unit, abs=q)
    dn = cv2.imread(str(d / "detail_normals.png"))
    assert dn.std() > 10


def _img(path):
    return cv2.imread(str(path))[..., ::-1].astype(np.float64)


def test_renders_are_not_blank_and_relighting_has_the_right_direction(batch_out):
    r = batch_out / "astronaut" / "renders"
    base = _img(r / "rerender.png")
    face = np.any(np.abs(base - BG) > 3, axis=-1)
    assert 0.15 < face.mean() < 0.9
    for name in RENDERS:
        for suffix in ("", "_base"):
            img = _img(r / f"{name}{suffix}.png")
            assert img.shape == base.shape and img.std() > 10, name + suffix
    cols = np.nonzero(face.any(0))[0]
    mid = (cols.min() + cols.max()) // 2
    left, right = face.copy(), face.copy()
    left[:, mid:] = False
    right[:, :mid] = False
    for suffix in ("", "_base"):
        lit_l = _img(r / f"relit_image_left{suffix}.png").mean(-1)
        lit_r = _img(r / f"relit_image_right{suffix}.png").mean(-1)
        # light from the image left brightens the image-left cheek, and vice versa
        assert lit_l[left].mean() > lit_r[left].mean() + 10, suffix
        assert lit_r[right].mean() > lit_l[right].mean() + 10, suffix
        top = _img(r / f"relit_top{suffix}.png").mean(-1)
        rows = np.nonzero(face.any(1))[0]
        upper = face.copy()
        upper[(rows.min() + rows.max()) // 2:] = False
        lower = face & ~upper
        assert top[upper].mean() - top[lower].mean() > lit_l[upper].mean() - lit_l[lower].mean()
    # details change the shading; novel views move the face
    assert np.abs(_img(r / "rerender.png") - _img(r / "rerender_base.png")).mean() > 0.2
    for yaw in ("yaw_-30", "yaw_+30"):
        assert np.abs(_img(r / f"{yaw}.png") - base).mean() > 2
    # the overlay keeps the photo around the face and replaces the face
    ov = _img(r / "overlay.png")
    assert np.abs(ov[~face] - ov[~face].mean()).mean() > 5          # photo, not a flat colour
    assert np.abs(ov[face] - base[face]).mean() < 3


def test_report_references_every_picture(batch_out):
    from urllib.parse import quote
    d = batch_out / "astronaut"
    page = (d / "report.html").read_text()
    for name in ["photo.png", "albedo.png", "albedo_pca.png", "displacement.png",
                 "detail_normals.png"] + [f"renders/{n}.png" for n in RENDERS]:
        assert f'src="{quote(name)}"' in page, name
    assert "data:model/gltf-binary;base64," in page or "mesh.glb" in page
    for key in ("networks", "albedo_pca", "fit", "unwrap"):
        assert key in page


def test_tflite_backend_matches_tf(weights, recon, astronaut, tmp_path, monkeypatch):
    """--backend=tflite (float16, converted on the fly into the cache) vs --backend=tf."""
    import tf_face.serving.backends
    from tf_face.serving.reconstruct import Reconstructor
    from tf_face.serving.tflite import TFLiteNetwork
    from tf_face.viz.views import to_display

    monkeypatch.setattr(tf_face.serving.backends, "tflite_cache_root",
                        lambda: tmp_path / "cache" / "tflite")
    lite = Reconstructor(weights, backend="tflite", tflite_precision="float16", appearance="net",
                         log=lambda *_: None)
    assert all(isinstance(n, TFLiteNetwork) for n in lite.backend.nets.values())
    assert len(list((tmp_path / "cache" / "tflite").rglob("*_float16.tflite"))) == 3
    a = recon.run(astronaut)
    b = lite.run(astronaut)
    m = recon.atlas.mask
    cs = recon.color_space
    for key in ("albedo", "albedo_pca"):
        x, y = getattr(a.nets, key), getattr(b.nets, key)
        assert np.abs(x - y)[m].max() <= 2 / 255, key
        assert np.abs(to_display(x, cs) - to_display(y, cs))[m].max() <= 2 / 255, key
    np.testing.assert_allclose(b.nets.sh, a.nets.sh, atol=1e-3)
    assert np.abs(b.nets.moving_rate - a.nets.moving_rate).max() <= 1e-3
    assert np.abs(a.nets.moving_rate).max() > 0  # a real comparison


def _bad_inputs(tmp_path, astronaut):
    ok, buf = cv2.imencode(".jpg", astronaut[..., ::-1])
    files = {"text.jpg": b"this is not an image\n", "empty.png": b"",
             "truncated.jpg": buf.tobytes()[: len(buf) // 2]}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    cv2.imwrite(str(tmp_path / "noface.png"), np.full((200, 200, 3), 127, np.uint8))
    return [tmp_path / n for n in files] + [tmp_path / "missing.jpg", tmp_path / "noface.png"]


def _unwrap_path(pipe, path):
    """What ``tf_face.cli.unwrap.unwrap_one`` runs before writing (that module
    is not imported here: its absl flags would clash with other test modules')."""
    from tf_face.image_io import load_image
    return pipe.run(load_image(path))


def test_bad_inputs_give_the_unwrap_errors(recon, astronaut, tmp_path):
    from tf_face.errors import TfFaceError
    from tf_face.serving.reconstruct import reconstruct_one
    for path in _bad_inputs(tmp_path, astronaut):
        with pytest.raises(TfFaceError) as want:
            _unwrap_path(recon.pipeline, path)
        with pytest.raises(TfFaceError) as got:
            reconstruct_one(recon, path, tmp_path / "r")
        assert type(got.value) is type(want.value) and str(got.value) == str(want.value)
        assert "\n" not in str(got.value)
        assert not (tmp_path / "r").exists()


def test_existing_output_is_refused_before_any_work(recon, tmp_path):
    from tf_face.serving.reconstruct import reconstruct_one
    from tf_face.outputs import OutputExistsError
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        reconstruct_one(recon, tmp_path / "does-not-matter.jpg", out)
    assert (out / "keep.txt").read_text() == "x"


def test_missing_weights_say_which_command_makes_them(tmp_path, monkeypatch, weights):
    import tf_face.serving.weights as W
    monkeypatch.setattr(W, "DEFAULT_WEIGHTS_DIR", tmp_path / "demo_out" / "weights")
    with pytest.raises(W.WeightsError) as e:
        W.resolve_weights_dir(None)
    msg = str(e.value)
    assert "train.release" in msg and "train.train_bnet" in msg and "\n" not in msg
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / W.CONFIG_FILE).write_text((Path(weights) / W.CONFIG_FILE).read_text())
    with pytest.raises(W.WeightsError, match="bnet.keras, fan.keras, drn.keras"):
        W.resolve_weights_dir(partial)
    assert W.resolve_weights_dir(weights) == Path(weights)


def test_khronos_gltf_validator_accepts_both_glbs(batch_out, tmp_path):
    """mesh.glb and mesh_detailed.glb of a real reconstruction, read by the
    Khronos glTF validator (npm, pinned and integrity-checked): no errors, no
    warnings; a truncated copy is refused (the validator really reads them)."""
    from tests import conftest, gltf_validator
    why = gltf_validator.tools_missing()
    if why:
        conftest.missing(why)
    package = gltf_validator.fetch(tmp_path / "validator")
    d = batch_out / "astronaut"
    broken = tmp_path / "truncated.glb"
    data = (d / "mesh.glb").read_bytes()
    broken.write_bytes(data[: len(data) - 4096])
    reports = gltf_validator.validate(package, [d / "mesh.glb", d / "mesh_detailed.glb", broken])
    for name in ("mesh.glb", "mesh_detailed.glb"):
        r = reports[str(d / name)]
        assert r["numErrors"] == 0 and r["numWarnings"] == 0, (name, r["codes"][:10])
    assert reports[str(broken)]["numErrors"] > 0


def test_report_shows_the_face_in_headless_chromium(batch_out, tmp_path):
    """The astronaut's report.html, opened from file:// in headless Chromium."""
    from tests.chromium import CHROMIUM, capture_report
    from tf_face.files import viewer_assets
    if not CHROMIUM.is_file():
        pytest.skip("/usr/bin/chromium is absent (apt-get install chromium)")
    if viewer_assets.viewer_js_path() is None:
        pytest.skip(f"viewer script not fetched (run {viewer_assets.FETCH_COMMAND})")
    page = batch_out / "astronaut" / "report.html"
    state, shot = capture_report(page, tmp_path / "profile", 1000, 1400,
                                 scroll_to_viewer=True)
    (tmp_path / "shot.png").write_bytes(shot)
    keep = os.environ.get("TF_FACE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / "reconstruct_report.png").write_bytes(shot)
    assert state and state["loaded"] and state["visible"], state
    img = cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR).astype(np.float64)
    x, y, w, h = (int(round(c)) for c in state["box"])
    box = img[max(y, 0) + 2:y + h - 2, max(x, 0) + 2:x + w - 2]
    assert box.size and box.std() > 8.0          # the textured face, not an empty canvas


def test_fast_detail_normals_match_the_export_reference():
    """tf_face.detail.np_ops (dense grid) == tf_face.files.detail_mesh.displace and the
    export tests' detail_normals."""
    from tests.test_export import detail_normals
    from tf_face.files.detail_mesh import displace
    from tf_face.detail.np_ops import detail_normals_np, displace_np, grid_vertex_normals
    rng = np.random.default_rng(1)
    h = 64
    yy, xx = np.mgrid[0:h, 0:h].astype(np.float64)
    valid = ((yy - 32) ** 2 + (xx - 30) ** 2 < 26 ** 2) & (rng.random((h, h)) > 0.02)
    pos = np.stack([xx, -yy, 8 * np.cos((xx - 32) / 20) * np.cos((yy - 32) / 20)], -1)
    n = grid_vertex_normals(pos, valid) + 0.1 * rng.normal(size=pos.shape)
    n[~valid] = 0
    d = rng.normal(size=(h, h)) * 0.3 * valid
    for ref in (n, -n):                      # both orientations of the majority vote
        want_pos = displace(pos, ref, d, valid)
        want = detail_normals(want_pos, valid, reference_normals=ref, base_positions=pos)
        got_pos = displace_np(pos, ref, d, valid)
        got = detail_normals_np(got_pos, pos, ref, valid)
        np.testing.assert_allclose(got_pos, want_pos, atol=1e-4)
        np.testing.assert_allclose(got, want, atol=1e-4)
        assert np.abs(got - ref / np.maximum(np.linalg.norm(ref, axis=-1, keepdims=True),
                                             1e-9))[valid].max() > 0.05   # details matter


def test_cli_bad_photo_fails_in_one_line_before_loading_weights(tmp_path):
    """Single-photo CLI: a bad photo is reported even without any weights folder."""
    (tmp_path / "text.jpg").write_bytes(b"this is not an image\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run([sys.executable, "-m", "tf_face.cli.reconstruct",
                          f"--image={tmp_path / 'text.jpg'}", f"--out_dir={tmp_path / 'o'}",
                          f"--weights_dir={tmp_path / 'no-weights'}", "--appearance=net"], cwd=REPO,
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "text.jpg" in errors[0] and "weights" not in errors[0]
    assert not (tmp_path / "o").exists()


def test_fit_appearance_needs_no_weights(tmp_path):
    """--appearance=fit: a synthetic photo reconstructs without any
    weights folder, and the fitted albedo follows the photo's skin tone."""
    from tf_face.facemodel import default_model
    from tf_face.serving.reconstruct import Reconstructor, reconstruct_one
    from tf_face.skin_tone import face_skin_mask, linear_rgb_to_lab, mean_skin_colour, skin_ita
    from tf_face.srgb import srgb_to_linear
    from tf_face.synthetic import render_face, sample_face
    from tf_face.uv import get_atlas

    model = default_model()
    atlas = get_atlas(model, size=256)
    logged = []
    recon = Reconstructor(None, appearance="fit", log=logged.append)
    assert recon.appearance == "fit" and recon.weights_dir is None
    itas = {}
    for tone in ("very_light", "dark", "grey"):
        face = sample_face(np.random.default_rng([7, min(len(itas), 1)]), model,
                           skin_tone="dark" if tone == "grey" else tone)
        image, truth = render_face(face, 384, model=model, atlas=atlas)
        path = tmp_path / f"{tone}.png"
        if tone == "grey":       # the dark face as a greyscale photo
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        else:
            cv2.imwrite(str(path), image[..., ::-1])
        logged.clear()
        info = reconstruct_one(recon, path, tmp_path / tone, renders=False)
        assert "albedo.png" in info["files"] and "mesh.glb" in info["files"]
        rec = json.loads((tmp_path / tone / "reconstruction.json").read_text())
        # a greyscale photo is said to be one: its albedo is grey, not the person's tone
        warned = [m for m in logged if "no colour (greyscale)" in str(m)]
        assert rec["photo_monochrome"] is (tone == "grey") and len(warned) == (tone == "grey")
        if tone == "grey":
            # ... and it is (its skin has chroma ~0; the colour photos' ~20)
            albedo = cv2.imread(str(tmp_path / tone / "albedo.png"))[..., ::-1] / 255.0
            lin = srgb_to_linear(albedo)
            lab = linear_rgb_to_lab(mean_skin_colour(lin, face_skin_mask(256)))
            assert np.hypot(lab[1], lab[2]) < 2.0, lab
            continue
        assert rec["appearance"] == "fit" and rec["weights"]["folder"] is None
        assert rec["appearance_options"]["light_albedo"]["exposure_normals"] == "face"
        assert rec["appearance_options"]["albedo_map"]["photo_features"] is True
        # step 0, the mesh moved onto the photo: what it did is on record
        mr = rec["mesh_refinement"]
        assert mr["stages"] == ["warp"] and rec["appearance_options"]["align"]["mode"] == "warp"
        if mr["kept"]:
            assert mr["energy_after"] < mr["energy_before"] and mr["vertex_move_px_max"] > 0
        else:
            assert mr["vertex_move_px_max"] == 0
        # what the fit left out as not skin: a mask of visible texels, its share on record
        non_skin = cv2.imread(str(tmp_path / tone / "non_skin.png"), cv2.IMREAD_UNCHANGED)
        visible = cv2.imread(str(tmp_path / tone / "mask.png"), cv2.IMREAD_UNCHANGED) > 0
        assert non_skin.shape == visible.shape and set(np.unique(non_skin)) <= {0, 255}
        assert not (non_skin[~visible] > 0).any()
        assert rec["non_skin_fraction"] == pytest.approx(
            (non_skin > 0).sum() / visible.sum(), abs=1e-4)
        assert rec["non_skin_fraction"] < 0.2        # a clean synthetic face: little or none
        albedo = cv2.imread(str(tmp_path / tone / "albedo.png"))[..., ::-1] / 255.0
        lin = srgb_to_linear(albedo)
        itas[tone] = skin_ita(lin, face_skin_mask(256))
    assert itas["very_light"] > 41 and itas["dark"] < 10, itas


def test_net_plus_fit_starts_at_the_networks_and_improves_on_them(weights, recon, astronaut):
    """--appearance=net+fit: the fit starts at the (random) networks' outputs and
    re-renders the photo better than they do (same weights, same photo)."""
    from tf_face.appearance.fit import srgb_to_linear_np
    from tf_face.render import sh_shade
    from tf_face.serving.reconstruct import Reconstructor

    both = Reconstructor(weights, backend="tf", appearance="net+fit", log=lambda *_: None)
    assert both.fitter is not None and both.backend.name == "tf"
    errors = {}
    for name, r in (("net", recon), ("net+fit", both)):
        rec = r.run(astronaut)
        s = rec.result.sample
        assert np.all(np.isfinite(rec.nets.albedo)) and np.all(np.isfinite(rec.nets.moving_rate))
        shaded = sh_shade(rec.nets.albedo_pca[None], s.normals[None], rec.nets.sh[None])[0].numpy()
        vis = s.mask & r.atlas.mask
        errors[name] = float(np.abs(shaded - srgb_to_linear_np(s.texture))[vis].mean())
        if name == "net+fit":
            assert {"networks", "fit_light_albedo"} <= set(rec.timings_ms)
            # the default refines DRN's displacement (init_displacement="refine");
            # "keep" gives DRN's output on this run's unwrap (its mesh refined
            # against the photo first) as it is
            drn = both.backend(s.texture).moving_rate
            valid = rec.valid
            assert np.any(drn[valid] != 0)
            assert both.fitter.options.init_displacement == "refine"
            assert np.abs(rec.nets.moving_rate[valid] - drn[valid]).max() > 1e-4
            both.fitter.options = dataclasses.replace(both.fitter.options,
                                                      init_displacement="keep")
            kept = both.run(astronaut)
            np.testing.assert_allclose(kept.nets.moving_rate[valid], drn[valid], atol=1e-6)
    assert errors["net+fit"] < errors["net"], errors


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_keras_file_gives_one_line_naming_it(weights, tmp_path, damage):
    """A truncated or bit-flipped fan.keras: one line that names the file and says
    it is corrupt (Keras itself says "File not found" for an existing file)."""
    import shutil

    from tf_face.errors import TfFaceError
    from tf_face.serving.weights import load_networks

    folder = tmp_path / "w"
    shutil.copytree(weights, folder)
    path = folder / "fan.keras"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    else:
        import zipfile
        with zipfile.ZipFile(path) as z:
            info = max(z.infolist(), key=lambda i: i.compress_size)
        offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 10
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(TfFaceError) as e:
        load_networks(folder)
    msg = str(e.value)
    assert "fan.keras" in msg and "corrupt" in msg and "\n" not in msg


@pytest.mark.parametrize("which", ["none", "basic"])
def test_renders_on_demand(recon, astronaut, tmp_path, which):
    """--renders=none writes no renders/, basic only the re-render over the
    photo and alone (with details), and report.html lists only what exists."""
    from tf_face.serving.reconstruct import reconstruct_one
    photo = tmp_path / "a.png"
    cv2.imwrite(str(photo), astronaut[..., ::-1])
    out = tmp_path / which
    info = reconstruct_one(recon, photo, out, renders=which)
    got = sorted(p.name for p in (out / "renders").glob("*")) if (out / "renders").exists() else []
    assert got == ({"none": [], "basic": ["overlay.png", "rerender.png"]}[which])
    html = (out / "report.html").read_text()
    assert ("renders/overlay.png" in html) == (which == "basic")
    assert ("renders" in info["timings_ms"]) == (which == "basic")


def test_geometry_networks_and_detail_maps_run_with_one_blas_thread(recon, astronaut):
    """Reconstructor.run holds BLAS to one thread around the geometry, the
    networks and the detail maps (tf_face.blas: spinning OpenBLAS workers took a
    core from TF), and gives the library its thread count back afterwards."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    seen = {}
    backend, pipeline = recon.backend, recon.pipeline

    class Spy:
        def __init__(self, inner, name):
            self.inner, self.name = inner, name

        def __getattr__(self, attr):
            return getattr(self.inner, attr)

        def __call__(self, *a, **k):
            seen[self.name] = blas_threads()
            return self.inner(*a, **k)

        def run_raw(self, *a, **k):   # appearance="net": the networks, then compose
            seen[self.name] = blas_threads()
            return self.inner.run_raw(*a, **k)

    class PipelineSpy(Spy):
        def run(self, *a, **k):
            seen["geometry"] = blas_threads()
            return self.inner.run(*a, **k)

    recon.backend, recon.pipeline = Spy(backend, "networks"), PipelineSpy(pipeline, "pipe")
    try:
        rec = recon.run(astronaut)
    finally:
        recon.backend, recon.pipeline = backend, pipeline
    assert before and max(before) >= 1
    assert seen["geometry"] and set(seen["geometry"]) == {1}
    assert seen["networks"] and set(seen["networks"]) == {1}
    assert blas_threads() == before
    assert rec.nets.albedo.shape[-1] == 3


def test_parallel_host_stages_give_the_sequential_result(weights, astronaut):
    """With appearance="net" the detail maps run on a helper thread while
    B-Net's albedo is composed; every output equals the one-after-the-other
    run's, and the detail maps equal detail_maps() of DRN's rate."""
    from tf_face.serving.reconstruct import Reconstructor, detail_maps
    par = Reconstructor(weights, backend="tf", appearance="net")
    seq = Reconstructor(weights, backend="tf", appearance="net", parallel_host_stages=False)
    a, b = par.run(astronaut), seq.run(astronaut)
    assert par._helper is not None and seq._helper is None
    for k in ("albedo_pca", "albedo", "moving_rate", "p_a", "sh"):
        np.testing.assert_array_equal(getattr(a.nets, k), getattr(b.nets, k), err_msg=k)
    want = detail_maps(a.result.sample, par.atlas.mask, a.nets.moving_rate,
                       a.result.fitted.scale, par.cfg.detail_unit)
    for got, other, ref in zip((a.valid, a.displacement_px, a.displaced_position,
                                a.detail_normals),
                               (b.valid, b.displacement_px, b.displaced_position,
                                b.detail_normals), want):
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(other, ref)
    assert np.any(a.displacement_px != 0)       # DRN's random weights move the surface
    assert {"albedo_pca", "detail_maps"} <= set(a.timings_ms)


def test_a_failing_detail_map_thread_raises_in_the_caller(weights, astronaut, monkeypatch):
    """An error on the helper thread reaches run()'s caller (not lost)."""
    import tf_face.serving.reconstruct as rmod
    recon = rmod.Reconstructor(weights, backend="tf", appearance="net")

    def broken(*a, **k):
        raise RuntimeError("detail maps broke")
    monkeypatch.setattr(rmod, "detail_maps", broken)
    with pytest.raises(RuntimeError, match="detail maps broke"):
        recon.run(astronaut)
