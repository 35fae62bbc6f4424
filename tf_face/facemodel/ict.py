"""ICT-FaceKit loaders: the OBJ folder and the compact ``.npz``.

* ``ict:FOLDER`` — ICT-FaceKit's ``FaceXModel`` folder as downloaded from its
  repository (MIT): ``generic_neutral_mesh.obj``, ``identityNNN.obj`` and one
  OBJ per expression blendshape. Only the face area is kept: the polygons of
  the ``usemtl M_Face`` group (all polygons if the file has no such group)
  and the vertices they use. Quads (a,b,c,d) become (a,b,c),(a,c,d). UVs are
  per vertex (the face area has no seams) and are flipped to v down.
  Identity OBJs are ``neutral + sigma_k u_k`` (u_k unit over the full head),
  so the std-scaled basis is simply ``identity_k - neutral`` on the kept
  vertices; expression deltas ``expr - neutral`` are blendshapes with weights
  in [0, 1]; the expression list and order come from ``vertex_indices.json``
  (``expressions``) when present. The OBJ folder has no iBUG-68 list: a ``landmarks68.txt`` (68
  0-based vertex ids) in the folder is used when present.
* ``ict_npz:PATH`` — the compact face-area file described in
  ``../shared/data/ict_face_model.README.md``: ``mean`` [V,3] cm,
  ``id_basis`` [3V,K] with ``id_std`` [K] (std-scaled basis = id_basis *
  id_std), ``exp_basis`` [3V,Ke], ``triangles``, ``uv`` (v up -> flipped),
  ``landmarks68``, ``narrow_face_vertex_mask``.

Sliding jaw candidates (``tf_face.fitting.contour.jaw_contour_candidates``)
are patches of the *narrow face area* (vertices 0..6705: no neck, ears or
scalp) around each jaw landmark, from inside the face out to the jaw line and
not beyond it (the underside of the chin and the neck lie there). The
file's ``contour_*_ext`` jawline lists are not used: they run *along* the
jaw. (The earlier horizontal bands over the whole face area, beyond the jaw
vertex too, reached the front of the neck at chin height, which is wider
than the chin, so the "outermost" candidate of jaw points 5-11 was a neck
vertex up to 0.54 IOD from the detected chin: astronaut landmark RMSE 0.112.)

ICT's frame is the model frame already (+x subject's left, +y up, +z out of
the face), units centimetres. No albedo model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tf_face.errors import FaceModelError
from tf_face.facemodel.base import FaceModel
from tf_face.facemodel.safe_io import need, read_npz
from tf_face.fitting.contour import jaw_contour_candidates

NEUTRAL_OBJ = "generic_neutral_mesh.obj"
# ICT-FaceKit's "narrow face area": vertices 0..6705 of the source mesh (face
# without ears, neck or scalp). Sliding jaw candidates stay inside it.
NARROW_FACE_VERTICES = 6706


def _parse_obj(path: Path, want_faces: bool, what: str):
    """Vertices [N,3]; with want_faces also (faces, face_uv_ids, vt, in_face_group)."""
    verts, vts, faces, fuv, group = [], [], [], [], []
    current_face = True
    has_groups = False
    try:
        text = path.read_text(errors="strict")
    except (OSError, UnicodeDecodeError) as e:
        raise FaceModelError(f"{what}: cannot read {path.name} as a text OBJ ({type(e).__name__})") from e
    try:
        for line in text.splitlines():
            if line.startswith("v "):
                verts.append(line.split()[1:4])
            elif not want_faces:
                continue
            elif line.startswith("vt "):
                vts.append(line.split()[1:3])
            elif line.startswith("usemtl"):
                has_groups = True
                current_face = line.split()[-1] == "M_Face"
            elif line.startswith("f "):
                corners = line.split()[1:]
                vi = [int(c.split("/")[0]) for c in corners]
                ti = [int(c.split("/")[1]) if c.count("/") >= 1 and c.split("/")[1] else 0
                      for c in corners]
                for k in range(1, len(vi) - 1):
                    faces.append((vi[0], vi[k], vi[k + 1]))
                    fuv.append((ti[0], ti[k], ti[k + 1]))
                    group.append(current_face)
        v = np.array(verts, dtype=np.float64)
    except (ValueError, IndexError) as exc:
        raise FaceModelError(f"{what}: {path.name} is not a valid OBJ file") from exc
    if v.ndim != 2 or v.shape[1] != 3 or len(v) < 3:
        raise FaceModelError(f"{what}: {path.name} has no vertices")
    if not want_faces:
        return v
    if not faces:
        raise FaceModelError(f"{what}: {path.name} has no faces")
    f = np.array(faces, np.int64)
    t = np.array(fuv, np.int64)
    g = np.array(group, bool) if has_groups else np.ones(len(f), bool)
    vt = np.array(vts, np.float64) if vts else np.zeros((0, 2))
    return v, f, t, vt, g


def _expression_files(root: Path, ids: list[Path]) -> list[Path]:
    """Expression OBJs: the ``expressions`` list of vertex_indices.json when
    present (ICT's own list, in its order), else every other OBJ by name."""
    meta = root / "vertex_indices.json"
    if meta.is_file():
        try:
            names = json.loads(meta.read_text()).get("expressions")
        except (ValueError, UnicodeDecodeError, AttributeError):
            names = None
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            files = [root / f"{Path(n).stem}.obj" for n in names]
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise FaceModelError(f"ict: expression OBJ {missing[0]} listed in "
                                     "vertex_indices.json is missing")
            return files
    return sorted(p for p in root.glob("*.obj") if p.name != NEUTRAL_OBJ and p not in ids)


def load_ict_obj_folder(folder: str | Path) -> FaceModel:
    what = "ict"
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FaceModelError(f"{what}: not a folder: {root}")
    neutral_p = root / NEUTRAL_OBJ
    if not neutral_p.is_file():
        raise FaceModelError(f"{what}: {NEUTRAL_OBJ} not found in {root}")
    v, f, ft, vt, g = _parse_obj(neutral_p, True, what)
    n_all = len(v)
    f, ft = f[g], ft[g]
    if f.min() < 1 or f.max() > n_all:
        raise FaceModelError(f"{what}: {NEUTRAL_OBJ} face ids outside its {n_all} vertices")
    keep = np.unique(f)                     # 1-based ids of face-area vertices
    remap = np.full(n_all + 1, -1, np.int64)
    remap[keep] = np.arange(len(keep))
    tri = remap[f].astype(np.int32)
    if len(vt) == 0 or ft.min() < 1 or ft.max() > len(vt):
        raise FaceModelError(f"{what}: {NEUTRAL_OBJ} lacks valid texture coordinates")
    uv = np.zeros((len(keep), 2))
    uv[tri.ravel()] = vt[ft.ravel() - 1]
    uv[:, 1] = 1.0 - uv[:, 1]               # OBJ v up -> v down
    mean = v[keep - 1]

    def deltas(paths):
        cols = []
        for p in paths:
            w = _parse_obj(p, False, what)
            if len(w) != n_all:
                raise FaceModelError(f"{what}: {p.name} has {len(w)} vertices, "
                                     f"{NEUTRAL_OBJ} has {n_all}")
            cols.append(w[keep - 1] - mean)
        return np.stack(cols, -1) if cols else None

    ids = sorted(root.glob("identity*.obj"))
    exprs = _expression_files(root, ids)
    lm = None
    side = root / "landmarks68.txt"
    if side.is_file():
        try:
            lm = np.array(side.read_text().split(), dtype=np.int64)
        except ValueError as exc:
            raise FaceModelError(f"{what}: {side} must hold 68 integer vertex ids") from exc
        if lm.shape != (68,) or lm.min() < 0 or lm.max() >= len(keep):
            raise FaceModelError(f"{what}: {side} must hold 68 vertex ids in [0, {len(keep)})")
        lm = lm.astype(np.int32)
    model = FaceModel(
        name="ict", mean_shape=mean.astype(np.float32), triangles=tri,
        uv=uv.astype(np.float32), landmarks68=lm,
        shape_basis=None if not ids else deltas(ids).astype(np.float32),
        expr_basis=None if not exprs else deltas(exprs).astype(np.float32),
        units="cm", expr_names=[p.stem for p in exprs])
    if lm is not None:
        # face-area vertices come first in ICT's OBJ, so ids 0..6705 (the
        # README's "narrow face area") are the face without neck, ears, scalp
        narrow = (keep - 1) < NARROW_FACE_VERTICES
        model.contour_candidates = jaw_contour_candidates(mean, tri, lm, vertex_mask=narrow)
    return model.validate()


def load_ict_npz(path: str | Path) -> FaceModel:
    what = "ict_npz"
    d = read_npz(path, what)
    mean = need(d, "mean", what).astype(np.float64)
    if mean.ndim != 2 or mean.shape[1] != 3:
        raise FaceModelError(f"{what}: mean must be [V,3], got {mean.shape}")
    n = len(mean)

    def basis(key, std=None):
        b = need(d, key, what).astype(np.float64)
        if b.ndim != 2 or b.shape[0] != 3 * n:
            raise FaceModelError(f"{what}: {key} must be [{3 * n},K], got {b.shape}")
        if std is not None:
            if std.shape != (b.shape[1],):
                raise FaceModelError(f"{what}: id_std must have {b.shape[1]} values")
            b = b * std
        return b.reshape(n, 3, -1).astype(np.float32)

    id_std = need(d, "id_std", what).astype(np.float64).ravel()
    tri = need(d, "triangles", what)
    if tri.ndim != 2 or tri.shape[1] != 3 or tri.min() < 0 or tri.max() >= n:
        raise FaceModelError(f"{what}: triangles must be [T,3] ids in [0,{n})")
    uv = need(d, "uv", what).astype(np.float64)
    if uv.shape != (n, 2):
        raise FaceModelError(f"{what}: uv must be [{n},2], got {uv.shape}")
    uv = np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1)
    lm = need(d, "landmarks68", what).astype(np.int64)
    if lm.shape != (68,) or lm.min() < 0 or lm.max() >= n:
        raise FaceModelError(f"{what}: landmarks68 must be 68 ids in [0,{n})")
    narrow = None
    if "narrow_face_vertex_mask" in d:
        narrow = d["narrow_face_vertex_mask"].astype(bool).ravel()
        if narrow.shape != (n,):
            raise FaceModelError(f"{what}: narrow_face_vertex_mask must have {n} values")
    elif n > NARROW_FACE_VERTICES:
        narrow = np.arange(n) < NARROW_FACE_VERTICES
    tri = tri.astype(np.int32)
    model = FaceModel(
        name="ict", mean_shape=mean.astype(np.float32), triangles=tri,
        uv=uv.astype(np.float32), landmarks68=lm.astype(np.int32),
        shape_basis=basis("id_basis", id_std), expr_basis=basis("exp_basis"),
        contour_candidates=jaw_contour_candidates(mean, tri, lm, vertex_mask=narrow),
        units=str(d["units"]) if "units" in d and d["units"].dtype.kind == "U" else "cm",
        expr_names=([str(s) for s in d["exp_names"]]
                    if "exp_names" in d and d["exp_names"].dtype.kind == "U" else []))
    return model.validate()
