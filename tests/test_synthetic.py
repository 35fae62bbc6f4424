"""Synthetic faces with ground truth (tf_face.synthetic).

CPU-cheap: a handful of faces at 256-384 px, rendered once per module.
"""

import json

import numpy as np
import pytest

from tf_face.facemodel import default_model
from tf_face.skin_tone import GROUP_NAMES, tone_group
from tf_face.synthetic import Difficulty, render_face, sample_face
from tf_face.synthetic.alignment import alignment_stats, vertex_error_iod
from tf_face.synthetic.sampling import sample_pose
from tf_face.srgb import srgb_to_linear
from tf_face.uv import get_atlas, unwrap

SIZE = 384
# moderate yaw for the pipeline test; every face gets an occluder half the time
PIPE_DIFFICULTY = Difficulty(max_yaw=35.0, occlusion_prob=0.5)
PIPE_SEEDS = list(range(6))


def _require_assets():
    from tf_face.assets import asset_path
    from tf_face.errors import TfFaceError
    try:
        for name in ("face_detection_short_range.tflite", "face_landmark.tflite"):
            asset_path(name)
    except (TfFaceError, ValueError) as e:
        pytest.skip(f"MediaPipe assets missing: {e}")


@pytest.fixture(scope="module")
def model():
    return default_model()


@pytest.fixture(scope="module")
def atlas(model):
    return get_atlas(model, 256)


@pytest.fixture(scope="module")
def faces(model, atlas):
    """[(face, image, truth)] for PIPE_SEEDS at SIZE px."""
    out = []
    for s in PIPE_SEEDS:
        f = sample_face(np.random.default_rng([11, s]), model, PIPE_DIFFICULTY)
        img, tr = render_face(f, SIZE, model=model, atlas=atlas)
        out.append((f, img, tr))
    return out


@pytest.fixture(scope="module")
def clean_face(model, atlas):
    """A face with no camera noise/blur, an occluder and harsh light, and every
    wrinkle family (``wrinkle_variety=0``: the detail checks need grooves)."""
    d = Difficulty(max_yaw=30.0, occlusion_prob=1.0, light_harshness=1.0, camera_noise=0.0,
                   wrinkle_variety=0.0)
    f = sample_face(np.random.default_rng(3), model, d)
    img, tr = render_face(f, SIZE, model=model, atlas=atlas)
    return f, img, tr


def test_same_seed_same_bytes_different_seed_differs(model, atlas):
    d = Difficulty(occlusion_prob=1.0)
    a = render_face(sample_face(np.random.default_rng(42), model, d), 256, model=model, atlas=atlas)
    b = render_face(sample_face(np.random.default_rng(42), model, d), 256, model=model, atlas=atlas)
    c = render_face(sample_face(np.random.default_rng(43), model, d), 256, model=model, atlas=atlas)
    assert a[0].dtype == np.uint8 and a[0].shape == (256, 256, 3)
    assert a[0].tobytes() == b[0].tobytes()
    ta, tb = a[1].to_npz(), b[1].to_npz()
    assert ta.keys() == tb.keys()
    for k in ta:
        assert np.array_equal(ta[k], tb[k]), k
    assert np.abs(a[0].astype(int) - c[0].astype(int)).mean() > 5
    assert not np.allclose(a[1].albedo, c[1].albedo)
    assert not np.allclose(a[1].sh, c[1].sh)


def test_pose_within_bounds():
    rng = np.random.default_rng(0)
    d = Difficulty(max_yaw=25.0, max_pitch=7.0, max_roll=4.0)
    poses = np.array([sample_pose(rng, d)[:3] for _ in range(2000)])
    assert np.all(np.abs(poses[:, 0]) <= 25.0) and np.abs(poses[:, 0]).max() > 23.0
    assert np.all(np.abs(poses[:, 1]) <= 7.0) and np.all(np.abs(poses[:, 2]) <= 4.0)
    with pytest.raises(ValueError):
        Difficulty(occlusion_prob=1.5).validate()
    with pytest.raises(ValueError):
        Difficulty(max_yaw=95).validate()


