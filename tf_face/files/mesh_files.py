"""Mesh file writers: Wavefront OBJ + MTL, and binary glTF 2.0 (GLB).

Conventions
-----------
* Geometry is written as given: the caller chooses the frame. Both sensible
  export frames are right-handed, +y up, +z towards the viewer -- exactly
  glTF's frame (a viewer looking down -z sees the face from the front):
  the **model frame** of ``tf_face.types`` (``FittedFace.vertices_model``:
  pose removed, model units) or the **camera frame** (``image_to_export``
  of ``vertices_image``: the face posed as in the photo, pixel units; the
  detail mesh built from ``UVSample.position`` is in this frame, so export
  base and detail meshes with the same ``export_origin``).
* Triangles are counter-clockwise seen from outside (``tf_face`` convention),
  which is what both OBJ viewers and glTF (front face = CCW) expect.
* UV: ``tf_face`` uses v *down* (texel row = v * H). OBJ's ``vt`` has v up, so
  ``write_obj`` writes ``vt = (u, 1 - v)``. glTF's TEXCOORD_0 has its origin
  at the top-left of the image with v down, the same as ``tf_face``: ``write_glb`` writes uv as is.
* One UV per vertex (seams are split vertices), so OBJ faces are ``a/a/a``.
* Units are those of the input (glTF nominally means metres; viewers frame the
  model, so the scale only matters when combining files).

There are no readers here: the tests read the files back with ``trimesh``
(an independent parser, pinned in requirements.txt).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np

from tf_face.types import IMAGE_FLIP
from tf_face.outputs import write_bytes_atomic

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

# glTF constants.
_FLOAT = 5126
_UINT32 = 5125
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_LINEAR = 9729
_LINEAR_MIPMAP_LINEAR = 9987
_CLAMP_TO_EDGE = 33071
_GLB_MAGIC = 0x46546C67   # b"glTF"
_CHUNK_JSON = 0x4E4F534A  # b"JSON"
_CHUNK_BIN = 0x004E4942   # b"BIN\0"


def pad_texture(image, mask) -> np.ndarray:
    """The texture ``image`` [H, W, C] with every texel outside ``mask`` [H, W]
    set to its nearest texel inside (Euclidean; texture padding): a viewer's
    bilinear or mipmapped sampling at the atlas edge then mixes in the face's
    own colours, not whatever lies outside it (a network's values there are
    untrained: FAN leaves a grid). Inside ``mask`` the values are unchanged;
    an empty mask returns a copy."""
    import cv2   # lazy: the writers below need no OpenCV

    img = np.asarray(image)
    inside = np.asarray(mask, bool)
    if inside.shape != img.shape[:2]:
        raise ValueError(f"pad_texture: mask {inside.shape} does not match image {img.shape}")
    out = img.copy()
    if not inside.any() or inside.all():
        return out
    # labels of the nearest zero pixel of the input, i.e. of the nearest inside texel
    _, labels = cv2.distanceTransformWithLabels((~inside).astype(np.uint8), cv2.DIST_L2,
                                                cv2.DIST_MASK_PRECISE,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    rows, cols = np.nonzero(inside)
    source = np.zeros(int(labels.max()) + 1, np.int64)
    source[labels[inside]] = rows * inside.shape[1] + cols
    outside = ~inside
    flat = out.reshape(-1, *img.shape[2:])
    flat[np.flatnonzero(outside)] = img.reshape(-1, *img.shape[2:])[source[labels[outside]]]
    return out


def image_to_export(vertices_image, center: bool = True, origin=None) -> np.ndarray:
    """Image-frame vertices -> camera frame (x right, y up, z to viewer), centred.

    ``camera = image * [1, -1, -1]`` is a 180-degree rotation about x, so the
    winding (CCW from outside) is preserved. With ``center`` the bounding-box
    centre moves to the origin (viewers orbit about it); ``origin`` (a
    camera-frame point, e.g. ``export_origin`` of the base mesh) is
    subtracted instead when given, so that a base mesh and its detail mesh
    (whose ``UVSample.position`` is already in the camera frame: subtract the
    same origin) stay aligned.
    """
    v = np.asarray(vertices_image, np.float64) * IMAGE_FLIP
    if origin is not None:
        return v - np.asarray(origin, np.float64)
    if center and len(v):
        v = v - export_origin(vertices_image)
    return v


def export_origin(vertices_image) -> np.ndarray:
    """Camera-frame bounding-box centre of image-frame vertices (see ``image_to_export``)."""
    v = np.asarray(vertices_image, np.float64) * IMAGE_FLIP
    return 0.5 * (v.min(0) + v.max(0))


def _check_name(name: str, what: str) -> str:
    if not _SAFE_NAME.match(name or "") or name in (".", ".."):
        raise ValueError(f"{what} must be a plain file name ([A-Za-z0-9_.-]), got {name!r}")
    return name


def _check_mesh(vertices, triangles, uv, normals):
    v = np.asarray(vertices, np.float64)
    t = np.asarray(triangles)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be [V,3], got {v.shape}")
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"triangles must be [T,3], got {t.shape}")
    t = t.astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= len(v)):
        raise ValueError(f"triangle ids outside [0, {len(v)})")
    if not np.isfinite(v).all():
        raise ValueError("vertices contain NaN or inf")
    tex = None
    if uv is not None:
        tex = np.asarray(uv, np.float64)
        if tex.shape != (len(v), 2):
            raise ValueError(f"uv must be [{len(v)},2], got {tex.shape}")
    nrm = None
    if normals is not None:
        nrm = np.asarray(normals, np.float64)
        if nrm.shape != v.shape:
            raise ValueError(f"normals must be [{len(v)},3], got {nrm.shape}")
        length = np.linalg.norm(nrm, axis=1, keepdims=True)
        nrm = np.where(length > 1e-12, nrm / np.maximum(length, 1e-12), [0.0, 0.0, 1.0])
    return v, t, tex, nrm


def _rows(fmt_prefix: str, arr: np.ndarray, fmt: str, groups: int | None = None) -> str:
    """One line per row: ``prefix`` + ``groups`` copies of ``fmt`` (default: one per column)."""
    if not len(arr):
        return ""
    line = fmt_prefix + " " + " ".join([fmt] * (groups or arr.shape[1])) + "\n"
    # one %-format over the whole array (C loop): ~2.7x faster than a line at a
    # time for the 65k-vertex detail mesh, the same text
    return (line * len(arr)) % tuple(np.asarray(arr).ravel().tolist())


def _face_rows(faces: np.ndarray, corner: str) -> str:
    """``f`` lines of 1-based ``faces`` [T, 3] whose corners repeat one index
    (``corner``: "%d", "%d/%d", "%d//%d" or "%d/%d/%d"): the same text as
    ``_rows("f", np.repeat(faces, k, 1), corner, 3)``. Each vertex's corner
    text is formatted once, and the lines are put together from those as a
    numpy record array (NUL-padded fields, NULs dropped): about half the time of
    formatting every index (the detail mesh has ~2x as many faces as vertices
    and 3 indices per corner)."""
    if not len(faces):
        return ""
    k = corner.count("%d")
    count = int(faces.max()) + 1
    tokens = np.array(("\0".join([corner] * count) % tuple(
        np.repeat(np.arange(count), k).tolist())).encode("ascii").split(b"\0"))
    width = tokens.dtype.itemsize
    lines = np.empty(len(faces), [("f", "S2"), ("a", f"S{width}"), ("s1", "S1"),
                                  ("b", f"S{width}"), ("s2", "S1"), ("c", f"S{width}"),
                                  ("nl", "S1")])
    lines["f"], lines["s1"], lines["s2"], lines["nl"] = b"f ", b" ", b" ", b"\n"
    for name, col in (("a", 0), ("b", 1), ("c", 2)):
        lines[name] = tokens[faces[:, col]]
    return lines.tobytes().replace(b"\0", b"").decode("ascii")


def _atomic_write(path: Path, data: bytes) -> None:
    write_bytes_atomic(path, data)


def write_obj(path, vertices, triangles, uv=None, normals=None, mtl_name=None,
              texture_name=None, material: str = "face") -> Path:
    """Write a Wavefront OBJ (and its MTL when a texture or MTL name is given).

    Args:
      path: output ``.obj`` path.
      vertices: [V, 3]; triangles: [T, 3] CCW from outside; uv: [V, 2] in the
        tf_face convention (v down; written as ``vt u 1-v``); normals: [V, 3]
        optional (normalised on writing).
      mtl_name: file name of the MTL beside the OBJ (default ``<stem>.mtl``
        when ``texture_name`` is given). Plain names only.
      texture_name: file name of the diffuse texture beside the OBJ, written
        as ``map_Kd`` (e.g. ``albedo.png``).
      material: material name used by ``usemtl``.
    Returns the OBJ path.
    """
    path = Path(path)
    v, t, tex, nrm = _check_mesh(vertices, triangles, uv, normals)
    if texture_name is not None:
        _check_name(texture_name, "texture_name")
        if mtl_name is None:
            mtl_name = path.stem + ".mtl"
    if mtl_name is not None:
        _check_name(mtl_name, "mtl_name")
    _check_name(material, "material")
    out = ["# tf_face mesh: %d vertices, %d triangles; vt = (u, 1 - v)\n" % (len(v), len(t))]
    if mtl_name is not None:
        out.append(f"mtllib {mtl_name}\n")
    out.append(_rows("v", v, "%.6f"))
    if tex is not None:
        out.append(_rows("vt", np.stack([tex[:, 0], 1.0 - tex[:, 1]], 1), "%.6f"))
    if nrm is not None:
        out.append(_rows("vn", nrm, "%.6f"))
    if mtl_name is not None:
        out.append(f"usemtl {material}\n")
    corner = ("%d/%d/%d" if nrm is not None else "%d/%d") if tex is not None else \
        ("%d//%d" if nrm is not None else "%d")
    out.append(_face_rows(t + 1, corner))
    _atomic_write(path, "".join(out).encode("ascii"))
    if mtl_name is not None:
        mtl = [f"# tf_face material\nnewmtl {material}\n",
               "Ka 1.000000 1.000000 1.000000\nKd 1.000000 1.000000 1.000000\n",
               "Ks 0.000000 0.000000 0.000000\nNs 1.000000\nd 1.000000\nillum 1\n"]
        if texture_name is not None:
            mtl.append(f"map_Kd {texture_name}\n")
        _atomic_write(path.with_name(mtl_name), "".join(mtl).encode("ascii"))
    return path


def _pad4(data: bytes, fill: bytes) -> bytes:
    return data + fill * ((-len(data)) % 4)


def write_glb(path, vertices, triangles, uv, texture_png_bytes: bytes, normals=None,
              name: str = "face") -> Path:
    """Write a binary glTF 2.0 file with the texture embedded.

    One mesh, one primitive (TRIANGLES): POSITION (with min/max), optional
    NORMAL, TEXCOORD_0 (tf_face uv as is: glTF's v is down too), uint32
    indices; one PBR material (baseColorTexture, metallic 0, roughness 1); the
    PNG lives in a bufferView (``image/png``) with a linear/clamp sampler.
    Every bufferView starts on a 4-byte boundary; the JSON chunk is padded with
    spaces and the BIN chunk with zeros. Give vertices in a +y-up frame (model
    frame, or ``image_to_export(vertices_image)``).
    """
    path = Path(path)
    v, t, tex, nrm = _check_mesh(vertices, triangles, uv, normals)
    if tex is None:
        raise ValueError("write_glb needs uv")
    png = bytes(texture_png_bytes)
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("texture_png_bytes is not a PNG file")
    pos32 = v.astype("<f4")
    blobs, views, accessors = [], [], []
    offset = 0

    def add_view(data: bytes, target=None) -> int:
        nonlocal offset
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        views.append(view)
        padded = _pad4(data, b"\x00")
        blobs.append(padded)
        offset += len(padded)
        return len(views) - 1

    def add_accessor(arr: np.ndarray, ctype: int, atype: str, target: int,
                     minmax: bool = False) -> int:
        acc = {"bufferView": add_view(arr.tobytes(), target), "componentType": ctype,
               "count": int(arr.shape[0]), "type": atype}
        if minmax:
            acc["min"] = [float(x) for x in arr.min(0)]
            acc["max"] = [float(x) for x in arr.max(0)]
        accessors.append(acc)
        return len(accessors) - 1

    attrs = {"POSITION": add_accessor(pos32, _FLOAT, "VEC3", _ARRAY_BUFFER, minmax=True)}
    if nrm is not None:
        attrs["NORMAL"] = add_accessor(nrm.astype("<f4"), _FLOAT, "VEC3", _ARRAY_BUFFER)
    attrs["TEXCOORD_0"] = add_accessor(tex.astype("<f4"), _FLOAT, "VEC2", _ARRAY_BUFFER)
    idx = t.astype("<u4").reshape(-1, 1)
    indices = add_accessor(idx, _UINT32, "SCALAR", _ELEMENT_ARRAY_BUFFER, minmax=True)
    image_view = add_view(png)
    gltf = {
        "asset": {"version": "2.0", "generator": "tf_face.files.mesh_files"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [{"name": name, "primitives": [
            {"attributes": attrs, "indices": indices, "material": 0, "mode": 4}]}],
        "materials": [{"name": name, "pbrMetallicRoughness": {
            "baseColorTexture": {"index": 0, "texCoord": 0},
            "metallicFactor": 0.0, "roughnessFactor": 1.0}}],
        "textures": [{"sampler": 0, "source": 0}],
        "samplers": [{"magFilter": _LINEAR, "minFilter": _LINEAR_MIPMAP_LINEAR,
                      "wrapS": _CLAMP_TO_EDGE, "wrapT": _CLAMP_TO_EDGE}],
        "images": [{"bufferView": image_view, "mimeType": "image/png"}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": offset}],
    }
    json_chunk = _pad4(json.dumps(gltf, separators=(",", ":")).encode("utf-8"), b" ")
    bin_chunk = b"".join(blobs)
    total = 12 + 8 + len(json_chunk) + 8 + len(bin_chunk)
    data = b"".join([
        struct.pack("<III", _GLB_MAGIC, 2, total),
        struct.pack("<II", len(json_chunk), _CHUNK_JSON), json_chunk,
        struct.pack("<II", len(bin_chunk), _CHUNK_BIN), bin_chunk,
    ])
    _atomic_write(path, data)
    return path
