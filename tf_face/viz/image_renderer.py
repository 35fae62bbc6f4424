"""Image-space z-buffer renderer with per-pixel SH shading (numpy, CPU).

This is what makes the re-rendered, relit and novel-view images of the
reconstruction (Fig. 1 of the paper): per pixel, the nearest triangle and its
barycentrics come from ``tf_face.raster.zbuffer.rasterize``; UV is
interpolated; the albedo and normal UV maps are sampled bilinearly; the colour
is ``albedo * sum_b sh[b] * H_b(n)`` and is composited over a background.

Conventions
-----------
* Vertices are in the **image frame** (x column, y row down, z depth, smaller
  = nearer; pixel (r, c) centre is the point (c, r), as in the rasteriser).
  Triangles are CCW from outside; back faces are culled by default.
* Normals (maps and SH) are in the **camera frame** (x right, y up, z towards
  the camera) -- ``UVSample.normals`` and the detail normals of
  ``tf_face.files.detail_mesh`` are in that frame.
* SH: the Lambertian-convolved real SH basis of ``tf_face.render.sh`` (same
  constants ``SH_K`` and order: 1, y, z, x, xy, yz, 3z^2-1, xz, x^2-y^2),
  evaluated in numpy (``tf_face.sh.sh_basis_np``); ``sh`` is ``[9, 3]``.
* UV maps are sampled at ``(u * W - 0.5, v * H - 0.5)`` in texel units (texel
  centres at ``(c + 0.5) / W``, v down), bilinear (``cv2.remap``), edges clamped. With a UV
  mask the sampling is mask-weighted (texels outside the atlas do not bleed
  black into the border); where the normal map has no valid texel the
  interpolated vertex normal of the posed mesh is used.
* Colour space (``color_space``, as the trainers' ``--color_space`` and
  ``tf_face.training.colour``): ``"linear"`` (default) -- the albedo maps are
  linear RGB (B-Net's R_a and FAN's A are, by the project's decision), the
  shading is done in linear RGB and the result is encoded with the exact sRGB
  curve before it is composited over the (sRGB) background; ``"srgb"`` -- the
  albedo is in the photo's sRGB space and ``albedo * shading`` is shown as
  is. Outputs are display (sRGB) values clipped to [0, 1].
* Lighting presets are named by the **image**: ``sh_light_from('image_left')``
  lights the face from the side that appears on the left of the image, so it
  brightens the left half of the rendered image (the subject's right cheek in
  a frontal photo).
* Yaw: ``rotate_yaw(v, +deg)`` turns the face about the vertical axis through
  its bounding-box centre so that the nose moves towards the image **right**
  (a right-handed rotation about the camera +y axis).
"""

from __future__ import annotations

import math
from typing import Optional

import cv2
import numpy as np

from tf_face.facemodel.mesh import vertex_normals
from tf_face.raster.zbuffer import rasterize
from tf_face.sh import LAMBERT_BAND, SH_K, sh_basis_np
from tf_face.srgb import linear_to_srgb
from tf_face.types import IMAGE_FLIP

#: Lambertian band factor of each of the 9 coefficients.
_BAND = np.array([LAMBERT_BAND[0]] + [LAMBERT_BAND[1]] * 3 + [LAMBERT_BAND[2]] * 5)

#: Light directions (camera frame, from the surface towards the light).
_S60, _C60 = math.sin(math.radians(60)), math.cos(math.radians(60))
LIGHT_DIRECTIONS = {
    "front": (0.0, 0.0, 1.0),
    "image_left": (-_S60, 0.0, _C60),
    "image_right": (_S60, 0.0, _C60),
    "top": (0.0, _S60, _C60),
    "bottom": (0.0, -_S60, _C60),
}


def sh_shading(normals, sh) -> np.ndarray:
    """Irradiance ``[..., 3]`` = ``sum_b sh[b] * H_b(n)`` for ``sh [9, 3]``."""
    return sh_basis_np(normals) @ np.asarray(sh, np.float64).reshape(9, 3)


def ambient_light(irradiance=1.0) -> np.ndarray:
    """``[9, 3]`` SH with constant irradiance (per channel) for every normal."""
    sh = np.zeros((9, 3))
    sh[0] = np.asarray(irradiance, np.float64) / SH_K[0]
    return sh


def directional_light(direction, intensity=1.0) -> np.ndarray:
    """``[9, 3]`` SH of a distant light from ``direction`` (camera frame).

    The light's radiance projected on the 9 SH functions, so the shading is
    the order-2 approximation of ``intensity * max(n . d, 0)``.
    """
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    coeff = sh_basis_np(d) / _BAND                       # unconvolved Y_lm(d)
    return coeff[:, None] * np.broadcast_to(np.asarray(intensity, np.float64), (3,))