def test_truth_shapes_and_frames(faces, model):
    for f, img, tr in faces:
        assert img.shape == (SIZE, SIZE, 3)
        assert tr.albedo.shape == (256, 256, 3) and tr.displacement.shape == (256, 256)
        assert tr.sh.shape == (9, 3) and tr.vertices_image.shape == (468, 3)
        assert abs(tr.yaw) <= PIPE_DIFFICULTY.max_yaw
        assert np.all(tr.occlusion <= tr.visible) and np.all(tr.visible <= tr.atlas_mask)
        # camera-frame normals are unit on the atlas; the nose faces the camera's +z
        n = np.linalg.norm(tr.normals[tr.atlas_mask], axis=1)
        assert np.allclose(n, 1.0, atol=1e-4)
        # posed mesh = weak-perspective pose of the model-frame mesh (tf_face.types)
        from tf_face.types import model_to_image
        vi = model_to_image(tr.vertices_model, tr.scale, tr.rotation, tr.translation)
        assert np.allclose(vi, tr.vertices_image, atol=1e-3)
        # yaw > 0 turns the nose (vertex nearest the camera) towards the image right
        nose = model.landmarks68[30]
        centre_x = 0.5 * (tr.vertices_image[:, 0].min() + tr.vertices_image[:, 0].max())
        if abs(tr.yaw) > 15:
            assert np.sign(tr.vertices_image[nose, 0] - centre_x) == np.sign(tr.yaw)
        # wrinkles are grooves: the map is mostly >= -0.05 IOD and has negative lines
        assert tr.displacement.min() < -0.003 and tr.displacement.min() > -0.1
        # the drawn skin tone travels into the truth the benchmarks see
        assert tr.skin_group == f.skin_group and tr.skin_group in GROUP_NAMES
        assert tr.ita_deg == f.ita_deg and tone_group(tr.ita_deg) == tr.skin_group


def test_truth_reproduces_photo(clean_face, model, atlas):
    """albedo x SH(detail normals) through tf_face.render.sh_shade == photo pixels
    (sampled with the true geometry) on visible, unoccluded texels."""
    import tensorflow as tf

    from tf_face.render import sh_shade
    _, img, tr = clean_face
    sample = unwrap(img, tr.fitted(), model, atlas)
    assert np.array_equal(sample.mask, tr.visible)
    shade = lambda normals: sh_shade(tf.constant(tr.albedo[None]), tf.constant(normals[None]),
                                     tf.constant(tr.sh[None])).numpy()[0]
    pred = np.clip(shade(tr.normals), 0, 1)
    pred_base = np.clip(shade(tr.base_normals), 0, 1)
    obs = srgb_to_linear(sample.texture)
    # away from the silhouette and occluder borders (bilinear footprints mix colours there)
    import cv2
    clean = (tr.visible & ~tr.occlusion).astype(np.uint8)
    clean = cv2.erode(clean, np.ones((5, 5), np.uint8)).astype(bool)
    assert clean.sum() > 5000
    err = np.abs(pred - obs)[clean]
    assert np.median(err) < 0.01 and np.percentile(err, 95) < 0.05, (np.median(err),
                                                                      np.percentile(err, 95))
    assert np.corrcoef(pred[clean].ravel(), obs[clean].ravel())[0, 1] > 0.98
    # the photo was shaded with the detail normals, not the base ones: where they
    # differ by > 8 degrees the detail normals explain the pixels better
    ang = np.degrees(np.arccos(np.clip((tr.normals * tr.base_normals).sum(-1), -1, 1)))
    wr = clean & (ang > 8)
    assert wr.sum() > 50
    assert np.abs(pred - obs)[wr].mean() < 0.6 * np.abs(pred_base - obs)[wr].mean()


