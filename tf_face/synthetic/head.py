"""A proxy head (skull + hair cap) and neck behind the face mesh.

The default model covers only the face oval, so a rendered face alone is a
mask floating on the background. A photo has a head around it: this module
builds a coarse ellipsoid head and a neck cylinder in the model frame (fixed
sizes relative to the unit-RMS default mean shape), poses them with the face's
weak-perspective pose and shades them with the face's SH light (uniform skin
or hair albedo per vertex). They are **not** part of the ground truth: they are
drawn before the face (painter's order), so the face is never hidden by them,
and they never enter the UV maps.
"""

from __future__ import annotations

import cv2
import numpy as np

from tf_face.viz.image_renderer import sh_shading, vertex_normals_camera
from tf_face.raster.zbuffer import rasterize
from tf_face.types import model_to_image


def _ellipsoid(centre, radii, n_lat=40, n_lon=64):
    lat = np.linspace(0, np.pi, n_lat + 1)
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    pts = np.stack([np.sin(la) * np.sin(lo), np.cos(la), np.sin(la) * np.cos(lo)], -1)
    v = pts.reshape(-1, 3) * radii + centre
    tris = []
    for i in range(n_lat):
        for j in range(n_lon):
            a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
            c, d = a + n_lon, b + n_lon
            tris += [(a, c, b), (b, c, d)]
    return v, np.array(tris, np.int64)


def _cylinder(centre, radii, y0, y1, n_h=8, n_lon=48):
    ys = np.linspace(y0, y1, n_h + 1)
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    yy, lo = np.meshgrid(ys, lon, indexing="ij")
    v = np.stack([np.sin(lo) * radii[0] + centre[0], yy, np.cos(lo) * radii[1] + centre[2]], -1)
    v = v.reshape(-1, 3)
    tris = []
    for i in range(n_h):
        for j in range(n_lon):
            a, b = i * n_lon + j, i * n_lon + (j + 1) % n_lon
            c, d = a + n_lon, b + n_lon
            tris += [(a, b, c), (b, d, c)]
    return v, np.array(tris, np.int64)


def head_mesh(hairline: float = 1.35, hair_back: float = -0.4):
    """(vertices [N,3] model frame, triangles, is_hair [N] bool)."""
    hv, ht = _ellipsoid(np.array([0.0, 0.35, -1.45]), np.array([1.42, 1.95, 1.75]))
    nv, nt = _cylinder(np.array([0.0, 0.0, -1.0]), (0.95, 0.9), -0.6, -6.0)
    v = np.concatenate([hv, nv])
    t = np.concatenate([ht, nt + len(hv)])
    is_head = np.concatenate([np.ones(len(hv)), np.zeros(len(nv))])
    return v, t, is_head


def hair_weight(points, is_head, hairline: float, hair_back: float) -> np.ndarray:
    """Soft hair coverage [N] of model-frame points of the proxy head: above a
    hairline that drops from ``hairline`` at the forehead to ``hair_back`` at
    the nape; 0 on the neck."""
    p = np.asarray(points, np.float64)
    front = np.clip((p[:, 2] + 1.45) / 1.75, -1, 1)          # +1 front, -1 back
    line = np.where(front > 0, hairline, hairline + (hairline - hair_back) * front)
    return np.clip((p[:, 1] - line) / 0.08 + 0.5, 0, 1) * (np.asarray(is_head) > 0.5)


def render_head(scale, rotation, translation, sh, skin, hair, height, width,
                supersample: int = 2, hairline: float = 1.35, hair_back: float = -0.4):
    """(premultiplied colour [H,W,3], alpha [H,W]) of the shaded proxy head + neck."""
    v, t, is_head = head_mesh(hairline, hair_back)
    k = int(supersample)
    vi = model_to_image(v, scale, rotation, translation)
    vs = vi.copy()
    vs[:, :2] = (vs[:, :2] + 0.5) * k - 0.5
    tri_id, bary, _ = rasterize(vs, t, height * k, width * k, cull_backfaces=True)
    pix = np.flatnonzero(tri_id >= 0)
    img = np.zeros((height * k * width * k, 3))
    if pix.size:
        tid = tri_id.reshape(-1)[pix]
        w = bary.reshape(-1, 3)[pix].astype(np.float64)
        corners = t[tid]
        vn = vertex_normals_camera(vi, t)
        n = np.einsum("pk,pkc->pc", w, vn[corners])
        pm = np.einsum("pk,pkc->pc", w, v[corners])            # model-frame point
        head_w = np.einsum("pk,pk->p", w, is_head[corners])
        hair_w = hair_weight(pm, head_w, hairline, hair_back)[:, None]
        # strand texture: stripes along the model-frame vertical direction
        streak = 1.0 + 0.1 * np.sin(pm[:, 0] * 40.0 + 2.0 * np.sin(pm[:, 1] * 5.0))[:, None]
        neck_shadow = np.where(head_w > 0.5, 1.0, 0.75)[:, None]
        alb = ((1 - hair_w) * np.asarray(skin) * neck_shadow
               + hair_w * np.asarray(hair) * streak)
        img[pix] = np.clip(alb * sh_shading(n, sh), 0, 1)
    img = img.reshape(height * k, width * k, 3)
    alpha = (tri_id >= 0).astype(np.float64)
    if k > 1:
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA)
    return img, alpha
