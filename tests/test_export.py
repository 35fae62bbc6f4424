"""OBJ/MTL/GLB writers parse back; the detail mesh, displacement and detail normals."""

import json
import struct

import cv2
import numpy as np
import pytest
import trimesh

from tests.conftest import ICT_NPZ, require_shared
from tf_face.files import detail_mesh as dm
from tf_face.files import mesh_files as mf
from tf_face.raster.zbuffer import rasterize


def detail_normals(positions, mask, reference_normals=None, base_positions=None) -> np.ndarray:
    """Unit normal map ``[H,W,3]`` of the (displaced) grid, float32; 0 outside ``mask``.

    The tests' map-level view of the one formula of ``tf_face.detail.np_ops``
    (was ``tf_face.files.detail_mesh.detail_normals``, which only tests used):
    positions only: the grid vertex normals (0 at valid texels in no
    triangle); with ``reference_normals``: flipped to agree with them by
    majority, and texels in no triangle take the reference; with
    ``base_positions`` too: ``detail_normals_np`` (only what the displacement
    changes; zero displacement gives the reference back).
    """
    from tf_face.detail.np_ops import detail_normals_np, grid_orientation, grid_vertex_normals

    mask, (pos, ref, base) = dm._check_maps(mask, positions, reference_normals, base_positions)
    if base is not None and ref is None:
        raise ValueError("base_positions needs reference_normals")
    if base is not None:
        return detail_normals_np(pos, base, ref, mask)
    vn = grid_vertex_normals(pos, mask)
    if ref is not None:
        vn = grid_orientation(pos, ref, mask) * vn
        empty = mask & ~np.any(vn != 0, axis=-1)
        vn[empty] = dm._unit(ref)[empty]
    return np.where(mask[..., None], vn, 0.0).astype(np.float32)


def hemisphere_mesh(n=33, radius=80.0, center=(100.0, 100.0)):
    """UV-mapped hemisphere bulging towards the camera, in the image frame.

    A square (a, b) grid in [-1, 1]^2 is mapped onto the disc (the square's
    boundary goes to the circle); z = -sqrt(R^2 - x^2 - y^2) (smaller z =
    nearer); uv = ((a + 1) / 2, (b + 1) / 2) with v down like the rows.
    Triangles follow the detail-mesh grid convention, which is front facing
    (CCW from outside) here.
    """
    a, b = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n))
    r = np.maximum(np.abs(a), np.abs(b))
    h = np.hypot(a, b)
    k = np.where(h > 0, r / np.maximum(h, 1e-12), 0.0)
    x, y = a * k, b * k
    z = -np.sqrt(np.clip(1.0 - x * x - y * y, 0.0, None))
    verts = np.stack([center[0] + radius * x, center[1] + radius * y, radius * z], -1)
    from tf_face.render.adjacency import grid_triangles
    tris, _ = grid_triangles(np.ones((n, n), bool))
    uv = np.stack([(a + 1) / 2, (b + 1) / 2], -1).reshape(-1, 2)
    return verts.reshape(-1, 3), tris.astype(np.int64), uv


def checker_png(size=64) -> tuple[np.ndarray, bytes]:
    img = np.zeros((size, size, 3), np.uint8)
    img[...] = (230, 120, 40)
    img[::8] = (40, 40, 200)
    ok, png = cv2.imencode(".png", img[..., ::-1])
    assert ok
    return img, png.tobytes()


# ---------------------------------------------------------------- OBJ / MTL

def _trimesh_load(path):
    """The one mesh in ``path`` as trimesh (an independent parser) reads it."""
    loaded = trimesh.load(path, process=False, maintain_order=True)
    meshes = list(loaded.geometry.values()) if hasattr(loaded, "geometry") else [loaded]
    assert len(meshes) == 1
    return meshes[0]


