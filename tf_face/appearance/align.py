"""Photometric pose refinement: move the fitted mesh so the photo lines up
with the shaded PCA albedo (``--fit_align``, part of ``--appearance=fit``).

Why. The landmark fit places the mesh where the 468-point landmarker says;
on turned faces the landmarker is off by up to ~0.1 IOD (synthetic faces
with known truth, yaw 45-60 deg: it under-rotates the face by 5-10 deg), so
texel (r, c) of the unwrap shows the skin a few texels away from where the
UV layout has it (``tf_face.synthetic.registration``: median ~5 texels,
~9-12 at 55 deg). Every sharp feature of the albedo map (brows, lips, eye
corners) then lands in the wrong place of the map.

What. After the light/PCA-albedo fit of the first unwrap, a 6-parameter
pose change theta = (omega [3]: a camera-frame rotation about the mesh's
centroid, log scale, image translation [2]) is solved by Gauss-Newton/IRLS
on the paper's E_pixel (L1), with the PCA albedo and SH fixed:

    E(theta) = mean_texels sum_c | I_c(p(theta)) - A_c * H(n(theta)) . gamma_c |
               + w_pose * (|omega|^2 / s_rot^2 + ls^2 / s_scale^2 + |t|^2 / (s_shift IOD)^2)

over the texels visible in the first unwrap (every ``stride``-th per axis),
I = the photo in linear RGB, bilinear, with its Scharr gradients; p(theta) =
the texels' image points, n(theta) = their camera-frame normals rotated by
omega. Coarse to fine: each of ``blur_px`` blurs the photo (and the
prediction, in texels) by a Gaussian of that sigma before solving. A step is
kept only when the objective falls; the result is kept only when E at the
end is below E at theta = 0 by ``min_gain`` (relative), else the pose is left
as it was. The caller re-unwraps with the new pose and fits the appearance
again (``refine_fitted_pose``).

The mesh's shape is kept: only the weak-perspective pose (s, R, t) changes,
and ``vertices_image = model_to_image(vertices_model, s, R, t)`` stays true
(a mesh for which it does not hold is left alone).

Measured (2026-12-03). A synthetic face's true pose moved by 4 deg yaw, 2 deg
roll and 4 px comes back to 0.09 px (median vertex) with the true albedo and
light (``tests/test_align.py``). On the pipeline's own fits it removes only
the rigid part of the landmarker's error: 120 held-out synthetic faces
(``eval/synthetic_benchmark.py --weights_dir=tf_face/weights/v4
--num_faces=120 --seed=1000 --skin_tone=balanced``), median
misregistration 5.5 -> 5.2 texels, fit albedo error (visible) 0.0368 ->
0.0360, the PCA fit's 0.0356 -> 0.0350, for ~0.4 s (its own light fit,
12 Gauss-Newton steps and a second unwrap); 56 shared photos
(``eval/real_photos.py``), fit re-render error 0.0339 -> 0.0329, lower on
41. Rotating or deepening the mesh further lowers the misregistration of
turned faces but raises E_pixel: the rest is the mesh's shape.
"""

from __future__ import annotations

import dataclasses
import math
import time

import cv2
import numpy as np

from tf_face.sh import sh_basis_np
from tf_face.srgb import srgb_to_linear
from tf_face.types import IMAGE_FLIP, FittedFace, model_to_image


@dataclasses.dataclass
class AlignOptions:
    enabled: bool = True
    blur_px: tuple = (4.0, 1.0)     # coarse-to-fine photo blur (sigma, pixels of the photo)
    iterations: int = 6             # Gauss-Newton steps per level
    stride: int = 2                 # every stride-th visible texel per axis
    w_pose: float = 1e-4            # weight of the pose prior (data term: mean L1 per texel)
    s_rot: float = 0.1              # prior std of the rotation change (radians)
    s_scale: float = 0.05           # prior std of the log scale change
    s_shift: float = 0.05           # prior std of the translation (IOD)
    max_rot: float = 0.35           # bound on |omega| (radians, ~20 deg)
    irls_floor: float = 2e-3        # |r| floor of the IRLS weights (linear RGB)
    min_gain: float = 0.002         # keep the new pose only if E falls by this (relative)
    min_cos: float = 0.5            # texels used: facing the camera at least this much


@dataclasses.dataclass
class AlignResult:
    fitted: FittedFace              # the refined pose (the input one when not kept)
    theta: np.ndarray               # [6] omega (rad), log scale, t (px)
    energy_before: float
    energy_after: float
    kept: bool
    ms: float


def _rotvec(w) -> np.ndarray:
    r, _ = cv2.Rodrigues(np.asarray(w, np.float64).reshape(3, 1))
    return r


