"""B-Net's objective solved for one photo: the PCA albedo coefficients p_a and
the SH light gamma (Eq. 4, ``E_pixel + w_a E_a``), by damped Gauss-Newton on
(p_a, gamma) jointly with iteratively reweighted least squares for the L1
norm (numpy, tens of milliseconds).

The model is bilinear: the re-render of texel i, channel c is
``(m_ic + U_ic p) * (H(n_i) . gamma_c)``, so with gamma fixed it is linear in p
and with p fixed it is linear in gamma. The start solves the light for the
mean albedo; then each iteration takes one joint, damped Gauss-Newton step on
the IRLS majoriser ``|r| <= r^2 / (2|r0|) + |r0| / 2`` of E_pixel (the L1 norm
summed over the visible texels and channels, ``tf_face.losses``
``reduction="sum"``) plus the priors, and keeps it only if the true objective
falls (Levenberg-style damping otherwise), so the objective never increases.

Albedo x light has a scale ambiguity that the pixels cannot resolve: a darker
albedo under a brighter light renders the same photo. With a prior that spans
very light to very dark skin (``tf_face.facemodel.albedo_prior``), ``E_a``
alone barely pins it, so we add (ours, not in the paper) a **light prior**:

    E_light = w_light * (ebar - exposure)^2 + w_white * sum_c (e_c - ebar)^2
              + w_sh_dir * ||gamma_1..8||^2
              + w_sh_chroma * sum_{j>=1} sum_c (gamma_jc - mean_c gamma_jc)^2
              + w_sh_positive * sum_{d in D} sum_c min(0, H(d) . gamma_c)^2

with ``e_c = hbar . gamma_c`` the mean irradiance of channel c over the
face's own visible normals (``hbar``: the mean SH basis of the texels fitted;
``exposure_normals="face"``, the default) and ``ebar`` its channel mean.
``exposure_normals="front"`` takes the mean over camera-facing normals
instead (uniform in the image disc, analytic: ``tf_face.sh.FRONT_MEAN_BASIS``;
the synthetic generator's definition of exposure). Judged on a fixed disc, a
light from above is over-exposure only for a face that looks up, so people
looking up got dark skin: ``deca_examples/image03786`` (texture ITA +34)
-54.5 deg -> -0.4, ``alfw2`` (+28) -0.5 -> +16.7; mean re-render error over
the 56 shared photos 0.0343 -> 0.0339. On 60 balanced synthetic faces (seed
1000) "face" vs "front": fit visible MAE 0.0351 vs 0.0359, hidden 0.0404 vs
0.0416, PCA fit 0.0338 vs 0.0347, SH RMS 0.119 vs 0.123, ITA error 2.75 vs
2.83 deg (bias 2.11 vs 1.96). It says "the photo is exposed so that the face receives about
``exposure`` (0.95) irradiance, in roughly white light" -- what a camera's auto exposure and white balance do,
and what the synthetic generator draws (``tf_face.synthetic.lighting``: mean
front irradiance 0.8-1.1). With it the skin tone follows the photo's
brightness, as a person judging the photo would (and an under-exposed photo
reads as darker skin). Not kept (2026-12-04): the sclera as a white
reference. On synthetic faces the brightest near-neutral delit texels of
the eye region (90th percentile of texels with blue/red > 0.7) explain
most of the fit's remaining exposure error (100 faces, seed 3000: log-gain
error std 0.102, 0.048 after regressing it on them; correlation 0.88), but
the generator's eyes are flat, unshadowed discs with a 0.46-0.58 sclera
(that percentile 0.41-0.75, median 0.53). On the 56 shared photos 21 have
fewer than 10 such texels (half-closed eyes, lids, lashes) and the others
read 0.03-1.05 (median 0.35: shadowed sclera, catchlights), so the cue
would make most real faces lighter and some far darker. The last term pulls the light's directional part
weakly towards ambient: with dark skin the pixels constrain the direction
little, and unconstrained SH traded against the albedo's smooth components
(measured on 32 synthetic faces: SH RMS 0.37 -> 0.14, ITA bias across tone
groups 7.2 -> 3.4 deg).

The last two terms say what any real light is. **One colour from every
direction** (``w_sh_chroma``): the directional coefficients' spread over the
channels; with ``w_white`` (the face-mean irradiance is white) the whole light
is then about white unless the pixels insist. **Never negative**
(``w_sh_positive``): a hinge on the irradiance over ``SEEN_DIRECTIONS_BASIS``'s
directions D (a Fibonacci sphere with z >= -0.3: every normal a face can turn
to the camera); the order-2 irradiance of a real light dips below 0 by at
most ~4% of its peak, so 0 is the floor. Without them the light took colour
the PCA albedo could not hold (its spatial columns weigh 10x) and went teal
or negative where the photo shows little: in the re-render of
``deca_examples/IMG_0392`` the red irradiance at the nostrils was 0.21 against
1.0 in blue (teal nostrils, a teal rim under the chin), and ``000114``,
``015259``, ``015270``, ``015309``, ``vd026``, ``vd034`` and ``deca_teaser/1``
had green or teal rims at the side of the face. Measured on the 56 shared photos
(``eval/real_photos.py``'s ``light_cast_fraction_fit`` and
``light_negative_fraction_fit``: the share of the face's texels whose fitted
irradiance has one channel below 0.6x another, or a negative one):
9.3% -> 0.8% and 1.0% -> 0.09%; photos with more than 5% such texels 31 -> 4
(those four: a warm tint on the dark side of a side-lit face); re-render
error over skin texels 0.0221 -> 0.0226 (a light held to physics explains
less of each photo; fit < PCA fit on 56 of 56 either way). Per term:
w_sh_chroma 1e3 / 1e4 / 1e5 alone: 5.3% / 1.7% / 0.8% of texels, re-render
0.0224 / 0.0228 / 0.0233; w_sh_positive 1e3 on top: 0.9%, 0.0227 (1e4:
0.8%, 0.0230). On 48 synthetic faces of the tuning seed (2000, whose lights
are coloured 15-65% of the time: a warm or cool key, a fill of another colour)
neither term hurts: SH RMS 0.122 -> 0.106, fit albedo error visible .0350 ->
.0347, hidden .0389 -> .0386, ITA error 2.73 -> 2.68 deg, bias 2.86 -> 2.70.
The hinge is solved by Gauss-Newton on its active set (the directions
negative now); the first light solve, before the joint steps, iterates that
active set too (else it starts far inside the forbidden region and the joint
steps crawl out). ``--nofit_one_colour_light`` (``w_sh_chroma = 0``) lets
each direction take its own colour, for faces lit by lamps of different
colours.

For the albedo (ours too): ``w_mirror * sum_texels |R_a - mirror(R_a)|^2``
over the atlas -- faces are nearly symmetric, and without it the PCA albedo of
the hidden half of a turned face is an unconstrained extrapolation (hidden
texel MAE 0.059 -> 0.048 on the same faces).

**The prior's weight per column** (``w_a_spatial``, ours): E_a is
``sum_k w_k p_k^2`` with ``w_k = w_a`` (the paper's 1) on the skin-tone
columns and ``w_a * w_a_spatial`` (10) on the others (the smooth colour
variation over the face, the lips', brows' and eyes' colour), where the
model names its tone columns (``FaceModel.albedo_tone_columns``, carried by
``UVAlbedoModel.tone_columns``; the default prior's: ``tone0..2``,
``tf_face.facemodel.default.default_tone_columns``; a scan PCA such as the
BFM's mixes tone and space and names none, so there every column keeps ``w_a``). Why: E_pixel
sums the L1 residual over thousands of texels as if each were independent
evidence, but what the PCA's spatial columns see is mostly *correlated*
error -- the fitted mesh's normals and placement are off smoothly (a face
looking up, a misplaced cheek), and a fringe or a hand covers a region. With
w_a = 1 the spatial columns absorb it: horizontal light and dark bands across
the face of ``deca_examples/image03786`` (looking up into the light), a purple
rim on ``id06692-...-002721``, bright sides on ``IMG_0392``; with more weight the PCA
albedo is even skin there and the light takes the shading. The tone is one
number per face that every texel measures alike, so it keeps the paper's
weight (shrinking it too, w_a = 30 everywhere, scored the lowest MAE but
pulled the extreme tones towards the middle: ITA bias 3.95 -> 5.24 deg).
Measured (24 faces, seed 2000, all tones; fit / PCA fit albedo MAE, visible
and hidden; fit ITA error / bias): w_a_spatial 1 (the paper) .0391, .0409 /
.0386, .0408; 3.38 / 3.95 deg. 30: .0371, .0378 / .0370, .0377; 3.18 / 3.35.
100: .0374, .0382 / .0378, .0381; 3.23 / 2.99. (w_a 3 and w_a_spatial 10:
.0369, .0376; 3.16 / 3.43; w_a 10 everywhere: .0367, .0377; 3.17 / 4.31.)
30 scores about the same held out (visible .0346, hidden .0367), but on real photos with
a fringe or a cap (``deca_exp/5``, ``deep3d_examples/015259``) the light
then takes the occluder, and a red or brown blotch spreads over the
forehead; 10 keeps the bands and rims away without it (looked at side by
side: 1, 5, 10, 30). Held out (120 faces, seed 1000; w_a_spatial 1 -> 10):
fit visible .0350 -> .0343, hidden .0388 -> .0371 (PCA fit .0345, .0367),
ITA error 3.13 -> 3.06 deg, bias 1.85 -> 1.89.
A robust (redescending, ``c log(1 + |r|/c)``, c = 0.05) data term instead of
L1, tried for the same reason, scored worse everywhere (visible .0395,
hidden .0413; not kept).

``w_light = w_white = w_sh_dir = w_mirror = 0`` and ``w_a_spatial = 1`` give
the paper's objective alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_face.sh import FRONT_MEAN_BASIS, sh_basis_np


@dataclasses.dataclass
class LightAlbedoOptions:
    w_a: float = 1.0            # the paper's weight of E_a = ||p_a||^2
    w_a_spatial: float = 10.0   # x w_a on the non-tone columns, where the model names them
    w_light: float = 1e4        # light prior: mean front irradiance near ``exposure``
    w_white: float = 1e5        # light prior: channels' front irradiance near equal
    exposure: float = 0.95      # mean front irradiance the prior expects
    exposure_normals: str = "face"  # the prior's normals: "face" (the visible ones) | "front"
    w_sh_dir: float = 10.0      # light prior: ||gamma_1..8||^2 (directional part) small
    w_sh_chroma: float = 1e4    # light prior: sum_c (gamma_jc - mean_c gamma_j)^2, j >= 1
    w_sh_positive: float = 1e3  # light prior: sum over seen directions, channels of min(0, E)^2
    w_mirror: float = 1.0       # albedo prior: sum_texels |R_a - mirror(R_a)|^2 (needs mirror_gram)
    iterations: int = 10        # joint Gauss-Newton steps
    warm_iterations: int = 6    # ... from the fit before ``align`` (``AppearanceFitter.fit``)
    stride: int = 3             # use every stride-th visible texel per axis (x stride^2 weight)
    irls_floor: float = 2e-3    # |r| floor of the IRLS weights (linear RGB)


@dataclasses.dataclass
class LightAlbedoFit:
    p_a: np.ndarray       # [K] float32
    sh: np.ndarray        # [9, 3] float32 (camera frame, ambient included)
    objective: list       # E_pixel + w_a E_a + E_light after each iteration
    e_pixel: float        # at the end, full resolution equivalent (sum over visible texels)
    e_a: float


EXPOSURE_NORMALS = ("face", "front")


def _seen_directions(n: int = 256, min_z: float = -0.3) -> np.ndarray:
    """Unit directions (Fibonacci sphere, ``n`` over the whole sphere) with
    z >= ``min_z``: the normals a face can turn towards the camera."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    d = np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)
    return d[z >= min_z]