def _glb_json(data: bytes) -> dict:
    """The JSON chunk of a GLB (header: magic, version, length; chunk: length, type)."""
    magic, version, length = struct.unpack_from("<III", data)
    assert (magic, version, length) == (0x46546C67, 2, len(data)) and len(data) % 4 == 0
    jlen, jtype = struct.unpack_from("<II", data, 12)
    assert jtype == 0x4E4F534A and jlen % 4 == 0
    blen, btype = struct.unpack_from("<II", data, 20 + jlen)
    assert btype == 0x004E4942 and 28 + jlen + blen == len(data)
    gltf = json.loads(data[20:20 + jlen])
    assert gltf["buffers"][0]["byteLength"] == blen
    return gltf


def test_obj_mtl_round_trip(tmp_path):
    v, t, uv = hemisphere_mesh(9)
    normals = -np.asarray(mf.image_to_export(v))  # any non-zero normals
    img, png = checker_png()
    (tmp_path / "albedo.png").write_bytes(png)
    path = mf.write_obj(tmp_path / "mesh.obj", v, t, uv, normals=normals,
                        texture_name="albedo.png")
    mesh = _trimesh_load(path)
    np.testing.assert_allclose(mesh.vertices, v, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, t)
    np.testing.assert_allclose(mesh.visual.uv[:, 0], uv[:, 0], atol=1e-6)
    np.testing.assert_allclose(mesh.visual.uv[:, 1], 1.0 - uv[:, 1], atol=1e-6)   # v flipped
    unit = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    np.testing.assert_allclose(mesh.vertex_normals, unit, atol=1e-5)
    assert mesh.visual.material.name == "face"
    np.testing.assert_array_equal(np.asarray(mesh.visual.material.image.convert("RGB")), img)
    text = path.read_text()
    assert "mtllib mesh.mtl\n" in text and "usemtl face\n" in text
    assert "map_Kd albedo.png" in (tmp_path / "mesh.mtl").read_text()


def test_obj_without_uv_or_normals(tmp_path):
    v, t, _ = hemisphere_mesh(5)
    path = mf.write_obj(tmp_path / "plain.obj", v, t)
    mesh = _trimesh_load(path)
    np.testing.assert_allclose(mesh.vertices, v, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, t)
    assert getattr(mesh.visual, "uv", None) is None
    assert not any(line.split()[0] in ("vt", "vn", "mtllib", "usemtl")
                   for line in path.read_text().splitlines() if line.strip())
    assert not (tmp_path / "plain.mtl").exists()


@pytest.mark.parametrize("corner", ["%d", "%d/%d", "%d//%d", "%d/%d/%d"])
def test_obj_face_lines_are_the_per_index_format(corner):
    """write_obj's face lines (each vertex's corner text formatted once) are the
    text of formatting every index, with indices of 1 to 6 digits."""
    rng = np.random.default_rng(4)
    faces = np.concatenate([rng.integers(1, 10, (50, 3)), rng.integers(1, 200_000, (500, 3)),
                            [[1, 99_999, 100_000]]])
    k = corner.count("%d")
    line = "f " + " ".join([corner] * 3) + "\n"
    expected = "".join(line % tuple(np.repeat(row, k)) for row in faces)
    assert mf._face_rows(faces, corner) == expected
    assert mf._face_rows(faces[:0], corner) == ""


@pytest.mark.parametrize("bad", ["../albedo.png", "/tmp/a.png", "a b.png", ""])
def test_obj_rejects_unsafe_names(tmp_path, bad):
    v, t, uv = hemisphere_mesh(5)
    with pytest.raises(ValueError):
        mf.write_obj(tmp_path / "m.obj", v, t, uv, texture_name=bad)


def test_obj_rejects_bad_triangles(tmp_path):
    v, t, uv = hemisphere_mesh(5)
    with pytest.raises(ValueError):
        mf.write_obj(tmp_path / "m.obj", v, t + len(v), uv)


