"""The renders of a reconstruction (Fig. 1 of the paper), in a face crop.

All views go through ``tf_face.viz.image_renderer.render`` (z-buffer +
per-pixel SH shading): the fitted base mesh of the photo, UV-mapped with FAN's
albedo, shaded per pixel from the detail normal map ("with details") or from
the interpolated vertex normals of the base mesh ("without details").

* ``overlay``: B-Net's estimated lighting, composited over the photo;
* ``rerender``: the same on a grey background;
* ``relit_<preset>``: the ``preset_lightings`` of the renderer (light named by
  the side of the *image* it comes from);
* ``yaw_-30`` / ``yaw_+30``: the face turned about the vertical axis (positive
  moves the nose to the image right), estimated lighting (camera-fixed);
* each with a ``_base`` twin without details.

Renders are made in a crop around the face (margin 30 %) resampled to
``max_side`` pixels on the long side, so they cost the same for any photo and
face size. Shading happens in the albedo's colour space; with ``"linear"`` the
result is converted to sRGB for display (premultiplied colour is divided by
coverage first, so silhouettes composite correctly over the photo).
"""

from __future__ import annotations

import cv2
import numpy as np

from tf_face.srgb import linear_to_srgb
from tf_face.viz.image_renderer import preset_lightings, render

BACKGROUND = 0.18  # grey behind the non-overlay renders (display space)
RELIGHT_PRESETS = ("image_left", "image_right", "top", "coloured")
YAWS = (-30, 30)


def to_display(x, color_space: str):
    """Display (sRGB) values of ``x`` in ``color_space`` ("linear" or "srgb"), clipped."""
    return linear_to_srgb(x) if color_space == "linear" else np.clip(x, 0.0, 1.0)


def face_crop(vertices_image, image_shape, margin: float = 0.3, max_side: int = 512):
    """``(x0, y0, x1, y1, f)``: integer crop box inside the photo and the scale
    ``f`` that brings its long side to ``max_side`` (down- or up-sampled: small
    faces are rendered larger than they appear in the photo, so the 256x256
    UV maps' detail shows)."""
    h, w = image_shape[:2]
    v = np.asarray(vertices_image, np.float64)
    lo, hi = v[:, :2].min(0), v[:, :2].max(0)
    c, half = 0.5 * (lo + hi), 0.5 * (hi - lo).max() * (1.0 + margin)
    x0, y0 = int(max(0, np.floor(c[0] - half))), int(max(0, np.floor(c[1] - half)))
    x1, y1 = int(min(w, np.ceil(c[0] + half))), int(min(h, np.ceil(c[1] + half)))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    f = max_side / max(x1 - x0, y1 - y0)
    return x0, y0, x1, y1, f


#: ``--renders`` choices: no renders, the re-render (over the photo and alone), every view
RENDER_SETS = ("none", "basic", "all")


def render_views(image, vertices_image, triangles, uv, albedo, sh, detail_normals, uv_mask,
                 color_space: str = "linear", max_side: int = 512, supersample: int = 1,
                 presets=RELIGHT_PRESETS, yaws=YAWS, which: str = "all") -> dict:
    """``{name: float32 [h, w, 3] display-space image}`` (see the module doc).

    ``which``: "all" (every view, each with its ``_base`` twin without details)
    or "basic" (``overlay`` and ``rerender`` with details only).
    """
    if which not in RENDER_SETS or which == "none":
        raise ValueError(f"which must be 'basic' or 'all', got {which!r}")

    x0, y0, x1, y1, f = face_crop(vertices_image, image.shape, max_side=max_side)
    crop = image[y0:y1, x0:x1]
    hh, ww = max(1, round((y1 - y0) * f)), max(1, round((x1 - x0) * f))
    photo = cv2.resize(crop, (ww, hh), interpolation=cv2.INTER_AREA if f < 1 else
                       cv2.INTER_CUBIC)
    photo = photo.astype(np.float64) / 255.0
    v = np.asarray(vertices_image, np.float64).copy()
    # pixel centre (c, r) of the crop's resampled grid: x' = (x - x0 + 0.5) f - 0.5
    v[:, :2] = (v[:, :2] - [x0, y0] + 0.5) * f - 0.5
    v[:, 2] *= f
    lights = preset_lightings()
    jobs = {"rerender": (np.asarray(sh), 0.0, None)}
    jobs["overlay"] = (np.asarray(sh), 0.0, photo)
    twins = (("", detail_normals),)
    if which == "all":
        for p in presets:
            jobs[f"relit_{p}"] = (lights[p], 0.0, None)
        for y in yaws:
            jobs[f"yaw_{y:+d}"] = (np.asarray(sh), float(y), None)
        twins += (("_base", None),)
    out = {}
    for name, (light, yaw, bg) in jobs.items():
        for suffix, nmap in twins:
            # the renderer shades without encoding (its "srgb" = no transfer curve);
            # the one sRGB encoding happens below, after un-premultiplying (with
            # the renderer's default "linear" the colour was encoded twice: pale)
            img, alpha = render(v, triangles, uv, albedo, light, hh, ww, normal_map=nmap,
                                uv_mask=uv_mask, yaw_deg=yaw, supersample=supersample,
                                color_space="srgb")
            a = alpha[..., None].astype(np.float64)
            colour = to_display(img / np.maximum(a, 1e-6), color_space)
            back = np.full((hh, ww, 3), BACKGROUND) if bg is None else bg
            out[name + suffix] = (colour * a + back * (1.0 - a)).astype(np.float32)
    return out
