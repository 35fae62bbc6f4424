"""Base and detail normal maps in UV (model frame), by bump mapping.

Choice: the photo is shaded with **detail normals** — the base surface's
normals perturbed by the displacement map's gradient (Blinn bump mapping);
the rendered silhouette is the base mesh's (positions are not displaced;
wrinkles are < 1 mm, well below a pixel at the rendered sizes).

With P(u, v) the base surface, N its (smooth, interpolated vertex) normal and
h(u, v) the displacement in model units along N, the displaced surface
P + h N has tangents ``P_u + h_u N`` and ``P_v + h_v N`` (the ``h N_u`` terms
are dropped), so its normal is along

    n' ~ |P_u x P_v| N + s (h_v (P_u x N) + h_u (N x P_v)),

with ``s = sign((P_u x P_v) . N)`` (the UV layout's orientation; v is down).
P_u, P_v are the per-triangle Jacobian of the UV -> model map; h_u, h_v are
central differences of the displacement map (defined on the whole grid).
"""

from __future__ import annotations

import numpy as np

from tf_face.facemodel.mesh import vertex_normals


def _normalise(n: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def triangle_jacobians(vertices, uv, triangles) -> np.ndarray:
    """[T, 3, 2]: columns dP/du, dP/dv of each triangle (model units per UV unit)."""
    v = np.asarray(vertices, np.float64)
    t = np.asarray(triangles, np.int64)
    uv = np.asarray(uv, np.float64)
    e = np.stack([v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]]], axis=2)     # [T,3,2]
    d = np.stack([uv[t[:, 1]] - uv[t[:, 0]], uv[t[:, 2]] - uv[t[:, 0]]], axis=2)  # [T,2,2]
    det = d[:, 0, 0] * d[:, 1, 1] - d[:, 0, 1] * d[:, 1, 0]
    det = np.where(np.abs(det) > 1e-12, det, 1e-12)
    inv = np.stack([np.stack([d[:, 1, 1], -d[:, 0, 1]], 1),
                    np.stack([-d[:, 1, 0], d[:, 0, 0]], 1)], 1) / det[:, None, None]
    return e @ inv


def normal_maps(vertices, model, atlas, height_map) -> tuple[np.ndarray, np.ndarray]:
    """(base [S,S,3], detail [S,S,3]) unit normals, model frame, 0 off the atlas.

    ``height_map`` [S,S]: displacement along the base normal in **model units**
    (multiply an IOD-unit map by the face's IOD in model units first).
    """
    v = np.asarray(vertices, np.float64)
    s = atlas.size
    base = _normalise(atlas.interpolate(vertex_normals(v, model.triangles)))
    jac = triangle_jacobians(v, model.uv, model.triangles)
    tid = atlas.tri_id.reshape(-1)[atlas.texel_index]
    pu, pv = jac[tid, :, 0], jac[tid, :, 1]
    n = base.reshape(-1, 3)[atlas.texel_index]
    h = np.asarray(height_map, np.float64)
    hv, hu = np.gradient(h, 1.0 / s)
    hu = hu.reshape(-1)[atlas.texel_index][:, None]
    hv = hv.reshape(-1)[atlas.texel_index][:, None]
    a = np.cross(pu, pv)
    sign = np.sign((a * n).sum(1, keepdims=True))
    sign[sign == 0] = 1.0
    detail = np.linalg.norm(a, axis=1, keepdims=True) * n + sign * (
        hv * np.cross(pu, n) + hu * np.cross(n, pv))
    out = np.zeros((s * s, 3))
    out[atlas.texel_index] = _normalise(detail)
    return base, out.reshape(s, s, 3)