def test_obj_loads_textured_in_trimesh(tmp_path):
    v, t, uv = hemisphere_mesh(9)
    img, png = checker_png()
    (tmp_path / "albedo.png").write_bytes(png)
    mf.write_obj(tmp_path / "mesh.obj", v, t, uv, texture_name="albedo.png")
    mesh = trimesh.load(tmp_path / "mesh.obj", process=False, maintain_order=True)
    assert mesh.vertices.shape == v.shape and mesh.faces.shape == t.shape
    np.testing.assert_allclose(mesh.visual.uv, np.stack([uv[:, 0], 1 - uv[:, 1]], 1), atol=1e-6)
    tex = mesh.visual.material.image
    assert tex is not None and tex.size == (img.shape[1], img.shape[0])


# ---------------------------------------------------------------- GLB

def test_glb_round_trip(tmp_path):
    v, t, uv = hemisphere_mesh(9)
    ve = mf.image_to_export(v)
    img, png = checker_png()
    normals = ve / np.linalg.norm(ve, axis=1, keepdims=True)
    path = mf.write_glb(tmp_path / "mesh.glb", ve, t, uv, png, normals=normals)
    gltf = _glb_json(path.read_bytes())
    assert gltf["asset"]["version"] == "2.0"
    for view in gltf["bufferViews"]:
        assert view["byteOffset"] % 4 == 0
    prim = gltf["meshes"][0]["primitives"][0]
    acc = gltf["accessors"][prim["attributes"]["POSITION"]]
    np.testing.assert_array_equal(acc["min"], ve.astype(np.float32).min(0))
    np.testing.assert_array_equal(acc["max"], ve.astype(np.float32).max(0))
    mat = gltf["materials"][prim["material"]]
    tex = gltf["textures"][mat["pbrMetallicRoughness"]["baseColorTexture"]["index"]]
    assert "sampler" in tex and gltf["images"][tex["source"]]["mimeType"] == "image/png"
    mesh = _trimesh_load(path)
    np.testing.assert_array_equal(mesh.vertices, ve.astype(np.float32))
    np.testing.assert_array_equal(mesh.faces, t)
    # glTF's v is down like tf_face's (no flip in the file); trimesh flips it on load
    np.testing.assert_allclose(mesh.visual.uv, np.stack([uv[:, 0], 1 - uv[:, 1]], 1), atol=1e-6)
    np.testing.assert_allclose(mesh.vertex_normals, normals, atol=1e-6)
    base = mesh.visual.material.baseColorTexture
    np.testing.assert_array_equal(np.asarray(base.convert("RGB")), img)


def test_glb_export_frame_keeps_faces_outward(tmp_path):
    """image_to_export is a rotation: CCW-from-outside stays outward (+z for a frontal cap)."""
    v, t, uv = hemisphere_mesh(9)
    ve = mf.image_to_export(v)
    fn = np.cross(ve[t[:, 1]] - ve[t[:, 0]], ve[t[:, 2]] - ve[t[:, 0]])
    centroid = ve[t].mean(1)
    outward = np.einsum("ij,ij->i", fn, centroid - ve.mean(0) + [0, 0, 80.0])
    assert (outward > 0).mean() > 0.95
    assert ve[np.argmax(ve[:, 2])][2] > 0   # the apex (nearest the camera) is at +z


def test_glb_rejects_non_png(tmp_path):
    v, t, uv = hemisphere_mesh(5)
    with pytest.raises(ValueError):
        mf.write_glb(tmp_path / "m.glb", v, t, uv, b"GIF89a....")


