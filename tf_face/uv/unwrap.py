"""Unwrap a photo into the UV space of a fitted face model.

``unwrap`` returns a ``UVSample``: the texture sampled from the photo, the
mask of texels actually seen, and camera-frame normal and position maps.

Choices (the paper is silent on them):

* Sampling: texel -> surface point (atlas triangle + barycentrics) -> image
  point by interpolating ``fitted.vertices_image``; the photo is sampled there
  bilinearly with ``cv2.remap`` (pixel (r, c) centre = image point (c, r), the
  convention of ``tf_face.raster.zbuffer``).  Only visible texels are
  sampled, so texels outside the atlas or the photo never read pixel (0, 0).
* Visibility mask = atlas mask
  AND the image point lies inside the photo (``0 <= x <= W-1``,
  ``0 <= y <= H-1``, so bilinear sampling never mixes in the border)
  AND the texel's triangle is front facing
  AND the interpolated vertex normal faces the camera with
  ``cos(normal, view) > min_cos`` (default 0.2, about 78 degrees: texels seen
  at grazing angles carry background, hair or ears and are badly sampled)
  AND the texel is not occluded: the posed mesh is z-buffered in image space;
  at each of the 4 pixels of the texel's bilinear footprint the z-buffer
  must hold a triangle whose plane, evaluated at the texel's exact image
  point, is not nearer than the texel's depth minus ``depth_tol * face size``
  (default 0.02; face size = the larger side of the projected mesh's bounding
  box) minus ``|grad z| * sqrt(2)`` z-buffer pixels (|grad z| of that
  triangle, capped at 10: extrapolating a neighbouring facet's plane across
  the footprint on a curved surface errs by about that much).  Evaluating the plane at the exact point means a texel is never
  hidden by its own triangle or a coplanar neighbour; checking the whole
  footprint drops texels whose bilinear sample would mix in an occluder or,
  at the mesh outline, whatever lies beyond the mesh (a 1-pixel band).  The
  z-buffer covers only the mesh's bounding box, at most ``atlas.size`` pixels
  across (downscaled for faces bigger than that: a texel then spans more than
  a photo pixel anyway; the occlusion boundary is accurate to a z-buffer
  pixel).
* ``texture`` is zero outside the visibility mask; ``normals`` and
  ``position`` cover the whole atlas mask (zero outside it).
* Camera frame: ``camera = image * [1, -1, -1]`` (x right, y up, z towards
  the camera, pixels).  Under weak perspective the view direction is +z, so
  the viewing-angle cosine is the camera-frame normal's z.
"""

from __future__ import annotations

import cv2
import numpy as np

from tf_face.facemodel.mesh import vertex_normals
from tf_face.raster.zbuffer import rasterize
from tf_face.types import IMAGE_FLIP, FittedFace, UVSample
from tf_face.uv.atlas import UVAtlas

DEFAULT_MIN_COS = 0.2
DEFAULT_DEPTH_TOL = 0.02
MAX_SLOPE = 10.0   # cap on |grad z| used for the plane-extrapolation allowance


