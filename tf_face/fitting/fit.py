"""``fit_face``: landmarks -> ``FittedFace`` (Eq. 1, or a similarity for
models whose every vertex is observed).

Input forms (``landmarks``, image pixels):

* ``[V, 3]`` when ``model.observed_shape`` (the default 468-vertex MediaPipe
  model): similarity only, by Umeyama on all points. ``vertices_model`` is the
  observed shape in the model frame (pose removed), ``vertices_image`` the
  observations with z shifted by a constant so that
  ``vertices_image == model_to_image(vertices_model, s, R, t)`` holds exactly
  (MediaPipe's z origin is arbitrary; x, y are the observations).
  ``landmark_rmse_iod`` there is the 2D RMS distance between the observations
  and the *posed mean shape*, / IOD: it says how far the face is from the mean
  (0 only for a face that is exactly the mean up to a similarity).
* ``[68, 2]`` (iBUG order; a third column is ignored): Eq. 1 on
  ``model.landmarks68`` with sliding contour landmarks (across the jaw to
  the outline; in the final pass also along the jaw, see ``contour.py``).
* ``[5, 2]``: image-left eye centre, image-right eye centre, nose tip,
  image-left and image-right mouth corner (iBUG mean(36..41), mean(42..47),
  30, 48, 54), fitted as weighted vertex sums.

Models without bases (or ``observed_shape`` models given 68 / 5 points) get a
pose-only fit. ``landmark_rmse_iod`` = sqrt(mean_k ||e_k||^2) / IOD, e_k the 2D
reprojection error of landmark k, IOD the distance between the observed eye
centres.
"""

from __future__ import annotations

import weakref

import numpy as np

from tf_face.blas import single_blas_thread
from tf_face.errors import FitError, LandmarkError
from tf_face.fitting import eq1
from tf_face.fitting.contour import ContourTable
from tf_face.fitting.landmark_spec import (MEDIAPIPE_LEFT_EYE, MEDIAPIPE_RIGHT_EYE,
                                           eye_distance, spec_5, spec_68)
from tf_face.fitting.options import FitOptions, resolve_expr_bounds
from tf_face.fitting.rotation import project_to_so3
from tf_face.fitting.similarity import umeyama_image
from tf_face.ibug import eye_centres
from tf_face.types import FittedFace, model_to_image

_POSE_ITERATIONS = 5   # damped Gauss-Newton steps on the pose per round

def fit_face(model, landmarks, image_size, options: FitOptions | None = None) -> FittedFace:
    """Fit ``model`` to ``landmarks`` of a photo of ``image_size`` = (H, W).

    Raises ``LandmarkError`` (NaN/inf, wrong shape or count for the model) or
    ``FitError`` (degenerate points, model without landmark indices, failed
    optimisation), both one-line ``TfFaceError``s."""
    with single_blas_thread():
        return _fit_face(model, landmarks, image_size, options)


