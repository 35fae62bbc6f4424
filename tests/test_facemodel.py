"""Face-model loaders: tiny files in each real format, round trips and bad input."""

import pickle

import h5py
import numpy as np
import pytest
import scipy.io

from tests.conftest import ICT_NPZ, require_shared
from tf_face.errors import FaceModelError, TfFaceError
from tf_face.facemodel import FaceModel, load_face_model
from tf_face.facemodel.mesh import contour_candidates, topology_report

RNG = np.random.default_rng(0)


def half_cylinder(radius=80.0, rows=15, cols=21):
    """A face-like open surface: half cylinder around the y axis facing +z.

    Returns vertices [V,3] (model frame, mm) and CCW-from-outside triangles.
    """
    t = np.linspace(-1.0, 1.0, cols)
    th = np.radians(85) * np.sign(t) * np.abs(t) ** 1.13   # symmetric, not uniform
    ys = np.linspace(100.0, -100.0, rows)
    v = np.array([[radius * np.sin(t), y, radius * np.cos(t)] for y in ys for t in th])
    tri = []
    for r in range(rows - 1):
        for c in range(cols - 1):
            a, b = r * cols + c, r * cols + c + 1
            d, e = (r + 1) * cols + c, (r + 1) * cols + c + 1
            tri += [(a, d, b), (b, d, e)]      # row r is above row r+1
    return v, np.array(tri, np.int64)


VERTS, TRIS = half_cylinder()
N = len(VERTS)


def orthonormal(rows, k):
    q, _ = np.linalg.qr(RNG.normal(size=(rows, k)))
    return q


def grid_landmarks():
    """68 distinct vertex ids; jaw slots on a lower arc (right side x<0 first)."""
    cols = 21
    jaw_cols = np.linspace(4, 16, 17).round().astype(int)
    jaw_rows = (10 + 3 * np.sin(np.linspace(0, np.pi, 17))).round().astype(int)
    jaw = [r * cols + c for r, c in zip(jaw_rows, jaw_cols)]
    rest = [i for i in RNG.permutation(N) if i not in jaw][:51]
    return np.array(jaw + rest, np.int64)


# ---------------------------------------------------------------- BFM 2009
def write_bfm2009(path, k=4, v73=False, **override):
    pc = orthonormal(3 * N, k)
    ev = np.sort(RNG.uniform(1e3, 5e4, k))[::-1]
    tpc = orthonormal(3 * N, 3)
    tev = np.array([30.0, 20.0, 10.0])
    data = {
        "shapeMU": (VERTS * 1000.0).reshape(-1, 1),       # micrometres
        "shapePC": pc, "shapeEV": ev.reshape(-1, 1),
        "texMU": RNG.uniform(50, 200, (3 * N, 1)), "texPC": tpc, "texEV": tev.reshape(-1, 1),
        "tl": (TRIS + 1).astype(np.float64),
    }
    data.update(override)
    data = {k_: v for k_, v in data.items() if v is not None}
    if v73:   # MATLAB v7.3: HDF5 after a 512-byte header, arrays stored transposed
        with h5py.File(path, "w", userblock_size=512) as f:
            for key, val in data.items():
                f[key] = np.asarray(val).T
        with open(path, "r+b") as f:
            f.write(b"MATLAB 7.3 MAT-file, written by a test".ljust(116, b" "))
    else:
        scipy.io.savemat(path, data)
    return data


