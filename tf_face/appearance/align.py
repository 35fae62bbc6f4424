"""Photometric mesh refinement: move the fitted mesh so the photo lines up
with the shaded PCA albedo (``--fit_align``, part of ``--appearance=fit``).

Why. The landmark fit places the mesh where the 468-point landmarker says.
On turned faces the landmarker is off by up to ~0.1 IOD (synthetic faces
with known truth: 0.015-0.02 IOD frontal, 0.06-0.12 at 55-60 deg yaw), so
texel (r, c) of the unwrap shows skin a few texels away from where the UV
layout has it (``tf_face.synthetic.registration``: median ~5-6 texels, 9-12
at 55 deg), and every sharp feature of the albedo map (brows, lips, eye
corners) lands in the wrong place of the map.

What. After a light/PCA-albedo fit of the first unwrap, the paper's E_pixel
(L1) is minimised over the mesh's placement with that PCA albedo A and SH
gamma fixed, by Gauss-Newton with IRLS weights, over the texels visible in
the first unwrap that face the camera (normal z > ``min_cos``; every
``stride``-th per axis). I = the photo in linear RGB, bilinear, with its
Scharr gradients. Coarse to fine: each of ``blur_px`` blurs the photo (and
the prediction, in texels) by a Gaussian of that sigma first. A step is kept
only when the objective falls; the result only when the objective at full
resolution ends below its start by ``min_gain`` (relative), else the mesh is
left as it was. Two stages (``mode``):

* ``"warp"`` (default): every vertex's image position moves by delta [V, 2]
  (the texels follow by their barycentric weights; z is kept):

      E(delta) = mean_texels sum_c | I_c(p + W delta) - A_c * H(n) . gamma_c |
                 + w_warp * (|delta|^2 / (s_warp IOD)^2 + |L delta|^2 / (s_warp_smooth IOD)^2)

  W the texels' vertex weights, L the mesh's uniform graph Laplacian (a
  smooth deformation is cheap, a crumpled one is not); J^T W J is assembled
  block-wise from W, sparse (each block has the mesh's pattern: vertices
  that share a triangle, two rings for the prior), and the 936 x 936 system
  solved by sparse LU (2026-12-05: the dense Cholesky it replaces took the
  warp stage a median 216 ms on the 56 shared photos, the sparse solve 133
  ms, in one run; the refined vertices are the same to float32). Only for
  models whose mesh is the landmarker's own (``observed_shape``: the
  default model); the model-frame shape is recomputed under the same pose.
* ``"rigid"``: the weak-perspective pose only, theta = (omega [3]: a
  camera-frame rotation about the mesh's centroid, log scale, image
  translation [2]), normals rotated with it, and a Gaussian prior
  ``w_pose (|omega|^2/s_rot^2 + ls^2/s_scale^2 + |t|^2/(s_shift IOD)^2)``.
  What "warp" falls back to for other models (ICT, BFM: their shape is a
  fitted coefficient vector).
* ``"both"``: rigid, a new unwrap, then warp.

The photo is read only in a crop around the face (its box + a quarter),
converted to linear RGB by a table for uint8 photos, and shrunk (area
average) when the face box spans more than ``max_face_px`` (640) pixels:
the texels sample it every ``stride`` texels of a 256^2 map, far more
coarsely than a 1000-pixel face's pixels, and ``blur_px`` stays in the
photo's pixels (scaled with the crop). On ``deca_exp/4`` and
``deca_teaser/1`` (faces ~1000-1100 px), building the problem and its blur
levels took 71-100 ms and takes 43-47 (the sRGB curve on a 1300^2 crop:
81-112 ms, the table 9); their refined vertices land a median 0.5-0.7 px
(~0.1 texel) from where the full-size crop put them.

Either way ``vertices_image = model_to_image(vertices_model, s, R, t)``
stays true (a mesh for which it does not hold is left alone). The caller
unwraps the photo again with the new mesh (``AppearanceFitter.align``).

Measured (2026-12-03, tuned on 24 faces of seed 2000, scored on the held-out
seed 1000 in the closing note of stop 25). With the true albedo and light, a
synthetic face's pose moved by 4 deg yaw, 2 deg roll and 4 px comes back to
0.09 px, a smooth 3 px warp of its mesh to under half (``tests/test_align.py``).
On the pipeline's own fits (24 faces, seed 2000; median misregistration /
fit albedo error visible, hidden / oracle-light delighting visible): no
refinement 6.1 texels / .0406, .0415 / .0314; rigid 5.8 / .0399, .0414 /
.0298; warp 4.9 / .0394, .0415 / .0268 (w_warp 1e-5: 4.9 / .0399, .0422;
1e-4: 5.3 / .0393, .0413; "both": 4.8 / .0398, .0426; blur (8, 4, 1): 4.9 /
.0397; all these with ``min_cos`` 0.5. The default 0.3: 4.8 / .0391, .0414 /
.0259; 0.15, every visible texel: 4.7 / .0392, .0418). The rigid stage
alone cannot do more: rotating or deepening the mesh further lowers the
misregistration of turned faces but raises E_pixel -- the landmarker's error
is mostly in the mesh's shape.
"""

