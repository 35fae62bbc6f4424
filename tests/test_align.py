"""Photometric mesh refinement (tf_face.appearance.align): a synthetic face
whose true mesh is known, the pose (rigid stage) or every vertex (warp stage)
moved off it, and the photo pulling it back; the Gauss-Newton Jacobian
against finite differences; both changes keep vertices_image =
model_to_image(vertices_model, s, R, t); the modes."""

import dataclasses

import numpy as np
import pytest

from tf_face.appearance.align import (AlignOptions, _Problem, align, align_pose,
                                     apply_pose_change, apply_warp, warp_mesh)
from tf_face.facemodel import default_model
from tf_face.synthetic import Difficulty, render_face, sample_face
from tf_face.types import model_to_image
from tf_face.uv import get_atlas, unwrap

SIZE = 384


@pytest.fixture(scope="module")
def scene():
    model = default_model()
    atlas = get_atlas(model, size=256)
    d = Difficulty(max_yaw=30.0, occlusion_prob=0.0, light_harshness=0.5, camera_noise=0.0)
    f = sample_face(np.random.default_rng(11), model, d)
    img, tr = render_face(f, SIZE, model=model, atlas=atlas)
    return model, atlas, img, tr


def _moved(fitted, theta):
    vi = np.asarray(fitted.vertices_image, np.float64)
    centroid = ((vi - np.r_[np.asarray(fitted.translation)[:2], 0.0]) * [1, -1, -1]).mean(0)
    return apply_pose_change(fitted, np.asarray(theta, np.float64), centroid)


def _vertex_error(a, b):
    d = np.asarray(a.vertices_image, np.float64)[:, :2] - np.asarray(b.vertices_image)[:, :2]
    return float(np.median(np.linalg.norm(d, axis=1)))


def test_pose_change_keeps_the_weak_perspective_model(scene):
    model, atlas, img, tr = scene
    f = tr.fitted()
    same = _moved(f, np.zeros(6))
    assert np.abs(same.vertices_image[:, :2] - f.vertices_image[:, :2]).max() < 1e-3
    g = _moved(f, [0.02, -0.05, 0.03, 0.01, 2.0, -1.5])
    again = model_to_image(g.vertices_model, g.scale, g.rotation, g.translation)
    assert np.abs(again[:, :2] - g.vertices_image[:, :2]).max() < 1e-3
    assert np.allclose(g.rotation @ g.rotation.T, np.eye(3), atol=1e-9)
    # a pure rotation turns the mesh about its centroid: the centroid stays put
    r = _moved(f, [0.0, 0.1, 0.0, 0.0, 0.0, 0.0])
    c0 = np.asarray(f.vertices_image, np.float64)[:, :2].mean(0)
    c1 = np.asarray(r.vertices_image, np.float64)[:, :2].mean(0)
    assert np.abs(c1 - c0).max() < 0.5 and _vertex_error(r, f) > 0.8


def _face_px(fitted):
    vi = np.asarray(fitted.vertices_image, np.float64)[:, :2]
    return float(np.ptp(vi, axis=0).max())


@pytest.mark.parametrize("shrink", [1.0, 0.5])
def test_jacobian_matches_finite_differences(scene, shrink):
    """Each of the 6 columns against central differences of the residual on
    the blurred photo (smooth there, so bilinear sampling is differentiable
    enough): a sign or axis mix-up gives a correlation far below 1. With the
    photo's crop shrunk to half (``max_face_px``) too: the zoom's chain rule."""
    model, atlas, img, tr = scene
    f = tr.fitted()
    sample = unwrap(img, f, model, atlas)
    opts = AlignOptions(max_face_px=shrink * _face_px(f) if shrink < 1 else 0.0)
    prob = _Problem(img, f, atlas, sample, tr.albedo, tr.sh, opts)
    assert np.allclose(prob.zoom, shrink, atol=0.01)
    prob.set_level(4.0)
    theta = np.array([0.01, -0.02, 0.01, 0.005, 0.5, -0.3])
    _, j = prob.residual(theta, jac=True)
    for k, eps in enumerate([1e-3, 1e-3, 1e-3, 1e-3, 0.05, 0.05]):
        e = np.zeros(6)
        e[k] = eps
        fd = (prob.residual(theta + e) - prob.residual(theta - e)) / (2 * eps)
        a, b = fd.reshape(-1), j[..., k].reshape(-1)
        corr = float(np.corrcoef(a, b)[0, 1])
        ratio = float(np.linalg.norm(b) / np.linalg.norm(a))
        assert corr > 0.95 and 0.85 < ratio < 1.15, (k, corr, ratio)


def test_shrunk_photo_is_sampled_where_the_full_one_is(scene):
    """The residual (photo sampled at the texels' image points) and its
    Jacobian on the blurred level are the same, to the resampling's error,
    whether the crop is kept or shrunk to half: pixel centres and gradients
    map through the zoom (an off-by-half-a-pixel or an unscaled gradient
    shows as a far larger difference)."""
    model, atlas, img, tr = scene
    f = tr.fitted()
    sample = unwrap(img, f, model, atlas)
    out = []
    for max_px in (0.0, 0.5 * _face_px(f)):
        prob = _Problem(img, f, atlas, sample, tr.albedo, tr.sh, AlignOptions(max_face_px=max_px))
        prob.set_level(4.0)
        out.append(prob.residual(np.zeros(6), jac=True))
    (r_full, j_full), (r_half, j_half) = out
    # measured: 5 % of the residual's size; the points half a pixel off: 25 %
    scale = np.abs(r_full).mean()
    assert scale > 0.005 and np.abs(r_half - r_full).mean() < 0.1 * scale
    for k in (3, 4, 5):      # the scale and shift columns: pure image gradients
        a, b = j_full[..., k].reshape(-1), j_half[..., k].reshape(-1)
        # measured 5-7 %; a gradient not scaled by the zoom: 100 %
        assert np.linalg.norm(b - a) < 0.15 * np.linalg.norm(a), k


