"""Synthetic UV albedo: a draw from the default albedo prior plus procedural
high-frequency detail that a low-frequency PCA prior cannot express.

All values are **linear RGB** reflectance in [0, 1], in the default model's
UV space (``size x size``, v down, texel centre ``((c + .5)/W, (r + .5)/H)``).

Layers, in order (each a function of the rng only, so a seed fixes the face):

0. skin tone (``draw_tone``): one of the six ITA groups of
   ``tf_face.skin_tone`` (uniform over the groups, or the one asked for),
   ITA uniform inside the group's range (+70 .. -60 deg overall), CIELAB on
   the Monk-scale tone curve at that ITA (``skin_tone.lab_for_ita``) with a
   small jitter that keeps the ITA (+-5 % along the ray from L* = 50,
   b* = 0; a* + U(0, 4): the scale's light swatches are less red than
   light skin, a* ~ 1);
1. prior draw ``m_a + U_a p_a`` (``tf_face.facemodel.default.default_albedo_prior``):
   ``p_a ~ N(0, prior_scale^2 I)``, the non-tone coefficients then scaled by
   the tone's luminance over the prior mean's (clipped to [0.2, 1]; skin
   variation is multiplicative, so a dark face varies less in reflectance;
   the haemoglobin ones by a further ``1 - 0.5 darkness``, melanin hides the
   blood in dark skin),
   and the three tone coefficients (columns ``tone0..2`` of
   ``albedo_prior.prior_layout``) solved so the draw's **mean colour over
   the skin mask** (``skin_tone.face_skin_mask``) is the drawn tone exactly.
   ``prior_albedo`` is that draw, unclipped: ``m_a + U_a p_a`` with
   ``prior_coeffs = p_a``;
2. skin texture: multiplicative band-pass noise (pores, ~3 % RMS) and sparse
   dark pore dots;
3. freckles (0-120 melanin spots clustered on the nose bridge and cheeks;
   probability ``FRECKLE_PROB`` by tone group, 0.6 for light skin down to
   0.15 for brown/dark) and 0-3 moles (larger, darker, brown);
4. lips: a random red/pink/brown tint inside the lip loop, with more
   melanin and less visible blood for darker skin (+1.0 melanin units and
   x(1 - 0.4) haemoglobin at full darkness, darkness =
   clip((41 - ITA) / 100, 0, 1)), and faint vertical lines;
5. eyebrow hair: hundreds of short dark strokes inside and around the brow
   loops, oriented along the brow, replacing the skin colour by a hair colour
   drawn by tone group (``HAIR_PROBS``: darker skin mostly black / dark
   brown, lighter skin the whole range incl. blond, red and grey);
6. eyes: sclera, an iris disc (brown / hazel / green / blue / grey, by tone
   group: ``IRIS_PROBS``) with a pupil and radial texture, a dark lash line
   along the upper lid — the prior only has a flat grey there.

The hair/iris/freckle frequencies by group are our rough choices for a
varied test set, not population statistics.

Colour detail uses the prior's chromophore axes: melanin absorbance
R:G:B = 0.35:0.54:1 (darkening ``albedo * exp(-k * MELANIN * c)``).
"""

from __future__ import annotations


import functools

import cv2
import numpy as np

from tf_face import skin_tone
from tf_face.facemodel.albedo_prior import HAEMOGLOBIN, MELANIN, SKIN_LINEAR, prior_layout
from tf_face.facemodel.default import (default_albedo_prior, default_tone_columns,
                                      load_default_geometry, region_loops)

SUPERSAMPLE = 4

