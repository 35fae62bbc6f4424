"""The default albedo prior: a hand-built, low-frequency linear model in UV.

**This is a prior, not a scan-derived model.** Nobody measured these faces:
the mean colour, the colour axes and the standard deviations below are
set by hand from textbook skin optics, so that B-Net's low-frequency albedo
``R_a = m_a + U_a p_a`` (Eq. 4, ``||p_a||^2`` regulariser) has a sensible,
smooth, skin-coloured span on the default (MediaPipe-topology) model. A
scan-derived albedo PCA (BFM 2009/2017 ``tex*``/``color`` models, loaded
per vertex by ``tf_face.facemodel.bfm``) replaces it whenever such a model is
used: that model's ``albedo_space == "vertex"`` basis is interpolated into UV
by the UV atlas instead of this one.

Construction (all in linear RGB, texel grid ``size x size``, v down):

* support ``S``: the rasterised default mesh in UV, dilated by
  ``size/64`` texels (so a slightly different atlas mask never samples 0).
* colour axes at the mean colour m (per texel): a chromophore change dc
  changes reflectance by ``-m * sigma * dc`` (Beer-Lambert linearised), with
  absorbance ratios R:G:B for melanin ~ lambda^-3.5 at 620/550/460 nm
  (0.35 : 0.54 : 1) and for oxy-haemoglobin (0.03 : 1 : 0.7); plus a grey
  axis ``m`` for overall lightness (scattering / thickness).
* smooth spatial functions: 2-D cosines ``cos(pi a s) cos(pi b t)`` with
  ``a + b <= order`` over the support's bounding box (s, t in [0, 1]).
* regions: lips, brows, eyes rasterised from the connection-list contours
  (vertex-id loops stored in the asset) and blurred (sigma ``size/128``);
  each carries (1, s_r, t_r) x the three colour axes, with (s_r, t_r) the
  region's own coordinates in [-1, 1].
* every candidate (spatial function x colour axis) gets a hand-set standard
  deviation (RMS albedo change over the support at 1 sigma): melanin 0.09,
  haemoglobin 0.035, grey 0.04 for the constant function, divided by
  ``1 + a + b`` for higher frequencies; regions 0.04-0.05 (haemoglobin x0.7)
  inside the region, i.e. times sqrt(region's share of the support) over S.
  Candidates are sorted by that std, orthonormalised in that order by QR
  (Gram-Schmidt in that order, computed from the Gram matrix by a
  twice-applied Cholesky factorisation) in the inner product
  ``<A, B> = sum_{texels in S} sum_{rgb} A B / |S|``, the first K kept, and
  column k is scaled by its std: ``U_a = Q diag(std)``, so p_a ~ N(0, I).
* mean ``m_a``: one skin colour (linear RGB (0.52, 0.30, 0.22), i.e. sRGB
  about (188, 149, 131)), lips with +0.8 haemoglobin units, brows with +2
  melanin units, eyes a neutral grey 0.3. Outside the support the mean is the
  skin colour and the basis is 0.
"""

from __future__ import annotations


import cv2
import numpy as np

SKIN_LINEAR = np.array([0.52, 0.30, 0.22])
MELANIN = np.array([0.35, 0.54, 1.0])
HAEMOGLOBIN = np.array([0.03, 1.0, 0.7])
EYE_GREY = 0.3
DEFAULT_NUM_COMPONENTS = 100
SPATIAL_ORDER = 6
BASE_STD = {"melanin": 0.09, "haemoglobin": 0.035, "grey": 0.04}
REGION_STD = {"lips": 0.05, "brows": 0.04, "eyes": 0.04}


def rasterise_triangles(uv: np.ndarray, tri: np.ndarray, size: int) -> np.ndarray:
    """Union of the UV triangles as a [size, size] bool mask (texel centres)."""
    img = np.zeros((size, size), np.uint8)
    shift = 4
    pts = np.round(np.asarray(uv, np.float64) * size * (1 << shift) - 0.5 * (1 << shift)).astype(np.int32)
    cv2.fillPoly(img, [p for p in pts[tri]], 1, lineType=cv2.LINE_8, shift=shift)
    return img.astype(bool)


def rasterise_polygon(uv: np.ndarray, loop: np.ndarray, size: int, blur: float) -> np.ndarray:
    """Soft [size, size] float mask of a closed UV polygon (vertex-id loop)."""
    img = np.zeros((size, size), np.float32)
    shift = 4
    pts = np.round(np.asarray(uv, np.float64)[loop] * size * (1 << shift)
                   - 0.5 * (1 << shift)).astype(np.int32)
    cv2.fillPoly(img, [pts], 1.0, lineType=cv2.LINE_AA, shift=shift)
    if blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    return img


def _colour_axes(mean: np.ndarray) -> dict[str, np.ndarray]:
    return {"melanin": -mean * MELANIN, "haemoglobin": -mean * HAEMOGLOBIN, "grey": mean}


