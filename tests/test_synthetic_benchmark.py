"""Metrics of the synthetic benchmark (tf_face.eval_metrics) on hand-made inputs,
and the benchmark's per-face metric assembly on a hand-made face (no training)."""

from __future__ import annotations

import math
import types

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


def test_nanmean():
    assert M.nanmean([1.0, float("nan"), 3.0, None]) == 2.0
    assert math.isnan(M.nanmean([float("nan")]))


def test_face_metrics_on_hand_made_face():
    """face_metrics wires the masks and maps correctly (perfect predictions -> 0)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "eval" / "synthetic_benchmark.py"
    spec = importlib.util.spec_from_file_location("synthetic_benchmark_under_test", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    rng = np.random.default_rng(4)
    s = 12
    atlas = np.zeros((s, s), bool)
    atlas[2:10, 2:10] = True
    albedo = rng.uniform(0.2, 0.7, (s, s, 3)) * atlas[..., None]
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
    truth = types.SimpleNamespace(albedo=albedo, prior_albedo=albedo + 0.03, normals=detail, base_normals=base, sh=sh,
                                  atlas_mask=atlas, occlusion=occ, displacement=disp)
    sample = types.SimpleNamespace(mask=seen, normals=base)
    target = rng.uniform(size=(s, s, 3))
    pred = {"pca": albedo + 0.1, "fan": albedo.copy(), "mean": albedo - 0.2, "sh": sh.copy(), "drn_normals": detail,
            "target": target, "rerender": target.copy(), "rerender_base": target + 0.05}
    m = bench.face_metrics(truth, sample, pred)
    assert m["texels_atlas"] == 64 and m["texels_visible"] == 31 and m["texels_hidden"] == 33
    assert m["texels_wrinkle"] == 16
    assert m["albedo_error_pca_visible"] == pytest.approx(0.1)
    assert m["albedo_error_pca_hidden"] == pytest.approx(0.1)
    assert m["albedo_error_fan_visible"] == pytest.approx(0.0)
    assert m["albedo_error_fan_hidden"] == pytest.approx(0.0)
    assert m["albedo_error_mean_visible"] == pytest.approx(0.2)
    assert m["albedo_error_oracle_pca_hidden"] == pytest.approx(0.03)
    assert m["normal_error_base_deg"] == pytest.approx(10.0)
    assert m["normal_error_base_wrinkle_deg"] == pytest.approx(10.0)
    assert m["normal_error_drn_deg"] == pytest.approx(0.0, abs=1e-5)
    assert m["normal_error_truth_base_deg"] == pytest.approx(10.0)
    assert m["sh_error"] == 0.0 and m["sh_error_scale_invariant"] == pytest.approx(0.0)
    assert m["rerender_error"] == 0.0 and m["rerender_error_base"] == pytest.approx(0.05)
    summary = bench.summarize([m, m], [{"face": 2, "error": "x"}], 3)
    assert summary["faces_evaluated"] == 2 and summary["num_failures"] == 1
    assert summary["texels_visible"] == 62
    assert summary["albedo_error_pca_visible"] == pytest.approx(0.1)
    assert bench.json_safe({"a": float("nan"), "b": [1.0, float("inf")], "c": "x"}) == \
        {"a": None, "b": [1.0, None], "c": "x"}