def test_glb_loads_in_trimesh(tmp_path):
    v, t, uv = hemisphere_mesh(9)
    img, png = checker_png()
    mf.write_glb(tmp_path / "mesh.glb", mf.image_to_export(v), t, uv, png)
    scene = trimesh.load(tmp_path / "mesh.glb", process=False)
    meshes = list(scene.geometry.values()) if hasattr(scene, "geometry") else [scene]
    assert len(meshes) == 1
    mesh = meshes[0]
    assert mesh.vertices.shape == v.shape and mesh.faces.shape == t.shape
    # trimesh stores uv with v up (it flips glTF's v on load).
    np.testing.assert_allclose(mesh.visual.uv, np.stack([uv[:, 0], 1 - uv[:, 1]], 1), atol=1e-6)
    base = mesh.visual.material.baseColorTexture
    assert base is not None and base.size == (img.shape[1], img.shape[0])
    np.testing.assert_array_equal(np.asarray(base.convert("RGB")), img)


# ---------------------------------------------------------------- detail mesh

def _flat_maps(h, w, mirrored=False):
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    x = -c if mirrored else c
    pos = np.stack([x, -r, np.zeros_like(r)], -1)    # camera frame, UV laid out like a photo
    nrm = np.zeros((h, w, 3))
    nrm[..., 2] = 1.0
    return pos, nrm


def test_detail_mesh_counts_and_validity():
    rng = np.random.default_rng(0)
    mask = rng.random((12, 15)) > 0.3
    pos, nrm = _flat_maps(12, 15)
    mesh = dm.build_detail_mesh(mask, pos, nrm)
    assert len(mesh.vertices) == mask.sum()
    # brute-force reference: both diagonal triangles of each 2x2 block whose 3 texels are valid
    expect = 0
    for r in range(11):
        for c in range(14):
            expect += mask[r, c] and mask[r + 1, c] and mask[r + 1, c + 1]
            expect += mask[r, c] and mask[r + 1, c + 1] and mask[r, c + 1]
    assert len(mesh.triangles) == expect
    rows, cols = np.divmod(mesh.texel_index[mesh.triangles], 15)
    assert mask[rows, cols].all()
    assert (rows.max(1) - rows.min(1) <= 1).all() and (cols.max(1) - cols.min(1) <= 1).all()
    rr, cc = np.divmod(mesh.texel_index, 15)
    np.testing.assert_allclose(mesh.uv, np.stack([(cc + 0.5) / 15, (rr + 0.5) / 12], 1), atol=1e-7)
    np.testing.assert_allclose(mesh.vertices, pos[rr, cc], atol=1e-6)


@pytest.mark.parametrize("mirrored", [False, True])
def test_detail_mesh_orientation_follows_normals(mirrored):
    mask = np.ones((6, 7), bool)
    pos, nrm = _flat_maps(6, 7, mirrored)
    mesh = dm.build_detail_mesh(mask, pos, nrm)
    assert mesh.flipped == mirrored
    v, t = mesh.vertices.astype(np.float64), mesh.triangles
    fn = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    assert (fn[:, 2] > 0).all()


def test_detail_mesh_drops_triangles_across_islands():
    mask = np.ones((4, 6), bool)
    pos, nrm = _flat_maps(4, 6)
    pos[:, 3:, 0] += 100.0           # columns 3.. belong to a far-away island
    mesh = dm.build_detail_mesh(mask, pos, nrm)
    t = mesh.triangles
    cols = mesh.texel_index[t] % 6
    assert not ((cols.min(1) == 2) & (cols.max(1) == 3)).any()
    assert len(t) == 2 * 3 * (2 + 2)
    assert len(dm.build_detail_mesh(mask, pos, nrm, max_edge_ratio=None).triangles) == 2 * 3 * 5


def _bump(h=41, w=41, amp=3.0, sigma=5.0):
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    d = amp * np.exp(-((c - cx) ** 2 + (r - cy) ** 2) / (2 * sigma ** 2))
    return d, r, c, cy, cx


