"""Fitting (Eq. 1): recovery of known pose/coefficients, sliding contours,
the 468-point similarity fit, and bad inputs."""

import dataclasses

import numpy as np
import pytest

from tests.conftest import ICT_NPZ, require_shared
from tf_face.errors import FitError, LandmarkError, TfFaceError
from tf_face.facemodel import load_face_model
from tf_face.facemodel.base import FaceModel
from tf_face.fitting import FitOptions, fit_face
from tf_face.fitting.contour import horizontal_candidates
from tf_face.fitting.rotation import euler_ypr, rotation_angle
from tf_face.types import model_to_image

IMAGE = (480, 640)


# ---------------------------------------------------------------- helpers
def synthetic_model(rng, n_vertices=300, ks=6, ke=4, name="synthetic"):
    """Random face-like model: points on a front half-ellipsoid, random
    std-scaled bases, 68 random landmark ids with eyes on the right sides."""
    u = rng.uniform(-1, 1, (n_vertices, 2)) * [0.8, 1.0]
    z = np.sqrt(np.clip(1.0 - (u ** 2).sum(1), 0.05, None))
    mean = np.c_[u[:, 0] * 7, u[:, 1] * 9, z * 8].astype(np.float32)
    tri = np.array([[0, 1, 2]], np.int32)
    ids = rng.choice(n_vertices, 68, replace=False)
    right = np.flatnonzero(mean[:, 0] < -2)
    left = np.flatnonzero(mean[:, 0] > 2)
    rest = np.setdiff1d(np.arange(n_vertices), np.r_[right[:6], left[:6]])
    ids = rng.choice(rest, 68, replace=False)
    ids[36:42], ids[42:48] = right[:6], left[:6]
    return FaceModel(
        name=name, mean_shape=mean, triangles=tri,
        uv=np.zeros((n_vertices, 2), np.float32), landmarks68=ids.astype(np.int32),
        shape_basis=(rng.standard_normal((n_vertices, 3, ks)) * 0.3).astype(np.float32) if ks else None,
        expr_basis=(rng.standard_normal((n_vertices, 3, ke)) * 0.3).astype(np.float32) if ke else None,
    ).validate()


def project68(model, shape, scale, rot, trans):
    return model_to_image(shape, scale, rot, trans)[model.landmarks68, :2]


def iod68(lm):
    return float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))