def _check_image(image) -> np.ndarray:
    """[H, W, 3] view of the photo (grey repeated, alpha dropped); no copy."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image must be [H,W,3], got {img.shape}")
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return img


def _to_float(img: np.ndarray) -> np.ndarray:
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if img.dtype == np.uint8:
        return img.astype(np.float32) * np.float32(1 / 255)
    if img.dtype == np.uint16:
        return img.astype(np.float32) * np.float32(1 / 65535)
    return np.ascontiguousarray(img, dtype=np.float32)


def _sample_bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples [M, 3] float32 of the photo at image points (x, y).

    Only the bounding box of the points is converted to float (big photos
    stay cheap); points outside the photo read 0 (``BORDER_CONSTANT``).
    """
    h, w = img.shape[:2]
    out = np.zeros((x.size, 3), np.float32)
    if x.size == 0:
        return out
    x0 = int(np.clip(np.floor(x.min()) - 1, 0, w))
    x1 = int(np.clip(np.ceil(x.max()) + 2, 0, w))
    y0 = int(np.clip(np.floor(y.min()) - 1, 0, h))
    y1 = int(np.clip(np.ceil(y.max()) + 2, 0, h))
    if x1 <= x0 or y1 <= y0:
        return out
    crop = _to_float(img[y0:y1, x0:x1])
    # Points far outside are clamped to just outside (cv2 maps use 16-bit
    # integer parts internally); they read the border value 0 either way.
    # cv2 wants 2-D maps with sides < 32767: lay the points out 256 a row.
    n = x.size
    rows = -(-n // 256)
    mx = np.full(rows * 256, -4.0, np.float32)
    my = np.full(rows * 256, -4.0, np.float32)
    mx[:n] = np.clip(x - x0, -4.0, x1 - x0 + 4.0)
    my[:n] = np.clip(y - y0, -4.0, y1 - y0 + 4.0)
    res = cv2.remap(crop, mx.reshape(rows, 256), my.reshape(rows, 256),
                    interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=(0.0, 0.0, 0.0))
    return res.reshape(-1, 3)[:n]


def _footprint_visible(vi: np.ndarray, triangles: np.ndarray, x: np.ndarray, y: np.ndarray,
                       z: np.ndarray, max_extent: float, tol: float) -> np.ndarray:
    """Occlusion test of image-frame points ``(x, y, z)`` [M] on the mesh ``vi``.

    The mesh is z-buffered over its bounding box (downscaled so the box is
    at most ``max_extent`` pixels across).  A point is visible when, at each
    of the (up to) 4 z-buffer pixels of its bilinear footprint, some triangle
    covers the pixel and that triangle's plane, evaluated at the point's exact
    (x, y), is not nearer than the point's depth minus ``tol``.  Uncovered
    footprint pixels (the mesh outline) make the point invisible: a bilinear
    sample there mixes in whatever lies beyond the mesh.
    """
    lo = np.floor(vi[:, :2].min(0)) - 2.0
    hi = np.ceil(vi[:, :2].max(0)) + 2.0
    extent = float((hi - lo).max())
    scale = min(1.0, max_extent / max(extent, 1.0))
    w, h = (np.ceil((hi - lo) * scale).astype(int) + 1)
    zv = np.empty_like(vi)
    zv[:, :2] = (vi[:, :2] - lo) * scale
    zv[:, 2] = vi[:, 2]
    tri_id, _, _ = rasterize(zv, triangles, h, w)
    # Plane of each triangle in the image: z = pz + qx * x + qy * y.
    a, b, c = vi[triangles[:, 0]], vi[triangles[:, 1]], vi[triangles[:, 2]]
    e1, e2 = b - a, c - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    qx = (e2[:, 1] * e1[:, 2] - e1[:, 1] * e2[:, 2]) / det
    qy = (e1[:, 0] * e2[:, 2] - e2[:, 0] * e1[:, 2]) / det
    pz = a[:, 2] - qx * a[:, 0] - qy * a[:, 1]
    # Extrapolating a neighbouring facet's plane from its pixel to the point
    # errs by about slope x distance (always towards "nearer" on a convex
    # surface); allow for it with the largest footprint distance.
    reach = np.sqrt(2.0) / scale
    pz = pz + np.minimum(np.hypot(qx, qy), MAX_SLOPE) * reach
    # The plane of each z-buffer pixel's triangle; uncovered pixels get a plane
    # at -inf, which no point passes (one gather per plane coefficient and
    # footprint pixel below, instead of triangle id, then coefficients).
    tri_flat = tri_id.reshape(-1)
    covered = tri_flat >= 0
    t = np.where(covered, tri_flat, 0)
    pix_pz = np.where(covered, pz[t], -np.inf)
    pix_qx = np.where(covered, qx[t], 0.0)
    pix_qy = np.where(covered, qy[t], 0.0)
    fx = np.floor((x - lo[0]) * scale).astype(np.int64)
    fy = np.floor((y - lo[1]) * scale).astype(np.int64)
    cols = (np.clip(fx, 0, w - 1), np.clip(fx + 1, 0, w - 1))
    rows = (np.clip(fy, 0, h - 1) * w, np.clip(fy + 1, 0, h - 1) * w)
    zmax = z - tol
    visible = np.ones(x.shape[0], bool)
    for r in rows:
        for col in cols:
            i = r + col
            visible &= pix_pz[i] + pix_qx[i] * x + pix_qy[i] * y >= zmax
    return visible


def unwrap(image, fitted: FittedFace, model, atlas: UVAtlas,
           min_cos: float = DEFAULT_MIN_COS,
           depth_tol: float = DEFAULT_DEPTH_TOL) -> UVSample:
    """Unwrap ``image`` (uint8 or float in [0,1], [H,W,3]) into UV space.

    Returns float32 texture/normals/position [S,S,3] and a bool mask [S,S]
    (see the module docstring for the visibility rule).
    """
    img = _check_image(image)
    himg, wimg = img.shape[:2]
    tris = np.asarray(model.triangles, np.int64)
    vi = np.asarray(fitted.vertices_image, np.float64)
    if vi.shape != (atlas.num_vertices, 3) or tris.shape != atlas.triangles.shape:
        raise ValueError(f"atlas ({atlas.num_vertices} vertices, {len(atlas.triangles)} "
                         f"triangles) does not match the fitted mesh {vi.shape} / model "
                         f"{tris.shape}")
    size_h, size_w = atlas.shape
    ntex = size_h * size_w
    texels = atlas.texel_index

    # Per-texel image-frame position and camera-frame normal.
    p_img = atlas.interpolate_texels(vi)                    # [M, 3] float64
    vc = vi * IMAGE_FLIP
    n_cam = atlas.interpolate_texels(vertex_normals(vc, tris).astype(np.float32))
    nn = np.sqrt(np.einsum("ij,ij->i", n_cam, n_cam))[:, None]
    ok = nn > 0                      # (np.divide's where= is 2.4x slower than this)
    n_cam = n_cam / np.where(ok, nn, np.inf)
    if not ok.all():
        n_cam[~ok[:, 0]] = 0.0       # zero (or NaN) normals -> 0

    # Visibility.
    x, y = p_img[:, 0], p_img[:, 1]
    vis = (x >= 0) & (x <= wimg - 1) & (y >= 0) & (y <= himg - 1)
    a, b, c = vi[tris[:, 0]], vi[tris[:, 1]], vi[tris[:, 2]]
    cross_z = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    front = cross_z < 0                                      # outward normal towards -z
    vis &= front[atlas.tri_id.reshape(-1)[texels]]
    vis &= n_cam[:, 2] > min_cos
    cand = np.flatnonzero(vis)
    if cand.size:
        face_size = float(np.ptp(vi[:, :2], axis=0).max())
        vis[cand] = _footprint_visible(vi, tris, x[cand], y[cand], p_img[cand, 2],
                                       float(max(size_h, size_w)), depth_tol * face_size)

    mask = np.zeros(ntex, bool)
    mask[texels[vis]] = True
    # Bilinear texture sample of the visible texels (pixel (r, c) centre at (c, r)).
    rows = np.flatnonzero(vis)
    colours = np.zeros((texels.size, 3), np.float32)
    colours[rows] = np.clip(_sample_bilinear(img, x[rows], y[rows]), 0.0, 1.0)
    return UVSample(texture=atlas.to_grid(colours),
                    mask=mask.reshape(size_h, size_w),
                    normals=atlas.to_grid(n_cam.astype(np.float32)),
                    position=atlas.to_grid((p_img * IMAGE_FLIP).astype(np.float32)))