def test_displace_and_detail_normals_of_a_bump():
    d, r, c, cy, cx = _bump()
    mask = np.ones(d.shape, bool)
    pos, nrm = _flat_maps(*d.shape)
    disp = dm.displace(pos, nrm, d, mask)
    np.testing.assert_allclose(disp[..., 2], d, atol=1e-6)
    np.testing.assert_allclose(disp[..., :2], pos[..., :2], atol=1e-6)
    flat = detail_normals(pos, mask)
    np.testing.assert_allclose(flat[..., 2], 1.0, atol=1e-6)      # flat grid: +z everywhere
    n = detail_normals(disp, mask, reference_normals=nrm)
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-5)
    # surface z = d(x, y) with x = c, y = -r: outward normal ~ (-dd/dx, -dd/dy, 1)
    ddx = -(c - cx) / 5.0 ** 2 * d
    ddy = (r - cy) / 5.0 ** 2 * d          # d/dy = -d/dr
    ref = np.stack([-ddx, -ddy, np.ones_like(d)], -1)
    ref /= np.linalg.norm(ref, axis=-1, keepdims=True)
    inner = (slice(2, -2), slice(2, -2))
    assert np.abs(n[inner] - ref[inner]).max() < 0.06
    # direction: right of the bump tilts to +x, left to -x, above (smaller row) to +y
    row, col = int(cy), int(cx)
    assert n[row, col + 4, 0] > 0.2 and n[row, col - 4, 0] < -0.2
    assert n[row - 4, col, 1] > 0.2 and n[row + 4, col, 1] < -0.2
    assert n[row, col, 2] > 0.99


def test_detail_normals_mask_and_mirrored_reference():
    d, *_ = _bump(21, 21)
    mask = np.ones(d.shape, bool)
    mask[:, :3] = False
    mask[10, 10] = False
    pos, nrm = _flat_maps(*d.shape, mirrored=True)
    n = detail_normals(dm.displace(pos, nrm, d, mask), mask, reference_normals=nrm)
    assert (n[~mask] == 0).all()
    assert (n[mask][:, 2] > 0.5).all()      # flipped to agree with the reference (+z)


def test_displacement_png_round_trip(tmp_path):
    d, *_ = _bump(32, 48, amp=2.5)
    d = d - 0.7
    mask = np.ones(d.shape, bool)
    mask[:4] = False
    path = dm.write_displacement_png(tmp_path / "displacement.png", d, mask=mask)
    meta = json.loads((tmp_path / "displacement.json").read_text())
    q = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert q.dtype == np.uint16 and q.shape == d.shape
    back, meta2 = dm.read_displacement_png(path)
    assert meta2 == meta
    step = meta["scale"] / 65535
    assert np.abs(back[mask] - d[mask]).max() <= 0.5 * step + 1e-6
    assert meta["offset"] == pytest.approx(d[mask].min())
    assert meta["offset"] + meta["scale"] == pytest.approx(d[mask].max())


def test_displacement_png_fixed_scale_clips(tmp_path):
    d = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    dm.write_displacement_png(tmp_path / "d.png", d, scale=2.0, offset=-1.0)
    back, _ = dm.read_displacement_png(tmp_path / "d.png")
    np.testing.assert_allclose(back[0], [-1.0, -0.5, 0.0, 0.5, 1.0], atol=2.0 / 65535)


def test_ict_atlas_detail_mesh_is_outward():
    """On the real ICT UV layout the grid winding agrees with the base mesh (no flip)."""
    path = require_shared(ICT_NPZ)
    data = np.load(path, allow_pickle=False)
    verts = data["mean"].astype(np.float64)
    tris = data["triangles"][data["narrow_face_tri_mask"]].astype(np.int64)
    uv = data["uv"].astype(np.float64).copy()
    uv[:, 1] = 1.0 - uv[:, 1]                       # npz is OBJ convention (v up)
    size = 128
    uv_px = np.concatenate([uv * size - 0.5, np.zeros((len(uv), 1))], 1)
    tri_id, bary, _ = rasterize(uv_px, tris, size, size)
    mask = tri_id >= 0
    corners = tris[np.maximum(tri_id, 0)]
    pos = np.einsum("hwk,hwkc->hwc", bary, verts[corners])
    fn = np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]])
    vn = np.zeros_like(verts)
    for k in range(3):
        np.add.at(vn, tris[:, k], fn)
    nrm = np.einsum("hwk,hwkc->hwc", bary, vn[corners])
    pos[~mask] = 0
    nrm[~mask] = 0
    mesh = dm.build_detail_mesh(mask, pos, nrm)
    assert len(mesh.vertices) == mask.sum() > 1000
    assert not mesh.flipped
    n = detail_normals(pos, mask)
    ref = nrm / np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-12)
    agree = np.einsum("ij,ij->i", n[mask], ref[mask])
    assert np.median(agree) > 0.95