#: [D, 9] the SH basis of ``_seen_directions()`` (the positivity prior's)
SEEN_DIRECTIONS_BASIS = sh_basis_np(_seen_directions())


def _chroma_gram() -> np.ndarray:
    """[27, 27] Q with g^T Q g = sum_{j>=1} sum_c (g_jc - mean_c g_jc)^2, g = gamma
    as [27] (channel-major): the directional part's colour spread."""
    q = np.zeros((27, 27))
    centre = np.eye(3) - 1.0 / 3.0                       # I - 11^T/3 over the channels
    for j in range(1, 9):
        idx = np.array([9 * c + j for c in range(3)])
        q[np.ix_(idx, idx)] += centre
    return q


#: ``_chroma_gram()``, a constant
CHROMA_GRAM = _chroma_gram()


def _hinge_gram(active) -> np.ndarray:
    """[27, 27] Q with g^T Q g = sum_c sum_{d active in c} (H(d) . g_c)^2 (g =
    gamma as [27], channel-major; ``active`` [D, 3] bool over
    ``SEEN_DIRECTIONS_BASIS``): the positivity hinge on its active set."""
    q = np.zeros((27, 27))
    for c in range(3):
        h = SEEN_DIRECTIONS_BASIS[active[:, c]]
        q[c * 9:(c + 1) * 9, c * 9:(c + 1) * 9] = h.T @ h
    return q