def vertex_normals(v, tri):
    fn = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
    n = np.zeros_like(v)
    for c in range(3):
        np.add.at(n, tri[:, c], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


@pytest.fixture(scope="module")
def ict():
    """The product's ICT loader (``ict_npz:``) with the test's own horizontal
    candidate lines (front of the face -> ear, see contour.py), which the
    simulated annotator (``detector_landmarks``) and the sliding fit share."""
    path = require_shared(ICT_NPZ)
    model = load_face_model(f"ict_npz:{path}")
    with np.load(path, allow_pickle=False) as d:
        narrow = d["narrow_face_vertex_mask"].astype(bool)
    jaw = {k: int(model.landmarks68[k]) for k in list(range(8)) + list(range(9, 17))}
    model.contour_candidates = horizontal_candidates(model.mean_shape, jaw, band=0.3,
                                                     vertex_mask=narrow)
    return model


def detector_landmarks(model, shape, scale, rot, trans):
    """68 landmarks as a 2D annotator marks them: jaw points on the visible
    outline (the candidate furthest out in the image along the side's
    direction), except on a side turned > 30 deg towards the camera, where the
    jaw line itself is visible."""
    img = model_to_image(shape, scale, rot, trans)
    ids = model.landmarks68.astype(np.int64).copy()
    for k, cand in model.contour_candidates.items():
        side = -1.0 if k < 8 else 1.0
        axis = rot @ np.array([side, 0.0, 0.0])          # camera frame (z to camera)
        if axis[2] > np.sin(np.radians(30)):
            continue
        direction = axis[:2] * [1.0, -1.0]                  # image-plane direction
        ids[k] = cand[np.argmax(img[cand, :2] @ direction)]
    return img[ids, :2], ids


@pytest.fixture(scope="module")
def ict_loaded():
    """The project's loader (``ict_npz:``), with its own contour candidates."""
    return load_face_model(f"ict_npz:{require_shared(ICT_NPZ)}")


def random_ict_face(model, rng):
    alpha = rng.standard_normal(model.num_shape)
    beta = np.clip(rng.uniform(-0.6, 0.5, model.num_expr), 0.0, 1.0)
    return alpha, beta, model.shape(alpha, beta)


# ------------------------------------------------------- synthetic model
def test_synthetic_exact_recovery_without_noise():
    rng = np.random.default_rng(1)
    model = synthetic_model(rng)
    alpha, beta = rng.standard_normal(6), rng.standard_normal(4)
    rot = euler_ypr(25, -10, 8)
    lm = project68(model, model.shape(alpha, beta), 12.5, rot, np.array([320.0, 260.0]))
    opts = FitOptions(w_shape=1e-10, w_expr=1e-10, sliding_contour=False, lm_iterations=50)
    fit = fit_face(model, lm, IMAGE, opts)
    assert rotation_angle(rot, fit.rotation) < 1e-3
    assert abs(fit.scale / 12.5 - 1) < 1e-5
    np.testing.assert_allclose(fit.translation, [320.0, 260.0], atol=1e-3)
    np.testing.assert_allclose(fit.shape_coeffs, alpha, atol=1e-3)
    np.testing.assert_allclose(fit.expr_coeffs, beta, atol=1e-3)
    assert fit.landmark_rmse_iod < 1e-6
    # the posed mesh is the model's shape under the fitted pose
    np.testing.assert_allclose(
        fit.vertices_image, model_to_image(fit.vertices_model, fit.scale, fit.rotation,
                                           fit.translation), atol=1e-3)
    assert fit.vertices_image.shape == (model.num_vertices, 3)
    np.testing.assert_array_equal(fit.landmark_vertices, model.landmarks68)


@pytest.mark.parametrize("noise", [0.01, 0.03])
def test_synthetic_recovery_with_noise(noise):
    rng = np.random.default_rng(2)
    model = synthetic_model(rng)
    alpha, beta = rng.standard_normal(6), rng.standard_normal(4)
    rot = euler_ypr(-30, 12, -5)
    lm = project68(model, model.shape(alpha, beta), 10.0, rot, np.array([300.0, 250.0]))
    sigma = noise * iod68(lm)
    errs, rot_errs = [], []
    for _ in range(5):
        obs = lm + rng.standard_normal(lm.shape) * sigma
        fit = fit_face(model, obs, IMAGE, FitOptions(w_shape=1e-4, w_expr=1e-4))
        errs.append(fit.landmark_rmse_iod)
        rot_errs.append(rotation_angle(rot, fit.rotation))
        assert np.abs(fit.shape_coeffs - alpha).max() < 60 * noise + 0.05
    # RMS of a 2D error with per-axis sigma is sqrt(2) sigma, minus what the
    # 16 parameters absorb of 136 residuals
    expect = np.sqrt(2) * noise * np.sqrt(1 - 16 / 136)
    assert 0.6 * expect < np.mean(errs) < 1.3 * expect
    assert np.mean(rot_errs) < 100 * noise


def test_pose_only_model_and_five_points():
    rng = np.random.default_rng(3)
    full = synthetic_model(rng)
    model = dataclasses.replace(full, shape_basis=None, expr_basis=None)
    rot = euler_ypr(15, 5, -12)
    img = model_to_image(model.mean_shape, 8.0, rot, np.array([200.0, 210.0]))
    lm = model.landmarks68
    five = np.stack([img[lm[36:42], :2].mean(0), img[lm[42:48], :2].mean(0),
                     img[lm[30], :2], img[lm[48], :2], img[lm[54], :2]])
    for pts in (img[lm, :2], five):
        fit = fit_face(model, pts, IMAGE, FitOptions(lm_iterations=50))
        assert rotation_angle(rot, fit.rotation) < 1e-3
        assert abs(fit.scale / 8.0 - 1) < 1e-5
        assert fit.shape_coeffs.size == 0 and fit.expr_coeffs.size == 0
        assert fit.landmark_rmse_iod < 1e-6
    assert fit.landmark_vertices.shape == (5,)


# ------------------------------------------------- observed-shape model
def test_observed_shape_similarity_is_exact():
    rng = np.random.default_rng(4)
    n = 468
    mean = rng.standard_normal((n, 3)).astype(np.float32) * [5, 6, 3]
    model = FaceModel(name="observed", mean_shape=mean.astype(np.float32),
                      triangles=np.array([[0, 1, 2]], np.int32),
                      uv=np.zeros((n, 2), np.float32), observed_shape=True).validate()
    mean = model.mean_shape.astype(np.float64)
    face = mean + rng.standard_normal((n, 3)) * 0.2          # a non-mean face
    rot, s, t = euler_ypr(-35, 20, 10), 7.5, np.array([250.0, 180.0])
    obs = model_to_image(face, s, rot, t) + [0.0, 0.0, 123.0]   # arbitrary z origin
    fit = fit_face(model, obs, IMAGE)
    # exact similarity: the *same* transform applied to the mean
    obs_mean = model_to_image(mean, s, rot, t) + [0.0, 0.0, -40.0]
    fit_mean = fit_face(model, obs_mean, IMAGE)
    np.testing.assert_allclose(fit_mean.rotation, rot, atol=1e-9)
    assert abs(fit_mean.scale / s - 1) < 1e-9
    np.testing.assert_allclose(fit_mean.translation, t, atol=1e-6)
    np.testing.assert_allclose(fit_mean.vertices_model, mean, atol=1e-4)
    assert fit_mean.landmark_rmse_iod < 1e-8
    # non-mean face: x, y are the observations, pose ~ truth, rmse > 0
    np.testing.assert_allclose(fit.vertices_image[:, :2], obs[:, :2], atol=1e-3)
    np.testing.assert_allclose(
        fit.vertices_image, model_to_image(fit.vertices_model, fit.scale, fit.rotation,
                                           fit.translation), atol=1e-3)
    assert rotation_angle(rot, fit.rotation) < 1.0
    assert fit.landmark_rmse_iod > 1e-4
    assert np.linalg.det(fit.rotation) == pytest.approx(1.0)


# ----------------------------------------------------------- bad inputs
def test_bad_inputs_raise_one_line_errors():
    rng = np.random.default_rng(5)
    model = synthetic_model(rng)
    lm = project68(model, model.mean_shape, 10.0, np.eye(3), np.array([300.0, 200.0]))
    nan = lm.copy()
    nan[3, 1] = np.nan
    collinear = np.c_[np.linspace(0, 100, 68), np.linspace(0, 50, 68)]
    cases = [(nan, LandmarkError), (np.full((68, 2), 7.0), FitError),
             (collinear, FitError), (lm[:67], LandmarkError),
             (lm.ravel(), LandmarkError), ([["a", "b"]] * 68, LandmarkError),
             (np.zeros((468, 3)), LandmarkError)]
    for pts, err in cases:
        with pytest.raises(err) as info:
            fit_face(model, pts, IMAGE)
        assert "\n" not in str(info.value) and str(info.value)
    no_lm = dataclasses.replace(model, landmarks68=None)
    with pytest.raises(FitError):
        fit_face(no_lm, lm, IMAGE)
    with pytest.raises(TfFaceError):
        fit_face(model, lm, (0, 640))
    observed = dataclasses.replace(model, shape_basis=None, expr_basis=None,
                                   observed_shape=True)
    with pytest.raises(LandmarkError):
        fit_face(observed, np.zeros((model.num_vertices, 2)), IMAGE)
    with pytest.raises(FitError):
        fit_face(observed, np.zeros((model.num_vertices, 3)), IMAGE)


# ------------------------------------------------------------ ICT model
@pytest.mark.parametrize("noise,source", [(0.0, "ict"), (0.01, "ict"), (0.03, "ict"),
                                          (0.01, "ict_loaded")])
def test_ict_recovers_pose_and_shape(noise, source, request):
    ict = request.getfixturevalue(source)
    rng = np.random.default_rng(10)
    pose_err, shape_err, mean_err, rmse, image_err = [], [], [], [], []
    for i in range(3):
        alpha, beta, shape = random_ict_face(ict, rng)
        rot = euler_ypr(rng.uniform(-35, 35), rng.uniform(-15, 15), rng.uniform(-15, 15))
        trans = np.array([320.0, 240.0])
        if source == "ict":
            lm, _ = detector_landmarks(ict, shape, 9.0, rot, trans)
            opts = FitOptions()
        else:   # the loader's model: fixed landmark ids (its candidates are its own)
            lm = project68(ict, shape, 9.0, rot, trans)
            opts = FitOptions(sliding_contour=False)
        obs = lm + rng.standard_normal(lm.shape) * noise * iod68(lm)
        fit = fit_face(ict, obs, IMAGE, opts)
        posed = model_to_image(shape, 9.0, rot, trans)
        image_err.append(np.sqrt(((fit.vertices_image[:, :2] - posed[:, :2]) ** 2).sum(1).mean())
                         / iod68(lm))
        pose_err.append(rotation_angle(rot, fit.rotation))
        shape_err.append(np.sqrt(((fit.vertices_model - shape) ** 2).sum(1).mean()))
        mean_err.append(np.sqrt(((ict.mean_shape - shape) ** 2).sum(1).mean()))
        rmse.append(fit.landmark_rmse_iod)
        assert fit.expr_coeffs.min() >= 0.0 and fit.expr_coeffs.max() <= 1.0
    print(f"noise {noise}: rot {np.mean(pose_err):.2f} deg, dense {np.mean(shape_err):.3f} cm "
          f"(mean shape {np.mean(mean_err):.3f}), image {np.mean(image_err):.3f} IOD, "
          f"rmse {np.mean(rmse):.4f} IOD")
    assert np.mean(pose_err) < 2.0 + 50 * noise
    # the whole posed mesh (not only the landmarks) lands where the true one is
    assert np.mean(image_err) < 0.1 + 2 * noise
    # the fit explains the face better than the mean shape does
    assert np.mean(shape_err) < 0.85 * np.mean(mean_err)
    # the residual is about the noise (regularisation adds ~1 % IOD)
    assert np.mean(rmse) < np.sqrt(2) * noise + 0.02
    if noise:
        assert np.mean(rmse) > 0.5 * np.sqrt(2) * noise


def outline_landmarks(model, shape, scale, rot, trans, face_mask, facing=0.2):
    """68 landmarks as a 2D annotator marks them, independent of the fitter's
    candidate lists: a jaw point is its fixed vertex while that vertex faces
    the camera (camera-frame normal z > ``facing``; the jaw line is visible);
    otherwise the outline across the jaw there: of the ``face_mask`` vertices
    in a 0.3 cm strip through the fixed vertex, perpendicular to the jaw line
    (jaw direction from the neighbouring jaw landmarks of ``shape``), between
    the jaw line and halfway to the face centre, the one furthest out in the
    image along the jaw's rotated outward normal. The chin (8) never moves."""
    img = model_to_image(shape, scale, rot, trans)
    normals_cam = vertex_normals(shape, model.triangles) @ rot.T
    ids = model.landmarks68.astype(np.int64).copy()
    xy = shape[:, :2]
    jaw = xy[ids[:17]]
    centre = xy[ids].mean(axis=0)
    for k in [k for k in range(17) if k != 8]:
        p = ids[k]
        if normals_cam[p, 2] > facing:
            continue
        tan = jaw[min(k + 1, 16)] - jaw[max(k - 1, 0)]
        tan /= np.linalg.norm(tan)
        out = np.array([tan[1], -tan[0]])
        out *= np.sign((jaw[k] - centre) @ out)
        across, along = (xy - xy[p]) @ out, (xy - xy[p]) @ tan
        cand = np.flatnonzero(face_mask & (np.abs(along) < 0.3) & (across <= 0)
                              & (across > -0.5 * ((jaw[k] - centre) @ out)))
        direction = (rot @ np.r_[out, 0.0])[:2] * [1.0, -1.0]     # image frame
        ids[k] = cand[np.argmax(img[cand, :2] @ direction)]
    return img[ids, :2], ids


@pytest.fixture(scope="module")
def ict_face_mask():
    with np.load(require_shared(ICT_NPZ), allow_pickle=False) as d:
        return d["narrow_face_vertex_mask"].astype(bool)


@pytest.mark.parametrize("shape_kind", ["mean", "random"])
def test_ict_recovers_its_own_landmarks_at_several_yaws(ict_loaded, ict_face_mask, shape_kind):
    """The bug this catches: the loader's jaw candidates once reached the
    front of the neck, and the fit put jaw points 5-11 of a frontal face up to
    0.5 IOD away from the chin (real photos: landmark RMSE 0.11 IOD).
    The ICT model, posed at yaws -30..30 and pitches -10..10, fitted to its
    own projected landmarks (jaw points on the outline where the jaw turns
    away) with the default options, recovers every one of them, chin
    included."""
    ict = ict_loaded
    if shape_kind == "mean":
        shape, opts = ict.mean_shape.astype(np.float64), FitOptions()
        tol_rmse, tol_chin, tol_any, tol_rot = 0.006, 0.01, 0.02, 1.5
    else:   # a random identity and expression: the priors cost a little accuracy
        _, _, shape = random_ict_face(ict, np.random.default_rng(3))
        opts = FitOptions(w_shape=1e-4, w_expr=1e-3)
        tol_rmse, tol_chin, tol_any, tol_rot = 0.01, 0.025, 0.03, 4.0
    for yaw in (-30, -15, 0, 15, 30):
        for pitch in (-10, 0, 10):
            rot = euler_ypr(yaw, pitch, 0)
            lm, _ = outline_landmarks(ict, shape, 9.0, rot, np.array([320.0, 240.0]),
                                      ict_face_mask)
            fit = fit_face(ict, lm, IMAGE, opts)
            fitted = fit.vertices_image[fit.landmark_vertices, :2]
            err = np.linalg.norm(fitted - lm, axis=1) / iod68(lm)
            where = f"yaw {yaw} pitch {pitch}: errors {np.round(err[:17], 3)}"
            assert fit.landmark_rmse_iod < tol_rmse, where
            assert err[5:12].max() < tol_chin, where
            assert err.max() < tol_any, where
            assert rotation_angle(rot, fit.rotation) < tol_rot, where


def test_ict_loader_contour_candidates_stay_on_the_face(ict_loaded, ict_face_mask):
    """Candidates of the loader: inside the narrow face area (no neck, ears,
    scalp), on the landmark's side, never beyond the jaw line (the underside
    of the chin and the neck lie there), fixed vertex first."""
    ict = ict_loaded
    v = ict.mean_shape.astype(np.float64)
    lm = ict.landmarks68
    jaw, centre = v[lm[:17], :2], v[lm, :2].mean(axis=0)
    for k, cand in ict.contour_candidates.items():
        assert cand[0] == lm[k] and len(cand) == len(np.unique(cand)) > 10
        assert ict_face_mask[cand].all()
        assert np.all(np.sign(v[cand, 0]) == np.sign(v[lm[k], 0]))
        tan = jaw[min(k + 1, 16)] - jaw[max(k - 1, 0)]
        out = np.array([tan[1], -tan[0]]) / np.linalg.norm(tan)
        out *= np.sign((jaw[k] - centre) @ out)
        assert ((v[cand, :2] - jaw[k]) @ out).max() < 1e-6
    # the chin area's candidates stay above the chin (the neck is below it)
    for k in range(5, 12):
        if k != 8:
            assert v[ict.contour_candidates[k], 1].min() > v[lm[8], 1] - 0.3


def test_ict_sliding_contour_at_60_degrees_yaw(ict_loaded, ict_face_mask):
    """With the loader's own contour candidates: they reach in front of the
    jaw vertex, where a far side's outline lies at 60 deg yaw."""
    ict = ict_loaded
    rng = np.random.default_rng(11)
    _, _, shape = random_ict_face(ict, rng)
    rot = euler_ypr(60, 5, 0)       # face turned to its left: left side (9..16) is far
    s, t = 9.0, np.array([320.0, 240.0])
    lm, lm_ids = outline_landmarks(ict, shape, s, rot, t, ict_face_mask)
    normals_cam = vertex_normals(shape, ict.triangles) @ rot.T      # camera frame
    far = list(range(9, 17))
    # the scene is as intended: fixed far-side jaw vertices face away, the
    # outline vertices are grazing
    assert np.median(normals_cam[ict.landmarks68[far], 2]) < -0.2
    assert np.median(np.abs(normals_cam[lm_ids[far], 2])) < 0.3
    obs = lm + rng.standard_normal((68, 2)) * 0.005 * iod68(lm)

    fit = fit_face(ict, obs, IMAGE)
    fixed = fit_face(ict, obs, IMAGE, FitOptions(sliding_contour=False))
    chosen = fit.landmark_vertices[far]
    # chosen vertices are outline vertices of the true face (normals
    # near-perpendicular to the view direction) and project onto the outline
    assert np.median(np.abs(normals_cam[chosen, 2])) < 0.3
    err = np.linalg.norm(fit.vertices_image[chosen, :2] - lm[far], axis=1) / iod68(lm)
    assert np.median(err) < 0.03 and err.max() < 0.1
    # near side (turned towards the camera by 60 deg > 30 deg): fixed jaw vertices
    np.testing.assert_array_equal(fit.landmark_vertices[:8], ict.landmarks68[:8])
    # and sliding matters: pose and residual are much better than with fixed ids
    assert rotation_angle(rot, fit.rotation) < 3.0
    assert fit.landmark_rmse_iod < 0.5 * fixed.landmark_rmse_iod
    assert rotation_angle(rot, fit.rotation) < rotation_angle(rot, fixed.rotation)


def test_along_jaw_sliding_only_in_the_final_pass(ict_loaded, ict_face_mask):
    """Jaw points spaced unlike the model's (another detector's convention:
    as MediaPipe's 1 and 2 vs ICT's, here 1, 3, 5, 7 (and mirrored) moved a
    quarter of the way to the next point towards the ear, 2, 4, 6 towards
    the chin) are matched by sliding along the jaw in the final pass, and the
    pose stays as good as with the fixed spacing (it is found first)."""
    ict = ict_loaded
    shape = ict.mean_shape.astype(np.float64)
    rot = euler_ypr(10, 5, 0)
    lm, _ = outline_landmarks(ict, shape, 9.0, rot, np.array([320.0, 240.0]), ict_face_mask)
    moved = lm.copy()
    for k in list(range(1, 8)) + list(range(9, 16)):
        ear = k - 1 if k < 8 else k + 1
        chin = k + 1 if k < 8 else k - 1
        j = ear if (k if k < 8 else 16 - k) % 2 else chin
        moved[k] = lm[k] + (lm[j] - lm[k]) / 4.0
    slide = fit_face(ict, moved, IMAGE)
    stay = fit_face(ict, moved, IMAGE, FitOptions(contour_along_jaw=False))

    def jaw_rmse(fit):
        e = fit.vertices_image[fit.landmark_vertices[:17], :2] - moved[:17]
        return np.sqrt((e ** 2).sum(1).mean()) / iod68(moved)
    rot_slide, rot_stay = rotation_angle(rot, slide.rotation), rotation_angle(rot, stay.rotation)
    print(f"jaw RMSE along {jaw_rmse(slide):.4f}, fixed spacing {jaw_rmse(stay):.4f}; "
          f"rotation error {rot_slide:.2f}, {rot_stay:.2f} deg")
    assert jaw_rmse(slide) < 0.6 * jaw_rmse(stay)
    assert slide.landmark_rmse_iod < stay.landmark_rmse_iod
    assert rot_slide < rot_stay + 0.5 and rot_slide < 2.0
    assert np.any(slide.landmark_vertices[:17] != stay.landmark_vertices[:17])


def test_overlay_draws_fitted_landmarks_beside_observed():
    from tf_face.outputs import (OVERLAY_FITTED_BGR, OVERLAY_LINK_BGR, OVERLAY_OBSERVED_BGR,
                                 draw_overlay)
    image = np.zeros((120, 200, 3), np.uint8)
    verts = np.array([[150.0, 100.0, 0.0], [160.0, 100.0, 0.0], [150.0, 110.0, 0.0]])
    observed = np.array([[40.0, 60.0], [40.0, 90.0]])
    fitted = np.array([[100.0, 60.0], [40.0, 90.0]])     # one off by 60 px, one exact
    out = draw_overlay(image, verts, np.array([[0, 1, 2]]), observed, None, fitted)
    def near(pixel, bgr, tol=40):          # anti-aliased drawing: about the colour
        return np.abs(pixel.astype(int) - np.array(bgr[::-1])).max() <= tol
    assert near(out[60, 40], OVERLAY_OBSERVED_BGR, 0)
    assert near(out[60, 100], OVERLAY_FITTED_BGR, 0)
    assert near(out[60, 70], OVERLAY_LINK_BGR)              # the pair's line
    assert near(out[90, 40], OVERLAY_FITTED_BGR, 0)         # exact: fitted on top
    plain = draw_overlay(image, verts, np.array([[0, 1, 2]]), observed)
    assert near(plain[60, 40], OVERLAY_OBSERVED_BGR, 0)
    assert list(plain[60, 100]) == [0, 0, 0] and list(plain[60, 70]) == [0, 0, 0]


def test_ict_five_points_pose_only_coefficients_stay_small(ict):
    rng = np.random.default_rng(12)
    rot = euler_ypr(20, -10, 6)
    img = model_to_image(ict.mean_shape, 11.0, rot, np.array([300.0, 260.0]))
    lm = ict.landmarks68
    five = np.stack([img[lm[36:42], :2].mean(0), img[lm[42:48], :2].mean(0),
                     img[lm[30], :2], img[lm[48], :2], img[lm[54], :2]])
    five += rng.standard_normal(five.shape) * 0.3
    fit = fit_face(ict, five, IMAGE)
    assert rotation_angle(rot, fit.rotation) < 5.0
    assert abs(fit.scale / 11.0 - 1) < 0.05
    assert np.abs(fit.shape_coeffs).max() < 3.0   # 10 equations: the prior decides


def test_jacobian_matches_finite_differences():
    from tf_face.fitting import eq1
    rng = np.random.default_rng(6)
    l, k = 20, 7
    prob = eq1.Problem(obs=rng.standard_normal((l, 2)), mean_v=rng.standard_normal((l, 3)),
                       basis_v=rng.standard_normal((l, 3, k)),
                       idx=np.arange(l)[:, None], wts=np.ones((l, 1)),
                       reg=np.full(k, 0.1), lo=np.full(k, -np.inf), hi=np.full(k, np.inf),
                       free=np.ones(k, bool))
    st = eq1.State(s=1.7, r=euler_ypr(20, -30, 10), t=np.array([0.3, -0.2]),
                   c=rng.standard_normal(k))
    mean_l, basis_l = eq1.landmark_rows(prob)
    r0, y = eq1.residual(st, mean_l, basis_l, prob)
    jac = eq1.jacobian(st, y, basis_l, prob)
    eps = 1e-6
    num = np.zeros_like(jac)
    for i in range(6 + k):
        d = np.zeros(6 + k)
        d[i] = eps
        rp, _ = eq1.residual(eq1.apply_step(st, d, prob), mean_l, basis_l, prob)
        d[i] = -eps
        rm, _ = eq1.residual(eq1.apply_step(st, d, prob), mean_l, basis_l, prob)
        num[:, i] = (rp - rm).ravel() / (2 * eps)
    np.testing.assert_allclose(jac, num, atol=1e-6)


def test_pca_expressions_are_unbounded_and_ict_blendshapes_bounded():
    from tf_face.fitting.options import resolve_expr_bounds
    rng = np.random.default_rng(7)
    model = synthetic_model(rng)
    assert resolve_expr_bounds(model, FitOptions()) is None
    assert resolve_expr_bounds(dataclasses.replace(model, name="ict"), FitOptions()) == (0.0, 1.0)
    assert resolve_expr_bounds(model, FitOptions(expr_bounds=(0, 1))) == (0.0, 1.0)
    # a bounded fit of a face with negative expression weights stays in bounds
    beta = np.array([-1.5, 0.5, 2.0, 0.2])
    lm = project68(model, model.shape(np.zeros(6), beta), 10.0, np.eye(3), np.array([300.0, 200.0]))
    free = fit_face(model, lm, IMAGE, FitOptions(w_shape=1e-8, w_expr=1e-8, lm_iterations=50))
    np.testing.assert_allclose(free.expr_coeffs, beta, atol=1e-3)
    boxed = fit_face(model, lm, IMAGE, FitOptions(expr_bounds=(0.0, 1.0)))
    assert boxed.expr_coeffs.min() >= 0.0 and boxed.expr_coeffs.max() <= 1.0


def test_row_cache_never_serves_another_models_bases():
    rng = np.random.default_rng(8)
    model = synthetic_model(rng)
    alpha = rng.standard_normal(6)
    lm = project68(model, model.shape(alpha, np.zeros(4)), 10.0, np.eye(3), np.array([300.0, 200.0]))
    opts = FitOptions(w_shape=1e-10, w_expr=1e-10, lm_iterations=50)
    first = fit_face(model, lm, IMAGE, opts)
    again = fit_face(model, lm, IMAGE, opts)
    np.testing.assert_array_equal(first.shape_coeffs, again.shape_coeffs)
    doubled = dataclasses.replace(model, shape_basis=model.shape_basis * 2)
    fit2 = fit_face(doubled, lm, IMAGE, opts)
    np.testing.assert_allclose(fit2.shape_coeffs, alpha / 2, atol=1e-3)