def build_albedo_prior(uv: np.ndarray, tri: np.ndarray, regions: dict[str, list[np.ndarray]],
                       size: int = 256, num_components: int = DEFAULT_NUM_COMPONENTS):
    """Returns (mean [H,W,3], basis [H,W,3,K], std [K], support [H,W] bool)."""
    face = rasterise_triangles(uv, tri, size)
    r = max(1, int(round(size / 64)))
    support = cv2.dilate(face.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
    blur = size / 128.0
    masks = {name: np.clip(sum(rasterise_polygon(uv, lp, size, blur) for lp in loops), 0, 1)
             for name, loops in regions.items()}

    mean = np.broadcast_to(SKIN_LINEAR, (size, size, 3)).copy()
    if "lips" in masks:
        lips = masks["lips"][..., None]
        mean = mean * (1 - lips) + lips * mean * np.exp(-0.8 * HAEMOGLOBIN)
    if "brows" in masks:
        b = masks["brows"][..., None]
        mean = mean * (1 - b) + b * mean * np.exp(-2.0 * MELANIN)
    if "eyes" in masks:
        e = masks["eyes"][..., None]
        mean = mean * (1 - e) + e * EYE_GREY
    axes = _colour_axes(mean)

    ys, xs = np.nonzero(support)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    sel = support.ravel()
    n_s = int(sel.sum())
    tt = np.clip((ys - y0) / max(y1 - y0, 1), 0, 1)   # support texels, row-major
    ss = np.clip((xs - x0) / max(x1 - x0, 1), 0, 1)

    # Every candidate is (spatial function f) x (colour axis c); keep them apart
    # so the Gram matrix and the basis cost O(texels * functions^2), not
    # O(texels * candidates^2).
    funcs, fstd = [], []          # spatial functions on the support, base std
    for a in range(SPATIAL_ORDER + 1):
        for b in range(SPATIAL_ORDER + 1 - a):
            funcs.append(np.cos(np.pi * a * ss) * np.cos(np.pi * b * tt))
            fstd.append(("global", 1.0 / (1 + a + b)))
    for rname, m in masks.items():
        mv = m[ys, xs]
        core = mv > 0.5
        if not core.any():
            continue
        # region-local coordinates in [-1, 1]; std scaled by sqrt(area share)
        # so the stated per-region std holds *inside* the region
        share = float(np.sqrt((mv ** 2).mean()))
        for f in (np.ones_like(ss), _local(ss, core), _local(tt, core)):
            funcs.append(mv * f)
            fstd.append((rname, share))
    fmat = np.stack(funcs, 1)                               # [n_s, nf]
    cnames = list(axes)
    amat = np.stack([axes[c][ys, xs] for c in cnames], 0)   # [nc, n_s, 3]
    cands = []                                              # (std, f index, c index)
    for fi, (kind, w) in enumerate(fstd):
        for ci, c in enumerate(cnames):
            if kind == "global":
                sd = BASE_STD[c] * w
            else:
                sd = REGION_STD[kind] * w * (1.0 if c != "haemoglobin" else 0.7)
            cands.append((sd, fi, ci))
    order = sorted(range(len(cands)), key=lambda i: -cands[i][0])
    k = min(int(num_components), len(cands))
    if k < 1:
        raise ValueError("num_components must be >= 1")

    nf, nc = fmat.shape[1], len(cnames)
    gram_blocks = np.empty((nc, nc, nf, nf))
    for ci in range(nc):
        for di in range(ci, nc):
            w = (amat[ci] * amat[di]).sum(1)                # [n_s]
            blk = fmat.T @ (w[:, None] * fmat) / n_s
            gram_blocks[ci, di] = blk
            gram_blocks[di, ci] = blk.T
    fi = np.array([cands[i][1] for i in order])
    ci = np.array([cands[i][2] for i in order])
    gram = gram_blocks[ci[:, None], ci[None, :], fi[:, None], fi[None, :]]
    coef = _orthonormalising_coefficients(gram)[:, :k]      # [n_cand, k]
    std = np.array([cands[i][0] for i in order[:k]])
    coef = coef * std[None, :]
    tmats = []
    for c in range(nc):
        rows = ci == c
        cm = np.zeros((nf, k))
        cm[fi[rows]] = coef[rows]
        tmats.append((fmat @ cm).astype(np.float32))        # [n_s, k]
    basis = np.zeros((size * size, 3, k), np.float32)
    idx = np.flatnonzero(sel)
    for j in range(3):
        acc = np.zeros((n_s, k), np.float32)
        for c in range(nc):
            acc += amat[c][:, j:j + 1].astype(np.float32) * tmats[c]
        basis[idx, j, :] = acc
    return (mean.astype(np.float32), basis.reshape(size, size, 3, k),
            std.astype(np.float32), support)


def _local(coord: np.ndarray, core: np.ndarray) -> np.ndarray:
    c = coord[core]
    mid = 0.5 * (c.min() + c.max())
    half = max(0.5 * (c.max() - c.min()), 1e-6)
    return (coord - mid) / half


def _orthonormalising_coefficients(gram: np.ndarray) -> np.ndarray:
    """Upper-triangular C with C^T G C = I: Gram-Schmidt in column order.

    Cholesky of the Gram matrix, then once more on the corrected Gram matrix
    (the CholeskyQR2 idea, done on the small matrices only).
    """
    r = np.linalg.cholesky(gram).T
    c = np.linalg.inv(r)
    g2 = c.T @ gram @ c
    r2 = np.linalg.cholesky(0.5 * (g2 + g2.T)).T
    return c @ np.linalg.inv(r2)


def inner_product(a: np.ndarray, b: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Gram matrix <A_i, B_j> = sum over support texels and RGB / |support|."""
    sel = support.ravel()
    aa = a.reshape(-1, 3, a.shape[-1])[sel].reshape(-1, a.shape[-1])
    bb = b.reshape(-1, 3, b.shape[-1])[sel].reshape(-1, b.shape[-1])
    return aa.T.astype(np.float64) @ bb.astype(np.float64) / int(sel.sum())