def light_prior(sh: np.ndarray, opts: LightAlbedoOptions, hbar=FRONT_MEAN_BASIS) -> float:
    """E_light of ``sh`` [9, 3]; ``hbar`` [9]: the mean SH basis of the normals
    the exposure is judged on (module doc)."""
    e = np.asarray(hbar, np.float64) @ sh                               # [3]
    ebar = float(e.mean())
    g = np.asarray(sh, np.float64)
    d = g[1:]                                                           # directional part
    negative = np.minimum(SEEN_DIRECTIONS_BASIS @ g, 0.0)               # [D, 3]
    return (opts.w_light * (ebar - opts.exposure) ** 2 + opts.w_white * float(np.sum((e - ebar) ** 2))
            + opts.w_sh_dir * float(np.sum(d ** 2))
            + opts.w_sh_chroma * float(np.sum((d - d.mean(1, keepdims=True)) ** 2))
            + opts.w_sh_positive * float(np.sum(negative ** 2)))


def prior_weights(num_components: int, opts: LightAlbedoOptions, tone_columns=None) -> np.ndarray:
    """[K] the albedo prior's weight per column: ``w_a``, times ``w_a_spatial``
    off ``tone_columns`` (None or empty: the basis names no tone columns, and
    every column keeps ``w_a``; module doc)."""
    w = np.full(int(num_components), float(opts.w_a))
    if tone_columns is not None and len(tone_columns):
        off = np.ones(int(num_components), bool)
        off[np.asarray(tone_columns, np.int64)] = False
        w[off] *= float(opts.w_a_spatial)
    return w


