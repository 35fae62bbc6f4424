"""Random meshes and UV atlases for tests and benchmarks (no face model needed).

``random_atlas`` scatters ``num_vertices`` UV points in the unit square,
Delaunay-triangulates them and rasterises the triangulation at texel centres
(u = (col + 0.5) / W, v = (row + 0.5) / H): per texel the containing triangle
and its barycentric weights, -1 / zeros outside the convex hull. A random
fraction of covered texels can be masked off to exercise the mask.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial import Delaunay


class RandomAtlas(NamedTuple):
    uv: np.ndarray          # [V, 2] float64
    triangles: np.ndarray   # [T, 3] int32
    tri_id: np.ndarray      # [H, W] int32, -1 outside
    bary: np.ndarray        # [H, W, 3] float32
    mask: np.ndarray        # [H, W] bool


def random_atlas(num_vertices: int, height: int, width: int, seed: int = 0,
                 drop_fraction: float = 0.0) -> RandomAtlas:
    rng = np.random.default_rng(seed)
    uv = rng.uniform(0.02, 0.98, size=(num_vertices, 2))
    tri = Delaunay(uv)
    rows, cols = np.mgrid[0:height, 0:width]
    centres = np.stack([(cols.ravel() + 0.5) / width, (rows.ravel() + 0.5) / height], axis=1)
    simplex = tri.find_simplex(centres)
    inside = simplex >= 0
    transform = tri.transform[np.maximum(simplex, 0)]            # [N, 3, 2]
    b01 = np.einsum("nij,nj->ni", transform[:, :2], centres - transform[:, 2])
    bary = np.concatenate([b01, 1.0 - b01.sum(axis=1, keepdims=True)], axis=1)
    bary[~inside] = 0.0
    mask = inside.copy()
    if drop_fraction > 0:
        mask &= rng.uniform(size=mask.shape) >= drop_fraction
    return RandomAtlas(
        uv=uv,
        triangles=tri.simplices.astype(np.int32),
        tri_id=np.where(inside, simplex, -1).astype(np.int32).reshape(height, width),
        bary=bary.astype(np.float32).reshape(height, width, 3),
        mask=mask.reshape(height, width),
    )