HAIR_COLOURS = np.array([    # linear RGB
    [0.02, 0.015, 0.01],     # black
    [0.06, 0.035, 0.02],     # dark brown
    [0.16, 0.09, 0.05],      # brown
    [0.35, 0.24, 0.12],      # dark blond
    [0.30, 0.10, 0.04],      # red
    [0.30, 0.30, 0.30],      # grey
    [0.55, 0.42, 0.22],      # blond
])
IRIS_COLOURS = np.array([
    [0.07, 0.035, 0.015],    # dark brown
    [0.15, 0.08, 0.03],      # brown / hazel
    [0.10, 0.13, 0.06],      # green
    [0.08, 0.13, 0.22],      # blue
    [0.14, 0.15, 0.16],      # grey
])
# probabilities over HAIR_COLOURS / IRIS_COLOURS rows by skin-tone group
HAIR_PROBS = {
    "very_light": (0.10, 0.20, 0.20, 0.16, 0.10, 0.10, 0.14),
    "light": (0.15, 0.25, 0.22, 0.14, 0.07, 0.10, 0.07),
    "intermediate": (0.35, 0.30, 0.16, 0.06, 0.03, 0.08, 0.02),
    "tan": (0.50, 0.30, 0.11, 0.02, 0.00, 0.07, 0.00),
    "brown": (0.70, 0.21, 0.02, 0.00, 0.00, 0.07, 0.00),
    "dark": (0.80, 0.13, 0.00, 0.00, 0.00, 0.07, 0.00),
}
IRIS_PROBS = {
    "very_light": (0.12, 0.23, 0.20, 0.33, 0.12),
    "light": (0.25, 0.30, 0.15, 0.22, 0.08),
    "intermediate": (0.50, 0.30, 0.10, 0.07, 0.03),
    "tan": (0.70, 0.25, 0.03, 0.02, 0.00),
    "brown": (0.85, 0.15, 0.00, 0.00, 0.00),
    "dark": (0.90, 0.10, 0.00, 0.00, 0.00),
}
FRECKLE_PROB = {"very_light": 0.6, "light": 0.6, "intermediate": 0.45, "tan": 0.3,
                "brown": 0.15, "dark": 0.15}
LUMINANCE = skin_tone.RGB_TO_XYZ[1]


def check_skin_tone(skin_tone_arg) -> str | None:
    """None / "all" -> None (uniform over the groups); a group name -> itself;
    anything else -> ValueError naming the groups."""
    if skin_tone_arg is None or skin_tone_arg == "all":
        return None
    if isinstance(skin_tone_arg, str) and skin_tone_arg in skin_tone.GROUP_NAMES:
        return skin_tone_arg
    raise ValueError(f"skin_tone must be 'all' or one of {', '.join(skin_tone.GROUP_NAMES)}; "
                     f"got {skin_tone_arg!r}")


def draw_tone(rng: np.random.Generator, group: str | None = None):
    """(group name, ITA deg, CIELAB [3]) of a random skin tone; ``group``
    None = uniform over the six groups (see the module docstring)."""
    group = check_skin_tone(group)
    if group is None:
        group = skin_tone.GROUP_NAMES[int(rng.integers(len(skin_tone.GROUP_NAMES)))]
    lo, hi = skin_tone.group_range(group)
    ita = float(rng.uniform(lo, hi))
    lab = skin_tone.lab_for_ita(ita).copy()
    rho = rng.uniform(0.95, 1.05)             # along the ray: keeps the ITA
    lab[0] = 50.0 + rho * (lab[0] - 50.0)
    lab[2] = rho * lab[2]
    lab[1] += rng.uniform(0.0, 4.0)
    return group, float(skin_tone.ita_deg(lab)), lab


def hair_colour(rng: np.random.Generator, group: str) -> np.ndarray:
    """A hair colour (linear RGB [3]) that goes with the skin-tone group."""
    p = np.asarray(HAIR_PROBS[group], np.float64)
    return HAIR_COLOURS[int(rng.choice(len(HAIR_COLOURS), p=p / p.sum()))]


def _loops(model):
    return region_loops()