def _fit_face(model, landmarks, image_size, options):
    options = (options or FitOptions()).validate()
    try:
        pts = np.asarray(landmarks, np.float64)
    except (TypeError, ValueError) as exc:
        raise LandmarkError("fit: landmarks are not a numeric array") from exc
    try:
        size = (int(image_size[0]), int(image_size[1]))
    except (TypeError, ValueError, IndexError) as exc:
        raise FitError(f"fit: image_size must be (height, width), got {image_size!r}") from exc
    if size[0] <= 0 or size[1] <= 0:
        raise FitError(f"fit: image_size must be positive, got {size}")
    if pts.ndim != 2 or pts.shape[1] not in (2, 3):
        raise LandmarkError(f"fit: landmarks must be an [N,2] or [N,3] array, got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise LandmarkError("fit: landmarks contain NaN or infinite values")
    n = pts.shape[0]
    if model.observed_shape and n == model.num_vertices:
        if pts.shape[1] != 3:
            raise LandmarkError(f"fit: {model.name} needs [{n},3] landmarks (x, y, z)")
        return _fit_observed(model, pts, size)
    if n == 68:
        spec = spec_68(model)
    elif n == 5:
        spec = spec_5(model)
    else:
        want = "68 or 5"
        if model.observed_shape:
            want = f"{model.num_vertices}, 68 or 5"
        raise LandmarkError(f"fit: got {n} landmarks; model {model.name!r} takes {want}")
    return _fit_2d(model, pts[:, :2], spec, size, options)


def _spread_check(xy: np.ndarray) -> None:
    c = xy - xy.mean(axis=0)
    sv = np.linalg.svd(c, compute_uv=False)
    if sv[0] <= 1e-9 or sv[1] <= 1e-6 * sv[0]:
        raise FitError("fit: landmarks are degenerate (all equal or collinear)")


def _fit_observed(model, pts: np.ndarray, size) -> FittedFace:
    _spread_check(pts[:, :2])
    mean = np.asarray(model.mean_shape, np.float64)
    s, r, t, tz = umeyama_image(mean, pts)
    if not (np.isfinite(s) and s > 0):
        raise FitError("fit: similarity fit failed")
    shifted = pts - np.array([t[0], t[1], tz])
    canon = (shifted * np.array([1.0, -1.0, -1.0])) @ r / s      # R^T (flip(p - c)) / s
    image = model_to_image(canon, s, r, t)
    posed_mean = model_to_image(mean, s, r, t)
    iod = _iod_observed(model, pts[:, :2])
    err = np.sqrt(((posed_mean[:, :2] - pts[:, :2]) ** 2).sum(axis=1).mean()) / iod
    return FittedFace(
        model_name=model.name, vertices_image=image.astype(np.float32),
        vertices_model=canon.astype(np.float32), scale=float(s), rotation=r,
        translation=np.asarray(t, np.float64), shape_coeffs=np.zeros(0, np.float32),
        expr_coeffs=np.zeros(0, np.float32), landmarks_observed=pts[:, :2].astype(np.float32),
        landmark_vertices=np.arange(len(pts), dtype=np.int32),
        landmark_rmse_iod=float(err), image_size=size)


def _iod_observed(model, xy: np.ndarray) -> float:
    if model.landmarks68 is not None:
        a, b = eye_centres(xy[np.asarray(model.landmarks68)])
    elif model.num_vertices == 468:
        a, b = xy[MEDIAPIPE_RIGHT_EYE].mean(0), xy[MEDIAPIPE_LEFT_EYE].mean(0)
    else:   # no eyes known: RMS radius of the points (about one IOD for a face)
        return float(np.sqrt(((xy - xy.mean(0)) ** 2).sum(1).mean()))
    d = float(np.linalg.norm(a - b))
    if d <= 1e-9:
        raise FitError("fit: the observed eye centres coincide")
    return d


def _basis_parts(model, options):
    parts, regs, los, his, frees = [], [], [], [], []
    if model.shape_basis is not None and model.num_shape:
        k = model.num_shape
        parts.append(model.shape_basis)
        regs.append(np.full(k, options.w_shape))
        los.append(np.full(k, -np.inf))
        his.append(np.full(k, np.inf))
        frees.append(np.full(k, bool(options.fit_shape)))
    if model.expr_basis is not None and model.num_expr:
        k = model.num_expr
        bounds = resolve_expr_bounds(model, options)
        parts.append(model.expr_basis)
        regs.append(np.full(k, options.w_expr))
        los.append(np.full(k, -np.inf if bounds is None else bounds[0]))
        his.append(np.full(k, np.inf if bounds is None else bounds[1]))
        frees.append(np.full(k, bool(options.fit_expr)))
    if model.observed_shape:      # default model: its "shape" is observed, not fitted
        parts, regs, los, his, frees = [], [], [], [], []
    return parts, regs, los, his, frees


def _full_shape(model, alpha, beta) -> np.ndarray:
    """mean + B_s alpha + B_e beta over all vertices, as float32 matrix-vector
    products on the [3V, K] views of the bases (no float64 copy of a basis)."""
    out = np.asarray(model.mean_shape, np.float32).reshape(-1).copy()
    for basis, c in ((model.shape_basis, alpha), (model.expr_basis, beta)):
        if basis is not None and len(c) and np.any(c):
            b = basis.reshape(-1, basis.shape[-1])
            out += b @ np.asarray(c, b.dtype)
    return out.reshape(-1, 3).astype(np.float64)


_ROW_CACHE: list = []     # [(weakrefs of the arrays, used ids bytes, rows)], newest last
_ROW_CACHE_SIZE = 8


def _rows(model, parts, used):
    """float64 rows [U,3] of the mean and [U,3,K] of the concatenated bases
    for the vertex ids ``used``. Cached per (arrays, ids) because the same
    model is fitted photo after photo; entries hold weak references to the
    model's arrays, so a freed or replaced array never matches."""
    arrays = [model.mean_shape] + list(parts)
    key = used.tobytes()
    for refs, k, rows in _ROW_CACHE:
        if k == key and len(refs) == len(arrays) and all(
                r() is a for r, a in zip(refs, arrays)):
            return rows
    mean_v = np.asarray(model.mean_shape, np.float64)[used]
    if parts:
        basis_v = np.concatenate([np.asarray(p[used], np.float64) for p in parts], axis=2)
    else:
        basis_v = np.zeros((len(used), 3, 0))
    try:
        refs = [weakref.ref(a) for a in arrays]
    except TypeError:
        return mean_v, basis_v
    mean_v.setflags(write=False)
    basis_v.setflags(write=False)
    _ROW_CACHE.append((refs, key, (mean_v, basis_v)))
    del _ROW_CACHE[:-_ROW_CACHE_SIZE]
    return mean_v, basis_v


_TABLE_CACHE: list = []   # [(weakref of the mean shape, key bytes, ContourTable)], newest last


def _contour_table(model, spec):
    """``ContourTable.from_spec`` (~10 ms for ICT's 2.5k candidates), cached
    per (mean-shape array, landmark rows, candidate ids) like ``_rows``."""
    rows = sorted(spec.contour)
    key = b"|".join([spec.main_vertex().tobytes()]
                    + [np.asarray(spec.contour[r], np.int64).tobytes() for r in rows])
    for ref, k, table in _TABLE_CACHE:
        if k == key and ref() is model.mean_shape:
            return table
    table = ContourTable.from_spec(spec, np.asarray(model.mean_shape))
    try:
        _TABLE_CACHE.append((weakref.ref(model.mean_shape), key, table))
    except TypeError:
        return table
    del _TABLE_CACHE[:-_ROW_CACHE_SIZE]
    return table


def _fit_2d(model, xy: np.ndarray, spec, size, options: FitOptions) -> FittedFace:
    _spread_check(xy)
    iod = eye_distance(xy, spec)
    if not iod > 1e-6 * (np.abs(xy).max() + 1.0):
        raise FitError("fit: the observed eye centres coincide")
    centre = xy.mean(axis=0)
    obs = (xy - centre) / iod

    sliding = options.sliding_contour and bool(spec.contour)
    cand_ids = (np.concatenate([spec.contour[k] for k in sorted(spec.contour)])
                if sliding else np.zeros(0, np.int64))
    used = np.unique(np.concatenate([spec.indices.ravel(), cand_ids]))
    if used.min() < 0 or used.max() >= model.num_vertices:
        raise FitError(f"fit: landmark vertex ids outside the model {model.name!r}")
    parts, regs, los, his, frees = _basis_parts(model, options)
    mean_v, basis_v = _rows(model, parts, used)
    cat = (lambda xs, dt=np.float64: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
    prob = eq1.Problem(obs=obs, mean_v=mean_v, basis_v=basis_v,
                       idx=np.searchsorted(used, spec.indices), wts=spec.weights.copy(),
                       reg=cat(regs), lo=cat(los), hi=cat(his), free=cat(frees, bool))
    table = _contour_table(model, spec) if sliding else None
    if table is not None:
        cand_pos = np.searchsorted(used, table.ids)

    def reselect(st, along=False) -> bool:
        """Contour choice for the state ``st``; ``along``: the strip nearest
        the observation (sliding along the jaw), else strip 0 (contour.py)."""
        pos = mean_v + basis_v @ st.c if basis_v.shape[2] else mean_v   # [U, 3]
        pts3 = pos[cand_pos]                                            # [S, strips, n, 3]
        img = img_obs = None
        if along:
            img = st.s * (pts3 @ st.r.T)[..., :2] * np.array([1.0, -1.0]) + st.t
            img_obs = prob.obs[table.rows]
        chosen = np.searchsorted(used, table.select(pts3, st.r, options.contour_near_yaw_deg,
                                                    img, img_obs))
        changed = bool(np.any(prob.idx[table.rows, 0] != chosen))
        prob.idx[table.rows, 0] = chosen
        return changed

    rows_init = np.setdiff1d(np.arange(spec.num), sorted(spec.contour))
    if len(rows_init) < 4:
        rows_init = np.arange(spec.num)
    st = eq1.initial_pose(prob, rows_init)
    lm = options.lm_damping
    for _ in range(options.rounds):
        if table is not None:
            reselect(st)
        st = eq1.levenberg_marquardt(st, prob, _POSE_ITERATIONS, lm, pose_only=True)
        st.c = eq1.solve_coefficients(st, prob)
    if table is not None and options.rounds == 0:
        reselect(st)
    for _ in range(2):      # joint LM; re-select (now also along the jaw) and refine once
        st = eq1.levenberg_marquardt(st, prob, options.lm_iterations, lm,
                                     tol=options.lm_tolerance)
        if table is None or not reselect(st, options.contour_along_jaw):
            break
    mean_l, basis_l = eq1.landmark_rows(prob)
    res, _ = eq1.residual(st, mean_l, basis_l, prob)
    if not (np.isfinite(st.s) and st.s > 0 and np.all(np.isfinite(res))):
        raise FitError("fit: the optimisation diverged")
    rmse = float(np.sqrt((res ** 2).sum(axis=1).mean()))
    st.r = project_to_so3(st.r)       # remove the drift of composed updates

    ks = model.num_shape if (parts and model.shape_basis is not None) else 0
    alpha, beta = st.c[:ks], st.c[ks:]
    shape = _full_shape(model, alpha, beta)
    scale = st.s * iod
    trans = st.t * iod + centre
    lm_vertices = used[prob.idx[np.arange(spec.num), np.argmax(prob.wts, axis=1)]]
    return FittedFace(
        model_name=model.name,
        vertices_image=model_to_image(shape, scale, st.r, trans).astype(np.float32),
        vertices_model=shape.astype(np.float32), scale=float(scale), rotation=st.r,
        translation=trans, shape_coeffs=alpha.astype(np.float32),
        expr_coeffs=beta.astype(np.float32), landmarks_observed=xy.astype(np.float32),
        landmark_vertices=lm_vertices.astype(np.int32), landmark_rmse_iod=rmse,
        image_size=size)