def sh_light_from(direction="front", intensity=0.75, ambient=0.45,
                  color=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Ambient + one directional light, ``[9, 3]``.

    ``direction``: a name of ``LIGHT_DIRECTIONS`` (``'image_left'`` brightens
    the left half of the image, ``'top'`` the upper half...) or a camera-frame
    vector pointing towards the light. ``color`` tints the directional part.
    """
    if isinstance(direction, str):
        if direction not in LIGHT_DIRECTIONS:
            raise ValueError(f"unknown light {direction!r}; known: {', '.join(LIGHT_DIRECTIONS)}")
        direction = LIGHT_DIRECTIONS[direction]
    return ambient_light(ambient) + directional_light(
        direction, intensity * np.asarray(color, np.float64))


def preset_lightings() -> dict:
    """Named ``[9, 3]`` SH lightings for relit renders (see ``sh_light_from``)."""
    return {
        "frontal": sh_light_from("front", intensity=0.75, ambient=0.3),
        "image_left": sh_light_from("image_left", intensity=0.9, ambient=0.2),
        "image_right": sh_light_from("image_right", intensity=0.9, ambient=0.2),
        "top": sh_light_from("top", intensity=0.9, ambient=0.2),
        "coloured": (ambient_light(0.2)
                     + directional_light(LIGHT_DIRECTIONS["image_left"], [0.95, 0.7, 0.4])
                     + directional_light(LIGHT_DIRECTIONS["image_right"], [0.3, 0.45, 0.85])),
    }


def yaw_rotation_camera(yaw_deg: float) -> np.ndarray:
    """3x3 rotation about the camera +y axis; positive moves +z points to +x."""
    a = math.radians(yaw_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rotate_yaw(vertices_image, yaw_deg: float, center=None) -> np.ndarray:
    """Turn an image-frame mesh about the vertical axis through ``center``.

    ``center`` defaults to the bounding-box centre. Positive ``yaw_deg`` moves
    the nose (the part nearest the camera) towards the image right.
    """
    v = np.asarray(vertices_image, np.float64)
    if center is None:
        center = 0.5 * (v.min(0) + v.max(0))
    cam = (v - center) * IMAGE_FLIP
    cam = cam @ yaw_rotation_camera(yaw_deg).T
    return cam * IMAGE_FLIP + center


def vertex_normals_camera(vertices_image, triangles) -> np.ndarray:
    """Area-weighted unit vertex normals ``[V, 3]`` in the camera frame
    (``tf_face.facemodel.mesh.vertex_normals`` of the image-frame mesh flipped
    into the camera frame)."""
    return vertex_normals(np.asarray(vertices_image, np.float64) * IMAGE_FLIP, triangles)


_REMAP_COLS = 1024   # cv2.remap needs maps narrower than 32767: sample P points as rows


def _remap(src: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples ``[P, C]`` of ``src [h, w, C]`` at texel coords, edges clamped."""
    p = len(x)
    rows = max(1, -(-p // _REMAP_COLS))
    mx = np.zeros(rows * _REMAP_COLS, np.float32)
    my = np.zeros(rows * _REMAP_COLS, np.float32)
    mx[:p] = np.clip(x, 0.0, src.shape[1] - 1.0)
    my[:p] = np.clip(y, 0.0, src.shape[0] - 1.0)
    out = cv2.remap(np.ascontiguousarray(src, np.float32), mx.reshape(rows, _REMAP_COLS),
                    my.reshape(rows, _REMAP_COLS), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * _REMAP_COLS, -1)[:p].astype(np.float64)


def _sample(uv_map: np.ndarray, uv: np.ndarray, weight: Optional[np.ndarray]):
    """Bilinear samples ``[P, C]`` of ``uv_map [h, w, C]`` at ``uv [P, 2]``.

    Returns (samples, weight_sum [P]); with a weight mask the samples are
    normalised by the interpolated weight (0 where it is 0).
    """
    h, w = uv_map.shape[:2]
    x = uv[:, 0] * w - 0.5
    y = uv[:, 1] * h - 0.5
    if weight is None:
        return _remap(uv_map, x, y), np.ones(len(uv))
    wgt = np.asarray(weight, np.float32)[..., None]
    both = _remap(np.concatenate([uv_map * wgt, wgt], -1), x, y)
    ws = both[:, -1]
    out = np.where(ws[:, None] > 1e-6, both[:, :-1] / np.maximum(ws[:, None], 1e-6), 0.0)
    return out, ws


def _background(background, height, width) -> np.ndarray:
    if background is None:
        return np.zeros((height, width, 3))
    bg = np.asarray(background)
    if bg.ndim == 1:
        return np.broadcast_to(bg.astype(np.float64), (height, width, 3)).copy()
    if bg.shape[:2] != (height, width):
        raise ValueError(f"background {bg.shape} does not match {height}x{width}")
    bg = bg[..., :3].astype(np.float64)
    return bg / 255.0 if np.asarray(background).dtype == np.uint8 else bg


def render(vertices_image, triangles, uv, albedo_map, sh, height: int, width: int,
           normal_map=None, uv_mask=None, yaw_deg: float = 0.0, background=None,
           cull_backfaces: bool = True, supersample: int = 1, color_space: str = "linear"):
    """Render a textured, SH-lit mesh into an image.

    Args:
      vertices_image: [V, 3] posed vertices, image frame.
      triangles: [T, 3] CCW from outside.  uv: [V, 2] (v down).
      albedo_map: [h, w, 3] UV albedo, float in [0, 1] (or uint8).
      sh: [9, 3] SH lighting (camera frame).
      height, width: output size.
      normal_map: optional [h', w', 3] camera-frame normal UV map for the
        photo's pose (detail normals). None: interpolated vertex normals of the
        posed mesh (the base shape, "without details").
      uv_mask: optional [h, w] atlas mask (the albedo map's size) for
        mask-weighted sampling of the albedo, and of the normal map when that
        has the same size (default: all albedo texels; normal texels that are
        non-zero).
      yaw_deg: novel view; the mesh is turned by ``rotate_yaw`` and the normal
        map's normals by the same rotation.
      background: None (black), an RGB colour, or an [H, W, 3] image (uint8 or
        float in [0, 1]), e.g. the photo for an overlay.
      supersample: render at k x k resolution and box-filter down (anti-aliased
        silhouette).
      color_space: "linear" (albedo linear RGB; result sRGB-encoded) or
        "srgb" (albedo already in display space); see the module doc.
    Returns:
      (image [H, W, 3] float32 in [0, 1], alpha [H, W] float32 coverage).
    """
    height, width, k = int(height), int(width), int(supersample)
    if k < 1:
        raise ValueError("supersample must be >= 1")
    if color_space not in ("linear", "srgb"):
        raise ValueError(f"color_space must be 'linear' or 'srgb', got {color_space!r}")
    v = np.asarray(vertices_image, np.float64)
    t = np.asarray(triangles, np.int64)
    tex = np.asarray(uv, np.float64)
    if tex.shape != (len(v), 2):
        raise ValueError(f"uv must be [{len(v)},2], got {tex.shape}")
    albedo = np.asarray(albedo_map)
    albedo = albedo / 255.0 if albedo.dtype == np.uint8 else albedo.astype(np.float64)
    if yaw_deg:
        v = rotate_yaw(v, yaw_deg)
    rot = yaw_rotation_camera(yaw_deg)
    vs = v.copy()
    vs[:, :2] = (vs[:, :2] + 0.5) * k - 0.5
    hh, ww = height * k, width * k
    tri_id, bary, _ = rasterize(vs, t, hh, ww, cull_backfaces=cull_backfaces)
    covered = tri_id >= 0
    pix = np.flatnonzero(covered)
    tid = tri_id.reshape(-1)[pix]
    w = bary.reshape(-1, 3)[pix].astype(np.float64)
    corners = t[tid]                                            # [P, 3]
    uv_p = np.einsum("pk,pkc->pc", w, tex[corners])
    if uv_mask is not None and np.asarray(uv_mask).shape != albedo.shape[:2]:
        raise ValueError(f"uv_mask {np.asarray(uv_mask).shape} does not match the albedo "
                         f"map {albedo.shape[:2]}")
    alb, _ = _sample(albedo[..., :3], uv_p, None if uv_mask is None else
                     np.asarray(uv_mask, np.float64))
    vn = vertex_normals_camera(v, t)
    n = np.einsum("pk,pkc->pc", w, vn[corners])
    if normal_map is not None:
        nm = np.asarray(normal_map, np.float64)
        nmask = (np.any(nm != 0, axis=-1) if uv_mask is None or
                 np.asarray(uv_mask).shape != nm.shape[:2] else np.asarray(uv_mask, bool))
        ns, ws = _sample(nm, uv_p, nmask.astype(np.float64))
        ns = ns @ rot.T
        good = (ws > 0.05) & (np.linalg.norm(ns, axis=1) > 0.1)
        n = np.where(good[:, None], ns, n)
    colour = np.clip(alb * sh_shading(n, sh), 0.0, 1.0)
    if color_space == "linear":
        colour = linear_to_srgb(colour)
    img = np.zeros((hh * ww, 3))
    img[pix] = colour
    img = img.reshape(hh, ww, 3)
    alpha = covered.astype(np.float64)
    if k > 1:
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_AREA)
    bg = _background(background, height, width)
    # img holds colour * coverage after the box filter (premultiplied).
    out = img + (1.0 - alpha[..., None]) * bg
    return np.clip(out, 0.0, 1.0).astype(np.float32), alpha.astype(np.float32)
