"""Metrics of the synthetic benchmark (tf_face.eval_metrics) on hand-made inputs,
the benchmark's per-face metric assembly, delighting and tone-group summary on
hand-made faces, and one end-to-end run on one small face (no weights: the
JSON holds exactly the keys of the paths that ran)."""

from __future__ import annotations

import importlib.util
import json
import math
import types
from pathlib import Path

import numpy as np
import pytest

from tf_face import eval_metrics as M


def _random_normals(rng, shape):
    n = rng.normal(size=shape + (3,))
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def _rot_x(deg):
    a = math.radians(deg)
    return np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])


def test_angular_error_identical_is_zero():
    n = _random_normals(np.random.default_rng(0), (8, 8))
    mask = np.ones((8, 8), bool)
    err, count = M.mean_angular_error(n, n, mask)
    assert err == pytest.approx(0.0, abs=1e-5) and count == 64


@pytest.mark.parametrize("deg", [5.0, 30.0, 90.0, 150.0])
def test_angular_error_of_known_rotation(deg):
    # vectors perpendicular to the rotation axis turn by exactly `deg`
    rng = np.random.default_rng(1)
    n = _random_normals(rng, (6, 6))
    n[..., 0] = 0.0
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    rotated = n @ _rot_x(deg).T
    err, _ = M.mean_angular_error(n, rotated * 3.0, np.ones((6, 6), bool))  # length must not matter
    assert err == pytest.approx(deg, abs=1e-6)


def test_light_colour_cast_on_hand_made_lights():
    """White light: no cast; red ambient minus red from below: the texels
    facing down are cast (red below 0.6x the others) and, past the zero, negative;
    texels off the mesh or the mask do not count."""
    from tf_face.sh import SH_K
    normals = np.zeros((2, 3, 3))
    normals[0, :] = (0.0, 0.0, 1.0)                       # facing the camera
    normals[1, 0] = (0.0, -1.0, 0.0)                      # facing down
    normals[1, 1] = (0.0, -0.6, 0.8)
    mask = np.ones((2, 3), bool)                          # [1, 2] has no normal
    white = np.zeros((9, 3))
    white[0] = 1.0 / SH_K[0]
    assert M.light_colour_cast(normals, white, mask) == (0.0, 0.0)
    tinted = white.copy()
    tinted[1, 0] = 1.5 / SH_K[1]                          # red: 1 + 1.5 y
    e_red = 1.0 + 1.5 * normals[..., 1]                   # -0.5 and 0.1 below
    cast, negative = M.light_colour_cast(normals, tinted, mask)
    assert e_red[1, 0] < 0 < e_red[1, 1] < 0.6
    assert cast == pytest.approx(2 / 5) and negative == pytest.approx(1 / 5)
    mask[1, 0] = False
    assert M.light_colour_cast(normals, tinted, mask) == (pytest.approx(1 / 4), 0.0)
    assert all(math.isnan(v) for v in M.light_colour_cast(normals, tinted, np.zeros((2, 3), bool)))


def test_angular_error_skips_zero_vectors_and_masked_texels():
    a = np.zeros((2, 2, 3))
    a[..., 2] = 1.0
    b = a.copy()
    b[0, 0] = (1.0, 0.0, 0.0)        # 90 deg, masked out below
    b[0, 1] = 0.0                    # off the mesh: not counted
    mask = np.array([[False, True], [True, True]])
    err, count = M.mean_angular_error(a, b, mask)
    assert count == 2 and err == pytest.approx(0.0, abs=1e-6)
    err, count = M.mean_angular_error(a, b, np.ones((2, 2), bool))
    assert count == 3 and err == pytest.approx(30.0)


def test_albedo_mae():
    rng = np.random.default_rng(2)
    truth = rng.uniform(0.1, 0.8, (16, 16, 3))
    mask = rng.uniform(size=(16, 16)) > 0.5
    assert M.masked_mae(truth, truth, mask) == (0.0, int(mask.sum()))
    err, n = M.masked_mae(truth + 0.1, truth, mask)
    assert err == pytest.approx(0.1) and n == int(mask.sum())
    # errors outside the mask do not count
    pred = truth.copy()
    pred[~mask] += 5.0
    assert M.masked_mae(pred, truth, mask)[0] == pytest.approx(0.0)
    err, n = M.masked_mae(truth, truth, np.zeros((16, 16), bool))
    assert math.isnan(err) and n == 0


def test_visibility_split_counts():
    atlas = np.zeros((4, 4), bool)
    atlas[:, :3] = True                      # 12 atlas texels
    seen = np.zeros((4, 4), bool)
    seen[:2, :] = True                       # rows 0-1 visible to the pipeline (6 in the atlas)
    occ = np.zeros((4, 4), bool)
    occ[0, 0] = occ[3, 0] = True             # one visible texel occluded, one already hidden
    vis, hid = M.visibility_split(seen, occ, atlas)
    assert vis.sum() == 5 and hid.sum() == 7
    assert not (vis & hid).any() and ((vis | hid) == atlas).all()
    assert not vis[0, 0] and hid[0, 0] and not vis[:, 3].any() and not hid[:, 3].any()


def test_sh_errors():
    rng = np.random.default_rng(3)
    sh = rng.normal(size=(9, 3))
    assert M.sh_rms(sh, sh) == 0.0
    assert M.sh_rms(sh + 0.2, sh) == pytest.approx(0.2)
    # a pure rescaling is invisible to the scale-invariant variant, not to the raw one
    assert M.sh_scale_invariant_rms(2.5 * sh, sh) == pytest.approx(0.0, abs=1e-12)
    assert M.sh_rms(2.5 * sh, sh) == pytest.approx(1.5 * np.sqrt(np.mean(sh ** 2)))
    assert M.sh_relative_error(2.5 * sh, sh) == pytest.approx(1.5)
    other = rng.normal(size=(9, 3))
    assert M.sh_scale_invariant_rms(other, sh) <= M.sh_rms(other, sh) + 1e-12