def _solve_light(target, albedo, basis, weight, opts, hbar):
    """gamma [9, 3] minimising sum w (T - A (H gamma))^2 / 2 + E_light (27 unknowns)."""
    # data: block-diagonal over channels
    lhs = np.zeros((27, 27))
    rhs = np.zeros(27)
    for c in range(3):
        a = basis * albedo[:, c:c + 1]                                  # [N, 9]
        wa = a * weight[:, c:c + 1]
        lhs[c * 9:(c + 1) * 9, c * 9:(c + 1) * 9] = 0.5 * (a.T @ wa)
        rhs[c * 9:(c + 1) * 9] = 0.5 * (wa.T @ target[:, c])
    # prior rows: E_light = w_l (mean_c h.g_c - x)^2 + w_w sum_c (h.g_c - mean)^2
    avg, rows = _light_prior_system(hbar)
    lhs += opts.w_light * np.outer(avg, avg)
    rhs += opts.w_light * opts.exposure * avg
    lhs += opts.w_white * rows.T @ rows
    if opts.w_sh_chroma > 0:
        lhs += opts.w_sh_chroma * CHROMA_GRAM
    lhs += 1e-6 * np.eye(27)
    g = np.linalg.solve(lhs, rhs)
    if opts.w_sh_positive > 0:      # the hinge's active set: directions that went negative
        active = np.zeros((SEEN_DIRECTIONS_BASIS.shape[0], 3), bool)
        for _ in range(5):
            now = active | (SEEN_DIRECTIONS_BASIS @ g.reshape(3, 9).T < 0)
            if (now == active).all():
                break
            active = now
            g = np.linalg.solve(lhs + opts.w_sh_positive * _hinge_gram(active), rhs)
    return g.reshape(3, 9).T                                            # [9, 3]


def _light_prior_system(hbar):
    """(avg [27], rows [3, 27]) of E_light with g = gamma as [27] (channel-major):
    ebar = avg . g, e_c - ebar = rows[c] . g."""
    h = np.asarray(hbar, np.float64)
    avg = np.concatenate([h / 3.0] * 3)                                 # ebar = avg . g
    rows = []
    for c in range(3):
        row = -avg.copy()
        row[c * 9:(c + 1) * 9] += h
        rows.append(row)
    return avg, np.stack(rows)