from __future__ import annotations

import dataclasses
import math
import time

import cv2
import numpy as np

from tf_face.sh import sh_basis_np
from tf_face.srgb import srgb_to_linear, srgb_uint8_to_linear
from tf_face.types import IMAGE_FLIP, FittedFace, model_to_image


@dataclasses.dataclass
class AlignOptions:
    enabled: bool = True
    mode: str = "warp"              # "warp" | "rigid" | "both" (module doc)
    blur_px: tuple = (4.0, 1.0)     # coarse-to-fine photo blur (sigma, pixels of the photo)
    stride: int = 2                 # every stride-th visible texel per axis
    min_cos: float = 0.3            # texels used: facing the camera at least this much
    irls_floor: float = 2e-3        # |r| floor of the IRLS weights (linear RGB)
    min_gain: float = 0.002         # keep the new mesh only if E falls by this (relative)
    # warp stage
    warp_iterations: int = 5        # Gauss-Newton steps per level
    w_warp: float = 3e-5            # weight of its prior (data term: mean L1 per texel)
    s_warp: float = 0.1             # prior std of a vertex's displacement (IOD)
    s_warp_smooth: float = 0.01     # prior std of its graph Laplacian (IOD)
    # rigid stage
    iterations: int = 6             # Gauss-Newton steps per level
    w_pose: float = 1e-4            # weight of the pose prior
    s_rot: float = 0.1              # prior std of the rotation change (radians)
    s_scale: float = 0.05           # prior std of the log scale change
    s_shift: float = 0.05           # prior std of the translation (IOD)
    max_rot: float = 0.35           # bound on |omega| (radians, ~20 deg)
    # the photo's face crop is shrunk so the face box spans at most this many
    # pixels (0: never); the texels sample it far more coarsely (module doc)
    max_face_px: float = 640.0


@dataclasses.dataclass
class AlignResult:
    fitted: FittedFace              # the refined mesh (the input one when not kept)
    theta: np.ndarray               # [6] rigid stage: omega (rad), log scale, t (px)
    delta: np.ndarray               # [V, 2] warp stage: image displacement per vertex (px)
    energy_before: float
    energy_after: float
    kept: bool
    ms: float
    stages: tuple = ()              # the stages that ran ("rigid", "warp")
    # ``AppearanceFitter.align`` sets it: its stage 1 (``fit.LightAlbedoStage``) on
    # the unwrap before the refinement, which ``AppearanceFitter.fit`` reuses
    light_albedo: object = None


ALIGN_MODES = ("warp", "rigid", "both")


def _levenberg(e_new: float, e_cur: float, damping: float) -> tuple[bool, float]:
    """(step accepted, next damping): a step is kept only when the objective falls."""
    if np.isfinite(e_new) and e_new < e_cur:
        return True, max(damping * 0.3, 1e-6)
    return False, damping * 10.0


