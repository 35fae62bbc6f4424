"""1-ring adjacency (CSR) of triangle meshes and of the texel-grid detail mesh.

CSR convention: the neighbours of vertex i are ``col_idx[row_ptr[i]:row_ptr[i+1]]``
(sorted ascending, no duplicates, no self loops); the adjacency is symmetric
(j in N(i) <=> i in N(j)), so ``mesh_laplacian_smoothness`` counts every edge
twice, as the sum over i and j in N(i) of the paper's formula does.

Detail mesh (DESIGN.md "UV atlas"): every valid texel of ``mask`` is a vertex,
numbered in row-major texel order. Each 2x2 block of texels is split along its
main diagonal into the triangles (r,c)-(r+1,c)-(r+1,c+1) and
(r,c)-(r+1,c+1)-(r,c+1); a triangle exists iff its three texels are valid. So
an interior vertex has 6 neighbours (left, right, up, down, up-left,
down-right) — the 1-ring of that triangulation, not a 4- or 8-neighbourhood.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Adjacency(NamedTuple):
    row_ptr: np.ndarray   # [V + 1] int32
    col_idx: np.ndarray   # [nnz] int32


class GridAdjacency(NamedTuple):
    row_ptr: np.ndarray       # [V + 1] int32
    col_idx: np.ndarray       # [nnz] int32
    texel_index: np.ndarray   # [V] int32: flat (row-major) texel of each vertex


def mesh_adjacency(triangles, num_vertices: int) -> Adjacency:
    """Symmetric 1-ring CSR of a triangle mesh ``[T, 3]`` with ``num_vertices``."""
    tri = np.asarray(triangles)
    if tri.ndim != 2 or tri.shape[1] != 3:
        raise ValueError(f"triangles must be [T, 3], got {tri.shape}")
    num_vertices = int(num_vertices)
    tri = tri.astype(np.int64)
    if tri.size and (tri.min() < 0 or tri.max() >= num_vertices):
        raise ValueError(f"triangle vertex ids must lie in [0, {num_vertices})")
    a = tri[:, [0, 1, 2, 1, 2, 0]].reshape(-1)
    b = tri[:, [1, 2, 0, 0, 1, 2]].reshape(-1)
    keep = a != b
    keys = np.unique(a[keep] * num_vertices + b[keep])
    rows, cols = keys // num_vertices, keys % num_vertices
    row_ptr = np.zeros(num_vertices + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=num_vertices), out=row_ptr[1:])
    return Adjacency(row_ptr.astype(np.int32), cols.astype(np.int32))


def grid_triangles(mask) -> tuple[np.ndarray, np.ndarray]:
    """Triangles ``[T, 3]`` of the detail mesh of ``mask [H, W]`` and ``texel_index [V]``."""
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be [H, W], got {mask.shape}")
    height, width = mask.shape
    texel_index = np.flatnonzero(mask).astype(np.int32)
    vid = np.full(height * width, -1, np.int64)
    vid[texel_index] = np.arange(texel_index.size)
    vid = vid.reshape(height, width)
    p00, p01 = vid[:-1, :-1], vid[:-1, 1:]
    p10, p11 = vid[1:, :-1], vid[1:, 1:]
    tris = []
    for corners in ((p00, p10, p11), (p00, p11, p01)):
        stacked = np.stack([c.reshape(-1) for c in corners], axis=1)
        tris.append(stacked[(stacked >= 0).all(axis=1)])
    return np.concatenate(tris, axis=0).astype(np.int32), texel_index


def grid_adjacency(mask) -> GridAdjacency:
    """1-ring CSR of the texel-grid detail mesh of ``mask [H, W]`` (see module doc)."""
    triangles, texel_index = grid_triangles(mask)
    adj = mesh_adjacency(triangles, texel_index.size)
    return GridAdjacency(adj.row_ptr, adj.col_idx, texel_index)