def mirror_gram(albedo_basis, atlas_mask, stride: int = 2) -> np.ndarray:
    """[K, K] = D^T D with D = U - mirror_u(U) over the atlas texels (every
    ``stride``-th texel per axis, scaled back to the full sum): the quadratic form
    of ``sum_texels |(U - mirror U) p|^2``, the asymmetric part of the PCA albedo
    (the mean is symmetric). UV layouts are symmetric in u, so mirror = flip of
    the width axis."""
    basis = np.asarray(albedo_basis, np.float32)
    mask = np.asarray(atlas_mask, bool) & np.asarray(atlas_mask, bool)[:, ::-1]
    sub = np.zeros_like(mask)
    sub[::stride, ::stride] = True
    sel = mask & sub
    d = (basis - basis[:, ::-1])[sel].reshape(-1, basis.shape[-1])
    return (d.T @ d).astype(np.float64) * float(mask.sum()) / max(int(sel.sum()), 1)


def _gauss_newton_step(target, mean, basis_k, basis_sh, p, sh, weight, opts, damping, hbar,
                       prior_weight, gram=None):
    """One damped Gauss-Newton step on (p, gamma) jointly (IRLS weights fixed).

    Alternating least squares crawls along the albedo x light scale valley
    (each half-step is pinned by the other factor); the joint step moves
    along it at once, so the priors (E_a, E_light) decide where on the valley
    the solution sits.
    """
    k = basis_k.shape[-1]
    albedo = mean + np.einsum("nck,k->nc", basis_k, p)
    shading = basis_sh @ sh
    lhs = np.zeros((k + 27, k + 27))
    rhs = np.zeros(k + 27)
    for c in range(3):
        r = target[:, c] - albedo[:, c] * shading[:, c]
        jp = basis_k[:, c, :] * shading[:, c:c + 1]                     # d(model)/dp  [N, K]
        jg = basis_sh * albedo[:, c:c + 1]                              # d(model)/dg_c [N, 9]
        j = np.concatenate([jp, jg], 1).astype(np.float32)
        wj = j * weight[:, c:c + 1].astype(np.float32)
        blk = 0.5 * (j.T @ wj).astype(np.float64)       # float32 GEMM: 4x faster, ample here
        g = 0.5 * (wj.T.astype(np.float64) @ r)
        sl = np.r_[0:k, k + 9 * c:k + 9 * (c + 1)]
        lhs[np.ix_(sl, sl)] += blk
        rhs[sl] += g
    # priors: sum_k w_k p_k^2 (``prior_weights``) ; E_light on gamma
    w_p = np.asarray(prior_weight, np.float64)
    lhs[:k, :k] += np.diag(w_p)
    rhs[:k] -= w_p * p
    if gram is not None and opts.w_mirror > 0:
        lhs[:k, :k] += opts.w_mirror * gram
        rhs[:k] -= opts.w_mirror * gram @ p
    g_vec = sh.T.reshape(27)
    avg, rows = _light_prior_system(hbar)
    lhs[k:, k:] += opts.w_light * np.outer(avg, avg) + opts.w_white * rows.T @ rows
    rhs[k:] -= opts.w_light * avg * (avg @ g_vec - opts.exposure) + opts.w_white * rows.T @ (rows @ g_vec)
    if opts.w_sh_dir > 0:
        dirs = np.array([k + 9 * c + j for c in range(3) for j in range(1, 9)])
        lhs[dirs, dirs] += opts.w_sh_dir
        rhs[dirs] -= opts.w_sh_dir * g_vec[dirs - k]
    # the quadratic light priors: chroma, and the hinge on the directions negative now
    q = opts.w_sh_chroma * CHROMA_GRAM
    if opts.w_sh_positive > 0:
        q = q + opts.w_sh_positive * _hinge_gram(SEEN_DIRECTIONS_BASIS @ sh < 0)
    lhs[k:, k:] += q
    rhs[k:] -= q @ g_vec
    lhs += damping * np.diag(np.diag(lhs) + 1e-9)
    step = np.linalg.solve(lhs, rhs)
    return p + step[:k], sh + step[k:].reshape(3, 9).T


