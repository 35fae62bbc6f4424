"""How well a UV sample made by the real pipeline lines up with the truth.

The truth is generated in the default model's UV space and the pipeline
unwraps into the same UV space, so texel (r, c) of both should show the same
surface point — up to the pipeline's landmark/fit error. Measured on the texels
that are visible to the pipeline, visible with the true geometry and not
occluded (``clean`` texels):

* ``corr``: Pearson correlation (pooled over the clean texels and RGB) of the
  unwrapped texture with the true re-render ``srgb(albedo * shading(normals,
  sh))`` in UV (both sRGB in [0, 1]); 1 = perfect;
* ``mae``: their mean absolute difference (sRGB, 0..1);
* ``texels``: the number of clean texels.

``vertex_error_iod`` (needs the fitted mesh, not stored in records): mean 2-D
distance between the fitted and the true posed vertices / true IOD.
"""

from __future__ import annotations

import numpy as np

from tf_face.srgb import linear_to_srgb
from tf_face.viz.image_renderer import sh_shading


def true_rerender_uv(albedo, normals, sh) -> np.ndarray:
    """sRGB [S,S,3] of ``albedo * sum_b sh[b] H_b(normals)`` (0 where normals are 0)."""
    n = np.asarray(normals, np.float64)
    lin = np.asarray(albedo, np.float64) * sh_shading(n, sh)
    lin = np.where(np.linalg.norm(n, axis=-1, keepdims=True) > 0.5, lin, 0.0)
    return linear_to_srgb(lin)


def alignment_stats(texture, mask, gt_albedo, gt_normals, gt_sh, gt_visible,
                    gt_occlusion) -> dict:
    """``{"corr", "mae", "texels"}`` (see the module docstring)."""
    ref = true_rerender_uv(gt_albedo, gt_normals, gt_sh)
    clean = (np.asarray(mask).reshape(ref.shape[:2]) > 0.5) \
        & (np.asarray(gt_visible).reshape(ref.shape[:2]) > 0.5) \
        & ~(np.asarray(gt_occlusion).reshape(ref.shape[:2]) > 0.5)
    n = int(clean.sum())
    if n < 10:
        return {"corr": float("nan"), "mae": float("nan"), "texels": n}
    a = np.asarray(texture, np.float64)[clean].ravel()
    b = ref[clean].ravel()
    corr = float(np.corrcoef(a, b)[0, 1])
    return {"corr": corr, "mae": float(np.abs(a - b).mean()), "texels": n}


def vertex_error_iod(fitted_vertices_image, truth) -> float:
    """Mean 2-D vertex distance (fitted vs true posed mesh) / true IOD in pixels."""
    d = np.asarray(fitted_vertices_image, np.float64)[:, :2] - truth.vertices_image[:, :2]
    return float(np.linalg.norm(d, axis=1).mean() / truth.iod_pixels)
