"""The default albedo prior: a hand-built, low-frequency linear model in UV
that spans human skin tones from very light to very dark.

**This is a prior, not a scan-derived model.** Nobody scanned these faces:
the tone axes come from a published skin-tone scale (the Monk Skin Tone
swatches, via ``tf_face.skin_tone``), the remaining colour axes and standard
deviations are set by hand from textbook skin optics, so that B-Net's
low-frequency albedo ``R_a = m_a + U_a p_a`` (Eq. 4, ``||p_a||^2``
regulariser) has a sensible, smooth, skin-coloured span on the default
(MediaPipe-topology) model. A scan-derived albedo PCA (BFM 2009/2017
``tex*``/``color`` models, loaded per vertex by ``tf_face.facemodel.bfm``)
replaces it whenever such a model is used: that model's
``albedo_space == "vertex"`` basis is interpolated into UV by the UV atlas
instead of this one.

Construction (all in linear RGB, texel grid ``size x size``, v down):

* support ``S``: the rasterised default mesh in UV, dilated by
  ``size/64`` texels (so a slightly different atlas mask never samples 0).
* **skin tone** (``tone_model``). Skin colour is not linear in melanin, so
  the tone axes are not one melanin direction but the principal axes of the
  tone range itself: the uniform-over-groups tone distribution of
  ``skin_tone.tone_distribution`` (each of the six ITA groups equally
  likely, ITA uniform inside the group, colour on the MST tone curve; ITA
  +70 deg .. -60 deg), plus a within-tone redness spread (the haemoglobin axis
  below, std ``HAEMOGLOBIN_WITHIN_STD`` x ``STD_SCALE``). Its second-moment
  matrix about the mean skin colour ``SKIN_LINEAR`` is diagonalised: three
  axes u_k with stds sigma_k (~0.342, 0.049, 0.018 RMS RGB reflectance;
  the first is lightness/melanin, the second the hue bend of the curve,
  the third redness). Every group reference
  (``skin_tone.GROUP_REFERENCE_LINEAR``) is reached at ||p|| < 2.2 (i.e.
  within 3 sigma); the ends of the range (+70 / -60 deg) at ~3.5 / ~2.4.
* mean skin colour ``SKIN_LINEAR``: the MST tone curve at ITA
  ``TONE_MEAN_ITA`` = 28 deg (L*, a*, b* ~ 63.5, 6.2, 25.4; linear RGB
  ~ (0.457, 0.299, 0.153)), the median of the uniform-over-groups
  distribution (three groups lighter, three darker): the middle of the
  tone range. Lips get +0.8 haemoglobin units, brows +2 melanin units
  (``m * exp(-k * absorbance)``), eyes a neutral grey 0.3. Outside the
  support the mean is the skin colour and the basis is 0.
* chromophore axes at the mean colour m (per texel): a chromophore change dc
  changes reflectance by ``-m * sigma * dc`` (Beer-Lambert linearised), with
  absorbance ratios R:G:B for melanin ~ lambda^-3.5 at 620/550/460 nm
  (0.35 : 0.54 : 1) and for oxy-haemoglobin (0.03 : 1 : 0.7); plus a grey
  axis ``m`` for overall lightness (scattering / thickness).
* smooth spatial functions: 2-D cosines ``cos(pi a s) cos(pi b t)`` with
  ``a + b <= order`` over the support's bounding box (s, t in [0, 1]).
* regions: lips, brows, eyes rasterised from the connection-list contours
  (vertex-id loops stored in the asset) and blurred (sigma ``size/128``);
  each carries (1, s_r, t_r) x the three chromophore axes (the eyes: x the
  grey axis only -- melanin there tinted the sclera yellow on real photos),
  with (s_r, t_r) the region's own coordinates in [-1, 1].
* candidates: the **constant** function carries the three tone axes
  ``u_k * r(x)`` with std sigma_k, where ``r(x) = m(x) / SKIN_LINEAR`` outside
  the eyes and 0 inside them (a tone change darkens skin, lips and brows in
  proportion and leaves the sclera alone); the **other** spatial functions
  and the regions carry the chromophore axes with hand-set stds (RMS albedo
  change over the support at 1 sigma): melanin 0.09, haemoglobin 0.035,
  grey 0.04, divided by ``1 + a + b``; regions 0.04-0.05 (haemoglobin x0.7)
  inside the region, i.e. times sqrt(region's share of the support) over S.
  These hand-set stds were chosen for a mean skin colour of luminance
  Y = 0.341 (linear RGB (0.52, 0.30, 0.22)); they are scaled by
  ``STD_SCALE`` = Y(SKIN_LINEAR) / 0.341 ~ 0.94 so the variation is the
  same relative to the new mean. Candidates are sorted by std, orthonormalised
  in that order by QR (Gram-Schmidt in that order, computed from the Gram
  matrix by a twice-applied Cholesky factorisation) in the inner product
  ``<A, B> = sum_{texels in S} sum_{rgb} A B / |S|``, the first K kept, and
  column k is scaled by its std: ``U_a = Q diag(std)``, so p_a ~ N(0, I).
  Gram-Schmidt keeps the tone columns of the form ``u * r(x)`` among
  themselves; ``prior_layout`` names every column (the tone columns are
  ``tone0..2``).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from tf_face import skin_tone

MELANIN = np.array([0.35, 0.54, 1.0])
HAEMOGLOBIN = np.array([0.03, 1.0, 0.7])
EYE_GREY = 0.3
DEFAULT_NUM_COMPONENTS = 100
SPATIAL_ORDER = 6
TONE_MEAN_ITA = 28.0
SKIN_LINEAR = skin_tone.lab_to_linear_rgb(skin_tone.lab_for_ita(TONE_MEAN_ITA))
STD_REFERENCE_LINEAR = np.array([0.52, 0.30, 0.22])   # the colour BASE_STD was set for
STD_SCALE = float(SKIN_LINEAR @ skin_tone.RGB_TO_XYZ[1]
                  / (STD_REFERENCE_LINEAR @ skin_tone.RGB_TO_XYZ[1]))
BASE_STD = {"melanin": 0.09, "haemoglobin": 0.035, "grey": 0.04}
REGION_STD = {"lips": 0.05, "brows": 0.04, "eyes": 0.04}
HAEMOGLOBIN_WITHIN_STD = 0.035
CHROMOPHORES = ("melanin", "haemoglobin", "grey")
TONE_AXES = ("tone0", "tone1", "tone2")


@functools.lru_cache(maxsize=1)
def tone_model():
    """(SKIN_LINEAR [3], axes [3, 3] (column k = u_k, unit), std [3]) of the
    skin-tone colour prior (see the module docstring)."""
    _, cols = skin_tone.tone_distribution()
    d = cols - SKIN_LINEAR
    cov = d.T @ d / len(d)
    h = SKIN_LINEAR * HAEMOGLOBIN
    h = h / np.linalg.norm(h)
    cov = cov + (HAEMOGLOBIN_WITHIN_STD * STD_SCALE) ** 2 * np.outer(h, h)
    w, v = np.linalg.eigh(cov)
    w, v = w[::-1], v[:, ::-1]
    v = v * np.where(v[np.argmax(np.abs(v), 0), range(3)] < 0, -1.0, 1.0)  # sign: largest entry > 0
    return SKIN_LINEAR.copy(), v.copy(), np.sqrt(np.maximum(w, 0))


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


def _setup(uv, tri, regions, size):
    """Support, region masks, support texel coordinates, spatial functions and
    their (name, kind, base std) — everything but the colour axes."""
    face = rasterise_triangles(uv, tri, size)
    r = max(1, int(round(size / 64)))
    support = cv2.dilate(face.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
    blur = size / 128.0
    masks = {name: np.clip(sum(rasterise_polygon(uv, lp, size, blur) for lp in loops), 0, 1)
             for name, loops in regions.items()}
    ys, xs = np.nonzero(support)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    tt = np.clip((ys - y0) / max(y1 - y0, 1), 0, 1)   # support texels, row-major
    ss = np.clip((xs - x0) / max(x1 - x0, 1), 0, 1)
    funcs, finfo = [], []         # spatial functions on the support; (name, kind, w)
    for a in range(SPATIAL_ORDER + 1):
        for b in range(SPATIAL_ORDER + 1 - a):
            funcs.append(np.cos(np.pi * a * ss) * np.cos(np.pi * b * tt))
            finfo.append((f"a{a}b{b}", "constant" if a + b == 0 else "global", 1.0 / (1 + a + b)))
    for rname, m in masks.items():
        mv = m[ys, xs]
        core = mv > 0.5
        if not core.any():
            continue
        # region-local coordinates in [-1, 1]; std scaled by sqrt(area share)
        # so the stated per-region std holds *inside* the region
        share = float(np.sqrt((mv ** 2).mean()))
        for fname, f in (("1", np.ones_like(ss)), ("s", _local(ss, core)), ("t", _local(tt, core))):
            funcs.append(mv * f)
            finfo.append((f"{rname}_{fname}", rname, share))
    return support, masks, ys, xs, np.stack(funcs, 1), finfo


def _candidates(finfo):
    """[(std, function index, axis name, column name)] sorted by std (stable)."""
    _, _, tone_std = tone_model()
    cands = []
    for fi, (fname, kind, w) in enumerate(finfo):
        if kind == "constant":
            for k, ax in enumerate(TONE_AXES):
                cands.append((float(tone_std[k]), fi, ax, ax))
            continue
        for c in CHROMOPHORES:
            if kind == "eyes" and c != "grey":
                # eyes vary in lightness only: a melanin or haemoglobin axis
                # there tints the sclera yellow or red (seen on real photos,
                # where the fit used it to darken lashes and lid shadows)
                continue
            if kind == "global":
                sd = BASE_STD[c] * w * STD_SCALE
            else:
                sd = REGION_STD[kind] * w * (1.0 if c != "haemoglobin" else 0.7) * STD_SCALE
            cands.append((sd, fi, c, f"{fname}_{c}"))
    return sorted(cands, key=lambda c: -c[0])


def prior_layout(uv: np.ndarray, tri: np.ndarray, regions: dict[str, list[np.ndarray]],
                 size: int = 256, num_components: int = DEFAULT_NUM_COMPONENTS) -> list[str]:
    """Names of the K basis columns of ``build_albedo_prior`` (same arguments),
    in order: ``tone0..2`` (the skin-tone axes), ``a{a}b{b}_{chromophore}``
    (smooth functions) and ``{region}_{1|s|t}_{chromophore}``. Cheap."""
    *_, finfo = _setup(uv, tri, regions, size)
    return [c[3] for c in _candidates(finfo)[:int(num_components)]]


def build_albedo_prior(uv: np.ndarray, tri: np.ndarray, regions: dict[str, list[np.ndarray]],
                       size: int = 256, num_components: int = DEFAULT_NUM_COMPONENTS):
    """Returns (mean [H,W,3], basis [H,W,3,K], std [K], support [H,W] bool)."""
    support, masks, ys, xs, fmat, finfo = _setup(uv, tri, regions, size)
    mean = np.broadcast_to(SKIN_LINEAR, (size, size, 3)).copy()
    if "lips" in masks:
        lips = masks["lips"][..., None]
        mean = mean * (1 - lips) + lips * mean * np.exp(-0.8 * HAEMOGLOBIN)
    if "brows" in masks:
        b = masks["brows"][..., None]
        mean = mean * (1 - b) + b * mean * np.exp(-2.0 * MELANIN)
    tone_carrier = mean / SKIN_LINEAR                 # r(x): skin 1, lips/brows darker
    if "eyes" in masks:
        e = masks["eyes"][..., None]
        mean = mean * (1 - e) + e * EYE_GREY
        tone_carrier = tone_carrier * (1 - e)
    _, tone_axes, _ = tone_model()
    axes = {"melanin": -mean * MELANIN, "haemoglobin": -mean * HAEMOGLOBIN, "grey": mean}
    for k, name in enumerate(TONE_AXES):
        axes[name] = tone_carrier * tone_axes[:, k]

    sel = support.ravel()
    n_s = int(sel.sum())
    cands = _candidates(finfo)
    k = min(int(num_components), len(cands))
    if k < 1:
        raise ValueError("num_components must be >= 1")
    # Every candidate is (spatial function f) x (colour axis c); keep them apart
    # so the Gram matrix and the basis cost O(texels * functions^2), not
    # O(texels * candidates^2). Only the axis pairs that occur are computed.
    cnames = [c for c in (*CHROMOPHORES, *TONE_AXES) if any(x[2] == c for x in cands)]
    cidx = {c: i for i, c in enumerate(cnames)}
    amat = np.stack([axes[c][ys, xs] for c in cnames], 0)   # [nc, n_s, 3]
    fi = np.array([c[1] for c in cands])
    ci = np.array([cidx[c[2]] for c in cands])
    nf, nc = fmat.shape[1], len(cnames)
    # the functions each axis carries: all (chromophores, but the constant) or
    # one (the tone axes, the constant)
    used = [np.unique(fi[ci == c]) for c in range(nc)]
    used = [np.arange(nf) if len(u) > nf // 2 else u for u in used]
    fsub = [fmat if len(u) == nf else np.ascontiguousarray(fmat[:, u]) for u in used]
    gram_blocks = np.zeros((nc, nc, nf, nf))
    for c in range(nc):
        for d in range(c, nc):
            w = (amat[c] * amat[d]).sum(1)                   # [n_s]
            blk = fsub[c].T @ (w[:, None] * fsub[d]) / n_s
            gram_blocks[c, d][np.ix_(used[c], used[d])] = blk
            gram_blocks[d, c][np.ix_(used[d], used[c])] = blk.T
    gram = gram_blocks[ci[:, None], ci[None, :], fi[:, None], fi[None, :]]
    coef = _orthonormalising_coefficients(gram)[:, :k]      # [n_cand, k]
    std = np.array([c[0] for c in cands[:k]])
    coef = coef * std[None, :]
    # basis[:, j] = sum_c axis_c[:, j] * (F_c @ coefficients_c); an axis that
    # carries one function (the tone axes) is a rank-1 term, summed by one matmul
    tmats, single, single_rows = [], [], []
    for c in range(nc):
        rows = ci == c
        cm = np.zeros((nf, k))
        cm[fi[rows]] = coef[rows]
        if len(used[c]) == 1:
            single.append(c)
            single_rows.append(cm[used[c][0]])
            tmats.append(None)
        else:
            tmats.append((fsub[c] @ cm[used[c]]).astype(np.float32))   # [n_s, k]
    basis = np.zeros((size * size, 3, k), np.float32)
    idx = np.flatnonzero(sel)
    for j in range(3):
        acc = np.zeros((n_s, k), np.float32)
        for c in range(nc):
            if tmats[c] is not None:
                acc += amat[c][:, j:j + 1].astype(np.float32) * tmats[c]
        if single:
            lhs = np.stack([amat[c][:, j] * fsub[c][:, 0] for c in single], 1)   # [n_s, n1]
            acc += (lhs @ np.stack(single_rows, 0)).astype(np.float32)
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