def fit_light_albedo(texture_linear, mask, normals, albedo_mean, albedo_basis,
                     opts: LightAlbedoOptions | None = None, p_init=None,
                     sh_init=None, mirror=None, tone_columns=None) -> LightAlbedoFit:
    """Solve (p_a, gamma) for one UV sample.

    texture_linear [S,S,3] (linear RGB), mask [S,S] bool (visible texels),
    normals [S,S,3] (camera frame), albedo_mean [S,S,3], albedo_basis
    [S,S,3,K] (std-scaled: p_a ~ N(0, I)). ``mirror``: ``mirror_gram`` of the
    basis, for ``w_mirror`` (computed here when not given; pass it when fitting
    many photos). ``p_init`` / ``sh_init``: a start
    (e.g. B-Net's output); without them p = 0 and the light is solved first.
    ``tone_columns``: indices of the basis's skin-tone columns (the default
    prior's ``tone0..2``); the others' prior weight is ``w_a * w_a_spatial``
    (``prior_weights``). None or empty: every column has ``w_a``.
    Raises ``ValueError`` when fewer than 50 visible texels have a normal.
    """
    opts = opts or LightAlbedoOptions()
    sel = np.asarray(mask, bool) & (np.einsum("hwc,hwc->hw", normals, normals) > 0.25)
    if opts.stride > 1:
        sub = np.zeros_like(sel)
        sub[::opts.stride, ::opts.stride] = True
        if (sel & sub).sum() >= 50:
            sel = sel & sub
    n_sel = int(sel.sum())
    if n_sel < 50:
        raise ValueError(f"only {n_sel} visible texels with a normal: nothing to fit")
    scale = float(np.asarray(mask, bool).sum()) / n_sel                 # sum over all visible texels
    target = np.asarray(texture_linear, np.float64)[sel]
    n = np.asarray(normals, np.float64)[sel]
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    basis_sh = sh_basis_np(n)
    if opts.exposure_normals not in EXPOSURE_NORMALS:
        raise ValueError(f"exposure_normals must be one of {EXPOSURE_NORMALS}, "
                         f"got {opts.exposure_normals!r}")
    hbar = basis_sh.mean(0) if opts.exposure_normals == "face" else FRONT_MEAN_BASIS
    mean = np.asarray(albedo_mean, np.float64)[sel]
    basis_k = np.asarray(albedo_basis, np.float32)[sel].astype(np.float64)   # [N, 3, K]
    k = basis_k.shape[-1]
    p = np.zeros(k) if p_init is None else np.asarray(p_init, np.float64).reshape(k)
    albedo = mean + np.einsum("nck,k->nc", basis_k, p)
    weight = np.full_like(target, scale / max(opts.irls_floor, 0.02))
    sh = None if sh_init is None else np.asarray(sh_init, np.float64).reshape(9, 3)
    if sh is None:
        sh = _solve_light(target, albedo, basis_sh, weight, opts, hbar)

    w_p = prior_weights(k, opts, tone_columns)
    use_mirror = opts.w_mirror > 0
    if use_mirror and mirror is None:       # callers that fit many photos pass it in
        support = np.any(np.asarray(albedo_mean) != 0, axis=-1)
        mirror = mirror_gram(albedo_basis, support)

    def objective(p_, sh_):
        r_ = target - (mean + np.einsum("nck,k->nc", basis_k, p_)) * (basis_sh @ sh_)
        e_mirror = opts.w_mirror * float(p_ @ mirror @ p_) if use_mirror else 0.0
        return (scale * float(np.abs(r_).sum()) + float(w_p @ (p_ * p_)) + e_mirror
                + light_prior(sh_, opts, hbar)), r_

    current, r = objective(p, sh)
    history = [current]
    damping = 1e-3
    for _ in range(max(1, int(opts.iterations))):
        weight = scale / np.maximum(np.abs(r), opts.irls_floor)
        p_new, sh_new = _gauss_newton_step(target, mean, basis_k, basis_sh, p, sh, weight, opts,
                                           damping, hbar, w_p, mirror if use_mirror else None)
        new, r_new = objective(p_new, sh_new)
        if np.isfinite(new) and new <= current:
            p, sh, r, current = p_new, sh_new, r_new, new
            damping = max(damping * 0.3, 1e-6)
        else:
            damping *= 10.0
        history.append(current)
    e_pix = scale * float(np.abs(r).sum())
    e_a = float(p @ p)
    return LightAlbedoFit(p.astype(np.float32), sh.astype(np.float32), history, e_pix, e_a)