def test_detail_normals_relative_to_smooth_base():
    """With base positions, zero displacement gives the reference normals back exactly,
    and a bump on a flat base gives the same normals as the plain grid normals."""
    rng = np.random.default_rng(3)
    h, w = 20, 24
    pos, _ = _flat_maps(h, w)
    pos[..., 2] = np.cumsum(rng.random((h, w)), axis=1) * 0.3       # a faceted, tilted base
    smooth = np.zeros((h, w, 3))
    smooth[..., 2] = 1.0
    smooth[..., 0] = rng.normal(0, 0.05, (h, w))
    mask = np.ones((h, w), bool)
    smooth_unit = smooth / np.linalg.norm(smooth, axis=-1, keepdims=True)
    n0 = detail_normals(pos, mask, reference_normals=smooth, base_positions=pos)
    np.testing.assert_allclose(n0, smooth_unit, atol=1e-6)
    d, *_ = _bump(h, w, amp=2.0, sigma=3.0)
    flat, nrm = _flat_maps(h, w)
    moved = dm.displace(flat, nrm, d, mask)
    np.testing.assert_allclose(
        detail_normals(moved, mask, reference_normals=nrm, base_positions=flat),
        detail_normals(moved, mask), atol=1e-6)
    with pytest.raises(ValueError):
        detail_normals(moved, mask, base_positions=flat)


def test_image_to_export_origin():
    v, _, _ = hemisphere_mesh(5)
    cam = v * [1.0, -1.0, -1.0]
    e = mf.image_to_export(v)
    np.testing.assert_allclose(0.5 * (e.min(0) + e.max(0)), 0.0, atol=1e-9)
    o = mf.export_origin(v)
    np.testing.assert_allclose(e, cam - o)
    np.testing.assert_allclose(mf.image_to_export(v[:3], origin=o), cam[:3] - o)
    np.testing.assert_allclose(mf.image_to_export(v, center=False), cam)


def test_pad_texture_copies_the_nearest_atlas_texel_outside():
    """Outside the mask every texel equals one of its nearest inside texels
    (brute force); inside nothing changes; uint8 and float, empty/full masks."""
    from tf_face.files.mesh_files import pad_texture
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:37, :41]
    mask = ((yy - 18) ** 2 + (xx - 20) ** 2 < 144) | ((yy < 4) & (xx > 36))   # two islands
    for img in (rng.random((37, 41, 3)).astype(np.float32),
                rng.integers(0, 256, (37, 41, 3), dtype=np.uint8)):
        out = pad_texture(img, mask)
        assert out.dtype == img.dtype and out.shape == img.shape
        np.testing.assert_array_equal(out[mask], img[mask])
        iy, ix = np.nonzero(mask)
        for y, x in zip(*np.nonzero(~mask)):
            d = (iy - y) ** 2 + (ix - x) ** 2
            near = {tuple(img[a, b]) for a, b in zip(iy[d == d.min()], ix[d == d.min()])}
            assert tuple(out[y, x]) in near, (y, x)
    np.testing.assert_array_equal(pad_texture(img, np.zeros(mask.shape, bool)), img)
    np.testing.assert_array_equal(pad_texture(img, np.ones(mask.shape, bool)), img)
    with pytest.raises(ValueError, match="does not match"):
        pad_texture(img, mask[:-1])
