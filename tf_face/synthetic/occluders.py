"""Image-space occluders drawn in front of the face: glasses frames,
hand-like blobs, hair strands (``KINDS``, drawn by ``occlusion_prob``), and
solid ones over the forehead (``SOLID_KINDS``, drawn by ``solid_occluder_prob``):
a fringe (a sheet of hair from above, its lower edge anywhere from well above
the brows to over them, jagged by strands) and a cap (a coloured crown with
a darker brim, its edge 0.05-0.4 inter-ocular distances above the brows; the
mesh's forehead ends ~0.6 above them).

An occluder is ``{"kind": str, "seed": int}``; its geometry is drawn at render
time from ``numpy.random.default_rng(seed)`` relative to the face's projected
iBUG-68 landmarks (image frame), so it follows the face's pose and the image
size. ``draw_occluders`` returns linear-RGB premultiplied colour and coverage
alpha (anti-aliased, drawn at 2x and box-filtered). They are flat 2-D shapes
with a simple shading ramp — occluders, not models of glasses or hands.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from tf_face.ibug import eye_centres

KINDS = ("glasses", "hand", "hair")
SOLID_KINDS = ("fringe", "cap")
EDGE_POINTS = 25
CAP_COLOURS = ((0.02, 0.03, 0.10), (0.45, 0.03, 0.03), (0.75, 0.75, 0.72), (0.02, 0.02, 0.02),
               (0.25, 0.45, 0.75), (0.05, 0.20, 0.06))   # navy, red, white, black, light blue, green
SS = 2          # supersampling
SHIFT = 4       # cv2 fixed-point bits


def _pt(p, k=SS):
    q = (np.asarray(p, np.float64) + 0.5) * k - 0.5
    return tuple(int(round(v * (1 << SHIFT))) for v in q)


def _glasses(rng, lm, iod, alpha, colour):
    er, el = eye_centres(lm)
    axis = el - er
    ang = math.degrees(math.atan2(axis[1], axis[0]))
    frame_col = [np.array([0.02, 0.02, 0.02]), np.array([0.12, 0.06, 0.03]),
                 np.array([0.35, 0.33, 0.3])][int(rng.integers(3))]
    thick = max(1, int(round(iod * rng.uniform(0.03, 0.08) * SS)))
    hh = iod * rng.uniform(0.22, 0.32)
    lens = []
    for c, a, b in ((er, lm[36], lm[39]), (el, lm[42], lm[45])):
        hw = 0.5 * np.linalg.norm(b - a) * rng.uniform(1.5, 1.8)
        centre = c + np.array([0.0, iod * 0.03])
        lens.append((centre, hw))
        axes = (int(round(hw * SS * (1 << SHIFT))), int(round(hh * SS * (1 << SHIFT))))
        cv2.ellipse(alpha, _pt(centre), axes, ang, 0, 360, 1.0, thick, cv2.LINE_AA, SHIFT)
        cv2.ellipse(colour, _pt(centre), axes, ang, 0, 360, tuple(float(v) for v in frame_col),
                    thick, cv2.LINE_AA, SHIFT)
    u = axis / max(np.linalg.norm(axis), 1e-6)
    p0 = lens[0][0] + u * lens[0][1]
    p1 = lens[1][0] - u * lens[1][1]
    for img, val in ((alpha, 1.0), (colour, tuple(float(v) for v in frame_col))):
        cv2.line(img, _pt(p0), _pt(p1), val, thick, cv2.LINE_AA, SHIFT)
        # temples, towards the ears (iBUG 0 / 16 side)
        for (c, hw), s in ((lens[0], -1), (lens[1], 1)):
            a = c + s * u * hw
            ear = lm[0] if s < 0 else lm[16]
            b = a + (ear - a) * rng.uniform(0.7, 1.0)
            cv2.line(img, _pt(a), _pt(b), val, thick, cv2.LINE_AA, SHIFT)


def _hand(rng, lm, iod, alpha, colour, skin):
    side = 1 if rng.random() < 0.5 else -1
    jaw = lm[int(rng.integers(4, 8))] if side < 0 else lm[int(rng.integers(9, 13))]
    centre = jaw + np.array([side * iod * rng.uniform(0.0, 0.4), iod * rng.uniform(0.3, 0.7)])
    ang = math.radians(-90 + side * rng.uniform(-40, 10))          # fingers point up-ish
    d = np.array([math.cos(ang), math.sin(ang)])
    perp = np.array([-d[1], d[0]])
    col = np.asarray(skin) * rng.uniform(0.8, 1.2, 3)
    palm_axes = (iod * 0.55, iod * 0.45)
    lay = np.zeros_like(alpha)
    cv2.ellipse(lay, _pt(centre), tuple(int(round(a * SS * (1 << SHIFT))) for a in palm_axes),
                math.degrees(ang), 0, 360, 1.0, -1, cv2.LINE_AA, SHIFT)
    n_f = int(rng.integers(2, 5))
    for f in range(n_f):
        off = (f - (n_f - 1) / 2) * iod * 0.22
        base = centre + d * iod * 0.35 + perp * off
        tip = base + d * iod * rng.uniform(0.6, 1.0) + perp * off * 0.3
        cv2.line(lay, _pt(base), _pt(tip), 1.0, max(1, int(iod * 0.19 * SS)), cv2.LINE_AA, SHIFT)
    # shading ramp along the finger direction + darker rim
    h, w = lay.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / SS
    ramp = 0.75 + 0.25 * np.clip(((xx - centre[0]) * perp[0] + (yy - centre[1]) * perp[1]) / iod, -1, 1)
    rim = cv2.GaussianBlur(lay, (0, 0), iod * 0.08 * SS)
    shade = ramp * (0.6 + 0.4 * rim)
    a = np.maximum(alpha, lay)
    colour[:] = colour * (1 - lay[..., None]) + (col * shade[..., None]) * lay[..., None]
    alpha[:] = a


def _hair(rng, lm, iod, alpha, colour, hair):
    side = 1 if rng.random() < 0.5 else -1
    brow = lm[19] if side < 0 else lm[24]
    up = lm[27] - lm[8]
    up = up / max(np.linalg.norm(up), 1e-6)
    right = np.array([-up[1], up[0]]) * (1 if up[1] < 0 else -1)
    start = brow + up * iod * rng.uniform(0.5, 0.9)
    n = int(rng.integers(8, 30))
    for _ in range(n):
        s = start + right * rng.normal(0, iod * 0.15)
        end = s - up * iod * rng.uniform(0.6, 1.6) + right * side * rng.normal(0.3, 0.3) * iod
        mid = 0.5 * (s + end) + right * rng.normal(0, 0.2) * iod
        t = np.linspace(0, 1, 20)[:, None]
        pts = (1 - t) ** 2 * s + 2 * (1 - t) * t * mid + t ** 2 * end
        q = np.array([_pt(p) for p in pts], np.int32)
        th = max(1, int(round(rng.uniform(0.006, 0.02) * iod * SS)))
        c = tuple(float(v) for v in np.asarray(hair) * rng.uniform(0.7, 1.3))
        cv2.polylines(alpha, [q], False, 1.0, th, cv2.LINE_AA, SHIFT)
        cv2.polylines(colour, [q], False, c, th, cv2.LINE_AA, SHIFT)


def _forehead_frame(lm):
    """(up [2] unit, right [2] unit, brow line points [10, 2]) in the image."""
    up = lm[27] - lm[8]
    up = up / max(np.linalg.norm(up), 1e-6)
    right = np.array([-up[1], up[0]])
    if right @ (lm[16] - lm[0]) < 0:
        right = -right
    return up, right, lm[17:27]


def _solid_edge(rng, lm, iod, height, jag):
    """Polygon [N, 2] of a region over the forehead: a lower edge ``height``
    IOD above the brows' centre (jagged downwards by up to ``jag`` IOD) that
    comes down 0.8 IOD at the temples, closed by a dome over the head. The
    first ``EDGE_POINTS`` points are the lower edge."""
    up, right, brows = _forehead_frame(lm)
    centre = brows.mean(0)
    half = 0.5 * float(np.linalg.norm(lm[16] - lm[0])) + 0.3 * iod
    t = np.linspace(-1.0, 1.0, EDGE_POINTS)
    drop = np.clip((np.abs(t) - 0.7) / 0.3, 0.0, 1.0) * 0.8
    lift = height - drop - jag * rng.uniform(0.0, 1.0, EDGE_POINTS)
    edge = centre + np.outer(t * half, right) + np.outer(lift * iod, up)
    theta = np.linspace(0.0, np.pi, 17)[1:-1]
    dome = (centre + np.outer(np.cos(theta) * half * 1.05, right)
            + np.outer((height - 0.8 + 1.8 * np.sin(theta)) * iod, up))
    return np.concatenate([edge, dome])


def _solid_coverage(poly, alpha) -> np.ndarray:
    """Anti-aliased coverage [H*SS, W*SS] of the polygon ``poly`` (image points)."""
    lay = np.zeros_like(alpha)
    cv2.fillPoly(lay, [np.array([_pt(p) for p in poly], np.int32)], 1.0, cv2.LINE_AA, SHIFT)
    return lay


def _fringe(rng, lm, iod, alpha, colour, hair):
    poly = _solid_edge(rng, lm, iod, rng.uniform(-0.1, 0.35), rng.uniform(0.05, 0.2))
    lay = _solid_coverage(poly, alpha)
    col = np.zeros_like(colour)
    col[:] = np.asarray(hair, np.float32)
    # strands: lighter and darker lines from above, so the sheet has hair texture
    up, _, _ = _forehead_frame(lm)
    lo, hi = poly[:EDGE_POINTS].min(0), poly[:EDGE_POINTS].max(0)
    for _ in range(int(rng.integers(40, 80))):
        x = lo + (hi - lo) * rng.uniform(0, 1)
        a, b = x + up * iod * rng.uniform(0.5, 2.0), x - up * iod * rng.uniform(0.0, 0.2)
        c = tuple(float(v) for v in np.asarray(hair) * rng.uniform(0.5, 1.6))
        th = max(1, int(round(rng.uniform(0.01, 0.03) * iod * SS)))
        cv2.line(col, _pt(a), _pt(b), c, th, cv2.LINE_AA, SHIFT)
    colour[:] = col * lay[..., None]
    alpha[:] = lay


def _cap(rng, lm, iod, alpha, colour):
    height = rng.uniform(0.05, 0.4)
    poly = _solid_edge(rng, lm, iod, height, 0.0)
    lay = _solid_coverage(poly, alpha)
    base = np.asarray(CAP_COLOURS[int(rng.integers(len(CAP_COLOURS)))]) * rng.uniform(0.8, 1.2, 3)
    col = np.zeros_like(colour)
    col[:] = base
    # the brim: a darker band along the lower edge
    edge = np.array([_pt(p) for p in poly[:EDGE_POINTS]], np.int32)
    th = max(1, int(round(rng.uniform(0.08, 0.15) * iod * SS)))
    cv2.polylines(col, [edge], False, tuple(float(v) for v in base * 0.6), th, cv2.LINE_AA, SHIFT)
    colour[:] = col * lay[..., None]
    alpha[:] = lay


def random_occluders(rng: np.random.Generator, occlusion_prob: float) -> list:
    """0-2 occluder specs; with probability ``occlusion_prob`` at least one."""
    if rng.random() >= occlusion_prob:
        return []
    n = 1 + int(rng.random() < 0.3)
    kinds = rng.choice(len(KINDS), size=n, replace=False)
    return [{"kind": KINDS[int(k)], "seed": int(rng.integers(2 ** 31))} for k in sorted(kinds)]


def random_solid_occluder(rng: np.random.Generator, prob: float) -> list:
    """[] or one fringe or cap spec, with probability ``prob``; draws nothing
    from ``rng`` when ``prob`` is 0 (so the other draws of a face stay the same)."""
    if prob <= 0 or rng.random() >= prob:
        return []
    kind = SOLID_KINDS[int(rng.integers(len(SOLID_KINDS)))]
    return [{"kind": kind, "seed": int(rng.integers(2 ** 31))}]


def draw_occluders(specs: list, landmarks_image: np.ndarray, iod_pixels: float,
                   height: int, width: int, skin, hair):
    """(premultiplied colour [H,W,3] linear RGB, alpha [H,W]) of all occluders."""
    alpha = np.zeros((height * SS, width * SS), np.float32)
    colour = np.zeros((height * SS, width * SS, 3), np.float32)
    lm = np.asarray(landmarks_image, np.float64)[:, :2]
    for spec in specs:
        rng = np.random.default_rng(int(spec["seed"]))
        a = np.zeros_like(alpha)
        c = np.zeros_like(colour)
        if spec["kind"] == "glasses":
            _glasses(rng, lm, iod_pixels, a, c)
            c = c  # drawn premultiplied with alpha 1 strokes
        elif spec["kind"] == "hand":
            _hand(rng, lm, iod_pixels, a, c, skin)
            c = c * a[..., None]
        elif spec["kind"] == "hair":
            _hair(rng, lm, iod_pixels, a, c, hair)
        elif spec["kind"] == "fringe":
            _fringe(rng, lm, iod_pixels, a, c, hair)
        elif spec["kind"] == "cap":
            _cap(rng, lm, iod_pixels, a, c)
        else:
            raise ValueError(f"unknown occluder kind {spec['kind']!r}")
        a = np.clip(a, 0, 1)
        colour = c + (1 - a[..., None]) * colour    # later occluders in front
        alpha = a + (1 - a) * alpha
    colour = cv2.resize(colour, (width, height), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA)
    return colour.astype(np.float64), alpha.astype(np.float64)
