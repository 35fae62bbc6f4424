"""Synthetic meshes with UV layouts, for tests and benchmarks of the UV code.

All meshes follow ``tf_face.types``: right-handed model frame, triangles
counter-clockwise seen from outside, ``uv`` in [0,1]^2 with v down.
"""

from __future__ import annotations

import numpy as np

from tf_face.facemodel.mesh import face_normals


def _quads_to_triangles(n_rows: int, n_cols: int) -> np.ndarray:
    """Triangles of a (n_rows+1) x (n_cols+1) vertex grid, each quad split in two."""
    i = (np.arange(n_rows)[:, None] * (n_cols + 1) + np.arange(n_cols)[None, :]).ravel()
    a, b, c, d = i, i + 1, i + n_cols + 2, i + n_cols + 1
    return np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]).astype(np.int32)


def plane_grid(n: int = 20, jitter: float = 0.3, seed: int = 0,
               uv_box=(0.05, 0.05, 0.95, 0.95)):
    """A planar unit square z = 0 (normal +z) with jittered interior vertices.

    ``uv`` is an affine function of (x, y): u = u0 + x (u1 - u0),
    v = v0 + (1 - y) (v1 - v0) (v down, y up).  Returns (vertices, triangles, uv).
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:n + 1, 0:n + 1] / n
    x, y = xs.ravel().copy(), ys.ravel().copy()
    interior = (x > 0) & (x < 1) & (y > 0) & (y < 1)
    x[interior] += rng.uniform(-jitter, jitter, interior.sum()) / n
    y[interior] += rng.uniform(-jitter, jitter, interior.sum()) / n
    verts = np.stack([x, y, np.zeros_like(x)], 1)
    tris = _quads_to_triangles(n, n)
    u0, v0, u1, v1 = uv_box
    uv = np.stack([u0 + x * (u1 - u0), v0 + (1 - y) * (v1 - v0)], 1)
    return verts, _orient_outward(verts, tris, np.array([0.0, 0.0, 1.0])), uv


def uv_sphere(n_lat: int = 16, n_lon: int = 28, radius: float = 1.0,
              center=(0.0, 0.0, 0.0), uv_box=(0.0, 0.0, 1.0, 1.0)):
    """A latitude/longitude sphere with a seam; UV = (longitude, colatitude).

    Point(phi, lam) = c + r (sin phi sin lam, cos phi, sin phi cos lam), phi in
    [0, pi] from the north pole (+y), lam in [0, 2 pi] from +z (the camera
    side); u = u0 + (u1 - u0) lam / 2pi, v = v0 + (v1 - v0) phi / pi.  Pole
    rows and the seam column are duplicated vertices, so UV has no wrap.
    Returns (vertices, triangles, uv).
    """
    phi = np.linspace(0, np.pi, n_lat + 1)
    lam = np.linspace(0, 2 * np.pi, n_lon + 1)
    P, L = np.meshgrid(phi, lam, indexing="ij")
    dirs = np.stack([np.sin(P) * np.sin(L), np.cos(P), np.sin(P) * np.cos(L)], -1).reshape(-1, 3)
    verts = np.asarray(center, np.float64) + radius * dirs
    tris = _quads_to_triangles(n_lat, n_lon)
    # Outward = along the direction from the centre (pole triangles are degenerate).
    tris = _orient_outward(verts - np.asarray(center), tris, None)
    u0, v0, u1, v1 = uv_box
    uv = np.stack([u0 + (u1 - u0) * L.ravel() / (2 * np.pi), v0 + (v1 - v0) * P.ravel() / np.pi], 1)
    return verts, tris, uv


def _orient_outward(verts, tris, direction):
    n = face_normals(verts, tris)
    ref = verts[tris].mean(1) if direction is None else direction
    flip = (n * ref).sum(-1) < 0
    out = tris.copy()
    out[flip] = out[flip][:, [0, 2, 1]]
    return out


def combine(*meshes):
    """Concatenate (vertices, triangles, uv) meshes into one."""
    verts, tris, uvs, off = [], [], [], 0
    for v, t, uv in meshes:
        verts.append(v)
        tris.append(np.asarray(t) + off)
        uvs.append(uv)
        off += len(v)
    return np.concatenate(verts), np.concatenate(tris).astype(np.int32), np.concatenate(uvs)
