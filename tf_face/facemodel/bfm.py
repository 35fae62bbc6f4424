"""Loaders for the Basel Face Model family (files the user downloads).

Formats (checked against the formats' documentation; users must download the
files themselves, they are registration-gated and not redistributable):

* **BFM 2009** ``01_MorphableModel.mat`` (MATLAB v5 or v7.3): ``shapeMU``
  [3V,1] in micrometres, ``shapePC`` [3V,K] orthonormal columns, ``shapeEV``
  [K,1] standard deviations; ``texMU``/``texPC``/``texEV`` the same for
  per-vertex RGB in 0..255; ``tl`` [T,3] 1-based triangles. Interleaved
  x,y,z per vertex. Frame: +x subject's left, +y up, +z out of the face (the
  model frame of ``tf_face.types``). We convert to **millimetres** (/1000) and
  colours to [0, 1] (/255); bases become ``PC * EV`` (std-scaled).
* **BFM 2017 / 2019** ``.h5`` (Statismo layout): ``shape/model/{mean,
  pcaBasis, pcaVariance}``, ``expression/model/...``, ``color/model/...`` and
  ``shape/representer/{points [3,V], cells [3,T] 0-based}``; units mm, colour
  in [0, 1]. The expression model's mean is added to the shape mean when it
  is a small offset (a delta), ignored when it is a full shape. ``pcaVariance`` holds variances; Statismo stores ``pcaBasis``
  with orthonormal columns, so the std-scaled basis is ``pcaBasis *
  sqrt(pcaVariance)``. If a file's columns are not unit length but already
  have norm sqrt(variance), they are taken as already scaled (checked per
  file; anything else is refused).
* **Deep3DFaceRecon** ``BFM_model_front.mat``: ``meanshape`` [1,3V] (BFM/1e5,
  i.e. 1 unit = 0.1 m), ``idBase`` [3V,80], ``exBase`` [3V,64], ``texBase``
  [3V,80] already multiplied by their standard deviations (so coefficients
  are unit-variance as in that project), ``meantex`` [1,3V] in 0..255,
  ``tri`` [T,3] 1-based, ``keypoints`` [68] 1-based iBUG order, ``point_buf``
  1-based (not needed: normals are recomputed). We convert to millimetres
  (x100) and colours to [0, 1].

BFM has no UV layout: we compute a cylindrical one from the mean shape
(``mesh.cylindrical_uv``; v down). BFM 2009/2017 files carry no iBUG-68
landmark list; if a text file ``landmarks68.txt`` (68 whitespace-separated
0-based vertex ids, iBUG order) lies beside the model file it is used,
otherwise ``landmarks68`` is None. Sliding contour candidates are computed
from the mean shape whenever landmarks exist (``mesh.contour_candidates``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tf_face.errors import FaceModelError
from tf_face.facemodel.base import FaceModel
from tf_face.facemodel.mesh import contour_candidates, cylindrical_uv
from tf_face.facemodel.safe_io import need, read_h5_tree, read_mat


def _vec3(a: np.ndarray, what: str, name: str) -> np.ndarray:
    """[3V] or [3V,1] or [1,3V] -> [V,3] float64."""
    a = np.asarray(a, np.float64)
    if a.ndim == 2 and 1 in a.shape:
        a = a.ravel()
    if a.ndim != 1 or a.size % 3 or a.size < 9:
        raise FaceModelError(f"{what}: {name} must be a [3V] vector, got shape {a.shape}")
    return a.reshape(-1, 3)


def _basis(pc: np.ndarray, n: int, what: str, name: str) -> np.ndarray:
    """[3V,K] (or its transpose) -> [V,3,K] float64."""
    pc = np.asarray(pc, np.float64)
    if pc.ndim == 1:
        pc = pc[:, None]
    if pc.ndim != 2:
        raise FaceModelError(f"{what}: {name} must be [3V,K], got shape {pc.shape}")
    if pc.shape[0] != 3 * n and pc.shape[1] == 3 * n:
        pc = pc.T
    if pc.shape[0] != 3 * n:
        raise FaceModelError(f"{what}: {name} has shape {pc.shape}, expected [{3 * n},K]")
    return pc.reshape(n, 3, -1)


def _sigmas(ev: np.ndarray, k: int, what: str, name: str) -> np.ndarray:
    ev = np.asarray(ev, np.float64).ravel()
    if ev.size != k:
        raise FaceModelError(f"{what}: {name} has {ev.size} values for {k} components")
    if np.any(~np.isfinite(ev)) or np.any(ev < 0):
        raise FaceModelError(f"{what}: {name} has negative or non-finite values")
    return ev


def _triangles(t: np.ndarray, n: int, what: str, one_based: bool) -> np.ndarray:
    t = np.asarray(t)
    if t.ndim != 2 or 3 not in t.shape:
        raise FaceModelError(f"{what}: triangles must be [T,3], got shape {t.shape}")
    if t.shape[1] != 3:
        t = t.T
    if np.any(t != np.round(t)):
        raise FaceModelError(f"{what}: triangle indices are not integers")
    t = t.astype(np.int64) - (1 if one_based else 0)
    if t.min() < 0 or t.max() >= n:
        base = "1-based" if one_based else "0-based"
        raise FaceModelError(f"{what}: triangle ids outside the {n} vertices ({base} expected)")
    return t.astype(np.int32)


def _sidecar_landmarks(path: Path, n: int, what: str):
    side = path.parent / "landmarks68.txt"
    if not side.is_file():
        return None
    try:
        ids = np.array(side.read_text().split(), dtype=np.int64)
    except ValueError as exc:
        raise FaceModelError(f"{what}: {side} must hold 68 integer vertex ids") from exc
    if ids.shape != (68,) or ids.min() < 0 or ids.max() >= n:
        raise FaceModelError(f"{what}: {side} must hold 68 vertex ids in [0, {n})")
    return ids.astype(np.int32)


def _finish(name, mean, tri, shape_b, expr_b, alb_mean, alb_b, lm68, units) -> FaceModel:
    if not np.all(np.isfinite(mean)):
        raise FaceModelError(f"{name}: mean shape has non-finite values")
    cc = contour_candidates(mean, tri, lm68) if lm68 is not None else {}
    f32 = lambda a: None if a is None else np.ascontiguousarray(a, np.float32)  # noqa: E731
    return FaceModel(
        name=name, mean_shape=f32(mean), triangles=tri, uv=cylindrical_uv(mean),
        landmarks68=lm68, shape_basis=f32(shape_b), expr_basis=f32(expr_b),
        albedo_mean=f32(alb_mean), albedo_basis=f32(alb_b), albedo_space="vertex",
        contour_candidates=cc, units=units).validate()


def load_bfm2009(path: str | Path) -> FaceModel:
    what = "bfm2009"
    d = read_mat(path, what)
    mean = _vec3(need(d, "shapeMU", what), what, "shapeMU")
    n = len(mean)
    pc = _basis(need(d, "shapePC", what), n, what, "shapePC")
    ev = _sigmas(need(d, "shapeEV", what), pc.shape[2], what, "shapeEV")
    tex_mu = _vec3(need(d, "texMU", what), what, "texMU")
    if len(tex_mu) != n:
        raise FaceModelError(f"{what}: texMU has {len(tex_mu)} vertices, shapeMU has {n}")
    tpc = _basis(need(d, "texPC", what), n, what, "texPC")
    tev = _sigmas(need(d, "texEV", what), tpc.shape[2], what, "texEV")
    tri = _triangles(need(d, "tl", what), n, what, one_based=True)
    um = 1e-3  # micrometres -> millimetres
    return _finish("bfm2009", mean * um, tri, pc * ev * um, None,
                   tex_mu / 255.0, tpc * tev / 255.0,
                   _sidecar_landmarks(Path(path).expanduser(), n, what), "mm")


def _statismo_part(d: dict, group: str, n: int, what: str, required: bool):
    keys = [f"{group}/model/{k}" for k in ("mean", "pcaBasis", "pcaVariance")]
    if not all(k in d for k in keys):
        if required:
            missing = [k for k in keys if k not in d]
            raise FaceModelError(f"{what}: missing dataset {missing[0]!r}")
        return None, None
    mean = _vec3(d[keys[0]], what, keys[0])
    if len(mean) != n:
        raise FaceModelError(f"{what}: {keys[0]} has {len(mean)} vertices, expected {n}")
    basis = _basis(d[keys[1]], n, what, keys[1])
    var = _sigmas(d[keys[2]], basis.shape[2], what, keys[2])
    norms = np.linalg.norm(basis.reshape(3 * n, -1), axis=0)
    sd = np.sqrt(var)
    if np.allclose(norms, 1.0, rtol=1e-2):
        basis = basis * sd            # Statismo: orthonormal columns
    elif not np.allclose(norms, sd, rtol=1e-2):
        raise FaceModelError(f"{what}: {keys[1]} columns are neither unit length "
                             "nor sqrt(pcaVariance) long")
    return mean, basis


def load_bfm2017(path: str | Path) -> FaceModel:
    what = "bfm2017"
    d = read_h5_tree(path, what)
    pts = need(d, "shape/representer/points", what).astype(np.float64)
    if pts.ndim != 2 or 3 not in pts.shape:
        raise FaceModelError(f"{what}: shape/representer/points must be [3,V], got {pts.shape}")
    n = pts.shape[1] if pts.shape[0] == 3 else pts.shape[0]
    tri = _triangles(need(d, "shape/representer/cells", what), n, what, one_based=False)
    mean, shape_b = _statismo_part(d, "shape", n, what, required=True)
    e_mean, expr_b = _statismo_part(d, "expression", n, what, required=False)
    if e_mean is not None and np.linalg.norm(e_mean) < np.linalg.norm(e_mean - mean):
        mean = mean + e_mean  # a small expression offset (delta), not a full shape
    c_mean, col_b = _statismo_part(d, "color", n, what, required=False)
    return _finish("bfm2017", mean, tri, shape_b, expr_b, c_mean, col_b,
                   _sidecar_landmarks(Path(path).expanduser(), n, what), "mm")


def load_deep3d(path: str | Path) -> FaceModel:
    what = "deep3d"
    d = read_mat(path, what)
    mean = _vec3(need(d, "meanshape", what), what, "meanshape")
    n = len(mean)
    idb = _basis(need(d, "idBase", what), n, what, "idBase")
    exb = _basis(need(d, "exBase", what), n, what, "exBase")
    tex = _vec3(need(d, "meantex", what), what, "meantex")
    if len(tex) != n:
        raise FaceModelError(f"{what}: meantex has {len(tex)} vertices, meanshape has {n}")
    texb = _basis(need(d, "texBase", what), n, what, "texBase")
    tri = _triangles(need(d, "tri", what), n, what, one_based=True)
    kp = np.asarray(need(d, "keypoints", what)).ravel()
    if kp.size != 68 or np.any(kp != np.round(kp)):
        raise FaceModelError(f"{what}: keypoints must be 68 integer vertex ids")
    kp = kp.astype(np.int64) - 1
    if kp.min() < 0 or kp.max() >= n:
        raise FaceModelError(f"{what}: keypoints outside the {n} vertices (1-based expected)")
    s = 100.0  # Deep3D unit (BFM micrometres / 1e5 = 0.1 m) -> millimetres
    return _finish("deep3d", mean * s, tri, idb * s, exb * s, tex / 255.0, texb / 255.0,
                   kp.astype(np.int32), "mm")