@pytest.mark.parametrize("v73", [False, True])
def test_bfm2009_round_trip(tmp_path, v73):
    p = tmp_path / "01_MorphableModel.mat"
    d = write_bfm2009(p, v73=v73)
    m = load_face_model(f"bfm2009:{p}")
    assert isinstance(m, FaceModel) and m.name == "bfm2009" and m.units == "mm"
    np.testing.assert_allclose(m.mean_shape, VERTS, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(m.triangles, TRIS)
    expect = (d["shapePC"] * d["shapeEV"].ravel()).reshape(N, 3, -1) / 1000.0
    np.testing.assert_allclose(m.shape_basis, expect, rtol=1e-4, atol=1e-6)
    # std scaling: unit coefficient k moves the shape by EV_k (in mm) in norm
    norms = np.linalg.norm(m.shape_basis.reshape(3 * N, -1), axis=0)
    np.testing.assert_allclose(norms, d["shapeEV"].ravel() / 1000.0, rtol=1e-4)
    np.testing.assert_allclose(m.albedo_mean, d["texMU"].reshape(N, 3) / 255.0, rtol=1e-5)
    np.testing.assert_allclose(
        m.albedo_basis, (d["texPC"] * d["texEV"].ravel()).reshape(N, 3, -1) / 255.0,
        rtol=1e-4, atol=1e-7)
    assert m.albedo_space == "vertex" and m.expr_basis is None
    assert m.landmarks68 is None and m.contour_candidates == {}
    assert m.uv.min() >= 0 and m.uv.max() <= 1
    # cylindrical UV: v down (top of head has smaller v), u grows with +x
    top, bottom = np.argmax(VERTS[:, 1]), np.argmin(VERTS[:, 1])
    assert m.uv[top, 1] < m.uv[bottom, 1]
    assert m.uv[np.argmax(VERTS[:, 0]), 0] > m.uv[np.argmin(VERTS[:, 0]), 0]


def test_bfm2009_sidecar_landmarks_and_contours(tmp_path):
    p = tmp_path / "01_MorphableModel.mat"
    write_bfm2009(p)
    lm = grid_landmarks()
    (tmp_path / "landmarks68.txt").write_text(" ".join(map(str, lm)))
    m = load_face_model(f"bfm2009:{p}")
    np.testing.assert_array_equal(m.landmarks68, lm)
    assert set(m.contour_candidates) == set(range(8)) | set(range(9, 17))
    for slot, cand in m.contour_candidates.items():
        assert cand[0] == lm[slot] and len(cand) >= 2
        x = m.mean_shape[cand]
        # same side as the landmark; after it, ordered front -> ear (|angle|
        # increasing), reaching in front of the landmark too (a far side's
        # silhouette lies there at large yaw)
        assert np.all(np.sign(x[:, 0]) == np.sign(x[0, 0]))
        ang = np.abs(np.arctan2(x[:, 0], x[:, 2]))
        assert np.all(np.diff(ang[1:]) > 0)
        assert ang[1:].min() < ang[0] < ang[1:].max() or ang[0] <= ang[1:].min()
        # roughly at the landmark's height (within one grid row = 14.3 mm)
        assert np.abs(x[:, 1] - x[0, 1]).max() <= 200 / 14 + 1e-6


def test_bfm2009_bad_files(tmp_path):
    p = tmp_path / "m.mat"
    write_bfm2009(p, shapePC=orthonormal(3 * N - 3, 4))
    with pytest.raises(FaceModelError, match="shapePC"):
        load_face_model(f"bfm2009:{p}")
    write_bfm2009(p, tl=None)
    with pytest.raises(FaceModelError, match="missing field 'tl'"):
        load_face_model(f"bfm2009:{p}")
    write_bfm2009(p, tl=TRIS.astype(np.float64) + 5)        # ids past the end
    with pytest.raises(FaceModelError, match="triangle ids"):
        load_face_model(f"bfm2009:{p}")
    write_bfm2009(p, shapeEV=np.ones((3, 1)))
    with pytest.raises(FaceModelError, match="shapeEV"):
        load_face_model(f"bfm2009:{p}")


# ---------------------------------------------------------------- BFM 2017
def write_bfm2017(path, scaled=False, with_expr=True, broken_norms=False):
    k, ke = 5, 3
    u = orthonormal(3 * N, k)
    var = np.sort(RNG.uniform(1, 400, k))[::-1]
    ue = orthonormal(3 * N, ke)
    vare = np.array([9.0, 4.0, 1.0])
    cu = orthonormal(3 * N, 2)
    cvar = np.array([0.01, 0.004])
    emean = RNG.normal(0, 0.1, 3 * N)
    with h5py.File(path, "w") as f:
        f["shape/representer/points"] = VERTS.T.astype(np.float32)          # [3, V]
        f["shape/representer/cells"] = TRIS.T.astype(np.uint32)             # [3, T], 0-based
        basis = u * np.sqrt(var) if scaled else u
        if broken_norms:
            basis = u * 3.0
        f["shape/model/mean"] = VERTS.ravel().astype(np.float32)
        f["shape/model/pcaBasis"] = basis.astype(np.float32)
        f["shape/model/pcaVariance"] = var.astype(np.float32)
        if with_expr:
            f["expression/model/mean"] = emean.astype(np.float32)
            f["expression/model/pcaBasis"] = ue.astype(np.float32)
            f["expression/model/pcaVariance"] = vare.astype(np.float32)
        f["color/model/mean"] = np.full(3 * N, 0.5, np.float32)
        f["color/model/pcaBasis"] = cu.astype(np.float32)
        f["color/model/pcaVariance"] = cvar.astype(np.float32)
    return u, var, ue, vare, emean


@pytest.mark.parametrize("scaled", [False, True])
def test_bfm2017_round_trip(tmp_path, scaled):
    p = tmp_path / "model2017-1_bfm_nomouth.h5"
    u, var, ue, vare, emean = write_bfm2017(p, scaled=scaled)
    m = load_face_model(f"bfm2017:{p}")
    assert m.name == "bfm2017" and m.units == "mm"
    np.testing.assert_allclose(m.mean_shape, VERTS + emean.reshape(N, 3), atol=1e-3)
    np.testing.assert_array_equal(m.triangles, TRIS)
    np.testing.assert_allclose(m.shape_basis, (u * np.sqrt(var)).reshape(N, 3, -1),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m.expr_basis, (ue * np.sqrt(vare)).reshape(N, 3, -1),
                               rtol=1e-4, atol=1e-5)
    assert m.num_albedo == 2 and np.allclose(m.albedo_mean, 0.5)


def test_bfm2017_refuses_unknown_scaling_and_missing_groups(tmp_path):
    p = tmp_path / "m.h5"
    write_bfm2017(p, broken_norms=True)
    with pytest.raises(FaceModelError, match="neither unit length"):
        load_face_model(f"bfm2017:{p}")
    with h5py.File(p, "w") as f:
        f["shape/model/mean"] = np.zeros(9)
    with pytest.raises(FaceModelError, match="representer/points"):
        load_face_model(f"bfm2017:{p}")


# ---------------------------------------------------------------- Deep3D
def write_deep3d(path, **override):
    lm = grid_landmarks()
    d = {
        "meanshape": (VERTS / 100.0).reshape(1, -1),        # BFM um / 1e5
        "idBase": orthonormal(3 * N, 6) * 0.3, "exBase": orthonormal(3 * N, 4) * 0.1,
        "meantex": RNG.uniform(0, 255, (1, 3 * N)), "texBase": orthonormal(3 * N, 5) * 20,
        "tri": (TRIS + 1).astype(np.float64), "keypoints": (lm + 1).reshape(1, -1).astype(np.float64),
        "point_buf": np.ones((N, 8)),
    }
    d.update(override)
    scipy.io.savemat(path, {k: v for k, v in d.items() if v is not None})
    return d, lm


def test_deep3d_round_trip(tmp_path):
    p = tmp_path / "BFM_model_front.mat"
    d, lm = write_deep3d(p)
    m = load_face_model(f"deep3d:{p}")
    assert m.name == "deep3d" and m.units == "mm"
    np.testing.assert_allclose(m.mean_shape, VERTS, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(m.triangles, TRIS)
    np.testing.assert_array_equal(m.landmarks68, lm)                  # 1-based -> 0-based
    np.testing.assert_allclose(m.shape_basis, d["idBase"].reshape(N, 3, -1) * 100, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.expr_basis, d["exBase"].reshape(N, 3, -1) * 100, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.albedo_mean, d["meantex"].reshape(N, 3) / 255, rtol=1e-5)
    np.testing.assert_allclose(m.albedo_basis, d["texBase"].reshape(N, 3, -1) / 255, rtol=1e-5, atol=1e-8)
    assert len(m.contour_candidates) == 16


def test_deep3d_bad_keypoints(tmp_path):
    p = tmp_path / "BFM_model_front.mat"
    write_deep3d(p, keypoints=np.arange(1, 60, dtype=np.float64).reshape(1, -1))
    with pytest.raises(FaceModelError, match="keypoints"):
        load_face_model(f"deep3d:{p}")
    write_deep3d(p, keypoints=np.zeros((1, 68)))     # 0 is invalid when 1-based
    with pytest.raises(FaceModelError, match="1-based"):
        load_face_model(f"deep3d:{p}")


# ---------------------------------------------------------------- ICT OBJ folder
def write_obj(path, verts, quads=None, vts=None, extra_group=None):
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    if quads is not None:
        lines += [f"vt {u:.6f} {v:.6f}" for u, v in vts]
        lines.append("usemtl M_Face")
        lines += ["f " + " ".join(f"{i + 1}/{i + 1}/{i + 1}" for i in q) for q in quads]
        if extra_group is not None:
            lines.append("usemtl M_EyeballLeft")
            lines += ["f " + " ".join(f"{i + 1}/{i + 1}" for i in q) for q in extra_group]
    path.write_text("\n".join(lines) + "\n")


def test_ict_obj_folder_round_trip(tmp_path):
    # 3x3 grid of face vertices (4 quads) + 3 extra vertices of another group
    face = np.array([[x, y, 0.1 * x * y] for y in (1.0, 0.0, -1.0) for x in (-1.0, 0.0, 1.0)])
    extra = np.array([[5.0, 5.0, 0.0], [6.0, 5.0, 0.0], [5.0, 6.0, 0.0]])
    verts = np.concatenate([face, extra])
    quads = [(3, 4, 1, 0), (4, 5, 2, 1), (6, 7, 4, 3), (7, 8, 5, 4)]   # CCW seen from +z
    vts = np.concatenate([(face[:, :2] + 1) / 2, np.zeros((3, 2))])     # OBJ: v up
    write_obj(tmp_path / "generic_neutral_mesh.obj", verts, quads, vts, extra_group=[(9, 10, 11)])
    d_id = RNG.normal(size=verts.shape)
    write_obj(tmp_path / "identity000.obj", verts + d_id)
    d_ex = RNG.normal(size=verts.shape)
    write_obj(tmp_path / "jawOpen.obj", verts + d_ex)
    m = load_face_model(f"ict:{tmp_path}")
    assert m.num_vertices == 9 and m.units == "cm" and m.expr_names == ["jawOpen"]
    np.testing.assert_allclose(m.mean_shape, face, atol=1e-6)
    assert m.triangles.shape == (8, 3)
    np.testing.assert_allclose(m.uv[:, 0], (face[:, 0] + 1) / 2, atol=1e-6)
    np.testing.assert_allclose(m.uv[:, 1], 1 - (face[:, 1] + 1) / 2, atol=1e-6)   # v down
    np.testing.assert_allclose(m.shape_basis[:, :, 0], d_id[:9], atol=2e-6)
    np.testing.assert_allclose(m.expr_basis[:, :, 0], d_ex[:9], atol=2e-6)
    topo = topology_report(m.triangles, 9)
    assert topo["consistently_oriented"] and topo["euler"] == 1
    n = np.cross(*(face[m.triangles[:, i]] - face[m.triangles[:, 0]] for i in (1, 2)))
    assert np.all(n[:, 2] > 0)


def test_ict_obj_folder_landmarks_and_contours(tmp_path):
    """A landmarks68.txt beside the OBJs gives landmarks and sliding jaw
    candidates (patches inside the jaw line, on the landmark's side)."""
    lm = grid_landmarks()
    vts = (VERTS[:, :2] - VERTS[:, :2].min(0)) / np.ptp(VERTS[:, :2], axis=0)
    write_obj(tmp_path / "generic_neutral_mesh.obj", VERTS, TRIS, vts)
    (tmp_path / "landmarks68.txt").write_text(" ".join(map(str, lm)))
    m = load_face_model(f"ict:{tmp_path}")
    np.testing.assert_array_equal(m.landmarks68, lm)
    assert set(m.contour_candidates) == set(range(8)) | set(range(9, 17))
    centre = m.mean_shape[lm, :2].mean(axis=0)
    for slot, cand in m.contour_candidates.items():
        x = m.mean_shape[cand]
        assert cand[0] == lm[slot] and len(np.unique(cand)) == len(cand)
        assert np.all(np.sign(x[:, 0]) == np.sign(x[0, 0]))
        # the far side's outline lies inside the jaw line: candidates reach
        # there, none lies further out than the jaw vertex (on this coarse
        # 14 mm grid a slot may keep only its own vertex)
        r = np.linalg.norm(x[:, :2] - centre, axis=1)
        assert len(cand) == 1 or r[1:].min() < r[0]
        assert r.max() <= r[0] + 1e-4
    assert sum(len(c) > 1 for c in m.contour_candidates.values()) >= 12


def test_ict_obj_folder_errors(tmp_path):
    with pytest.raises(FaceModelError, match="not a folder"):
        load_face_model(f"ict:{tmp_path / 'nope'}")
    with pytest.raises(FaceModelError, match="generic_neutral_mesh.obj not found"):
        load_face_model(f"ict:{tmp_path}")
    (tmp_path / "generic_neutral_mesh.obj").write_bytes(b"\x00\xff\xfe binary")
    with pytest.raises(FaceModelError):
        load_face_model(f"ict:{tmp_path}")


# ---------------------------------------------------------------- ICT npz
def write_ict_npz(path, **override):
    k, ke = 4, 2
    lm = grid_landmarks()
    d = {
        "mean": VERTS.astype(np.float32), "id_basis": orthonormal(3 * N, k).astype(np.float32),
        "id_std": np.array([4.0, 3.0, 2.0, 1.0], np.float32),
        "exp_basis": RNG.normal(0, 0.1, (3 * N, ke)).astype(np.float32),
        "exp_names": np.array(["jawOpen", "eyeBlink_L"]),
        "triangles": TRIS.astype(np.int32), "uv": RNG.uniform(0, 1, (N, 2)).astype(np.float32),
        "landmarks68": lm.astype(np.int32), "units": np.array("cm"),
        "contour_right_ext": lm[:8].astype(np.int32), "contour_left_ext": lm[9:17].astype(np.int32),
    }
    d.update(override)
    np.savez(path, **{k_: v for k_, v in d.items() if v is not None})
    return d


def test_ict_npz_round_trip(tmp_path):
    p = tmp_path / "ict.npz"
    d = write_ict_npz(p)
    m = load_face_model(f"ict_npz:{p}")
    np.testing.assert_allclose(m.shape_basis, (d["id_basis"] * d["id_std"]).reshape(N, 3, -1), rtol=1e-6)
    np.testing.assert_allclose(m.expr_basis, d["exp_basis"].reshape(N, 3, -1))
    np.testing.assert_allclose(m.uv[:, 1], 1 - d["uv"][:, 1], atol=1e-7)
    np.testing.assert_array_equal(m.landmarks68, d["landmarks68"])
    assert m.expr_names == ["jawOpen", "eyeBlink_L"] and m.units == "cm"


def test_ict_npz_bad(tmp_path):
    p = tmp_path / "ict.npz"
    write_ict_npz(p, id_std=np.ones(3, np.float32))
    with pytest.raises(FaceModelError, match="id_std"):
        load_face_model(f"ict_npz:{p}")
    write_ict_npz(p, landmarks68=None)
    with pytest.raises(FaceModelError, match="landmarks68"):
        load_face_model(f"ict_npz:{p}")
    write_ict_npz(p, uv=np.zeros((N - 1, 2), np.float32))
    with pytest.raises(FaceModelError, match="uv"):
        load_face_model(f"ict_npz:{p}")
    # object arrays need pickle: refused
    write_ict_npz(p, exp_names=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FaceModelError, match="pickle"):
        load_face_model(f"ict_npz:{p}")


def test_shared_ict_npz_loads_with_landmarks_and_contours():
    p = require_shared(ICT_NPZ)
    m = load_face_model(f"ict_npz:{p}")
    assert m.num_vertices == 9409 and m.num_shape == 100 and m.num_expr == 53
    assert m.landmarks68.shape == (68,) and len(np.unique(m.landmarks68)) == 68
    x = m.mean_shape[m.landmarks68]
    assert np.all(x[0:8, 0] < 0) and np.all(x[9:17, 0] > 0)        # subject's right = -x
    assert np.all(x[36:42, 0] < 0) and np.all(x[42:48, 0] > 0)
    assert x[30, 2] > x[[36, 45, 48, 54, 8], 2].max()               # nose tip in front
    assert x[8, 1] < x[57, 1] < x[33, 1] < x[27, 1]                  # chin < lip < nose < bridge
    assert m.uv.min() >= 0 and m.uv.max() <= 1
    # v down: forehead above chin in the image sense
    assert m.uv[m.landmarks68[27], 1] < m.uv[m.landmarks68[8], 1]
    assert set(m.contour_candidates) == set(range(8)) | set(range(9, 17))
    narrow = np.load(p)["narrow_face_vertex_mask"]
    for slot, cand in m.contour_candidates.items():
        assert cand[0] == m.landmarks68[slot]
        assert len(cand) == len(set(cand.tolist()))
        # on the face: no neck, ears or scalp (tests/test_fitting.py checks more)
        assert narrow[cand].all()
    # std-scaled identity basis: unit coefficient = README's identityKKK delta
    np.testing.assert_allclose(
        m.shape_basis[:, :, 0], (np.load(p)["id_basis"][:, 0] * np.load(p)["id_std"][0]).reshape(-1, 3),
        rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- generic bad input
@pytest.mark.parametrize("spec", ["", "nonsense", "bfm2009", "bfm2009:", "xyz:/tmp/a", "default:x"])
def test_bad_specs(spec):
    with pytest.raises(FaceModelError) as e:
        load_face_model(spec)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("kind", ["bfm2009", "bfm2017", "deep3d", "ict_npz"])
def test_wrong_format_missing_empty_and_pickle(tmp_path, kind):
    missing = tmp_path / "nope.bin"
    with pytest.raises(FaceModelError, match="not found"):
        load_face_model(f"{kind}:{missing}")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(FaceModelError, match="empty"):
        load_face_model(f"{kind}:{empty}")
    text = tmp_path / "model.txt"
    text.write_text("this is not a face model\n" * 20)
    with pytest.raises(FaceModelError) as e:
        load_face_model(f"{kind}:{text}")
    assert "pickle" not in str(e.value)   # a text file is not "pickled object arrays"
    # a pickle that would run code if unpickled
    pk = tmp_path / "evil.pkl"
    pk.write_bytes(pickle.dumps({"shapeMU": np.zeros(3), "mean": np.zeros((3, 3))}))
    with pytest.raises(FaceModelError) as e:
        load_face_model(f"{kind}:{pk}")
    assert isinstance(e.value, TfFaceError) and "\n" not in str(e.value)


def test_contour_candidates_symmetric_on_symmetric_mesh():
    lm = grid_landmarks()
    # mirror landmarks: slot 16-j = reflected slot j
    cols = 21
    mirror_id = lambda i: (i // cols) * cols + (cols - 1 - i % cols)  # noqa: E731
    lm[9:17] = [mirror_id(i) for i in lm[0:8][::-1]]
    cc = contour_candidates(VERTS, TRIS, lm)
    for j in range(8):
        assert [mirror_id(i) for i in cc[j]] == cc[16 - j].tolist()


def test_ict_obj_expression_list_from_vertex_indices(tmp_path):
    face = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    write_obj(tmp_path / "generic_neutral_mesh.obj", face, [(0, 1, 2)], face[:, :2])
    for name in ("b", "a", "extra"):
        write_obj(tmp_path / f"{name}.obj", face + 0.1)
    (tmp_path / "vertex_indices.json").write_text('{"expressions": ["b", "a"]}')
    m = load_face_model(f"ict:{tmp_path}")
    assert m.expr_names == ["b", "a"] and m.num_expr == 2
    (tmp_path / "vertex_indices.json").write_text('{"expressions": ["b", "zz"]}')
    with pytest.raises(FaceModelError, match="zz.obj"):
        load_face_model(f"ict:{tmp_path}")
