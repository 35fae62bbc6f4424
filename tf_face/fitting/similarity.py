"""Closed-form similarity fits.

* ``umeyama_image``: 3D-3D similarity (Umeyama 1991) of model points to
  observed image-frame points, honouring the image frame's flip
  ``image = s * (R X) * [1, -1, -1] + [tx, ty, tz]``. MediaPipe's z origin is
  arbitrary, so a z offset ``tz`` is estimated too and returned separately.
* ``affine_init``: 3D-2D initial pose: least-squares affine camera
  ``x = A X + b`` (A 2x3), then its nearest scaled orthographic camera
  (SVD: equal singular values, orthonormal rows), third row by cross product.
"""

from __future__ import annotations

import numpy as np

from tf_face.errors import FitError
from tf_face.types import IMAGE_FLIP


def umeyama_image(model_pts: np.ndarray, image_pts: np.ndarray):
    """Return (s, R, t[2], tz) with image ~= s*(R X)*flip + [t, tz]."""
    x = np.asarray(model_pts, np.float64)
    z = np.asarray(image_pts, np.float64) * IMAGE_FLIP   # = s R X + c
    mx, mz = x.mean(axis=0), z.mean(axis=0)
    xc, zc = x - mx, z - mz
    var_x = float((xc ** 2).sum()) / len(x)
    if var_x <= 0:
        raise FitError("fit: the face model's points are degenerate")
    cov = zc.T @ xc / len(x)
    u, d, vt = np.linalg.svd(cov)
    if d[1] <= 1e-9 * max(d[0], 1e-300):
        raise FitError("fit: observed landmarks are degenerate (collinear or all equal)")
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    sgn = np.array([1.0, 1.0, sign if sign != 0 else 1.0])
    r = u @ np.diag(sgn) @ vt
    s = float((d * sgn).sum() / var_x)
    c = mz - s * (r @ mx)
    # back to image frame: image = (s R X + c) * flip
    cimg = c * IMAGE_FLIP
    return s, r, cimg[:2].copy(), float(cimg[2])


def affine_init(model_pts: np.ndarray, obs2d: np.ndarray, weights=None):
    """Initial (s, R, t) from 3D model points [L,3] and image points [L,2]."""
    x = np.asarray(model_pts, np.float64)
    y = np.asarray(obs2d, np.float64) * np.array([1.0, -1.0])  # y up
    w = np.ones(len(x)) if weights is None else np.asarray(weights, np.float64)
    mx = (w[:, None] * x).sum(0) / w.sum()
    my = (w[:, None] * y).sum(0) / w.sum()
    xc, yc = (x - mx) * np.sqrt(w)[:, None], (y - my) * np.sqrt(w)[:, None]
    a, *_ = np.linalg.lstsq(xc, yc, rcond=None)     # [3, 2]: y = x a
    a = a.T                                         # [2, 3]
    u, d, vt = np.linalg.svd(a, full_matrices=False)
    if not np.all(np.isfinite(d)) or d[1] <= 1e-9 * max(d[0], 1e-300):
        raise FitError("fit: observed landmarks are degenerate (collinear or all equal)")
    s = float(d.mean())
    rows = u @ vt                                   # [2, 3] orthonormal rows
    r = np.vstack([rows, np.cross(rows[0], rows[1])])
    t_up = my - s * (r[:2] @ mx)
    t = t_up * np.array([1.0, -1.0])
    return s, r, t