def _improved(e_start: float, e_end: float, min_gain: float) -> bool:
    """Whether the refined mesh is kept: E fell by more than ``min_gain`` (relative)."""
    return bool(np.isfinite(e_end) and e_end < e_start * (1.0 - min_gain))


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
        if img.dtype == np.uint8:
            photo = srgb_uint8_to_linear(img)
        else:
            photo = srgb_to_linear(np.clip(img.astype(np.float32), 0.0, 1.0)).astype(np.float32)
        # crop pixel x -> (x + 0.5) * zoom - 0.5 in the (maybe shrunk) photo
        self.zoom = np.ones(2)
        face_px = float((hi - lo).max())
        if opts.max_face_px > 0 and face_px > opts.max_face_px:
            f = opts.max_face_px / face_px
            h, w = photo.shape[:2]
            size = (max(1, int(round(w * f))), max(1, int(round(h * f))))
            photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
            self.zoom = np.array([size[0] / w, size[1] / h])
        self.photo = np.ascontiguousarray(photo, np.float32)
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
        self.rows = flat[np.flatnonzero(vis.reshape(-1))]                  # all >= 0: vis in atlas
        self.q0 = atlas.interpolate_texels(cam)[self.rows] - self.centroid   # [N,3] camera frame
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
            # blur is in the photo's pixels; the albedo map's texels are not shrunk
            sigma = blur * float(self.zoom.mean())
            if sigma > 0.05:
                img = cv2.GaussianBlur(img, (0, 0), sigma)
            a = cv2.GaussianBlur(a, (0, 0), blur)
        # the gradients per pixel of the crop (chain rule through the zoom)
        gx = cv2.Scharr(img, cv2.CV_32F, 1, 0) * np.float32(self.zoom[0] / 32.0)
        gy = cv2.Scharr(img, cv2.CV_32F, 0, 1) * np.float32(self.zoom[1] / 32.0)
        self.stack = [np.ascontiguousarray(m) for m in (img, gx, gy)]     # 3 x [H, W, 3]
        self.albedo = a[self.vis].astype(np.float64)                      # [N, 3]

    def _sample(self, x, y):
        """Photo, d/dx and d/dy [N, 9] at crop pixels (x, y), bilinear."""
        x = (np.asarray(x, np.float64) + 0.5) * self.zoom[0] - 0.5
        y = (np.asarray(y, np.float64) + 0.5) * self.zoom[1] - 0.5
        h, w = self.stack[0].shape[:2]
        n = x.size
        rows = -(-n // 256)
        mx = np.full(rows * 256, -4.0, np.float32)
        my = np.full(rows * 256, -4.0, np.float32)
        mx[:n] = np.clip(x, -4.0, w + 4.0)
        my[:n] = np.clip(y, -4.0, h + 4.0)
        out = np.empty((rows, 256, 9), np.float32)
        for k in range(3):           # cv2.remap takes up to 4 channels
            out[..., 3 * k:3 * k + 3] = cv2.remap(self.stack[k],
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
    """The rigid stage: ``fitted``'s pose refined against the photo (module doc).

    ``sample``: the unwrap of ``image`` with ``fitted``; ``albedo`` [S,S,3]
    (linear RGB, the PCA albedo of the light fit) and ``sh`` [9,3] (camera
    frame) of that fit.
    """
    opts = opts or AlignOptions()
    t = time.perf_counter()
    theta = np.zeros(6)
    if not _is_posed_shape(fitted):
        # a mesh that is not its pose applied to its shape: nothing to refine
        return AlignResult(fitted, theta, None, float("nan"), float("nan"), False, 0.0)
    prob = _Problem(image, fitted, atlas, sample, albedo, sh, opts)
    if len(prob.q0) < 50:
        return AlignResult(fitted, theta, None, float("nan"), float("nan"), False, 0.0)
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
            accepted, damping = _levenberg(e_new, cur, damping)
            if accepted:
                theta, r, j, cur = new, r_new, j_new, e_new
    prob.set_level(0.0)
    e_end = prob.energy(theta)
    kept = _improved(e_start, e_end, opts.min_gain)
    out = fitted
    if kept:
        out = apply_pose_change(fitted, theta, prob.centroid)
    else:
        theta = np.zeros(6)
    return AlignResult(out, theta, None, e_start, e_end if kept else e_start, kept,
                       (time.perf_counter() - t) * 1e3, ("rigid",))


def _is_posed_shape(fitted) -> bool:
    posed = model_to_image(np.asarray(fitted.vertices_model, np.float64), fitted.scale,
                           fitted.rotation, fitted.translation)
    return bool(np.abs(posed[:, :2] - np.asarray(fitted.vertices_image)[:, :2]).max() <= 0.5)


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


def _graph_laplacian(triangles, num_vertices: int):
    """Sparse [V, V] uniform graph Laplacian: (L x)_i = x_i - mean of i's neighbours."""
    import scipy.sparse
    t = np.asarray(triangles, np.int64)
    i = np.concatenate([t[:, 0], t[:, 1], t[:, 2], t[:, 1], t[:, 2], t[:, 0]])
    j = np.concatenate([t[:, 1], t[:, 2], t[:, 0], t[:, 0], t[:, 1], t[:, 2]])
    a = scipy.sparse.csr_matrix((np.ones(i.size), (i, j)), shape=(num_vertices,) * 2)
    a.data[:] = 1.0                                    # shared edges counted once
    deg = np.asarray(a.sum(1)).reshape(-1)
    return scipy.sparse.identity(num_vertices, format="csr") - scipy.sparse.diags(
        1.0 / np.maximum(deg, 1.0)) @ a


class _WarpProblem(_Problem):
    """Per-vertex 2D image displacements delta [V, 2] (module doc, non-rigid stage)."""

    def __init__(self, image, fitted, atlas, sample, albedo, sh, opts, triangles):
        super().__init__(image, fitted, atlas, sample, albedo, sh, opts)
        import scipy.sparse
        self.w = atlas._matrix(np.float64)[self.rows]                 # [N, V] sparse
        self.lap = _graph_laplacian(triangles, atlas.num_vertices)
        self.nv = atlas.num_vertices
        _, self.x0, self.y0 = self.points(np.zeros(6))
        self.shade0 = self.shading(self.n0)
        self.sp = scipy.sparse

    def residual_warp(self, delta, jac=False):
        d = self.w @ delta                                            # [N, 2]
        s = self._sample(self.x0 + d[:, 0], self.y0 + d[:, 1])
        r = s[:, :3] - self.albedo * self.shade0
        return (r, s[:, 3:6], s[:, 6:9]) if jac else r

    def prior_warp(self, delta):
        o = self.opts
        sm, ss = (o.s_warp * self.iod) ** 2, (o.s_warp_smooth * self.iod) ** 2
        ld = self.lap @ delta
        return o.w_warp * (float(np.sum(delta ** 2)) / sm + float(np.sum(ld ** 2)) / ss)

    def prior_matrix(self):
        """The prior's [V, V] Hessian block (the same for x and y), sparse."""
        o = self.opts
        sm, ss = (o.s_warp * self.iod) ** 2, (o.s_warp_smooth * self.iod) ** 2
        p = (self.sp.identity(self.nv) / sm + (self.lap.T @ self.lap) / ss) * o.w_warp
        return p.tocsr()

    def energy_warp(self, delta, r=None):
        if r is None:
            r = self.residual_warp(delta)
        return float(np.abs(r).sum(1).mean()) + self.prior_warp(delta)


def warp_mesh(image, fitted: FittedFace, atlas, sample, albedo, sh, triangles,
              opts: AlignOptions | None = None) -> AlignResult:
    """The non-rigid stage: every vertex moved in the image (module doc)."""
    import scipy.sparse
    import scipy.sparse.linalg
    opts = opts or AlignOptions()
    t = time.perf_counter()
    nv = atlas.num_vertices
    delta = np.zeros((nv, 2))
    if not _is_posed_shape(fitted):
        return AlignResult(fitted, np.zeros(6), delta, float("nan"), float("nan"), False, 0.0)
    prob = _WarpProblem(image, fitted, atlas, sample, albedo, sh, opts, triangles)
    if len(prob.q0) < 50:
        return AlignResult(fitted, np.zeros(6), delta, float("nan"), float("nan"), False, 0.0)
    e_start = prob.energy_warp(delta)
    pm = prob.prior_matrix()
    wt = prob.w.T.tocsr()
    for blur in opts.blur_px:
        prob.set_level(float(blur))
        r, gx, gy = prob.residual_warp(delta, jac=True)
        cur = prob.energy_warp(delta, r)
        damping = 1e-3
        for _ in range(int(opts.warp_iterations)):
            om = 1.0 / np.maximum(np.abs(r), opts.irls_floor) / len(r)     # [N, 3]
            # J^T W J in blocks: J's rows are (g_x, g_y) x the texel's 3 vertex
            # weights, so each block has the mesh's sparsity (vertices that share
            # a triangle; the prior's: two rings); solved sparse (a dense
            # Cholesky of the 2V x 2V system took ~14 ms a step)
            axy = wt @ prob.w.multiply((om * gx * gy).sum(1)[:, None])
            big = scipy.sparse.bmat(
                [[wt @ prob.w.multiply((om * gx * gx).sum(1)[:, None]) + pm, axy],
                 [axy.T, wt @ prob.w.multiply((om * gy * gy).sum(1)[:, None]) + pm]],
                format="csc")
            g = np.r_[wt @ (om * gx * r).sum(1) + pm @ delta[:, 0],
                      wt @ (om * gy * r).sum(1) + pm @ delta[:, 1]]
            a = (big + damping * scipy.sparse.diags(big.diagonal())).tocsc()
            try:
                step = scipy.sparse.linalg.splu(a, permc_spec="MMD_AT_PLUS_A").solve(-g)
            except RuntimeError:                  # exactly singular
                damping *= 10.0
                continue
            if not np.all(np.isfinite(step)):
                damping *= 10.0
                continue
            new = delta + np.stack([step[:nv], step[nv:]], 1)
            r_new, gx_new, gy_new = prob.residual_warp(new, jac=True)
            e_new = prob.energy_warp(new, r_new)
            accepted, damping = _levenberg(e_new, cur, damping)
            if accepted:
                delta, r, gx, gy, cur = new, r_new, gx_new, gy_new, e_new
    prob.set_level(0.0)
    e_end = prob.energy_warp(delta)
    kept = _improved(e_start, e_end, opts.min_gain)
    if not kept:
        delta = np.zeros((nv, 2))
    out = apply_warp(fitted, delta) if kept else fitted
    return AlignResult(out, np.zeros(6), delta, e_start, e_end if kept else e_start, kept,
                       (time.perf_counter() - t) * 1e3, ("warp",))


def apply_warp(fitted: FittedFace, delta) -> FittedFace:
    """``fitted`` with its image vertices moved by ``delta`` [V, 2] (px) and its
    model-frame shape recomputed from them under the same pose."""
    vi = np.asarray(fitted.vertices_image, np.float64).copy()
    vi[:, :2] += np.asarray(delta, np.float64)
    cam = (vi - np.r_[np.asarray(fitted.translation, np.float64)[:2], 0.0]) * IMAGE_FLIP
    vm = cam @ np.asarray(fitted.rotation, np.float64) / float(fitted.scale)   # R^T, row form
    return dataclasses.replace(fitted, vertices_image=vi.astype(np.float32),
                               vertices_model=vm.astype(np.float32))


def align(image, fitted: FittedFace, model, atlas, sample, albedo, sh,
          opts: AlignOptions | None = None, min_cos: float | None = None) -> AlignResult:
    """The stages of ``opts.mode`` in order (module doc); "warp" needs a model
    whose mesh is the landmarker's own (``model.observed_shape``) and is the
    rigid stage for other models. ``sample``: the unwrap of ``image`` with
    ``fitted``; after a kept rigid stage "both" unwraps again (``min_cos``)."""
    from tf_face.uv.unwrap import DEFAULT_MIN_COS, unwrap
    opts = opts or AlignOptions()
    if opts.mode not in ALIGN_MODES:
        raise ValueError(f"align mode must be one of {ALIGN_MODES}, got {opts.mode!r}")
    t = time.perf_counter()
    can_warp = bool(getattr(model, "observed_shape", False))
    rigid = opts.mode in ("rigid", "both") or not can_warp
    warp = opts.mode in ("warp", "both") and can_warp
    out = AlignResult(fitted, np.zeros(6), np.zeros((atlas.num_vertices, 2)), float("nan"),
                      float("nan"), False, 0.0, ())
    stages, kept, e0 = [], False, None
    if rigid:
        r = align_pose(image, fitted, atlas, sample, albedo, sh, opts)
        stages.append("rigid")
        e0 = r.energy_before
        out = dataclasses.replace(out, fitted=r.fitted, theta=r.theta,
                                  energy_before=r.energy_before, energy_after=r.energy_after)
        kept = r.kept
        if r.kept and warp:
            sample = unwrap(image, r.fitted, model, atlas,
                            min_cos=DEFAULT_MIN_COS if min_cos is None else min_cos)
    if warp:
        w = warp_mesh(image, out.fitted, atlas, sample, albedo, sh, model.triangles, opts)
        stages.append("warp")
        out = dataclasses.replace(out, fitted=w.fitted, delta=w.delta,
                                  energy_before=w.energy_before if e0 is None else e0,
                                  energy_after=w.energy_after)
        kept = kept or w.kept
    return dataclasses.replace(out, kept=kept, stages=tuple(stages),
                               ms=(time.perf_counter() - t) * 1e3)