def test_occluded_texels_are_flagged(clean_face, model, atlas):
    f, img, tr = clean_face
    assert f.occluders and tr.occlusion.sum() > 100
    sample = unwrap(img, tr.fitted(), model, atlas)
    from tf_face.synthetic.alignment import true_rerender_uv
    ref = true_rerender_uv(tr.albedo, tr.normals, tr.sh)
    err = np.abs(sample.texture - ref).sum(-1)
    clean = tr.visible & ~tr.occlusion
    assert err[tr.occlusion].mean() > 3 * err[clean].mean()
    # every texel whose image point is clearly covered by an occluder is flagged
    import cv2
    pts = atlas.interpolate(tr.vertices_image)
    cov = cv2.remap(tr.occluder_alpha, pts[..., 0], pts[..., 1], cv2.INTER_LINEAR)
    assert np.all(tr.occlusion[tr.visible & (cov > 0.5)])


def test_real_pipeline_finds_and_aligns(faces):
    _require_assets()
    from tf_face.pipeline import GeometryPipeline
    pipe = GeometryPipeline("default")
    found, corrs, errs = 0, [], []
    for f, img, tr in faces:
        try:
            r = pipe.run(img)
        except Exception:  # noqa: BLE001 - a rejected face counts against the rate
            continue
        found += 1
        st = alignment_stats(r.sample.texture, r.sample.mask, tr.albedo, tr.normals, tr.sh,
                             tr.visible, tr.occlusion)
        assert st["texels"] > 5000
        corrs.append(st["corr"])
        errs.append(vertex_error_iod(r.fitted.vertices_image, tr))
    assert found >= 0.8 * len(faces), found
    assert np.median(corrs) > 0.85 and min(corrs) > 0.7, corrs
    assert np.median(errs) < 0.2, errs


def test_make_dataset_shards_round_trip(tmp_path, model):
    _require_assets()
    import tensorflow as tf

    from tf_face.data import list_shards, parse_example, read_index
    from tf_face.synthetic.make_dataset import make_dataset
    d = Difficulty(max_yaw=20.0, occlusion_prob=1.0)
    rep = make_dataset(tmp_path, num_faces=2, seed=5, difficulty=d, image_size=256,
                       progress=False)
    assert (tmp_path / "photos" / "face_00001.png").is_file()
    assert json.loads((tmp_path / "failures.json").read_text()) == [] or rep["failed"] > 0
    assert rep["records"] + rep["failed"] == 2 and rep["records"] >= 1
    shards = list_shards(tmp_path / "shards")
    assert shards
    index, _ = read_index(shards[0])
    assert set(index["extras"]) == {"gt_albedo", "gt_displacement", "gt_sh", "gt_occlusion",
                                    "gt_visible", "gt_normals"}
    n = 0
    for raw in tf.data.TFRecordDataset([str(s) for s in shards]):
        rec = parse_example(raw, 256, index["extras"])
        name = rec["image_id"].numpy().decode().replace(".png", "")
        with np.load(tmp_path / "truth" / f"{name}.npz", allow_pickle=False) as z:
            truth = {k: z[k] for k in z.files}
        ex = {k: v.numpy() for k, v in rec["extras"].items()}
        assert np.allclose(ex["gt_sh"], truth["sh"], atol=1e-6)
        rng_a = truth["albedo"].max() - truth["albedo"].min()
        assert np.abs(ex["gt_albedo"] - truth["albedo"]).max() <= rng_a / 65535 + 1e-6
        rng_d = truth["displacement"].max() - truth["displacement"].min()
        assert np.abs(ex["gt_displacement"][..., 0] - truth["displacement"]).max() \
            <= rng_d / 65535 + 1e-7
        assert np.array_equal(ex["gt_occlusion"][..., 0] > 0.5, truth["occlusion"])
        assert np.array_equal(ex["gt_visible"][..., 0] > 0.5, truth["visible"])
        assert np.abs(ex["gt_normals"] - truth["normals"]).max() < 1e-4
        n += 1
    assert n == rep["records"]
    # a rerun renders nothing new and the photo bytes are unchanged
    before = (tmp_path / "photos" / "face_00000.png").read_bytes()
    from tf_face.synthetic.make_dataset import generate_faces
    again = generate_faces(tmp_path, 2, 5, d, 256, progress=False)
    assert again["rendered"] == 0 and again["skipped"] == 2
    assert (tmp_path / "photos" / "face_00000.png").read_bytes() == before
    # another seed in the same folder is refused
    from tf_face.errors import TfFaceError
    with pytest.raises(TfFaceError):
        make_dataset(tmp_path, num_faces=2, seed=6, difficulty=d, image_size=256, progress=False)