def test_exposure_error_is_the_front_irradiance_ratio():
    """Analytic cases: an ambient light scaled by 1.1 is 10% too bright; a
    term along the view axis adds 2/3 of its peak on average over the face's
    disc of normals (checked against a dense sample of the disc); a term
    along x (zero mean over the disc) leaves the exposure as it is."""
    from tf_face.sh import SH_K
    ambient = np.zeros((9, 3))
    ambient[0] = 1.0 / SH_K[0]                    # irradiance 1 on every normal
    assert M.exposure_error(1.1 * ambient, ambient) == pytest.approx(0.1)
    assert M.exposure_error(0.8 * ambient, ambient) == pytest.approx(0.2)
    frontal = ambient.copy()
    frontal[2] = 0.3 / SH_K[1]                    # + 0.3 z: the disc's mean z is 2/3
    assert M.exposure_error(ambient, frontal) == pytest.approx(abs(1.0 / 1.2 - 1.0))
    sideways = ambient.copy()
    sideways[3] = 0.5 / SH_K[1]                   # + 0.5 x: as bright on average
    assert M.exposure_error(sideways, ambient) == pytest.approx(0.0, abs=1e-12)
    # the mean over a dense uniform sample of the disc's normals agrees
    from tf_face.sh import sh_basis_np
    g = np.random.default_rng(0).uniform(-1, 1, (200000, 2))
    g = g[np.sum(g * g, 1) < 1]
    n = np.concatenate([g, np.sqrt(1 - np.sum(g * g, 1, keepdims=True))], 1)
    e = (sh_basis_np(n) @ frontal).mean()
    assert e == pytest.approx(1.2, rel=2e-3)


def test_nanmean():
    assert M.nanmean([1.0, float("nan"), 3.0, None]) == 2.0
    assert math.isnan(M.nanmean([float("nan")]))


def _rot(axis, deg):
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def _min_rotation(b):
    """The minimal rotation taking +z to the unit vector b (Rodrigues)."""
    z = np.array([0.0, 0.0, 1.0])
    k = np.cross(z, b)
    s, c = np.linalg.norm(k), float(b @ z)
    if s < 1e-12:
        return np.eye(3)
    k /= s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def test_relative_to_base_undoes_the_base_frame():
    rng = np.random.default_rng(5)
    bases = _random_normals(rng, (20,))
    bases[:, 2] = np.abs(bases[:, 2]) + 0.1          # camera-facing, as base normals are
    bases /= np.linalg.norm(bases, axis=-1, keepdims=True)
    tilt = np.array([0.0, math.sin(math.radians(12)), math.cos(math.radians(12))])
    detail = np.stack([_min_rotation(b) @ tilt for b in bases])
    rel = M.relative_to_base(detail * 2.0, bases * 0.5)          # lengths must not matter
    np.testing.assert_allclose(rel, np.broadcast_to(tilt, rel.shape), atol=1e-9)
    # a detail normal equal to its base is +z whatever the base
    np.testing.assert_allclose(M.relative_to_base(bases, bases),
                               np.broadcast_to([0, 0, 1.0], bases.shape), atol=1e-9)
    # zero vectors stay zero (not on the mesh)
    assert not M.relative_to_base(np.zeros(3), bases[0]).any()
    assert not M.relative_to_base(bases[0], np.zeros(3)).any()


def test_relative_detail_error_ignores_the_base_misalignment():
    rng = np.random.default_rng(6)
    shape = (5, 4)
    true_base = np.zeros(shape + (3,))
    true_base[..., 2] = 1.0
    pred_base = true_base @ _rot("y", 25.0).T                 # a base mesh 25 deg off
    tilt_a = np.array([0.0, math.sin(math.radians(10)), math.cos(math.radians(10))])
    tilt_b = np.array([math.sin(math.radians(10)), 0.0, math.cos(math.radians(10))])
    mask = np.ones(shape, bool)
    true_detail = np.broadcast_to(tilt_a, true_base.shape)
    same = np.broadcast_to(_rot("y", 25.0) @ tilt_a, true_base.shape)
    err, n = M.relative_detail_error(same, pred_base, true_detail, true_base, mask)
    assert err == pytest.approx(0.0, abs=1e-6) and n == 20
    # absolute angles see the base's 25 deg, relative ones do not
    in_plane = np.broadcast_to(tilt_b, true_base.shape)
    moved = np.broadcast_to(_rot("y", 25.0) @ tilt_b, true_base.shape)
    assert M.mean_angular_error(moved, in_plane, mask)[0] == pytest.approx(25.0, abs=1e-6)
    assert M.relative_detail_error(moved, pred_base, in_plane, true_base, mask)[0] == \
        pytest.approx(0.0, abs=1e-6)
    # "no detail" (pred detail = its base) scores the size of the true detail: 10 deg
    err, _ = M.relative_detail_error(pred_base, pred_base, true_detail, true_base, mask)
    assert err == pytest.approx(10.0, abs=1e-6)
    # a tilt of 10 deg about another axis: angle between the two tilts
    other = np.broadcast_to(_rot("y", 25.0) @ tilt_b, true_base.shape)
    err, _ = M.relative_detail_error(other, pred_base, true_detail, true_base, mask)
    assert err == pytest.approx(math.degrees(math.acos(tilt_a @ tilt_b)), abs=1e-6)
    # masked-out texels do not count
    m2 = np.zeros(shape, bool)
    m2[0, :2] = True
    assert M.relative_detail_error(other, pred_base, true_detail, true_base, m2)[1] == 2
    del rng


