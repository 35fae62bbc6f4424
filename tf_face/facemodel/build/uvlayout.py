"""Triangulation and UV layout of the default (MediaPipe-topology) model.

* ``edge_chains``: connection lists (undirected edges) -> ordered vertex
  chains/loops (used for the face oval, eyes, lips, brows, nose).
* ``triangulate``: Delaunay of the 468 points in a UV plane, keeping the
  triangles whose centroid lies inside the face-oval polygon. Eyes and mouth
  are **not** cut out (the mesh is a closed disk, Euler characteristic 1):
  an open mouth or eye then still has texels in UV (teeth, eyeball), and the
  photo-unwrap can mask them with the region masks if it wants to.
* The UV layout itself is ``build_default.profile_uv`` (a cylinder whose
  u is arc length along the face's mean horizontal profile). A harmonic
  (mean-value) map with the oval on a circle/superellipse was tried and
  rejected: same texel-density spread (p95/p5 ~3.4 vs ~2.9), and it crowded
  the nose tip while squeezing forehead and chin.
* ``texel_density``: per triangle, UV area / 3-D area (normalised by the
  ratio of the totals); its spread says how uneven the texel budget is.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import Delaunay


def edge_chains(edges) -> list[list[int]]:
    """Ordered vertex lists of the connected components of an edge list.

    A closed loop is returned without repeating its first vertex.
    """
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(int(a), []).append(int(b))
        adj.setdefault(int(b), []).append(int(a))
    seen: set[int] = set()
    chains = []
    starts = [v for v, n in adj.items() if len(n) == 1] + list(adj)
    for s in starts:
        if s in seen:
            continue
        chain, prev, cur = [s], None, s
        seen.add(s)
        while True:
            nxt = [n for n in adj[cur] if n != prev and n not in seen]
            if not nxt:
                break
            prev, cur = cur, nxt[0]
            chain.append(cur)
            seen.add(cur)
        chains.append(chain)
    return chains


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points."""
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    x0, y0 = polygon[:, 0][None], polygon[:, 1][None]
    x1, y1 = np.roll(polygon[:, 0], -1)[None], np.roll(polygon[:, 1], -1)[None]
    cond = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xint = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return (cond & (x < xint)).sum(1) % 2 == 1


def signed_area_2d(uv: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Signed area in the (u, -v) plane (v down => flip to get the usual sense)."""
    p = np.stack([uv[:, 0], -uv[:, 1]], 1)
    a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def triangulate(uv: np.ndarray, oval_loop: list[int]) -> np.ndarray:
    """Delaunay in UV restricted to the face oval; CCW in (u, -v) = CCW from +z."""
    tri = Delaunay(np.asarray(uv, np.float64)).simplices.astype(np.int32)
    cent = uv[tri].mean(1)
    inside = points_in_polygon(cent, np.asarray(uv)[oval_loop])
    tri = tri[inside]
    neg = signed_area_2d(uv, tri) < 0
    tri[neg] = tri[neg][:, [0, 2, 1]]
    return tri


def texel_density(x: np.ndarray, uv: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Per-triangle (UV area / 3-D area) / (total UV area / total 3-D area)."""
    a3 = 0.5 * np.linalg.norm(np.cross(x[tri[:, 1]] - x[tri[:, 0]],
                                       x[tri[:, 2]] - x[tri[:, 0]]), axis=1)
    a2 = np.abs(signed_area_2d(uv, tri))
    return (a2 / np.maximum(a3, 1e-12)) / (a2.sum() / a3.sum())