def test_detail_normals_equal_base_without_displacement(model, atlas):
    from tf_face.synthetic.normals import normal_maps
    v = model.mean_shape.astype(np.float64)
    base, det = normal_maps(v, model, atlas, np.zeros((256, 256)))
    assert np.allclose(base, det, atol=1e-6)
    # a groove along u (h depends on v only) tilts the normals towards the groove
    vv = (np.arange(256) + 0.5) / 256
    h = -0.02 * np.exp(-((vv - 0.5) / 0.02) ** 2 / 2)[:, None] * np.ones((1, 256))
    _, det = normal_maps(v, model, atlas, h)
    col = 128
    above, below = int(0.5 * 256 - 6), int(0.5 * 256 + 6)
    # model +y is up and v is down: the wall above the groove faces down (-y), below faces up
    assert det[above, col, 1] < base[above, col, 1] - 0.05
    assert det[below, col, 1] > base[below, col, 1] + 0.05


def test_similarity_recovers_a_known_transform():
    from tf_face.synthetic.ict_shapes import similarity
    from tf_face.synthetic.sampling import euler_rotation
    rng = np.random.default_rng(1)
    src = rng.normal(size=(40, 3))
    rot = euler_rotation(30.0, -10.0, 5.0)
    dst = 0.3 * src @ rot.T + np.array([1.0, -2.0, 0.5])
    s, r, t = similarity(src, dst)
    assert abs(s - 0.3) < 1e-9 and np.allclose(r, rot, atol=1e-9)
    assert np.allclose(t, [1.0, -2.0, 0.5], atol=1e-9)


def test_ict_shapes_on_the_default_mesh(ict_npz, model, atlas):
    from tf_face.synthetic.ict_shapes import IctShapes
    ic = IctShapes.load(ict_npz, model)
    base = model.mean_shape.astype(np.float64)
    zero = ic.deform(base, np.zeros(ic.ict.num_shape), np.zeros(ic.ict.num_expr))
    assert np.allclose(zero, base)
    # the ICT landmarks land near the default ones after the similarity (units: the
    # default model's unit RMS radius; the IOD is ~1.3 of them)
    lm = np.arange(17, 68)
    aligned = ic.scale * np.asarray(ic.ict.mean_shape, np.float64)[ic.ict.landmarks68[lm]] \
        @ ic.rotation.T
    aligned += (base[model.landmarks68[lm]] - aligned).mean(0)
    assert np.linalg.norm(aligned - base[model.landmarks68[lm]], axis=1).mean() < 0.1
    f = sample_face(np.random.default_rng(2), model, Difficulty(max_yaw=20), ict=ic)
    assert f.shape_source == "ict" and f.ict_alpha.shape == (ic.ict.num_shape,)
    d = np.linalg.norm(f.vertices_model - base, axis=1)
    assert 0.005 < d.mean() < 0.3
    img, tr = render_face(f, 256, model=model, atlas=atlas)
    assert np.allclose(tr.vertices_model, f.vertices_model, atol=1e-5)
    assert img.std() > 10


