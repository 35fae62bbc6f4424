"""Vectorised numpy z-buffer triangle rasteriser (no Python loop over pixels
or triangles).

Conventions
-----------
* Vertices are in the **image frame** of ``tf_face.types``: x = column,
  y = row (down), z = depth, *smaller z = nearer*.
* **Pixel centres are at integer coordinates**: pixel ``(r, c)`` is the image
  point ``(x=c, y=r)`` and covers ``[c-0.5, c+0.5] x [r-0.5, r+0.5]``.  This is
  OpenCV's convention (``cv2.remap`` samples pixel (r, c) at (c, r)), so a
  point rasterised here and sampled with ``cv2.remap`` agree.
* A pixel belongs to a triangle when its centre is inside or on the boundary
  (barycentrics ``>= -1e-7``; the tolerance closes floating-point cracks on
  shared edges).  Pixels covered by several triangles keep the nearest one;
  exact depth ties keep the lowest triangle id, so every covered pixel maps to
  exactly one triangle, including pixels exactly on a shared edge.
* Barycentrics ``(w0, w1, w2)`` weight the triangle's vertices ``(a, b, c)``
  and are computed in screen space (exact for the weak-perspective /
  orthographic projections used in tf_face); depth is interpolated linearly.
* Front facing: a triangle that is counter-clockwise seen from outside in a
  right-handed model frame is front facing in the image frame when
  ``(b - a) x (c - a)`` has **negative** z (its outward normal points to
  smaller z, towards the camera).  ``cull_backfaces=True`` drops the others.
* Degenerate triangles (zero area, non-finite vertices) produce no pixels.

Algorithm: per-triangle integer bounding boxes, clipped to the image, are
expanded into (triangle, row) pairs and each row into the pixels of its exact
span (from the three barycentric half-planes) with ``np.repeat`` /
``cumsum``; barycentrics, the inside test and depth are evaluated on all
(pixel, triangle) pairs at once; depth is resolved with ``np.minimum.at``
(nearest depth, then lowest id among exact ties).  Work is split into chunks
of at most ``max_candidates`` bounding-box pixels (consecutive triangle
ranges; one triangle is never split, so a single triangle covering a huge
image costs memory in proportion to its area); chunks are merged with the
same rule, so the result does not depend on the chunking.

Cost is about linear in the covered pixels (all layers) plus the rows of the
bounding boxes: e.g. ~8 ms CPU for a 900-triangle face covering 250x300
pixels of a 960x720 image on this project's 2-core machine.
"""

from __future__ import annotations

import numpy as np

INSIDE_EPS = 1e-7
_AREA_EPS = 1e-12
_INT_MAX = np.iinfo(np.int32).max


def _triangle_setup(v: np.ndarray, t: np.ndarray, height: int, width: int,
                    cull_backfaces: bool) -> dict:
    """Per-triangle bounding boxes and affine barycentric/depth coefficients.

    Everything is stored as separate 1-D arrays: gathering from 1-D arrays is
    several times faster in numpy than gathering rows of a 2-D array.
    """
    ax, ay, az = (v[t[:, 0], k] for k in range(3))
    bx, by, bz = (v[t[:, 1], k] for k in range(3))
    cx, cy, cz = (v[t[:, 2], k] for k in range(3))
    e1x, e1y, e2x, e2y = bx - ax, by - ay, cx - ax, cy - ay
    area2 = e1x * e2y - e1y * e2x          # z of (b-a)x(c-a) in the image frame
    ok = np.isfinite(v[t]).all(axis=(1, 2)) & (np.abs(area2) > _AREA_EPS)
    if cull_backfaces:
        ok &= area2 < 0
    with np.errstate(invalid="ignore"):
        xmin = np.nan_to_num(np.minimum(np.minimum(ax, bx), cx))
        xmax = np.nan_to_num(np.maximum(np.maximum(ax, bx), cx))
        ymin = np.nan_to_num(np.minimum(np.minimum(ay, by), cy))
        ymax = np.nan_to_num(np.maximum(np.maximum(ay, by), cy))
    x0 = np.clip(np.ceil(xmin - 1e-6), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(xmax + 1e-6), -1, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(ymin - 1e-6), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(ymax + 1e-6), -1, height - 1).astype(np.int64)
    nx = np.maximum(x1 - x0 + 1, 0)
    ny = np.maximum(y1 - y0 + 1, 0)
    counts = np.where(ok, nx * ny, 0)
    inv = 1.0 / np.where(ok, area2, 1.0)
    # With dx = px - ax, dy = py - ay:
    #   w1 = (dx*e2y - dy*e2x) / area2,  w2 = (dy*e1x - dx*e1y) / area2,
    #   w0 = 1 - w1 - w2,  z = az + w1*(bz - az) + w2*(cz - az).
    return dict(ax=ax, ay=ay, az=az, k1x=e2y * inv, k1y=-e2x * inv,
                k2x=-e1y * inv, k2y=e1x * inv, dz1=bz - az, dz2=cz - az,
                x0=x0, x1=x1, y0=y0, ny=ny, counts=counts)


