"""Skin tone in numbers: CIELAB, the Individual Typology Angle (ITA°), the six
ITA groups, one reference colour per group, and the cheeks + forehead mask
of the default model's UV space. numpy only (no TensorFlow).

Colour conversions
------------------
Linear sRGB (D65) <-> CIE XYZ (IEC 61966-2-1 matrix) <-> CIELAB (CIE 1976,
D65 white of that matrix, i.e. ``XYZ(1, 1, 1)``). Every albedo in this
project is *linear* RGB, so ``linear_rgb_to_lab`` takes linear values; the
sRGB transfer curve (``tf_face.srgb``) is only needed for hex swatches.

ITA
---
``ITA = arctan((L* - 50) / b*) * 180 / pi`` (Chardon, Cretois & Hourseau 1991,
*Int. J. Cosmet. Sci.* 13:191-208), computed as ``degrees(arctan2(L* - 50, b*))``
(equal for b* > 0, which holds for skin; defined and continuous elsewhere).
The six groups (``ITA_GROUPS``, Del Bino et al. 2006, *Pigment Cell Res.*
19:606-614): very_light > 55°, light 41-55°, intermediate 28-41°,
tan 10-28°, brown -30-10°, dark < -30°. A value exactly on a boundary goes to
the lighter group (``lo < ITA <= hi``, ``tone_group``).

Reference colours
-----------------
Source: the ten swatches of the **Monk Skin Tone (MST) scale** (E. Monk,
2019; released by Google, skintone.google, CC-BY 4.0), sRGB hex
``MST_HEX`` = MST 1..10. Converted here (sRGB curve -> linear -> Lab) they
have ITA +83.0, +80.2, +71.7, +64.7, +50.3, +10.9, -20.1, -55.4, -78.3,
-84.3°. Measured human skin spans about ITA +70° to -60° (the range of the
six groups as used in dermatology; ``ITA_RANGE``), i.e. MST 3-8; MST 1-2 and
9-10 lie beyond it (near white / near black swatches) and are only used as
the ends of the curve. The swatches are colours of skin *in images* (made to
be matched by eye against photos), not colorimeter readings of skin; we use
them as albedo (linear reflectance) directly, so the light end is brighter
(L* ~ 86 at ITA 62°) and less red (a* ~ 1) than contact colorimetry of
light skin typically reads. ITA, the quantity the benchmarks score, is
what the scale pins down.

From swatches to a relation and to per-group references (our choices):

* **tone curve** (``lab_for_ita``): the polyline through the ten swatches in
  CIELAB, ordered by ITA. For a target ITA the point on that polyline whose
  ITA equals the target exactly (a ray from (L* = 50, b* = 0) at that angle
  meets one segment; a* is interpolated with the same segment parameter).
  This is "L*, a*, b* as a function of ITA" along the published scale.
* **group reference** (``GROUP_REFERENCE_LAB``): the tone curve at the
  group's central ITA, with the open-ended groups closed at the ends of
  ``ITA_RANGE``: very_light 62.5°, light 48°, intermediate 34.5°, tan 19°,
  brown -10°, dark -45°. ``GROUP_REFERENCE_LINEAR`` is the same colour in
  linear RGB (Lab -> XYZ -> linear sRGB):

  ============  ======  =====================  =======================
  group         ITA°    L*, a*, b*             linear RGB
  ============  ======  =====================  =======================
  very_light    +62.5   85.9, 0.98, 18.7       0.797, 0.665, 0.455
  light         +48.0   76.0, 3.83, 23.4       0.648, 0.477, 0.281
  intermediate  +34.5   67.1, 5.52, 24.9       0.507, 0.344, 0.184
  tan           +19.0   59.0, 7.05, 26.1       0.398, 0.248, 0.118
  brown         -10.0   46.1, 11.04, 22.3      0.256, 0.132, 0.065
  dark          -45.0   34.4, 11.88, 15.6      0.146, 0.067, 0.040
  ============  ======  =====================  =======================

  (rounded; ``tests/test_skin_tone.py`` checks the table against the code.)

Skin ITA of an albedo map
-------------------------
``face_skin_mask(size)``: cheeks + forehead of the default (MediaPipe
topology) model in its UV space (v down), polygons built from the mesh's
iBUG-68 landmark vertices (``landmarks68``) and mirrored for the left side,
minus the brows, eyes, lips (dilated loops of ``region_loops``) and the nose,
inside the mesh's UV footprint eroded by ``size/64`` texels.
``skin_ita(albedo, mask)`` = ITA of the **mean linear colour** over the mask
converted to Lab (the mean, not the median: the mean reflectance is what a
colorimeter aperture integrates, and it is linear in the albedo, so the skin
ITA of ``m_a + U_a p_a`` can be set exactly by solving for p_a).

Photos without colour
---------------------
A greyscale photo (``deca_exp/2``, ``package_photos/Tom_Hanks_54745`` among
the shared ones) has b* = 0 everywhere, so every albedo fitted to it is grey
and its ITA is +/-90 deg: "very light" whatever the person's skin.
``is_monochrome(rgb, mask)`` says so: the 95th percentile of the texels'
CIELAB chroma C*ab = sqrt(a*^2 + b*^2) is below ``MONOCHROME_CHROMA``.
Measured on the 56 shared photos (visible texels of the unwrapped face):
the two greyscale ones 0.00, the least coloured colour photos
(``deca_exp/1``, ``deca_examples/image03786`` under a blue sky) 15.7 and 16.0. ``reconstruct`` warns
and records ``photo_monochrome``; ``eval/real_photos.py`` reports no ITA for
such photos. Sepia and other one-hue photos are coloured and not caught.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from tf_face.ibug import inter_ocular_distance
from tf_face.srgb import srgb_to_linear

# IEC 61966-2-1 (sRGB) linear RGB -> XYZ, D65
RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
WHITE_D65 = RGB_TO_XYZ.sum(1)          # XYZ of linear RGB (1, 1, 1)

ITA_GROUPS = (                          # (name, lo, hi): lo < ITA <= hi
    ("very_light", 55.0, np.inf),
    ("light", 41.0, 55.0),
    ("intermediate", 28.0, 41.0),
    ("tan", 10.0, 28.0),
    ("brown", -30.0, 10.0),
    ("dark", -np.inf, -30.0),
)
GROUP_NAMES = tuple(g[0] for g in ITA_GROUPS)
ITA_RANGE = (70.0, -60.0)               # (lightest, darkest) ITA of human skin used here

MST_HEX = ("f6ede4", "f3e7db", "f7ead0", "eadaba", "d7bd96",
           "a07e56", "825c43", "604134", "3a312a", "292420")


# --------------------------------------------------------------------- colour
def linear_to_xyz(rgb) -> np.ndarray:
    """Linear sRGB [..., 3] -> CIE XYZ [..., 3] (D65, Y = 1 for white)."""
    return np.asarray(rgb, np.float64) @ RGB_TO_XYZ.T


def xyz_to_linear(xyz) -> np.ndarray:
    return np.asarray(xyz, np.float64) @ XYZ_TO_RGB.T


_EPS = (6.0 / 29.0) ** 3


def xyz_to_lab(xyz) -> np.ndarray:
    """CIE XYZ [..., 3] -> CIELAB [..., 3] (D65 white ``WHITE_D65``)."""
    t = np.asarray(xyz, np.float64) / WHITE_D65
    f = np.where(t > _EPS, np.cbrt(np.maximum(t, _EPS)), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], -1)


def lab_to_xyz(lab) -> np.ndarray:
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    t = np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29))
    return t * WHITE_D65


def linear_rgb_to_lab(rgb) -> np.ndarray:
    """Linear sRGB [..., 3] -> CIELAB [..., 3]."""
    return xyz_to_lab(linear_to_xyz(rgb))


def lab_to_linear_rgb(lab) -> np.ndarray:
    """CIELAB [..., 3] -> linear sRGB [..., 3] (not clipped)."""
    return xyz_to_linear(lab_to_xyz(lab))


def delta_e76(lab1, lab2) -> np.ndarray:
    """CIE 1976 colour difference (Euclidean distance in CIELAB)."""
    return np.linalg.norm(np.asarray(lab1, np.float64) - np.asarray(lab2, np.float64), axis=-1)


# ------------------------------------------------------------------------ ITA
def ita_deg(lab) -> np.ndarray:
    """ITA° = degrees(arctan2(L* - 50, b*)) of CIELAB [..., 3]."""
    lab = np.asarray(lab, np.float64)
    return np.degrees(np.arctan2(lab[..., 0] - 50.0, lab[..., 2]))


def tone_group(ita: float) -> str:
    """Name of the ITA group holding ``ita`` (``lo < ita <= hi``); ValueError for NaN."""
    ita = float(ita)
    if not np.isfinite(ita):
        raise ValueError(f"ITA must be finite, got {ita}")
    for name, lo, hi in ITA_GROUPS:
        if lo < ita <= hi:
            return name
    raise AssertionError("unreachable")


def group_range(name: str) -> tuple[float, float]:
    """(lo, hi) ITA of a group, the open ends closed at ``ITA_RANGE``."""
    for n, lo, hi in ITA_GROUPS:
        if n == name:
            return max(lo, ITA_RANGE[1]), min(hi, ITA_RANGE[0])
    raise ValueError(f"unknown skin-tone group {name!r}; one of {', '.join(GROUP_NAMES)}")


# ---------------------------------------------------------- reference colours
def mst_lab() -> np.ndarray:
    """CIELAB [10, 3] of the Monk Skin Tone swatches MST 1..10."""
    srgb = np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in MST_HEX]) / 255.0
    return linear_rgb_to_lab(srgb_to_linear(srgb))


_MST_LAB = mst_lab()


def lab_for_ita(ita) -> np.ndarray:
    """CIELAB [..., 3] on the MST tone curve with exactly this ITA (see module doc).

    ``ita`` must lie within the swatches' span (about +83° .. -84°).
    """
    ita = np.asarray(ita, np.float64)
    pts = _MST_LAB
    angles = ita_deg(pts)                  # decreasing MST 1 -> 10
    flat = ita.reshape(-1)
    out = np.empty((flat.size, 3))
    for k, th in enumerate(flat):
        if not (angles[-1] <= th <= angles[0]):
            raise ValueError(f"ITA {th:.1f} outside the MST scale's span "
                             f"[{angles[-1]:.1f}, {angles[0]:.1f}]")
        i = int(np.clip(np.searchsorted(-angles, -th, side="right") - 1, 0, len(pts) - 2))
        p, q = pts[i], pts[i + 1]
        c, s = np.cos(np.radians(th)), np.sin(np.radians(th))
        # (L(t) - 50) cos - b(t) sin = 0, L, b linear in t
        g0 = (p[0] - 50) * c - p[2] * s
        g1 = (q[0] - 50) * c - q[2] * s
        t = 0.0 if g0 == g1 else float(np.clip(g0 / (g0 - g1), 0.0, 1.0))
        out[k] = p + t * (q - p)
    return out.reshape(ita.shape + (3,))


def group_centre_ita(name: str) -> float:
    lo, hi = group_range(name)
    return 0.5 * (lo + hi)


GROUP_REFERENCE_ITA = {n: group_centre_ita(n) for n in GROUP_NAMES}
GROUP_REFERENCE_LAB = {n: lab_for_ita(GROUP_REFERENCE_ITA[n]) for n in GROUP_NAMES}
GROUP_REFERENCE_LINEAR = {n: lab_to_linear_rgb(GROUP_REFERENCE_LAB[n]) for n in GROUP_NAMES}


def tone_distribution(samples_per_group: int = 64):
    """Deterministic quadrature of the uniform-over-groups tone distribution:
    (ITA [N], linear RGB [N, 3]); each group gets ``samples_per_group`` ITAs
    evenly spaced (midpoint rule) over its closed range, so every group weighs
    the same."""
    itas = []
    for n in GROUP_NAMES:
        lo, hi = group_range(n)
        itas.append(lo + (np.arange(samples_per_group) + 0.5) / samples_per_group * (hi - lo))
    ita = np.concatenate(itas)
    return ita, lab_to_linear_rgb(lab_for_ita(ita))


# ------------------------------------------------------------- skin of a face
@functools.lru_cache(maxsize=4)
def face_skin_mask(size: int = 256) -> np.ndarray:
    """[size, size] bool: cheeks + forehead of the default model's UV space
    (v down, texel centre ``((c + .5)/size, (r + .5)/size)``). Read-only."""
    # lazy: import cycle (facemodel.albedo_prior imports skin_tone)
    from tf_face.facemodel.albedo_prior import rasterise_polygon, rasterise_triangles
    from tf_face.facemodel.default import load_default_geometry, region_loops

    size = int(size)
    g = load_default_geometry()
    uv = np.asarray(g.uv, np.float64)
    lm = uv[np.asarray(g.landmarks68, np.int64)]
    iod = inter_ocular_distance(lm)

    def lerp(i, j, t):
        return lm[i] * (1 - t) + lm[j] * t

    down = np.array([0.0, 1.0])
    right = np.array([1.0, 0.0])       # +u: towards the subject's left
    # the subject's right cheek (image left, u < 0.5): below the eye, beside
    # the nose, above the mouth corner, inside the jaw
    cheek = np.stack([
        lerp(36, 41, 0.5) + 0.12 * iod * down,
        lerp(40, 39, 0.3) + 0.14 * iod * down,
        lerp(39, 31, 0.55) - 0.10 * iod * right,
        lerp(31, 48, 0.45) - 0.14 * iod * right,
        lerp(48, 4, 0.35) + 0.00 * iod * down,
        lerp(3, 41, 0.5),
        lerp(1, 36, 0.6),
    ])
    # forehead, subject's right half: above the brows, to the midline
    top = lm[[17, 18, 19, 20, 21]]
    fh = np.concatenate([
        top + 0.10 * iod * (-down),
        np.array([[0.5, lm[21, 1] - 0.10 * iod]]),
        np.array([[0.5, lm[21, 1] - 0.55 * iod]]),
        (top + 0.55 * iod * (-down))[::-1],
    ])

    def mirrored(p):
        q = p.copy()
        q[:, 0] = 1.0 - q[:, 0]
        return q

    mask = np.zeros((size, size), np.float32)
    shift = 4
    for poly in (cheek, mirrored(cheek), fh, mirrored(fh)):
        pts = np.round(poly * size * (1 << shift) - 0.5 * (1 << shift)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1.0, lineType=cv2.LINE_8, shift=shift)
    mask = mask > 0.5
    # inside the mesh's UV footprint, away from its edge
    face = rasterise_triangles(uv, np.asarray(g.triangles), size).astype(np.uint8)
    r = max(1, int(round(size / 64)))
    mask &= cv2.erode(face, np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
    # never on brows, eyes, lips (loops dilated by ~0.08 IOD) or the nose
    feats = np.zeros((size, size), np.float32)
    for loops in region_loops().values():
        for lp in loops:
            feats = np.maximum(feats, rasterise_polygon(uv, lp, size, 0.0))
    nose = np.concatenate([lm[[27]] - 0.12 * iod * right, lm[31:36], lm[[27]] + 0.12 * iod * right])
    pts = np.round(nose * size * (1 << shift) - 0.5 * (1 << shift)).astype(np.int32)
    cv2.fillConvexPoly(feats, pts, 1.0, lineType=cv2.LINE_8, shift=shift)
    d = max(1, int(round(0.08 * iod * size)))
    feats = cv2.dilate((feats > 0.5).astype(np.uint8), np.ones((2 * d + 1, 2 * d + 1), np.uint8)) > 0
    mask &= ~feats
    mask.setflags(write=False)
    return mask


def mean_skin_colour(albedo_linear, mask) -> np.ndarray:
    """Mean linear RGB [3] of ``albedo_linear`` [S, S, 3] over ``mask`` [S, S]
    (NaN when the mask is empty)."""
    a = np.asarray(albedo_linear, np.float64)
    m = np.asarray(mask, bool)
    if a.shape[:2] != m.shape or a.shape[-1] != 3:
        raise ValueError(f"albedo {a.shape} and mask {m.shape} do not match ([S,S,3] and [S,S])")
    if not m.any():
        return np.full(3, np.nan)
    return a[m].mean(0)


def skin_ita(albedo_linear, mask=None) -> float:
    """ITA° of the mean linear colour of ``albedo_linear`` [S, S, 3] over
    ``mask`` [S, S] bool (default ``face_skin_mask(S)``), via CIELAB.
    NaN when the mask is empty."""
    a = np.asarray(albedo_linear)
    if mask is None:
        mask = face_skin_mask(a.shape[0])
    c = mean_skin_colour(a, mask)
    if not np.all(np.isfinite(c)):
        return float("nan")
    return float(ita_deg(linear_rgb_to_lab(c)))


#: ``is_monochrome``: the 95th-percentile CIELAB chroma below which a photo has no colour
MONOCHROME_CHROMA = 3.0


def is_monochrome(rgb_linear, mask=None) -> bool:
    """True when the texels of ``rgb_linear`` [S, S, 3] (linear RGB) under
    ``mask`` [S, S] bool (default: all) carry no colour: the 95th percentile
    of their CIELAB chroma is below ``MONOCHROME_CHROMA`` (a greyscale photo;
    see the module doc). False for an empty mask (nothing to judge)."""
    a = np.asarray(rgb_linear, np.float64)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"expected an [S,S,3] image, got shape {a.shape}")
    m = np.ones(a.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    if m.shape != a.shape[:2]:
        raise ValueError(f"mask {m.shape} does not match the image {a.shape[:2]}")
    px = a[m]
    px = px[np.all(np.isfinite(px), -1)]
    if not len(px):
        return False
    lab = linear_rgb_to_lab(np.clip(px, 0.0, None))
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    return bool(np.percentile(chroma, 95) < MONOCHROME_CHROMA)