def _poly_mask(uv_pts: np.ndarray, size: int, blur: float = 0.0) -> np.ndarray:
    img = np.zeros((size, size), np.float32)
    pts = np.round(np.asarray(uv_pts) * size * 16 - 8).astype(np.int32)
    cv2.fillPoly(img, [pts], 1.0, lineType=cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(img, (0, 0), blur) if blur > 0 else img


def _spots(rng, size, centres_uv, radii_texels, strengths) -> np.ndarray:
    """Soft spots, supersampled: [size, size] float in [0, 1]."""
    k = SUPERSAMPLE
    img = np.zeros((size * k, size * k), np.float32)
    for c, r, s in zip(centres_uv, radii_texels, strengths):
        p = (np.asarray(c) * size * k - 0.5) * 16
        cv2.circle(img, (int(p[0]), int(p[1])), max(1, int(r * k * 16)), float(s),
                   -1, cv2.LINE_AA, shift=4)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(img, (0, 0), 0.5)


def _strokes(size, segments, values) -> np.ndarray:
    """Anti-aliased thin strokes (coverage in [0, 1]) at supersampling ``k``."""
    k = SUPERSAMPLE
    img = np.zeros((size * k, size * k), np.float32)
    for (a, b), v in zip(segments, values):
        pa = np.round((np.asarray(a) * size * k - 0.5) * 16).astype(int)
        pb = np.round((np.asarray(b) * size * k - 0.5) * 16).astype(int)
        cv2.line(img, tuple(pa), tuple(pb), float(v), thickness=max(1, k // 2),
                 lineType=cv2.LINE_AA, shift=4)
    return np.clip(cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA), 0.0, 1.0)


@functools.lru_cache(maxsize=2)
def _prior_parts(size: int):
    """The default prior, its tone columns, and its mean over the skin mask."""
    mean, basis, _, _ = default_albedo_prior(size)
    g = load_default_geometry()
    names = prior_layout(g.uv, g.triangles, region_loops(), size, basis.shape[-1])
    tone = np.array(default_tone_columns(basis.shape[-1], size), np.int64)
    haem = np.array([i for i, n in enumerate(names) if n.endswith("_haemoglobin")], np.int64)
    if len(tone) != 3:
        raise ValueError("the albedo prior has fewer than 3 tone columns; use K >= 14")
    mask = skin_tone.face_skin_mask(size)
    mbar = mean[mask].astype(np.float64).mean(0)                 # [3]
    bbar = basis[mask].astype(np.float64).mean(0)                # [3, K]
    return mean, basis, tone, haem, mbar, bbar


def prior_draw(rng: np.random.Generator, size: int = 256, prior_scale: float = 1.0,
               skin_linear=None):
    """(albedo [size,size,3] float64, coefficients [K]) from the default UV prior.

    ``skin_linear`` (linear RGB [3]): set the tone coefficients so the mean
    colour over ``skin_tone.face_skin_mask`` is exactly this, and scale the
    other coefficients by its luminance over the prior mean's (see the
    module docstring). The albedo is ``mean + basis @ coefficients``."""
    mean, basis, tone, haem, mbar, bbar = _prior_parts(int(size))
    coeffs = rng.normal(0.0, prior_scale, size=basis.shape[-1])
    if skin_linear is not None:
        skin = np.asarray(skin_linear, np.float64)
        rest = np.setdiff1d(np.arange(len(coeffs)), tone)
        coeffs[rest] *= float(np.clip((skin @ LUMINANCE) / (SKIN_LINEAR @ LUMINANCE), 0.2, 1.0))
        lab = skin_tone.linear_rgb_to_lab(skin)
        darkness = float(np.clip((41.0 - skin_tone.ita_deg(lab)) / 100.0, 0.0, 1.0))
        coeffs[haem] *= 1.0 - 0.5 * darkness
        coeffs[tone] = np.linalg.solve(bbar[:, tone], skin - mbar - bbar[:, rest] @ coeffs[rest])
    coeffs = coeffs.astype(np.float32)
    # float32 (converting the 78 MB basis to float64 costs seconds); einsum's own
    # loop, not BLAS, so the sum order (and the bytes) do not depend on BLAS threads
    alb = mean.astype(np.float64) + np.einsum("hwck,k->hwc", basis, coeffs,
                                              optimize=False).astype(np.float64)
    return alb, coeffs


def random_albedo(rng: np.random.Generator, model, size: int = 256,
                  prior_scale: float = 1.0, detail: float = 1.0, skin_tone_group=None) -> dict:
    """A random UV albedo with detail. ``skin_tone_group``: None / "all"
    (uniform over the six ITA groups) or one group name. Returns a dict with
    ``albedo`` [size,size,3] float32 linear RGB, ``prior_coeffs`` [K] float32,
    ``prior_albedo`` (the smooth prior draw alone, exactly
    ``m_a + U_a prior_coeffs``), ``hair_colour`` [3], ``skin_group``,
    ``ita_deg`` and ``skin_lab`` [3] (the drawn tone; ``skin_tone.skin_ita``
    of ``prior_albedo`` equals ``ita_deg``, of ``albedo`` it is within a
    degree or two: freckles, moles and pores darken the skin a little)."""
    group, ita, lab = draw_tone(rng, skin_tone_group)
    darkness = float(np.clip((41.0 - ita) / 100.0, 0.0, 1.0))
    alb, coeffs = prior_draw(rng, size, prior_scale,
                             skin_linear=skin_tone.lab_to_linear_rgb(lab))
    prior = alb.copy()
    uvl = np.asarray(model.uv, np.float64)[np.asarray(model.landmarks68, np.int64)]
    loops = _loops(model)
    uvm = np.asarray(model.uv, np.float64)

    # 2. skin texture: band-pass multiplicative noise + pore dots
    noise = rng.normal(0, 1, (size, size)).astype(np.float32)
    band = cv2.GaussianBlur(noise, (0, 0), 0.6) - 0.5 * cv2.GaussianBlur(noise, (0, 0), 2.5)
    band /= max(float(band.std()), 1e-9)
    alb *= np.exp(detail * 0.03 * band)[..., None] ** np.array([1.0, 1.1, 1.2])
    pores = (rng.random((size, size)) < 0.02 * detail).astype(np.float32)
    pores = cv2.GaussianBlur(pores, (0, 0), 0.5)
    alb *= np.exp(-0.5 * pores[..., None] * MELANIN)

    # 3. freckles and moles
    n_freckles = int(rng.integers(0, 121) * detail) if rng.random() < FRECKLE_PROB[group] else 0
    if n_freckles:
        anchors = np.stack([uvl[29], 0.5 * (uvl[29] + uvl[2]), 0.5 * (uvl[29] + uvl[14])])
        which = rng.integers(0, 3, n_freckles)
        centres = anchors[which] + rng.normal(0, [0.06, 0.04], (n_freckles, 2))
        f = _spots(rng, size, centres, rng.uniform(0.4, 1.2, n_freckles),
                   rng.uniform(0.3, 1.0, n_freckles))
        alb *= np.exp(-1.2 * f[..., None] * MELANIN)
    n_moles = int(rng.integers(0, 4) * min(detail, 1.0))
    if n_moles:
        ids = rng.integers(0, len(uvm), n_moles)
        m = _spots(rng, size, uvm[ids] + rng.normal(0, 0.01, (n_moles, 2)),
                   rng.uniform(1.2, 2.5, n_moles), np.ones(n_moles))
        alb *= np.exp(-2.5 * m[..., None] * MELANIN)

    # 4. lips
    lips = _poly_mask(uvm[loops["lips"][0]], size, blur=1.0)
    tint = (HAEMOGLOBIN * rng.uniform(0.15, 0.6) * (1.0 - 0.4 * darkness)
            + MELANIN * (rng.uniform(-0.1, 0.3) + 1.0 * darkness))
    lines = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 0.5, sigmaY=2.5)
    alb *= np.exp(-lips[..., None] * (tint + 0.06 * lines[..., None]))

    # 5. eyebrow hair strokes
    hair = hair_colour(rng, group) * rng.uniform(0.8, 1.2, 3)
    brow_cover = np.zeros((size, size), np.float32)
    for loop in loops["brows"]:
        pts = uvm[loop]
        lo, hi = pts.min(0), pts.max(0)
        inner_x = lo[0] if pts[:, 0].mean() > 0.5 else hi[0]
        side = 1.0 if pts[:, 0].mean() > 0.5 else -1.0
        region = _poly_mask(pts, size, blur=1.5)
        n = int(rng.integers(250, 500))
        cand = lo + rng.random((n * 3, 2)) * (hi - lo) + rng.normal(0, 0.006, (n * 3, 2))
        ij = np.clip((cand * size).astype(int), 0, size - 1)
        keep = rng.random(len(cand)) < region[ij[:, 1], ij[:, 0]]
        cand = cand[keep][:n]
        t = np.clip(side * (cand[:, 0] - inner_x) / max(hi[0] - lo[0], 1e-6), 0, 1)
        ang = np.where(t < 0.3, np.radians(-70 + 150 * t), np.radians(-25 + 35 * t))  # up-out, then along
        ang = ang + rng.normal(0, 0.25, len(cand))
        length = rng.uniform(0.006, 0.014, len(cand))
        d = np.stack([side * np.cos(ang), np.sin(ang)], 1) * length[:, None]
        segs = [(p, p + q) for p, q in zip(cand, d)]
        brow_cover = np.maximum(brow_cover, _strokes(size, segs, rng.uniform(0.5, 1.0, len(segs))))
    a = np.clip(brow_cover * rng.uniform(0.7, 1.0), 0, 1)[..., None]
    alb = alb * (1 - a) + hair * a

    # 6. eyes
    p_iris = np.asarray(IRIS_PROBS[group], np.float64)
    iris_col = IRIS_COLOURS[int(rng.choice(len(IRIS_COLOURS), p=p_iris / p_iris.sum()))] \
        * rng.uniform(0.8, 1.2, 3)
    gaze = rng.normal(0, 0.12, 2)
    for loop in loops["eyes"]:
        pts = uvm[loop]
        lo, hi = pts.min(0), pts.max(0)
        eye = _poly_mask(pts, size, blur=0.5)[..., None]
        centre = 0.5 * (lo + hi) + gaze * (hi - lo) * np.array([0.5, 0.3])
        yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
        r = np.hypot(xx - centre[0], (yy - centre[1]) * 1.0) / (0.2 * (hi[0] - lo[0]))
        theta = np.arctan2(yy - centre[1], xx - centre[0])
        sclera = np.array([0.62, 0.58, 0.55]) * rng.uniform(0.8, 1.0)
        radial = 1.0 + 0.25 * np.sin(theta * 23 + 3 * r) * (r < 1)
        iris = np.clip(1.15 - r, 0, 1)[..., None] * np.clip((1.0 - r) * 6, 0, 1)[..., None]
        col = sclera * (1 - np.clip((1.0 - r) * 6, 0, 1))[..., None] + \
            (iris_col * radial[..., None] * (0.7 + 0.6 * iris)) * np.clip((1.0 - r) * 6, 0, 1)[..., None]
        pupil = np.clip((0.42 - r) * 8, 0, 1)[..., None]
        col = col * (1 - pupil) + 0.01 * pupil
        # lash line: darken the upper lid edge (upper half of the loop)
        upper = pts[pts[:, 1] <= np.median(pts[:, 1])]
        upper = upper[np.argsort(upper[:, 0])]
        lash = _strokes(size, list(zip(upper[:-1], upper[1:])), np.ones(len(upper) - 1))
        lash = cv2.GaussianBlur(lash, (0, 0), 0.6)[..., None]
        alb = alb * (1 - eye) + col * eye
        alb = alb * (1 - 0.8 * np.clip(lash * 2, 0, 1)) + 0.01 * 0.8 * np.clip(lash * 2, 0, 1)
    alb = np.clip(alb, 0.005, 0.95)
    return {"albedo": alb.astype(np.float32), "prior_coeffs": coeffs.astype(np.float32),
            "prior_albedo": prior.astype(np.float32), "hair_colour": hair,
            "skin_group": group, "ita_deg": ita, "skin_lab": lab}