@pytest.mark.parametrize("shrink", [1.0, 0.5])
def test_the_photo_pulls_a_moved_pose_back(scene, shrink):
    """True albedo and light, pose moved by 4 deg yaw, 2 deg roll, 4 px: the
    refined mesh lands far closer to the true one, and E_pixel falls; also
    with the photo's crop shrunk to half."""
    model, atlas, img, tr = scene
    truth = tr.fitted()
    moved = _moved(truth, [0.0, 0.07, 0.035, 0.0, 3.0, -2.5])
    before = _vertex_error(moved, truth)
    sample = unwrap(img, moved, model, atlas)
    opts = AlignOptions(max_face_px=shrink * _face_px(moved) if shrink < 1 else 0.0)
    res = align_pose(img, moved, atlas, sample, tr.albedo, tr.sh, opts)
    after = _vertex_error(res.fitted, truth)
    assert res.kept and res.energy_after < res.energy_before
    assert before > 3.0 and after < 0.3 * before, (before, after)


def test_nothing_to_gain_leaves_the_pose(scene):
    """At the true pose the refinement moves (almost) nothing; switched off,
    the fitter hands the pipeline result back untouched."""
    model, atlas, img, tr = scene
    truth = tr.fitted()
    sample = unwrap(img, truth, model, atlas)
    res = align_pose(img, truth, atlas, sample, tr.albedo, tr.sh)
    assert _vertex_error(res.fitted, truth) < 0.5

    from tf_face.appearance import AppearanceFitter, AppearanceOptions
    from tf_face.detail import model_detail_unit
    from tf_face.uv.albedo_model import uv_albedo_model
    off = AppearanceOptions(align=AlignOptions(enabled=False))
    fitter = AppearanceFitter(uv_albedo_model(model, atlas), atlas.mask,
                              model_detail_unit(model), off)

    @dataclasses.dataclass
    class Result:
        fitted: object
        sample: object
        timings_ms: dict

    r = Result(truth, sample, {})
    out, al = fitter.align(img, r, model, atlas)
    assert out is r and al is None


def _smooth_field(fitted, amplitude):
    """A smooth [V, 2] displacement field over the face (px)."""
    vi = np.asarray(fitted.vertices_image, np.float64)
    lo, hi = vi[:, :2].min(0), vi[:, :2].max(0)
    u = (vi[:, :2] - lo) / (hi - lo)
    return amplitude * np.stack([np.sin(np.pi * u[:, 1]) * np.cos(np.pi * u[:, 0]),
                                 np.sin(np.pi * u[:, 0]) * 0.8 - 0.4], 1)


def test_warp_keeps_the_weak_perspective_model(scene):
    model, atlas, img, tr = scene
    f = tr.fitted()
    g = apply_warp(f, _smooth_field(f, 3.0))
    again = model_to_image(g.vertices_model, g.scale, g.rotation, g.translation)
    assert np.abs(again - g.vertices_image).max() < 1e-3
    assert 1.0 < _vertex_error(g, f) < 4.0


def test_the_photo_pulls_a_warped_mesh_back(scene):
    """Every vertex moved by a smooth field of up to 3 px: the warp stage (true
    albedo and light) brings the mesh well back, and E_pixel falls."""
    model, atlas, img, tr = scene
    truth = tr.fitted()
    moved = apply_warp(truth, _smooth_field(truth, 3.0))
    before = _vertex_error(moved, truth)
    sample = unwrap(img, moved, model, atlas)
    res = warp_mesh(img, moved, atlas, sample, tr.albedo, tr.sh, model.triangles)
    after = _vertex_error(res.fitted, truth)
    assert res.kept and res.energy_after < res.energy_before and res.stages == ("warp",)
    assert after < 0.5 * before, (before, after)


def test_modes(scene):
    """"warp" (default) moves vertices only; "rigid" the pose only; "both" in
    that order; a model whose mesh is not the landmarker's gets the rigid
    stage; an unknown mode is refused."""
    import types
    model, atlas, img, tr = scene
    truth = tr.fitted()
    moved = _moved(truth, [0.0, 0.05, 0.0, 0.0, 2.0, -2.0])
    sample = unwrap(img, moved, model, atlas)
    res = {m: align(img, moved, model, atlas, sample, tr.albedo, tr.sh, AlignOptions(mode=m))
           for m in ("warp", "rigid", "both")}
    assert res["warp"].stages == ("warp",) and not np.any(res["warp"].theta)
    assert np.allclose(res["warp"].fitted.rotation, moved.rotation)
    assert res["rigid"].stages == ("rigid",) and not np.any(res["rigid"].delta)
    assert res["both"].stages == ("rigid", "warp")
    for m, r in res.items():
        assert r.kept and _vertex_error(r.fitted, truth) < 0.5 * _vertex_error(moved, truth), m
    other = types.SimpleNamespace(observed_shape=False, triangles=model.triangles)
    assert align(img, moved, other, atlas, sample, tr.albedo, tr.sh).stages == ("rigid",)
    with pytest.raises(ValueError, match="align mode"):
        align(img, moved, model, atlas, sample, tr.albedo, tr.sh, AlignOptions(mode="affine"))