def rasterize(vertices, triangles, height: int, width: int,
              cull_backfaces: bool = False, max_candidates: int = 1 << 22):
    """Rasterise a triangle mesh with a z-buffer.

    Args:
      vertices: [V, 3] image-frame positions (x column, y row, z depth,
        smaller = nearer); pixel (r, c) centre is the point (c, r).
      triangles: [T, 3] vertex ids.
      height, width: output size in pixels.
      cull_backfaces: drop triangles whose image-space (b-a)x(c-a) has z >= 0
        (i.e. keep triangles that are CCW-from-outside and face the camera).
      max_candidates: memory bound on (pixel, triangle) pairs per chunk.

    Returns:
      tri_id [H, W] int32 (-1 = empty), bary [H, W, 3] float32 (0 where
      empty), depth [H, W] float32 (+inf where empty).
    """
    height, width = int(height), int(width)
    if height < 0 or width < 0:
        raise ValueError(f"image size must be non-negative, got {height}x{width}")
    v = np.asarray(vertices, np.float64)
    t = np.asarray(triangles, np.int64).reshape(-1, 3)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be [V,3], got {v.shape}")
    if t.size and (t.min() < 0 or t.max() >= v.shape[0]):
        raise ValueError("triangle ids outside the vertex range")
    npix = height * width
    tri_buf = np.full(npix, -1, np.int32)
    bary_buf = np.zeros((npix, 3), np.float32)
    depth_buf = np.full(npix, np.inf, np.float64)
    if t.shape[0] and npix:
        s = _triangle_setup(v, t, height, width, cull_backfaces)
        tris = np.flatnonzero(s["counts"])
        if tris.size:
            cum = np.cumsum(s["counts"][tris])
            start = 0
            while start < tris.size:
                base = cum[start - 1] if start else 0
                end = int(np.searchsorted(cum, base + max_candidates, side="right"))
                end = max(end, start + 1)
                _raster_chunk(tris[start:end], s, width, tri_buf, bary_buf, depth_buf)
                start = end
    return (tri_buf.reshape(height, width), bary_buf.reshape(height, width, 3),
            depth_buf.astype(np.float32).reshape(height, width))


