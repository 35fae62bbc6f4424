"""Displacement maps with wrinkles, in the default model's UV space.

Units and sign: ``displacement[r, c]`` is the offset of the surface along the
**base (mesh) normal**, in **inter-ocular distances** (eye-centre distance of
the face, ``tf_face.ibug.inter_ocular_distance``); positive = outwards. Wrinkles are
grooves (negative). A real IOD is ~63 mm, so 0.01 IOD ~ 0.6 mm. Grooves are
1.6-2.4 texels wide (sigma; wider than a photo pixel at the rendered sizes,
so they show) and up to ~0.015 IOD deep (nasolabial folds ~0.035).

The map covers the whole ``size x size`` grid (smooth outside the atlas mask
too, so finite differences at the mesh border are well defined).

Placement from the default model's iBUG-68 landmarks in UV
(``model.uv[model.landmarks68]``):

* forehead lines: 2-4 wavy horizontal grooves between the brow ends
  (iBUG 17-26), above the brows, spaced 0.035-0.05 in v (~7-9 mm);
* glabella ("11") lines: 0-2 short vertical grooves between the inner brows;
* crow's feet: 2-4 lines fanning out from each outer eye corner (36, 45);
* nasolabial folds: a curve from beside the nose wing (31 / 35) to beside the
  mouth corner (48 / 54), bowing outwards; the deepest wrinkle;
* under-eye lines: a faint arc below each eye.

Each wrinkle is a polyline drawn with a depth taper (0 at the ends), then
blurred by a Gaussian of width ``sigma`` texels and rescaled so the groove's
centre depth equals the drawn depth. A faint band-pass noise adds skin
micro-relief (pores as tiny dimples).

``variety`` (``Difficulty.wrinkle_variety``, default 1) says how much faces
differ in *which* wrinkles they have and *where*:

* 0 -- the template of releases v1-v3's training data: every face has every
  family above (forehead lines, crow's feet, nasolabial folds, under-eye
  arcs) at the sites above, ``age ~ U(0.2, 1)``. A network trained on it
  learns the sites, and draws them on every real face, young ones included.
* 1 -- each family is present with probability ``FAMILY_PROB`` (the glabella
  lines are 0-2 as before), ``age ~ U(0, 1)`` (a young face has shallow
  grooves), the forehead lines start 0-0.03 higher and their spacing,
  extent and tilt vary more, the eye, nose and mouth sites move by up to
  ~0.012 in UV (~2-3 texels at 256), and the whole map shifts by
  N(0, 0.004) in UV. Values in between scale the extra variation.

The presence probabilities are our choice for a varied training and test
set (no population statistics): most adult faces show nasolabial folds,
fewer show forehead lines or crow's feet at rest.

The extra draws come from a generator *jumped* off ``rng``
(``rng.bit_generator.jumped()``), so ``rng`` itself is advanced exactly as
at ``variety=0``: for a seed, everything else about the face (shape, pose,
albedo, light, occluders) is the same at every ``variety``.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

SUPERSAMPLE = 4
#: probability that a face has each wrinkle family at ``variety=1`` (module doc)
FAMILY_PROB = {"forehead": 0.65, "crows_feet": 0.55, "nasolabial": 0.85, "under_eye": 0.6}


def _bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


class _Canvas:
    """Accumulates tapered Gaussian grooves on a supersampled grid."""

    def __init__(self, size: int):
        self.size = size
        self.groups: dict[float, np.ndarray] = {}

    def line(self, pts_uv: np.ndarray, depth: float, sigma_texels: float) -> None:
        k = SUPERSAMPLE
        sig = round(float(sigma_texels), 2)
        img = self.groups.setdefault(sig, np.zeros((self.size * k, self.size * k), np.float32))
        p = np.asarray(pts_uv, np.float64) * self.size * k - 0.5
        n = len(p)
        for i in range(n - 1):
            t = (i + 0.5) / (n - 1)
            taper = math.sin(math.pi * t) ** 0.7
            a = tuple(int(round(v * 16)) for v in p[i])
            b = tuple(int(round(v * 16)) for v in p[i + 1])
            cv2.line(img, a, b, float(depth * taper), thickness=1, lineType=cv2.LINE_8, shift=4)
        # lines overwrite (not add) where they touch; segments share endpoints only

    def result(self) -> np.ndarray:
        k = SUPERSAMPLE
        out = np.zeros((self.size, self.size), np.float64)
        for sig, img in self.groups.items():
            s = sig * k
            blurred = cv2.GaussianBlur(img, (0, 0), s)
            # a 1-pixel line of value d blurred by sigma s has centre value d / (sqrt(2 pi) s)
            blurred *= math.sqrt(2 * math.pi) * s
            out += cv2.resize(blurred, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return out


def _side_rng(rng: np.random.Generator) -> np.random.Generator:
    """A generator for the ``variety`` draws that leaves ``rng`` where it is."""
    return np.random.Generator(rng.bit_generator.jumped())


def random_displacement(rng: np.random.Generator, model, size: int = 256,
                        strength: float = 1.0, variety: float = 1.0) -> np.ndarray:
    """A random wrinkle displacement map [size, size] float32 (IOD units, see module).

    ``variety`` in [0, 1]: 0 = every family at the template sites, 1 = families
    present at random, sites and strengths varied (module doc). ``rng`` is
    advanced the same way at every ``variety``.
    """
    v = float(variety)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"wrinkle variety must be in [0, 1], got {variety!r}")
    uv = np.asarray(model.uv, np.float64)[np.asarray(model.landmarks68, np.int64)]
    side_rng = _side_rng(rng) if v > 0 else None

    def jitter(scale: float, n: int = 2):
        """Extra site offset (UV) at this variety; zeros at variety 0."""
        return np.zeros(n) if side_rng is None else side_rng.uniform(-1, 1, n) * scale * v

    def present(family: str) -> float:
        if side_rng is None:
            return 1.0
        return float(side_rng.random() < 1.0 - v * (1.0 - FAMILY_PROB[family]))

    cv = _Canvas(size)
    u = rng.uniform(0.2, 1.0)                        # how wrinkled this face is
    if side_rng is not None:                         # young faces too: U(0.2 (1 - v), 1)
        u = 0.2 * (1.0 - v) + (u - 0.2) / 0.8 * (1.0 - 0.2 * (1.0 - v))
    base_depth = 0.014 * u * strength
    sig = rng.uniform(1.6, 2.4)

    # forehead lines
    on = present("forehead")
    lift = jitter(0.015, 1)[0] - 0.015 * v           # lines start 0-0.03 higher at v = 1
    spread, tilt = 1.0 + jitter(0.15, 1)[0], jitter(0.012, 1)[0]
    brow_top = min(uv[17:27, 1])
    x0, x1 = uv[18, 0] + rng.uniform(-0.02, 0.02), uv[25, 0] + rng.uniform(-0.02, 0.02)
    x0, x1 = x0 + jitter(0.04, 1)[0], x1 + jitter(0.04, 1)[0]
    for j in range(int(rng.integers(2, 5))):
        step = rng.uniform(0.035, 0.05) * spread
        vv = brow_top - 0.04 + lift - j * step
        if vv < 0.05:
            break
        xs = np.linspace(x0 + 0.03 * j, x1 - 0.03 * j, 40)
        phase, amp = rng.uniform(0, 2 * np.pi), rng.uniform(0.002, 0.008)
        ys = (vv + amp * np.sin(phase + 2 * np.pi * 2.0 * (xs - 0.5))
              + 0.015 * ((xs - 0.5) / 0.3) ** 2 + tilt * (xs - 0.5) / 0.3)
        cv.line(np.stack([xs, ys], 1), -base_depth * rng.uniform(0.6, 1.2) * on, sig * 1.1)
    # glabella lines
    for j in range(int(rng.integers(0, 3))):
        xc = 0.5 + (j - 0.5) * rng.uniform(0.02, 0.04)
        vb = 0.5 * (uv[21, 1] + uv[22, 1])
        pts = np.stack([np.full(8, xc) + np.linspace(0, rng.uniform(-0.01, 0.01), 8),
                        np.linspace(vb - 0.05, vb + 0.01, 8)], 1)
        cv.line(pts, -base_depth * rng.uniform(0.5, 1.0), sig)
    # crow's feet, nasolabial folds and under-eye arcs, mirrored left/right
    # (a family is present on both sides or on neither)
    on_crow, on_fold, on_eye = present("crows_feet"), present("nasolabial"), present("under_eye")
    for side, corner, nose, mouth in ((-1, 36, 31, 48), (1, 45, 35, 54)):
        c = uv[corner] + np.array([side * 0.015, 0.0]) + jitter(0.01)
        for j in range(int(rng.integers(2, 5))):
            ang = math.radians(rng.uniform(-35, 35))
            length = rng.uniform(0.03, 0.06)
            d = np.array([side * math.cos(ang), math.sin(ang)])
            start = c + d * rng.uniform(0.0, 0.01)
            pts = _bezier(start, start + 0.5 * length * d + rng.normal(0, 0.004, 2),
                          start + length * d)
            cv.line(pts, -base_depth * rng.uniform(0.5, 1.0) * on_crow, sig * 0.9)
        p0 = uv[nose] + np.array([side * rng.uniform(0.02, 0.035), rng.uniform(-0.01, 0.01)]) \
            + jitter(0.012)
        p2 = uv[mouth] + np.array([side * rng.uniform(0.02, 0.04), rng.uniform(0.01, 0.04)]) \
            + jitter(0.012)
        p1 = 0.5 * (p0 + p2) + np.array([side * rng.uniform(0.01, 0.03), 0.0])
        cv.line(_bezier(p0, p1, p2, 32), -base_depth * rng.uniform(1.5, 2.5) * on_fold, sig * 1.8)
        eye = uv[[36, 39]] if side < 0 else uv[[42, 45]]
        below = np.array([0, 0.03]) + jitter(0.01)
        e0, e1 = eye[0] + below, eye[1] + below
        mid = 0.5 * (e0 + e1) + np.array([0.0, 0.012])
        cv.line(_bezier(e0, mid, e1), -base_depth * rng.uniform(0.2, 0.6) * on_eye, sig)
    disp = cv.result()
    if side_rng is not None:                         # the whole map moves a little
        du, dv = side_rng.normal(0.0, 0.004 * v, 2) * size
        shift = np.float32([[1, 0, du], [0, 1, dv]])
        disp = cv2.warpAffine(disp, shift, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    # micro-relief: band-pass noise, ~0.0004 IOD RMS
    noise = rng.normal(0.0, 1.0, (size, size)).astype(np.float32)
    fine = cv2.GaussianBlur(noise, (0, 0), 0.7) - cv2.GaussianBlur(noise, (0, 0), 2.0)
    fine /= max(float(fine.std()), 1e-9)
    disp += 0.0004 * strength * fine
    return disp.astype(np.float32)


WRINKLE_THRESHOLD = 0.003


def wrinkle_mask(displacement, threshold: float = WRINKLE_THRESHOLD) -> np.ndarray:
    """Texels of the wrinkles: ``displacement < -threshold`` (IOD units), i.e.
    grooves deeper than ~0.2 mm, well above the micro-relief (~0.0004 RMS).
    For benchmarks that report errors "in wrinkle regions"."""
    return np.asarray(displacement) < -float(threshold)


#: template draws whose union gives ``wrinkle_sites``
SITE_DRAWS = 48


@functools.lru_cache(maxsize=4)
def _wrinkle_sites(size: int) -> np.ndarray:
    from tf_face.facemodel.default import load_default_geometry
    model = load_default_geometry()
    sites = np.zeros((size, size), bool)
    for i in range(SITE_DRAWS):
        d = random_displacement(np.random.default_rng([7919, i]), model, size, variety=0.0)
        sites |= wrinkle_mask(d)
    sites = cv2.dilate(sites.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    sites.setflags(write=False)
    return sites


def wrinkle_sites(size: int = 256) -> np.ndarray:
    """[size, size] bool, read-only: where the ``variety=0`` template puts
    wrinkles (the union of ``wrinkle_mask`` over ``SITE_DRAWS`` fixed template
    draws of the default model, dilated by 2 texels). A detail method that draws
    the template instead of the photo puts grooves here on every face;
    ``sites & ~wrinkles of this face`` is where it shows (the benchmark's
    ``_bare`` keys)."""
    return _wrinkle_sites(int(size))