class _Problem:
    """The texels, photo and prediction of one alignment (module doc)."""

    def __init__(self, image, fitted, atlas, sample, albedo, sh, opts: AlignOptions):
        vi = np.asarray(fitted.vertices_image, np.float64)
        # only the face's box (+ a quarter of its size) is converted and filtered
        img = np.asarray(image)
        lo, hi = vi[:, :2].min(0), vi[:, :2].max(0)
        pad = 0.25 * float((hi - lo).max()) + 8.0
        x0, y0 = (int(max(0, np.floor(v - pad))) for v in lo)
        x1 = int(min(img.shape[1], np.ceil(hi[0] + pad)))
        y1 = int(min(img.shape[0], np.ceil(hi[1] + pad)))
        self.offset = np.array([x0, y0], np.float64)
        img = img[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1), :3]
        img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
        self.photo = srgb_to_linear(np.clip(img, 0.0, 1.0)).astype(np.float32)
        self.t0 = np.asarray(fitted.translation, np.float64)[:2]
        cam = (vi - np.r_[self.t0, 0.0]) * IMAGE_FLIP                    # = s R X
        self.centroid = cam.mean(0)
        vis = (np.asarray(sample.mask, bool) & atlas.mask
               & (np.asarray(sample.normals)[..., 2] > opts.min_cos))
        if opts.stride > 1:
            sub = np.zeros_like(vis)
            sub[::opts.stride, ::opts.stride] = True
            vis = vis & sub
        self.vis = vis
        # texel rows of the atlas' texel list that are used
        flat = np.zeros(vis.size, np.int64) - 1
        flat[atlas.texel_index] = np.arange(atlas.texel_index.size)
        rows = flat[np.flatnonzero(vis.reshape(-1))]
        rows = rows[rows >= 0]
        self.q0 = atlas.interpolate_texels(cam)[rows] - self.centroid    # [N,3] camera frame
        n = np.asarray(sample.normals, np.float64)[vis]
        self.n0 = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        self.albedo_uv = np.asarray(albedo, np.float32)
        self.sh = np.asarray(sh, np.float64)
        self.iod = max(float(np.ptp(vi[:, 0])) * 0.3, 1.0)   # ~IOD from the face's width
        self.opts = opts
        self.set_level(0.0)

    def set_level(self, blur: float):
        img = self.photo
        a = self.albedo_uv
        if blur > 0:
            img = cv2.GaussianBlur(img, (0, 0), blur)
            a = cv2.GaussianBlur(a, (0, 0), blur)
        gx = cv2.Scharr(img, cv2.CV_32F, 1, 0) / 32.0
        gy = cv2.Scharr(img, cv2.CV_32F, 0, 1) / 32.0
        self.stack = np.concatenate([img, gx, gy], -1)                    # [H, W, 9]
        self.albedo = a[self.vis].astype(np.float64)                      # [N, 3]

    def _sample(self, x, y):
        h, w = self.stack.shape[:2]
        n = x.size
        rows = -(-n // 256)
        mx = np.full(rows * 256, -4.0, np.float32)
        my = np.full(rows * 256, -4.0, np.float32)
        mx[:n] = np.clip(x, -4.0, w + 4.0)
        my[:n] = np.clip(y, -4.0, h + 4.0)
        out = np.empty((rows, 256, 9), np.float32)
        for k in range(0, 9, 3):     # cv2.remap takes up to 4 channels
            out[..., k:k + 3] = cv2.remap(np.ascontiguousarray(self.stack[..., k:k + 3]),
                                          mx.reshape(rows, 256), my.reshape(rows, 256),
                                          interpolation=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out.reshape(-1, 9)[:n].astype(np.float64)

    def points(self, theta):
        r = _rotvec(theta[:3]) * math.exp(theta[3])
        d = self.q0 @ r.T                                                  # about the centroid
        q = d + self.centroid
        x = q[:, 0] + self.t0[0] + theta[4] - self.offset[0]      # in the crop
        y = -q[:, 1] + self.t0[1] + theta[5] - self.offset[1]
        return d, x, y

    def shading(self, n):
        return sh_basis_np(n) @ self.sh                                    # [N, 3]

    def prior(self, theta):
        o = self.opts
        return o.w_pose * (float(theta[:3] @ theta[:3]) / o.s_rot ** 2
                           + theta[3] ** 2 / o.s_scale ** 2
                           + float(theta[4:] @ theta[4:]) / (o.s_shift * self.iod) ** 2)

    def prior_diag(self):
        o = self.opts
        return o.w_pose * np.r_[np.full(3, 1 / o.s_rot ** 2), 1 / o.s_scale ** 2,
                                np.full(2, 1 / (o.s_shift * self.iod) ** 2)]

    def residual(self, theta, jac=False):
        d, x, y = self.points(theta)
        s = self._sample(x, y)
        rot = _rotvec(theta[:3])
        n = self.n0 @ rot.T
        shade = self.shading(n)
        r = s[:, :3] - self.albedo * shade                                 # [N, 3]
        if not jac:
            return r
        gx, gy = s[:, 3:6], s[:, 6:9]
        # image point derivatives: dp = domega x d (camera frame), y flipped
        dx = np.stack([np.zeros(len(d)), d[:, 2], -d[:, 1], d[:, 0],
                       np.ones(len(d)), np.zeros(len(d))], 1)              # [N, 6]
        dy = -np.stack([-d[:, 2], np.zeros(len(d)), d[:, 0], d[:, 1],
                        np.zeros(len(d)), -np.ones(len(d))], 1)
        j = gx[:, :, None] * dx[:, None, :] + gy[:, :, None] * dy[:, None, :]   # [N,3,6]
        eps = 1e-3
        for k in range(3):
            e = np.zeros(3)
            e[k] = eps
            dn = np.cross(e, n)
            ds = (self.shading(n + dn) - self.shading(n - dn)) / (2 * eps)
            j[:, :, k] -= self.albedo * ds
        return r, j

    def energy(self, theta, r=None):
        if r is None:
            r = self.residual(theta)
        return float(np.abs(r).sum(1).mean()) + self.prior(theta)


def align_pose(image, fitted: FittedFace, atlas, sample, albedo, sh,
               opts: AlignOptions | None = None) -> AlignResult:
    """Refine ``fitted``'s pose against the photo (module doc).

    ``sample``: the unwrap of ``image`` with ``fitted``; ``albedo`` [S,S,3]
    (linear RGB, the PCA albedo of the light fit) and ``sh`` [9,3] (camera
    frame) of that fit.
    """
    opts = opts or AlignOptions()
    t = time.perf_counter()
    theta = np.zeros(6)
    posed = model_to_image(np.asarray(fitted.vertices_model, np.float64), fitted.scale,
                           fitted.rotation, fitted.translation)
    if np.abs(posed[:, :2] - np.asarray(fitted.vertices_image)[:, :2]).max() > 0.5:
        # a mesh that is not its pose applied to its shape: nothing to refine
        return AlignResult(fitted, theta, float("nan"), float("nan"), False, 0.0)
    prob = _Problem(image, fitted, atlas, sample, albedo, sh, opts)
    if len(prob.q0) < 50:
        return AlignResult(fitted, theta, float("nan"), float("nan"), False, 0.0)
    e_start = prob.energy(theta)
    pd = prob.prior_diag()
    for blur in opts.blur_px:
        prob.set_level(float(blur))
        r, j = prob.residual(theta, jac=True)
        cur = prob.energy(theta, r)
        damping = 1e-3
        for _ in range(int(opts.iterations)):
            w = 1.0 / np.maximum(np.abs(r), opts.irls_floor) / len(r)
            jf = j.reshape(-1, 6)
            wf = w.reshape(-1)
            a = jf.T @ (jf * wf[:, None]) + np.diag(pd)
            g = jf.T @ (wf * r.reshape(-1)) + pd * theta
            step = np.linalg.solve(a + damping * np.diag(np.diag(a)), -g)
            new = theta + step
            if np.linalg.norm(new[:3]) > opts.max_rot:
                new[:3] *= opts.max_rot / np.linalg.norm(new[:3])
            r_new, j_new = prob.residual(new, jac=True)
            e_new = prob.energy(new, r_new)
            if np.isfinite(e_new) and e_new < cur:
                theta, r, j, cur = new, r_new, j_new, e_new
                damping = max(damping * 0.3, 1e-6)
            else:
                damping *= 10.0
    prob.set_level(0.0)
    e_end = prob.energy(theta)
    kept = bool(np.isfinite(e_end) and e_end < e_start * (1.0 - opts.min_gain))
    out = fitted
    if kept:
        out = apply_pose_change(fitted, theta, prob.centroid)
    else:
        theta = np.zeros(6)
    return AlignResult(out, theta, e_start, e_end if kept else e_start, kept,
                       (time.perf_counter() - t) * 1e3)


def apply_pose_change(fitted: FittedFace, theta, centroid) -> FittedFace:
    """``fitted`` with its pose changed by ``theta`` about the camera-frame
    ``centroid`` (module doc); the shape (vertices_model) is kept."""
    dr = _rotvec(np.asarray(theta[:3], np.float64))
    k = math.exp(float(theta[3]))
    rot = dr @ np.asarray(fitted.rotation, np.float64)
    scale = float(fitted.scale) * k
    shift = (np.asarray(centroid, np.float64) - k * dr @ np.asarray(centroid, np.float64)) * IMAGE_FLIP
    trans = np.asarray(fitted.translation, np.float64)[:2] + shift[:2] + np.asarray(theta[4:6])
    vi = model_to_image(np.asarray(fitted.vertices_model, np.float64), scale, rot, trans)
    return dataclasses.replace(fitted, vertices_image=vi.astype(np.float32), scale=scale,
                               rotation=rot, translation=trans)