def _raster_chunk(ct, s, width, tri_buf, bary_buf, depth_buf):
    """Rasterise triangles ``ct`` and merge them into the buffers.

    Two-level expansion: triangles -> scanline rows (bounding-box rows) ->
    pixels of the row's exact span, so candidates are close to the covered
    pixels instead of the whole bounding box.
    """
    ny = s["ny"][ct]
    nr = int(ny.sum())
    rt = np.repeat(ct, ny)                                        # row -> triangle
    ry = (np.arange(nr, dtype=np.int64) - np.repeat(np.cumsum(ny) - ny, ny)
          + np.repeat(s["y0"][ct], ny))                           # row -> y
    ax = s["ax"][rt]
    dy = ry - s["ay"][rt]
    k1x, k2x = s["k1x"][rt], s["k2x"][rt]
    # Along the row, w_k(x) = p_k + x * q_k.
    q1, q2 = k1x, k2x
    q0 = -(q1 + q2)
    p1 = dy * s["k1y"][rt] - ax * q1
    p2 = dy * s["k2y"][rt] - ax * q2
    p0 = 1.0 - p1 - p2
    lo = s["x0"][rt].astype(np.float64)
    hi = s["x1"][rt].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        for p, q in ((p0, q0), (p1, q1), (p2, q2)):
            bound = (-INSIDE_EPS - p) / q
            lo = np.where(q > 0, np.maximum(lo, bound), lo)
            hi = np.where(q < 0, np.minimum(hi, bound), hi)
            hi = np.where((q == 0) & (p < -INSIDE_EPS), -np.inf, hi)
    xlo = np.ceil(lo - 1e-6)
    xhi = np.floor(hi + 1e-6)
    cnt = np.maximum(np.nan_to_num(xhi - xlo + 1, nan=0.0, neginf=0.0), 0).astype(np.int64)
    n = int(cnt.sum())
    if n == 0:
        return
    rows = np.flatnonzero(cnt)
    cnt = cnt[rows]
    xlo = xlo[rows]
    rt, p0, p1, p2, q1, q2 = rt[rows], p0[rows], p1[rows], p2[rows], q1[rows], q2[rows]
    # Depth along the row: z = pz + x * qz.
    az, dz1, dz2 = s["az"][rt], s["dz1"][rt], s["dz2"][rt]
    pz = az + p1 * dz1 + p2 * dz2
    qz = q1 * dz1 + q2 * dz2
    # Per pixel: x = xlo + j (j = index within the row span).
    start = np.cumsum(cnt) - cnt
    j = (np.arange(n, dtype=np.int64) - np.repeat(start, cnt)).astype(np.float64)
    pix = np.arange(n, dtype=np.int64) - np.repeat(start - ry[rows] * width - xlo.astype(np.int64), cnt)
    w1 = np.repeat(p1 + xlo * q1, cnt) + j * np.repeat(q1, cnt)
    w2 = np.repeat(p2 + xlo * q2, cnt) + j * np.repeat(q2, cnt)
    w0 = 1.0 - w1 - w2
    z = np.repeat(pz + xlo * qz, cnt) + j * np.repeat(qz, cnt)
    ok = (w0 >= -INSIDE_EPS) & (w1 >= -INSIDE_EPS) & (w2 >= -INSIDE_EPS)
    if not ok.all():
        keep = np.flatnonzero(ok)
        pix, w0, w1, w2, z = pix[keep], w0[keep], w1[keep], w2[keep], z[keep]
        owner = np.repeat(np.arange(rows.size, dtype=np.int32), cnt)[keep]
    else:
        owner = None
    # Merge into the global buffers: nearer depth wins; on exact ties the
    # lower triangle id wins (earlier chunks hold lower ids).
    before = depth_buf[pix]
    np.minimum.at(depth_buf, pix, z)
    cand = np.flatnonzero((z == depth_buf[pix]) & (z < before))
    if cand.size == 0:
        return
    if owner is None:
        owner = np.repeat(np.arange(rows.size, dtype=np.int32), cnt)
    crow = owner[cand]
    cpix, cti = pix[cand], rt[crow].astype(np.int32)
    tri_buf[cpix] = _INT_MAX
    np.minimum.at(tri_buf, cpix, cti)
    sel = cand[tri_buf[cpix] == cti]
    wpix = pix[sel]
    bary_buf[wpix, 0] = w0[sel]
    bary_buf[wpix, 1] = w1[sel]
    bary_buf[wpix, 2] = w2[sel]