def test_truth_carried_into_the_pipelines_uv_map(clean_face, model, atlas):
    """``registration.truth_uv_in_pipeline``: with the true geometry the carried
    coordinates are the texel grid itself; with the geometry moved in the
    image, the true texture carried into the moved geometry's map is what the
    moved geometry's unwrap samples (while the same-texel comparison is far off)."""
    import dataclasses

    from tf_face.synthetic.registration import truth_uv_in_pipeline, warp_to_pipeline
    f, img, tr = clean_face
    gy, gx = np.mgrid[0:256, 0:256]
    coords, valid = truth_uv_in_pipeline(tr, tr.fitted(), model, atlas, tr.visible)
    assert valid.sum() > 0.8 * tr.visible.sum()
    shift = np.hypot(coords[..., 0] - gx, coords[..., 1] - gy)[valid]
    assert np.median(shift) < 0.6 and np.percentile(shift, 99) < 1.6, (np.median(shift),
                                                                        np.percentile(shift, 99))
    true_tex = unwrap(img, tr.fitted(), model, atlas)
    moved = dataclasses.replace(tr.fitted(), vertices_image=tr.vertices_image
                                + np.array([3.0, -2.0, 0.0], np.float32))
    moved_tex = unwrap(img, moved, model, atlas)
    coords, valid = truth_uv_in_pipeline(tr, moved, model, atlas, moved_tex.mask)
    shift = np.hypot(coords[..., 0] - gx, coords[..., 1] - gy)[valid]
    assert 1.5 < np.median(shift) < 10.0, np.median(shift)   # a 3.6 px move: ~4.4 texels here
    # inside the true texture's visible region, away from its edge
    inner = valid & (warp_to_pipeline(true_tex.mask.astype(np.float32), coords, valid) > 0.999)
    inner &= ~tr.occlusion & moved_tex.mask
    carried = warp_to_pipeline(true_tex.texture, coords, valid)
    err_carried = np.abs(carried - moved_tex.texture)[inner].mean()
    err_same_texel = np.abs(true_tex.texture - moved_tex.texture)[inner & true_tex.mask].mean()
    assert inner.sum() > 5000
    assert err_carried < 0.02 and err_carried < 0.35 * err_same_texel, (err_carried,
                                                                       err_same_texel)


# ------------------------------------------------------------------ wrinkle variety
def _forehead_rows(model, size=256):
    """Rows of the UV map above the brows (where forehead lines go)."""
    uv = np.asarray(model.uv, np.float64)[np.asarray(model.landmarks68)]
    return slice(0, int((min(uv[17:27, 1]) - 0.02) * size))


def test_wrinkle_variety_leaves_the_rest_of_the_face_alone(model):
    """The variety draws come from a jumped generator: ``rng`` ends in the same
    state at every variety, so a seed gives the same shape, albedo and light;
    only the wrinkles differ. Out-of-range varieties are refused."""
    from tf_face.synthetic.wrinkles import random_displacement
    maps, after = [], []
    for v in (0.0, 0.5, 1.0):
        rng = np.random.default_rng([5, 1])
        maps.append(random_displacement(rng, model, 128, variety=v))
        after.append(rng.random(4))
    assert np.array_equal(after[0], after[1]) and np.array_equal(after[0], after[2])
    assert not np.array_equal(maps[0], maps[2])
    f0 = sample_face(np.random.default_rng(9), model, Difficulty(wrinkle_variety=0.0))
    f1 = sample_face(np.random.default_rng(9), model, Difficulty(wrinkle_variety=1.0))
    assert np.array_equal(f0.albedo, f1.albedo) and np.array_equal(f0.sh, f1.sh)
    assert f0.yaw == f1.yaw and not np.array_equal(f0.displacement, f1.displacement)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            random_displacement(np.random.default_rng(0), model, 64, variety=bad)
    with pytest.raises(ValueError):
        Difficulty(wrinkle_variety=1.5).validate()


