"""468 -> 68 landmark correspondence (iBUG / Multi-PIE order) for the default model.

Computed from the MediaPipe connection lists and the symmetric mean shape
(model frame, +x = subject's left); nothing is copied from another project.
iBUG order: 0-16 jaw from the subject's right to left, 17-21 right brow
(outer -> inner), 22-26 left brow (inner -> outer), 27-30 nose bridge (top ->
tip), 31-35 nose base (right -> left), 36-41 right eye (outer corner, upper
lid x2, inner corner, lower lid x2), 42-47 left eye (inner corner, upper x2,
outer corner, lower x2), 48-59 outer lips (right corner, upper lip to the left
corner 54, lower lip back), 60-67 inner lips (right corner, upper x3, left
corner, lower x3).

Method per group:

* jaw: the lower part of ``FACEMESH_FACE_OVAL`` between the two oval points
  at the height of the outer eye corners, from the subject's right to left
  through the chin; 17 targets evenly spaced by 3-D arc length, assigned to
  distinct chain vertices by a monotone (Hungarian) matching of arc positions.
* brows: the upper of the two chains of each ``FACEMESH_*_EYEBROW`` list (5
  vertices each), ordered outer -> inner (right) / inner -> outer (left).
* nose bridge: the midline chain of ``FACEMESH_NOSE`` from its top vertex to
  the nose tip (largest z); 27 = top, 30 = tip, 28/29 at 1/3, 2/3 arc length.
* nose base: the subnasale (lowest midline vertex of ``FACEMESH_NOSE``) and
  its two neighbours on each side along the nose's lower border.
* eyes: the ``FACEMESH_*_EYE`` loop; corners = extreme |x| (outer) and
  smallest |x| (inner); lid points at 1/3 and 2/3 arc length of each lid.
* lips: the outer and inner loops of ``FACEMESH_LIPS``; corners = extreme x,
  mid-points = midline vertices; 49/50, 52/53, 55/56, 58/59 at 1/3 and 2/3
  arc length of each half-lip; inner 61/63, 65/67 at 1/2 of each half.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from tf_face.facemodel.build.uvlayout import edge_chains


def _arc(x: np.ndarray, chain: list[int]) -> np.ndarray:
    seg = np.linalg.norm(np.diff(x[chain], axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def _sample(x: np.ndarray, chain: list[int], fractions) -> list[int]:
    """Distinct chain vertices nearest (in arc length) to the given fractions."""
    s = _arc(x, chain)
    s = s / s[-1]
    cost = np.abs(np.asarray(fractions)[:, None] - s[None, :])
    rows, cols = linear_sum_assignment(cost)
    out = np.empty(len(fractions), int)
    out[rows] = cols
    return [chain[i] for i in out]


def _loop_path(loop: list[int], a: int, b: int) -> list[int]:
    """The two paths from a to b along a closed loop."""
    i, j = loop.index(a), loop.index(b)
    n = len(loop)
    fwd = [loop[(i + k) % n] for k in range(((j - i) % n) + 1)]
    bwd = [loop[(i - k) % n] for k in range(((i - j) % n) + 1)]
    return [fwd, bwd]


def _loop(edges) -> list[int]:
    chains = edge_chains(edges)
    return max(chains, key=len)


def compute_ibug68(x: np.ndarray, mirror: np.ndarray, conns: dict) -> np.ndarray:
    """[68] int32 vertex ids in iBUG order (see module docstring)."""
    x = np.asarray(x, np.float64)
    mid = set(np.flatnonzero(mirror == np.arange(len(mirror))).tolist())
    out: list[int] = []

    # jaw
    oval = _loop(conns["FACEMESH_FACE_OVAL"])
    eye_y = 0.5 * (x[_eye_corners(x, _loop(conns["FACEMESH_RIGHT_EYE"]))[0], 1]
                   + x[_eye_corners(x, _loop(conns["FACEMESH_LEFT_EYE"]))[0], 1])
    ov = np.array(oval)
    right = ov[x[ov, 0] < 0]
    left = ov[x[ov, 0] > 0]
    r0 = int(right[np.argmin(np.abs(x[right, 1] - eye_y))])
    l0 = int(left[np.argmin(np.abs(x[left, 1] - eye_y))])
    chin = min(oval, key=lambda v: x[v, 1])
    jaw = next(p for p in _loop_path(oval, r0, l0) if chin in p)
    out += _sample(x, jaw, np.linspace(0, 1, 17))

    # brows
    for name, outer_first in (("FACEMESH_RIGHT_EYEBROW", True), ("FACEMESH_LEFT_EYEBROW", False)):
        upper = max(edge_chains(conns[name]), key=lambda c: x[c, 1].mean())
        upper = sorted(upper, key=lambda v: -abs(x[v, 0]))  # outer -> inner
        out += upper if outer_first else upper[::-1]

    # nose bridge and base
    nose_chains = edge_chains(conns["FACEMESH_NOSE"])
    nose_v = sorted({v for c in nose_chains for v in c})
    ridge = sorted([v for v in nose_v if v in mid], key=lambda v: -x[v, 1])
    tip = max(ridge, key=lambda v: x[v, 2])
    ridge = ridge[:ridge.index(tip) + 1]
    out += _sample(x, ridge, [0, 1 / 3, 2 / 3, 1])
    sub = min((v for v in nose_v if v in mid), key=lambda v: x[v, 1])
    adj = _adjacency(conns["FACEMESH_NOSE"])
    base = [sub]
    for side in (-1, 1):
        prev, cur = sub, sub
        for _ in range(2):
            nxt = [n for n in adj[cur] if n != prev and n not in mid and np.sign(x[n, 0]) == side]
            if not nxt:
                break
            prev, cur = cur, min(nxt, key=lambda n: x[n, 1])
            base = [cur] + base if side < 0 else base + [cur]
    if len(base) != 5:
        raise RuntimeError(f"nose base chain has {len(base)} vertices, expected 5")
    out += base

    # eyes
    for name, right_eye in (("FACEMESH_RIGHT_EYE", True), ("FACEMESH_LEFT_EYE", False)):
        loop = _loop(conns[name])
        outer, inner = _eye_corners(x, loop)
        paths = _loop_path(loop, outer, inner)
        upper = max(paths, key=lambda p: x[p, 1].mean())
        lower = min(paths, key=lambda p: x[p, 1].mean())
        up = _sample(x, upper, [1 / 3, 2 / 3])        # outer -> inner
        lo = _sample(x, lower[::-1], [1 / 3, 2 / 3])  # inner -> outer
        if right_eye:   # 36 outer, 37 38 upper, 39 inner, 40 41 lower
            out += [outer] + up + [inner] + lo
        else:           # 42 inner, 43 44 upper, 45 outer, 46 47 lower
            out += [inner] + up[::-1] + [outer] + lo[::-1]

    # lips
    lip_loops = sorted(edge_chains(conns["FACEMESH_LIPS"]),
                       key=lambda c: np.ptp(x[c, 0]), reverse=True)
    for loop, fr in ((lip_loops[0], [1 / 3, 2 / 3]), (lip_loops[1], [0.5])):
        rc = min(loop, key=lambda v: x[v, 0])
        lc = max(loop, key=lambda v: x[v, 0])
        paths = _loop_path(loop, rc, lc)
        upper = max(paths, key=lambda p: x[p, 1].mean())
        lower = min(paths, key=lambda p: x[p, 1].mean())
        um = max((v for v in upper if v in mid), key=lambda v: x[v, 1])
        lm = min((v for v in lower if v in mid), key=lambda v: x[v, 1])
        u1, u2 = upper[:upper.index(um) + 1], upper[upper.index(um):]
        low_rev = lower[::-1]                     # left corner -> right corner
        l1, l2 = low_rev[:low_rev.index(lm) + 1], low_rev[low_rev.index(lm):]
        out += ([rc] + _sample(x, u1, fr) + [um] + _sample(x, u2, fr)
                + [lc] + _sample(x, l1, fr) + [lm] + _sample(x, l2, fr))
    # outer lips gave 12 (48-59) but ends with the right corner implicit; inner 8
    res = np.array(out, np.int32)
    if res.shape != (68,) or len(np.unique(res)) != 68:
        raise RuntimeError(f"468->68 correspondence is not 68 distinct vertices ({res.shape})")
    return res


def _adjacency(edges) -> dict[int, list[int]]:
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(int(a), []).append(int(b))
        adj.setdefault(int(b), []).append(int(a))
    return adj


def _eye_corners(x: np.ndarray, loop: list[int]) -> tuple[int, int]:
    outer = max(loop, key=lambda v: abs(x[v, 0]))
    inner = min(loop, key=lambda v: abs(x[v, 0]))
    return outer, inner