def test_group_means_and_bias():
    vals = [1.0, 3.0, 10.0, None, float("nan"), 4.0, 6.0]
    groups = ["dark", "dark", "light", "light", "tan", "tan", None]
    means = M.group_means(vals, groups, order=("light", "tan", "dark"))
    assert list(means) == ["light", "tan", "dark"]       # "tan" has one finite value
    assert means == {"light": 10.0, "tan": 4.0, "dark": 2.0}
    assert M.group_bias(means) == pytest.approx(8.0)
    assert M.group_bias({"dark": 2.0}) is None            # one group: no gap to measure
    assert M.group_bias({}) is None
    with pytest.raises(ValueError):
        M.group_means([1.0], ["a", "b"])


# ------------------------------------------------------------------ the benchmark module
def _bench():
    path = Path(__file__).resolve().parents[1] / "eval" / "synthetic_benchmark.py"
    spec = importlib.util.spec_from_file_location("synthetic_benchmark_under_test", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def _hand_made_face(rng, s=12):
    atlas = np.zeros((s, s), bool)
    atlas[2:10, 2:10] = True
    skin_colour = np.array([0.45, 0.30, 0.18])           # linear RGB, ITA about +30
    albedo = skin_colour * rng.uniform(0.8, 1.2, (s, s, 3)) * atlas[..., None]
    base = np.zeros((s, s, 3))
    base[..., 2] = 1.0
    base *= atlas[..., None]
    detail = (base @ _rot_x(10.0).T) * atlas[..., None]
    disp = np.zeros((s, s))
    disp[4:6, 2:10] = -0.01                   # a wrinkle band (16 texels)
    seen = np.zeros((s, s), bool)
    seen[:, :6] = True
    occ = np.zeros((s, s), bool)
    occ[3, 3] = True
    sh = rng.normal(size=(9, 3))
    truth = types.SimpleNamespace(albedo=albedo, prior_albedo=albedo.copy(), normals=detail,
                                  base_normals=base, sh=sh, atlas_mask=atlas, occlusion=occ,
                                  displacement=disp)
    sample = types.SimpleNamespace(mask=seen, normals=base)
    skin = np.zeros((s, s), bool)
    skin[3:8, 3:8] = True
    return truth, sample, skin


def test_face_metrics_on_hand_made_face():
    """face_metrics wires the masks and maps correctly (perfect predictions -> 0;
    the oracle PCA is exact when the truth is its prior draw), and only the
    paths in ``pred`` give keys."""
    bench = _bench()
    rng = np.random.default_rng(4)
    truth, sample, skin = _hand_made_face(rng)
    albedo, detail, sh = truth.albedo, truth.normals, truth.sh
    target = rng.uniform(size=albedo.shape)
    pred = {"albedo": {"pca": albedo + 0.1, "fan": albedo.copy(), "mean": albedo - 0.1,
                       "oracle_pca": truth.prior_albedo, "fit": albedo * 1.5},
            "detail": {"none": sample.normals, "drn": detail},
            "sh": {"pca": sh.copy()},
            "rerender": {"": (target.copy(), target), "_base": (target + 0.05, target)}}
    sites = np.zeros_like(truth.atlas_mask)
    sites[2:5, 2:10] = True          # rows 2-3 are 2 texels from the wrinkle band (rows 4-5)
    sites[8:10, 2:10] = True         # 2 texels clear of it: bare
    m = bench.face_metrics(truth, sample, pred, skin_mask=skin, sites=sites)
    assert m["texels_atlas"] == 64 and m["texels_visible"] == 31 and m["texels_hidden"] == 33
    assert m["texels_wrinkle"] == 16 and m["texels_bare"] == 16
    assert m["albedo_error_pca_visible"] == pytest.approx(0.1)
    assert m["albedo_error_pca_hidden"] == pytest.approx(0.1)
    assert m["albedo_error_fan_visible"] == pytest.approx(0.0)
    assert m["albedo_error_fan_hidden"] == pytest.approx(0.0)
    assert m["albedo_error_mean_visible"] == pytest.approx(0.1)
    # hidden = 32 texels the geometry hides + 1 occluded texel (3, 3)
    assert m["albedo_error_fit_hidden_occluded"] == pytest.approx(0.5 * albedo[3, 3].mean())
    unseen = truth.atlas_mask & ~sample.mask
    assert m["albedo_error_fit_hidden_unseen"] == pytest.approx(0.5 * albedo[unseen].mean())
    assert m["albedo_error_fit_hidden"] == pytest.approx(
        (0.5 * albedo[unseen].sum() + 0.5 * albedo[3, 3].sum()) / (33 * 3))
    assert m["albedo_error_oracle_pca_visible"] == 0.0 and m["albedo_error_oracle_pca_hidden"] == 0.0
    # 1.5 x the truth: off in absolute terms, exact up to the global gain
    assert m["albedo_error_fit_visible"] > 0.05
    assert m["albedo_error_fit_visible_gain_invariant"] == pytest.approx(0.0, abs=1e-9)
    assert m["ita_error_oracle_pca"] == 0.0 and m["ita_error_fan"] == 0.0
    from tf_face.skin_tone import skin_ita
    assert m["ita_truth"] == pytest.approx(skin_ita(albedo, skin))
    assert m["ita_fit"] == pytest.approx(skin_ita(albedo * 1.5, skin))
    assert m["ita_error_fit"] == pytest.approx(m["ita_fit"] - m["ita_truth"]) and m["ita_error_fit"] > 5
    assert m["ita_error_mean"] == pytest.approx(m["ita_truth"] - m["ita_mean"]) and m["ita_error_mean"] > 5
    assert m["skin_group"] == "intermediate"                          # from ita_truth
    assert m["normal_error_base_deg"] == pytest.approx(10.0)
    assert m["normal_error_base_wrinkle_deg"] == pytest.approx(10.0)
    assert m["normal_error_drn_deg"] == pytest.approx(0.0, abs=1e-5)
    assert m["normal_error_truth_base_deg"] == pytest.approx(10.0)
    assert m["detail_error_none_deg"] == pytest.approx(10.0)
    assert m["detail_error_none_wrinkle_deg"] == pytest.approx(10.0)
    assert m["detail_error_drn_deg"] == pytest.approx(0.0, abs=1e-5)
    assert m["sh_error"] == 0.0 and m["sh_error_scale_invariant"] == pytest.approx(0.0)
    assert m["rerender_error"] == 0.0 and m["rerender_error_base"] == pytest.approx(0.05)
    # exactly the keys of what pred holds (no pca_fit, delight, fit detail, fit SH...)
    albedo_ms = ("mean", "pca", "oracle_pca", "fan", "fit")
    expected = {f"albedo_error_{a}_{p}" for a in albedo_ms
                for p in ("visible", "hidden", "visible_gain_invariant", "hidden_unseen",
                          "hidden_occluded")}
    expected |= {f"ita_{a}" for a in albedo_ms} | {f"ita_error_{a}" for a in albedo_ms}
    regions = ("", "_wrinkle", "_visible", "_bare", "_wrinkle_visible")
    expected |= {f"normal_error_{b}{r}_deg" for b in ("base", "truth_base", "drn") for r in regions}
    expected |= {f"detail_error_{d}{r}_deg" for d in ("none", "drn") for r in regions}
    expected |= {"sh_error", "sh_error_scale_invariant", "sh_error_relative", "exposure_error",
                 "rerender_error",
                 "rerender_error_base", "ita_truth", "skin_group"}
    expected |= set(bench.COUNT_KEYS) - {"texels_registered",       # no registration given
                                         "texels_features_registered"}
    assert set(m) == expected
    summary = bench.summarize([m, m], [{"face": 2, "error": "x"}], 3)
    assert summary["faces_evaluated"] == 2 and summary["num_failures"] == 1
    assert summary["texels_visible"] == 62
    assert summary["albedo_error_pca_visible"] == pytest.approx(0.1)
    assert "albedo_error_pca_fit_visible" not in summary and "detail_error_fit_deg" not in summary
    assert bench.json_safe({"a": float("nan"), "b": [1.0, float("inf")], "c": "x",
                            "d": np.float32(2.0)}) == {"a": None, "b": [1.0, None], "c": "x",
                                                       "d": 2.0}


def test_bare_sites_score_a_template_worse_than_no_detail():
    """``_bare``: the template's wrinkle sites where this face has no wrinkle.
    A method that draws grooves at every site scores worse than "none" there,
    and as well as "none" where the face's own wrinkle is."""
    bench = _bench()
    truth, sample, skin = _hand_made_face(np.random.default_rng(5))
    atlas = truth.atlas_mask
    band = np.zeros_like(atlas)
    band[4:6, 2:10] = True                       # the face's wrinkle (disp < 0 there)
    tilted = (truth.base_normals @ _rot_x(10.0).T) * atlas[..., None]
    truth.normals = np.where(band[..., None], tilted, truth.base_normals)
    sites = np.zeros_like(atlas)
    sites[4:6, 2:10] = True                      # a site with the face's wrinkle
    sites[8:10, 2:10] = True                     # a site without one: bare
    template = np.where(sites[..., None], tilted, truth.base_normals)
    pred = {"detail": {"none": sample.normals, "drn": template}}
    m = bench.face_metrics(truth, sample, pred, skin_mask=skin, sites=sites)
    assert m["texels_bare"] == 16
    assert m["detail_error_none_bare_deg"] == pytest.approx(0.0, abs=1e-5)
    assert m["detail_error_drn_bare_deg"] == pytest.approx(10.0)
    assert m["detail_error_drn_wrinkle_deg"] == pytest.approx(0.0, abs=1e-5)
    assert m["detail_error_none_wrinkle_deg"] == pytest.approx(10.0)


def test_registered_metrics_compare_with_the_carried_truth():
    """With the identity registration the registered keys equal the same-texel
    ones on visible texels; with the truth carried one texel along u, a
    prediction shifted the same way scores 0 and the unshifted truth does not."""
    bench = _bench()
    truth, sample, skin = _hand_made_face(np.random.default_rng(4))
    s = truth.atlas_mask.shape[0]
    gy, gx = np.mgrid[0:s, 0:s].astype(np.float32)
    vis = truth.atlas_mask & sample.mask & ~truth.occlusion
    pred = {"albedo": {"pca": truth.albedo + 0.1, "fan": truth.albedo.copy(),
                       "oracle_pca": truth.prior_albedo},
            "detail": {"none": sample.normals, "drn": truth.normals}}
    ident = np.stack([gx, gy], -1)
    feats = np.zeros_like(truth.atlas_mask)
    feats[6:8, 2:5] = True                          # an "eye": 6 texels, all visible
    pred["albedo"]["mean"] = np.where(feats[..., None], truth.albedo + 0.3, truth.albedo)
    m = bench.face_metrics(truth, sample, pred, skin_mask=skin,
                           registration=(ident, truth.atlas_mask.copy()), features=feats)
    assert m["texels_registered"] == vis.sum() and m["registration_shift_texels"] == 0.0
    assert m["texels_features_registered"] == 6
    assert m["albedo_error_mean_features_registered"] == pytest.approx(0.3)
    assert m["albedo_error_mean_visible_registered"] == pytest.approx(0.3 * 6 / vis.sum())
    assert m["albedo_error_fan_features_registered"] == pytest.approx(0.0, abs=1e-6)
    assert m["albedo_error_pca_visible_registered"] == pytest.approx(0.1)
    assert m["albedo_error_fan_visible_registered"] == pytest.approx(0.0, abs=1e-6)
    assert "albedo_error_oracle_pca_visible_registered" not in m
    assert m["detail_error_none_registered_deg"] == pytest.approx(10.0, abs=1e-3)
    assert m["detail_error_drn_registered_deg"] == pytest.approx(0.0, abs=1e-3)
    assert m["detail_error_drn_wrinkle_registered_deg"] == pytest.approx(0.0, abs=1e-3)
    # the pipeline's texel (r, c) sees the truth's (r, c + 1)
    shifted = np.stack([gx + 1, gy], -1)
    valid = truth.atlas_mask & np.roll(truth.atlas_mask, -1, 1)
    albedo_seen = np.roll(truth.albedo, -1, 1)
    pred = {"albedo": {"fan": albedo_seen, "pca": truth.albedo.copy()}}
    m = bench.face_metrics(truth, sample, pred, skin_mask=skin, registration=(shifted, valid))
    assert m["registration_shift_texels"] == pytest.approx(1.0)
    assert m["albedo_error_fan_visible_registered"] == pytest.approx(0.0, abs=1e-6)
    assert m["albedo_error_pca_visible_registered"] > 0.01


def test_carried_truth_is_the_same_texel_ceiling(monkeypatch):
    """The carried ceiling: with the identity registration the carried truth
    is exact (0 error; at the PCA fit's exposure, the exposure's error); with
    the truth carried one texel along u it scores what the shifted truth
    scores at the same texel, and texels that carry nothing take the PCA fit
    (albedo) or no detail."""
    bench = _bench()
    truth, sample, skin = _hand_made_face(np.random.default_rng(6))
    s = truth.atlas_mask.shape[0]
    monkeypatch.setattr(bench, "CARRIED_BLUR", 256.0 / s)     # 1 texel at this size
    gy, gx = np.mgrid[0:s, 0:s].astype(np.float32)
    vis = truth.atlas_mask & sample.mask & ~truth.occlusion
    wr = truth.atlas_mask & (truth.displacement < 0)
    pca_fit = truth.albedo * np.array([1.2, 1.2, 0.9])
    pred = {"albedo": {"pca_fit": pca_fit}, "detail": {"none": sample.normals}}
    ident = np.stack([gx, gy], -1)
    m = bench.face_metrics(truth, sample, pred, skin_mask=skin,
                           registration=(ident, truth.atlas_mask.copy()))
    assert m["albedo_error_carried_visible"] == pytest.approx(0.0, abs=1e-6)
    assert m["albedo_error_carried_visible_gain_invariant"] == pytest.approx(0.0, abs=1e-6)
    want = np.abs(pca_fit - truth.albedo)[vis].mean()
    assert m["albedo_error_carried_exposed_visible"] == pytest.approx(want, rel=1e-5)
    # hidden texels carry nothing (no detail: the truth's 10 deg tilt)
    atlas = truth.atlas_mask
    assert m["detail_error_carried_deg"] == pytest.approx(
        10.0 * (atlas & ~vis).sum() / atlas.sum(), rel=1e-4)
    assert m["detail_error_carried_wrinkle_visible_deg"] == pytest.approx(0.0, abs=1e-3)
    assert m["detail_error_none_wrinkle_visible_deg"] == pytest.approx(10.0)
    # the hedge: a uniform tilt survives the blur; the random albedo does not
    assert m["detail_error_carried_blurred_wrinkle_visible_deg"] == pytest.approx(0.0, abs=1e-3)
    assert m["albedo_error_carried_blurred_visible_gain_invariant"] > 0.005
    # shifted by one texel: the carried albedo is the truth's right neighbour
    shifted = np.stack([gx + 1, gy], -1)
    valid = truth.atlas_mask & np.roll(truth.atlas_mask, -1, 1)
    m = bench.face_metrics(truth, sample, pred, skin_mask=skin, registration=(shifted, valid))
    ok = vis & valid
    carried = np.where(ok[..., None], np.roll(truth.albedo, -1, 1), pca_fit)
    assert m["albedo_error_carried_visible"] == pytest.approx(
        np.abs(carried - truth.albedo)[vis].mean(), rel=1e-5)
    assert m["albedo_error_carried_visible"] > 0.005
    # detail: every texel has the same tilt, so wherever it carries it is exact
    # and only the texels that carry nothing (no detail: 10 deg) cost
    lost = (truth.atlas_mask & ~ok).sum()
    assert m["detail_error_carried_deg"] == pytest.approx(10.0 * lost / truth.atlas_mask.sum(),
                                                          rel=1e-4)
    assert m["detail_error_carried_wrinkle_deg"] == pytest.approx(
        10.0 * (wr & ~ok).sum() / wr.sum(), rel=1e-4)
    # without a PCA fit there is no albedo ceiling (nothing to fill with)
    m = bench.face_metrics(truth, sample, {"detail": {"none": sample.normals}}, skin_mask=skin,
                           registration=(ident, truth.atlas_mask.copy()))
    assert "albedo_error_carried_visible" not in m and "detail_error_carried_deg" in m
    m = bench.face_metrics(truth, sample, {"albedo": {"pca_fit": pca_fit}}, skin_mask=skin,
                           registration=(ident, truth.atlas_mask.copy()))
    assert "albedo_error_carried_visible" in m and "detail_error_carried_deg" not in m


def test_channel_gain():
    from tf_face import eval_metrics as M
    t = np.random.default_rng(0).uniform(0.1, 0.5, (4, 4, 3))
    m = np.ones((4, 4), bool)
    np.testing.assert_allclose(M.channel_gain(t * [2.0, 1.0, 0.5], t, m), [2.0, 1.0, 0.5],
                               rtol=1e-6)
    np.testing.assert_array_equal(M.channel_gain(t, t, np.zeros((4, 4), bool)), [1, 1, 1])


def test_summary_tone_groups_and_bias():
    """ita_error_<m> = mean over faces, per-group means, ita_bias = max - min of
    those; ms_per_photo_* are medians; no bias with a single group."""
    bench = _bench()
    faces = []
    for group, err_fit, err_mean, ms in (("dark", 10.0, 30.0, 900.0), ("dark", 6.0, 50.0, 100.0),
                                         ("light", 2.0, 4.0, 110.0), ("tan", 3.0, 20.0, 120.0)):
        faces.append({"skin_group": group, "ita_error_fit": err_fit, "ita_error_mean": err_mean,
                      "ms_per_photo_fit": ms, "texels_visible": 1, "texels_hidden": 1,
                      "texels_atlas": 2, "texels_wrinkle": 0})
    s = bench.summarize(faces, [], 4)
    assert s["ita_error_fit"] == pytest.approx(21.0 / 4)
    assert s["ita_error_by_group"]["fit"] == {"light": 2.0, "tan": 3.0, "dark": 8.0}
    assert list(s["faces_by_group"]) == ["light", "tan", "dark"]   # skin_tone.GROUP_NAMES order
    assert s["faces_by_group"]["dark"] == 2
    assert s["ita_bias_fit"] == pytest.approx(8.0 - 2.0)
    assert s["ita_bias_mean"] == pytest.approx(40.0 - 4.0)
    assert s["ms_per_photo_fit"] == pytest.approx(115.0)           # median, not mean
    assert "ita_bias_pca" not in s and "pca" not in s["ita_error_by_group"]
    one = bench.summarize(faces[:2], [], 2)
    assert "ita_bias_fit" not in one and one["ita_error_by_group"]["fit"] == {"dark": 8.0}
    table = bench.format_table(s)
    assert "bias" in table and "dark" in table


def test_delight_recovers_albedo_and_mirrors_hidden_texels():
    from tf_face.render import ambient_sh
    bench = _bench()
    s = 8
    atlas = np.zeros((s, s), bool)
    atlas[1:7, :] = True
    normals = np.zeros((s, s, 3), np.float32)
    normals[..., 2] = 1.0
    normals[..., 0] = np.linspace(-0.5, 0.5, s)[None, :]
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    sh = ambient_sh(1, 0.6)[0].astype(np.float32)
    sh[3, :] += 0.2
    rng = np.random.default_rng(7)
    albedo = rng.uniform(0.1, 0.8, (s, s, 3)).astype(np.float32)
    shading = bench.shading_map(normals, sh)
    texture = albedo * shading
    visible = np.zeros((s, s), bool)
    visible[1:7, :5] = True                     # columns 5..7 hidden; mirrors 2..0 visible
    visible[1, 0] = False                       # (1, 0) and (1, 7): neither mirror visible
    fallback = np.full((s, s, 3), 0.33, np.float32)
    out = bench.delight(texture, visible, normals, sh, fallback, atlas)
    np.testing.assert_allclose(out[visible], albedo[visible], atol=1e-5)
    np.testing.assert_allclose(out[2:7, 7], out[2:7, 0], atol=0)       # mirror of the delit map
    np.testing.assert_allclose(out[2:7, 5:], albedo[2:7, 2::-1], atol=1e-5)
    np.testing.assert_allclose(out[1, 7], 0.33, atol=1e-6)             # no mirror: fallback
    np.testing.assert_allclose(out[1, 0], 0.33, atol=1e-6)
    assert not out[~atlas].any()
    # with the wrong light the delit albedo is off by the shading ratio
    wrong = bench.delight(texture, visible, normals, sh * 2.0, fallback, atlas)
    np.testing.assert_allclose(wrong[visible], albedo[visible] / 2.0, atol=1e-5)


def test_resolve_paths():
    from tf_face.errors import TfFaceError
    bench = _bench()
    assert bench.resolve_paths(None, False) == ("mean", "pca_fit", "oracle_pca", "delight",
                                                "delight_oracle_light", "fit", "none")
    assert bench.resolve_paths("", True, True, True) == bench.PATHS
    assert "fan" not in bench.resolve_paths(None, True, False, True)
    assert bench.resolve_paths("fit, mean", False) == ("mean", "fit")
    with pytest.raises(TfFaceError, match="weights_dir"):
        bench.resolve_paths("pca,fit", False)
    with pytest.raises(TfFaceError, match="fan.keras"):
        bench.resolve_paths("fan", True, False, False)
    with pytest.raises(TfFaceError, match="unknown"):
        bench.resolve_paths("fit,albedo", False)
    d = bench.make_difficulty(max_yaw=20, light_harshness=0.0)
    assert d.max_yaw == 20.0 and d.light_harshness == 0.0 and d.occlusion_prob == 0.3
    with pytest.raises(ValueError):
        bench.make_difficulty(max_yaw=-1)
    with pytest.raises(ValueError, match="unknown"):
        bench.make_difficulty(yaw=3)


def _occluded(r) -> bool:
    """Whether some face of ``r`` had occluded texels (then every path has the key)."""
    return any(k.endswith("_hidden_occluded") for k in r)


def _expected_keys(paths, occluded=False):
    """``occluded``: the faces have occluded texels (``*_hidden_occluded``)."""
    albedo = [m for m in paths if m in ("mean", "pca", "pca_fit", "oracle_pca", "delight",
                                        "delight_oracle_light", "fan", "fit", "net_fit")]
    keys = {f"albedo_error_{m}_{p}" for m in albedo
            for p in ("visible", "hidden", "visible_gain_invariant", "hidden_unseen")
            + (("hidden_occluded",) if occluded else ())}
    keys |= {f"ita_error_{m}" for m in albedo}
    # against the truth carried into the pipeline's UV map (not the prior draw)
    keys |= {f"albedo_error_{m}_{r}_registered" for m in albedo if m != "oracle_pca"
             for r in ("visible", "features")}
    keys.add("registration_shift_texels")
    # the carried truth's ceiling (albedo: where the PCA fit ran, to fill with)
    if any(d in paths for d in ("none", "drn", "fit", "net_fit")):
        keys |= {f"detail_error_{c}{r}_deg" for c in ("carried", "carried_blurred")
                 for r in ("", "_wrinkle", "_wrinkle_visible")}
    if "pca_fit" in albedo:
        keys |= {"albedo_error_carried_visible", "albedo_error_carried_visible_gain_invariant",
                 "albedo_error_carried_exposed_visible",
                 "albedo_error_carried_blurred_visible_gain_invariant"}
    regions = ("", "_wrinkle", "_visible", "_bare", "_wrinkle_visible")
    keys |= {f"normal_error_{b}{r}_deg" for b in ("base", "truth_base") for r in regions}
    for d in ("none", "drn", "fit", "net_fit"):
        if d in paths:
            keys |= {f"detail_error_{d}{r}_deg" for r in regions}
            keys |= {f"detail_error_{d}{r}_registered_deg" for r in ("", "_wrinkle")}
            if d != "none":
                keys |= {f"normal_error_{d}{r}_deg" for r in regions}
    keys.add("ms_per_photo_geometry")
    if any(p in paths for p in ("pca_fit", "delight", "delight_oracle_light", "fit")):
        keys |= {"sh_error_fit", "sh_error_fit_scale_invariant", "sh_error_fit_relative",
                 "exposure_error_fit", "ms_per_photo_pca_fit"}
    if any(p in paths for p in ("pca_fit", "delight", "delight_oracle_light", "fit", "net_fit")):
        keys.add("ms_per_photo_fit_align")     # the fit's pose refinement (on by default)
    if "delight" in paths:
        keys.add("ms_per_photo_delight")
    if "net_fit" in paths:
        keys.add("ms_per_photo_net_fit")
    if "fit" in paths:
        keys |= {"rerender_error_fit", "ms_per_photo_fit", "ms_per_photo_fit_light_albedo",
                 "ms_per_photo_fit_displacement", "ms_per_photo_fit_albedo_map"}
    return keys


def _metric_keys(result):
    return {k for k in result if k.startswith(("albedo_error_", "ita_error_", "ita_bias_",
                                               "detail_error_", "normal_error_", "sh_error",
                                               "exposure_error", "rerender_error",
                                               "ms_per_photo_", "registration_"))} - {
        "ita_error_by_group"}


@pytest.fixture(scope="module")
def fast_fit_options():
    from tf_face.appearance.fit import AppearanceOptions
    from tf_face.appearance.maps import AlbedoMapOptions, DisplacementOptions
    return AppearanceOptions(albedo_map=AlbedoMapOptions(steps=2),
                             displacement=DisplacementOptions(steps=2))


def test_end_to_end_without_weights(tmp_path, fast_fit_options):
    """One small face, every path that runs without weights: exactly those
    keys in the JSON (no network keys, no nulls), strict JSON, sane values,
    the contact sheet."""
    bench = _bench()
    r = bench.run_benchmark(None, num_faces=1, seed=1000, image_size=256,
                            out_dir=tmp_path, progress=False, skin_tone="dark",
                            fit_options=fast_fit_options)
    assert r["faces_evaluated"] == 1, r["failures"]
    assert r["num_appearance_failures"] == 0, r["appearance_failures"]
    paths = ("mean", "pca_fit", "oracle_pca", "delight", "delight_oracle_light", "fit", "none")
    assert tuple(r["paths"]) == paths
    assert _metric_keys(r) == _expected_keys(paths, _occluded(r))   # one group: no ita_bias_*
    assert set(r["ita_error_by_group"]) == {"mean", "pca_fit", "oracle_pca", "delight",
                                            "delight_oracle_light", "fit"}
    assert r["faces_by_group"] == {"dark": 1} and r["per_face"][0]["skin_group"] == "dark"
    text = json.dumps(bench.json_safe(r), allow_nan=False)
    assert "null" not in json.dumps({k: r[k] for k in _metric_keys(r)}, allow_nan=False)
    assert json.loads(text)["settings"]["difficulty"]["max_yaw"] == 60.0
    # the fit's settings travel with the numbers
    assert json.loads(text)["settings"]["fit_options"]["albedo_map"]["steps"] == 2
    # the oracle PCA is the truth minus its procedural detail: far better than the prior mean
    assert r["albedo_error_oracle_pca_visible"] < 0.5 * r["albedo_error_mean_visible"]
    assert r["ita_error_oracle_pca"] < 5.0
    # "no detail" scores the true detail signal (truth base vs truth detail)
    assert r["detail_error_none_deg"] == pytest.approx(r["normal_error_truth_base_deg"], abs=1e-3)
    assert all(np.isfinite(r[k]) for k in _metric_keys(r))
    sheet = Path(r["sheet"])
    import cv2
    img = cv2.imread(str(sheet))
    assert img.shape[1] == 8 * 256 and img.shape[0] == 28 + 256
    # FAN and DRN tiles are blank (not run); the fit tiles are not
    assert img[28:, 3 * 256:4 * 256].max() == 0 and img[28:, 6 * 256:7 * 256].max() == 0
    assert img[28:, 4 * 256:5 * 256].max() > 0 and img[28:, 7 * 256:8 * 256].max() > 0
    table = bench.format_table(r)
    assert "PCA fit" in table and "B-Net" not in table
    assert f"light fit {r['exposure_error_fit']:.3f}" in table


def test_end_to_end_selected_paths(fast_fit_options):
    """--appearance picks the paths; a path that did not run has no key; a
    network path without weights is a one-line error."""
    from tf_face.errors import TfFaceError
    bench = _bench()
    r = bench.run_benchmark(None, num_faces=2, seed=1000, image_size=256, progress=False,
                            appearance="oracle_pca,delight_oracle_light",
                            difficulty=bench.make_difficulty(occlusion_prob=0.0, max_yaw=20))
    assert r["faces_evaluated"] == 2
    paths = ("oracle_pca", "delight_oracle_light")
    assert _metric_keys(r) - {k for k in _metric_keys(r) if k.startswith("ita_bias_")} \
        == _expected_keys(paths, _occluded(r))
    assert not any(k.startswith(("albedo_error_pca_fit", "albedo_error_mean", "albedo_error_fit",
                                 "detail_error_")) for k in r)
    assert r["settings"]["difficulty"]["occlusion_prob"] == 0.0
    with pytest.raises(TfFaceError, match="weights_dir"):
        bench.run_benchmark(None, num_faces=1, appearance="drn", progress=False)
    with pytest.raises(TfFaceError, match="skin_tone"):
        bench.run_benchmark(None, num_faces=1, skin_tone="purple", progress=False)


def test_end_to_end_with_random_weights(tmp_path):
    """Untrained networks in the weights layout: the network paths run and
    give their keys (B-Net SH, re-render, DRN detail); the sheet's PCA
    column is B-Net's."""
    from tf_face.testing.random_weights import write_random_weights
    bench = _bench()
    weights = write_random_weights(tmp_path / "weights", bnet_width=4, ngf=4, p_a_std=0.3,
                                   sh_std=0.05, seed=7)
    r = bench.run_benchmark(weights, num_faces=1, seed=1001, image_size=256, progress=False,
                            appearance="mean,pca,fan,drn,none", out_dir=tmp_path / "pics")
    assert r["faces_evaluated"] == 1
    paths = ("mean", "pca", "fan", "none", "drn")
    expected = _expected_keys(paths, _occluded(r)) | {"sh_error", "sh_error_scale_invariant",
                                        "sh_error_relative", "exposure_error", "rerender_error",
                                        "rerender_error_base", "ms_per_photo_pca",
                                        "ms_per_photo_fan", "ms_per_photo_drn"}
    assert _metric_keys(r) == expected
    assert all(np.isfinite(r[k]) for k in expected)
    assert bench.sheet_columns(r["paths"])[2] == "B-Net PCA"
    assert "B-Net PCA" in bench.format_table(r)


def test_balanced_tones_cycle_the_groups():
    """--skin_tone=balanced: face i is drawn from group i mod 6 (equal group sizes)."""
    from tf_face.facemodel import default_model
    from tf_face.skin_tone import GROUP_NAMES
    bench = _bench()
    model = default_model()
    groups = [bench._draw(np.random.default_rng([5, i]), model, None, None, "balanced", i).skin_group
              for i in range(7)]
    assert groups == list(GROUP_NAMES) + [GROUP_NAMES[0]]


def test_net_fit_keeps_drn_displacement_and_runs_the_networks(tmp_path, fast_fit_options):
    """--appearance=net_fit (reconstruct's default mode) runs and scores the
    networks too; with init_displacement="keep" its detail normals are DRN's
    (equal scores), with "refine" (the default) they move; the fit's own
    albedo is scored."""
    import dataclasses
    from tf_face.testing.random_weights import write_random_weights
    bench = _bench()
    weights = write_random_weights(tmp_path / "weights", bnet_width=4, ngf=4, p_a_std=0.3,
                                   sh_std=0.05, seed=7)
    keep = dataclasses.replace(fast_fit_options, init_displacement="keep")
    r = bench.run_benchmark(weights, num_faces=1, seed=1001, image_size=256, progress=False,
                            appearance="net_fit", fit_options=keep)
    assert r["faces_evaluated"] == 1 and r["num_appearance_failures"] == 0
    assert tuple(r["paths"]) == ("pca", "fan", "net_fit", "drn")
    assert _expected_keys(r["paths"], _occluded(r)) <= _metric_keys(r)
    for k in ("", "_wrinkle", "_visible"):
        assert r[f"detail_error_net_fit{k}_deg"] == pytest.approx(r[f"detail_error_drn{k}_deg"],
                                                                  abs=1e-6)
    assert r["albedo_error_net_fit_visible"] != r["albedo_error_fan_visible"]
    assert "net+fit" in bench.format_table(r)
    assert fast_fit_options.init_displacement == "refine"
    r2 = bench.run_benchmark(weights, num_faces=1, seed=1001, image_size=256, progress=False,
                             appearance="net_fit", fit_options=fast_fit_options)
    assert r2["detail_error_net_fit_deg"] != pytest.approx(r2["detail_error_drn_deg"], abs=1e-6)
