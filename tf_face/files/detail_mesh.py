"""The dense detail mesh on the UV texel grid, displacement and detail normals.

DESIGN.md "UV atlas": every valid texel of the atlas mask ``[H, W]`` is a
vertex (row-major texel order), with its position and normal read from the
position / normal maps (e.g. ``UVSample.position`` / ``UVSample.normals``,
camera frame, pixel units). The grid triangulation is the one of
``tf_face.render.adjacency.grid_triangles`` (also used by the mesh-Laplacian
term, so the exported mesh and the training loss see the same graph): each
2x2 block is split along its main diagonal into (r,c)-(r+1,c)-(r+1,c+1) and
(r,c)-(r+1,c+1)-(r,c+1); a triangle exists iff its three texels are valid.

Orientation: those triangles have the geometric normal
``dP/dv x dP/du`` (v = rows, down; u = columns). For a UV layout that looks
like a frontal photo of the face (u to the image right, v down; the
MediaPipe-topology and ICT layouts) this points out of the face, so the grid
mesh is counter-clockwise from outside like the base mesh. When a normal map is
given, ``build_detail_mesh`` checks this by a majority vote of the triangles
and flips the winding if the layout is mirrored.

UV of a vertex = its texel centre: ``u = (c + 0.5) / W``, ``v = (r + 0.5) / H``
(tf_face UV, v down; ``texel row = v * H``).

Displacement ``d [H, W]`` moves a vertex along its (unit) base normal:
``P' = P + d * n``, in the units of the position map (pixels for UVSample).
Detail normals are the one formula of ``tf_face.detail.np_ops`` (whose
module doc also fixes the displacement conventions of training vs serving).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from tf_face.facemodel.mesh import face_normals
from tf_face.render.adjacency import grid_triangles
from tf_face.outputs import atomic_write_file, write_json

PNG16_MAX = 65535


@dataclasses.dataclass
class DetailMesh:
    vertices: np.ndarray        # [V, 3] float32, frame of the position map
    triangles: np.ndarray       # [T, 3] int32, CCW from outside
    uv: np.ndarray              # [V, 2] float32 texel centres, v down
    normals: Optional[np.ndarray]  # [V, 3] float32 unit, or None
    texel_index: np.ndarray     # [V] int32 flat row-major texel of each vertex
    shape: tuple                # (H, W) of the atlas
    flipped: bool = False       # winding was flipped to agree with the normals


def texel_uv(texel_index, shape) -> np.ndarray:
    """UV ``[V, 2]`` of the texel centres of flat texel ids (v down)."""
    h, w = int(shape[0]), int(shape[1])
    idx = np.asarray(texel_index, np.int64)
    r, c = idx // w, idx % w
    return np.stack([(c + 0.5) / w, (r + 0.5) / h], 1).astype(np.float32)


def _check_maps(mask, *maps):
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be [H,W], got {mask.shape}")
    out = []
    for m in maps:
        if m is None:
            out.append(None)
            continue
        m = np.asarray(m, np.float64)
        if m.shape[:2] != mask.shape:
            raise ValueError(f"map shape {m.shape} does not match mask {mask.shape}")
        out.append(m)
    return mask, out


def _unit(x: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(length > 0, x / np.maximum(length, 1e-300), 0.0)


def build_detail_mesh(mask, position_map, normal_map=None,
                      max_edge_ratio: Optional[float] = 6.0) -> DetailMesh:
    """The detail mesh of ``mask [H,W]`` with vertices from ``position_map [H,W,3]``.

    Args:
      normal_map: optional [H,W,3] base normals (same frame): copied to the
        vertices (normalised) and used to orient the winding.
      max_edge_ratio: drop triangles whose longest 3D edge exceeds this times
        the median edge length (triangles bridging two UV islands whose
        texels happen to touch); None keeps every grid triangle.
    """
    mask, (pos, nrm) = _check_maps(mask, position_map, normal_map)
    tris, texel_index = grid_triangles(mask)
    tris = tris.astype(np.int64)
    verts = pos.reshape(-1, 3)[texel_index]
    if max_edge_ratio is not None and len(tris):
        a, b, c = (verts[tris[:, k]] for k in range(3))
        longest = np.max(np.stack([np.linalg.norm(b - a, axis=1), np.linalg.norm(c - b, axis=1),
                                   np.linalg.norm(a - c, axis=1)], 1), axis=1)
        med = np.median(longest)
        if med > 0:
            tris = tris[longest <= max_edge_ratio * med]
    normals = None
    flipped = False
    if nrm is not None:
        normals = _unit(nrm.reshape(-1, 3)[texel_index])
        if len(tris):
            fn = face_normals(verts, tris)
            ref = normals[tris].sum(1)
            agree = np.einsum("ij,ij->i", fn, ref)
            if np.sum(agree < 0) > np.sum(agree > 0):
                tris = tris[:, [0, 2, 1]]
                flipped = True
        normals = normals.astype(np.float32)
    return DetailMesh(vertices=verts.astype(np.float32), triangles=tris.astype(np.int32),
                      uv=texel_uv(texel_index, mask.shape), normals=normals,
                      texel_index=texel_index.astype(np.int32), shape=tuple(mask.shape),
                      flipped=flipped)


def displace(position_map, normal_map, displacement, mask) -> np.ndarray:
    """Displaced positions ``[H,W,3]``: ``P + d * n_hat`` inside ``mask``, P outside."""
    mask, (pos, nrm, disp) = _check_maps(mask, position_map, normal_map, displacement)
    if disp.ndim == 3 and disp.shape[2] == 1:
        disp = disp[..., 0]
    if disp.shape != mask.shape:
        raise ValueError(f"displacement must be [H,W], got {disp.shape}")
    out = pos + disp[..., None] * _unit(nrm)
    return np.where(mask[..., None], out, pos).astype(np.float32)


def write_displacement_png(path, disp, scale: Optional[float] = None,
                           offset: Optional[float] = None, mask=None,
                           units: str = "position-map units (pixels)") -> Path:
    """Write ``disp [H,W]`` as a 16-bit grey PNG plus a JSON sidecar.

    Decoding: ``d = offset + scale * value / 65535``. By default the range is
    the min..max of ``disp`` inside ``mask`` (all texels without a mask);
    values outside the range are clipped; texels outside ``mask`` store the
    code nearest to 0. The sidecar is ``<path minus .png>.json``. Returns the
    PNG path.
    """
    path = Path(path)
    d = np.asarray(disp, np.float64)
    if d.ndim == 3 and d.shape[2] == 1:
        d = d[..., 0]
    if d.ndim != 2:
        raise ValueError(f"displacement must be [H,W], got {d.shape}")
    m = np.ones(d.shape, bool) if mask is None else np.asarray(mask, bool)
    if m.shape != d.shape:
        raise ValueError(f"mask {m.shape} does not match displacement {d.shape}")
    if not np.isfinite(d[m]).all():
        raise ValueError("displacement contains NaN or inf")
    vals = d[m] if m.any() else np.zeros(1)
    if offset is None:
        offset = float(vals.min())
    if scale is None:
        scale = float(vals.max()) - offset
    if not scale > 0:
        scale = 1.0
    q = np.round((np.where(m, d, 0.0) - offset) / scale * PNG16_MAX)
    q = np.clip(q, 0, PNG16_MAX).astype(np.uint16)
    with atomic_write_file(path) as tmp:
        if not cv2.imwrite(str(tmp), q):
            raise OSError(f"could not write {path}")
    meta = {"format": "tf_face displacement, 16-bit grey PNG",
            "decode": "d = offset + scale * value / 65535",
            "offset": float(offset), "scale": float(scale), "units": units,
            "height": int(d.shape[0]), "width": int(d.shape[1])}
    side = path.with_suffix(".json")
    write_json(side, meta)
    return path


def read_displacement_png(path) -> tuple[np.ndarray, dict]:
    """Read a displacement PNG and its sidecar: ``(d [H,W] float32, meta)``."""
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    q = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if q is None or q.dtype != np.uint16 or q.ndim != 2:
        raise ValueError(f"{path} is not a 16-bit grey PNG")
    d = float(meta["offset"]) + float(meta["scale"]) * q.astype(np.float64) / PNG16_MAX
    return d.astype(np.float32), meta