def test_wrinkle_variety_makes_families_optional_and_sites_hold_the_template(model):
    """variety 0: every face has forehead lines (the v1-v3 template). variety 1:
    forehead lines on about FAMILY_PROB["forehead"] of the faces (binomial
    bounds, 60 faces), some faces nearly bare. ``wrinkle_sites`` holds the
    template's wrinkles of draws it was not built from, and not the whole map."""
    from tf_face.synthetic.wrinkles import (FAMILY_PROB, random_displacement, wrinkle_mask,
                                            wrinkle_sites)
    rows = _forehead_rows(model, 128)
    n = 60
    with_lines = {0.0: 0, 1.0: 0}
    totals = {0.0: [], 1.0: []}
    for v in with_lines:
        for i in range(n):
            d = random_displacement(np.random.default_rng([21, i]), model, 128, variety=v)
            w = wrinkle_mask(d)
            with_lines[v] += int(w[rows].sum() > 20)
            totals[v].append(int(w.sum()))
    assert with_lines[0.0] == n
    p = FAMILY_PROB["forehead"]
    sd = np.sqrt(n * p * (1 - p))
    assert abs(with_lines[1.0] - n * p) < 4 * sd, with_lines
    assert min(totals[1.0]) < 0.25 * np.median(totals[0.0])     # young / bare faces exist
    sites = wrinkle_sites(128)
    inside = total = 0
    for i in range(8):
        w = wrinkle_mask(random_displacement(np.random.default_rng([33, i]), model, 128,
                                             variety=0.0))
        inside += int((w & sites).sum())
        total += int(w.sum())
    assert total > 0 and inside >= 0.97 * total
    assert sites.mean() < 0.3
    with pytest.raises(ValueError):
        sites[0, 0] = True                                         # read-only


def test_solid_occluders_cover_the_forehead(model, atlas):
    """``solid_occluder_prob``: 0 draws nothing from the face's generator (the
    faces of every earlier dataset stay the same); 1 gives every face a fringe
    or a cap, which covers the forehead (texels above the brows in UV) and
    leaves the mouth and chin alone."""
    from tf_face.synthetic.occluders import SOLID_KINDS, random_solid_occluder
    from tf_face.uv.regions import model_feature_mask
    rng = np.random.default_rng(5)
    state = rng.bit_generator.state
    assert random_solid_occluder(rng, 0.0) == [] and rng.bit_generator.state == state
    base = sample_face(np.random.default_rng(9), model, Difficulty())
    again = sample_face(np.random.default_rng(9), model, Difficulty(solid_occluder_prob=0.0))
    assert base.occluders == again.occluders and base.render_seed == again.render_seed
    with pytest.raises(ValueError, match="solid_occluder_prob"):
        Difficulty(solid_occluder_prob=1.5).validate()
    brows = model_feature_mask(model, 256, ("brows",))
    brow_row = np.nonzero(brows.any(1))[0].min()
    top_row = np.nonzero(atlas.mask.any(1))[0].min()
    lips = model_feature_mask(model, 256, ("lips",))
    kinds = set()
    for seed in range(6):
        d = Difficulty(max_yaw=20.0, occlusion_prob=0.0, solid_occluder_prob=1.0)
        f = sample_face(np.random.default_rng([21, seed]), model, d)
        assert len(f.occluders) == 1 and f.occluders[0]["kind"] in SOLID_KINDS
        kinds.add(f.occluders[0]["kind"])
        _, tr = render_face(f, 256, model=model, atlas=atlas)
        occ = tr.occlusion
        # the upper third of the forehead (UV rows from the atlas top to the brows)
        forehead = tr.visible & (np.arange(256)[:, None] < top_row + (brow_row - top_row) // 3)
        assert occ[forehead].mean() > 0.9, (seed, occ[forehead].mean())
        assert not occ[lips].any()
    assert kinds == set(SOLID_KINDS)
