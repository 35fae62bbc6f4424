"""UV atlas: exact interpolation, coverage, barycentric validity, disk cache."""

import numpy as np

from tests.conftest import ICT_NPZ, require_shared
from tf_face.facemodel.base import FaceModel
from tf_face.uv import atlas as atlas_mod
from tf_face.uv.atlas import build_atlas, get_atlas
from tf_face.testing.uv_maps import plane_grid, uv_sphere



def ict_model() -> FaceModel:
    with np.load(require_shared(ICT_NPZ), allow_pickle=False) as d:
        uv = d["uv"].astype(np.float32)
        uv[:, 1] = 1.0 - uv[:, 1]                  # OBJ v up -> tf_face v down
        return FaceModel(name="ict_test", mean_shape=d["mean"].astype(np.float32),
                         triangles=d["triangles"].astype(np.int32), uv=uv).validate()


def texel_centres(size):
    i, j = np.mgrid[0:size, 0:size]
    return np.stack([(j + 0.5) / size, (i + 0.5) / size], -1)


def check_atlas_invariants(at, n_tri):
    tid, bary, mask = at.tri_id, at.bary, at.mask
    assert tid.dtype == np.int32 and bary.dtype == np.float32 and mask.dtype == bool
    assert (mask == (tid >= 0)).all()
    assert ((tid[mask] >= 0) & (tid[mask] < n_tri)).all()
    assert (tid[~mask] == -1).all() and (bary[~mask] == 0).all()
    np.testing.assert_allclose(bary[mask].sum(-1), 1.0, atol=1e-5)
    assert (bary[mask] >= -1e-6).all()


def test_planar_grid_interpolation_is_exact():
    size = 96
    verts, tris, uv = plane_grid(n=12, jitter=0.35, seed=2)
    at = build_atlas(uv, tris, size)
    check_atlas_invariants(at, len(tris))
    centres = texel_centres(size)
    # UV box is [0.05, 0.95]^2: centres strictly inside are covered, outside not.
    inside = ((centres > 0.05 + 1e-6) & (centres < 0.95 - 1e-6)).all(-1)
    outside = ((centres < 0.05 - 1e-6) | (centres > 0.95 + 1e-6)).any(-1)
    assert at.mask[inside].all()
    assert not at.mask[outside].any()
    # Interpolating the vertex UVs gives back the texel centre.
    np.testing.assert_allclose(at.interpolate(uv)[at.mask], centres[at.mask], atol=1e-5)
    # A linear function of the (planar) vertex positions is reproduced exactly:
    # position of texel centre (u, v) is x = (u - .05)/.9, y = 1 - (v - .05)/.9.
    A = np.array([[1.5, -2.0, 0.3], [0.2, 0.7, -1.0]])
    b = np.array([0.4, -3.0])
    vals = verts @ A.T + b
    got = at.interpolate(vals.astype(np.float64))
    x = (centres[..., 0] - 0.05) / 0.9
    y = 1.0 - (centres[..., 1] - 0.05) / 0.9
    ref = np.stack([x, y, np.zeros_like(x)], -1) @ A.T + b
    np.testing.assert_allclose(got[at.mask], ref[at.mask], atol=1e-5)
    assert (got[~at.mask] == 0).all()
    # Scalar values give [H, W].
    assert at.interpolate(verts[:, 0]).shape == (size, size)


def test_random_delaunay_layout_covers_its_convex_hull():
    from scipy.spatial import ConvexHull, Delaunay
    rng = np.random.default_rng(5)
    uv = rng.uniform(0.1, 0.9, size=(300, 2))
    tri = Delaunay(uv)
    size = 128
    at = build_atlas(uv, tri.simplices, size)
    check_atlas_invariants(at, len(tri.simplices))
    centres = texel_centres(size).reshape(-1, 2)
    # Hull membership with a margin: points well inside are covered...
    eq = ConvexHull(uv).equations                     # hull facets: n.x + d <= 0 inside
    dist = (centres @ eq[:, :2].T + eq[:, 2]).max(1)  # signed distance to the hull
    assert at.mask.reshape(-1)[dist < -1e-6].all()
    assert not at.mask.reshape(-1)[dist > 1e-6].any()
    # ... and each texel's triangle really contains it.
    np.testing.assert_allclose(at.interpolate(uv)[at.mask], texel_centres(size)[at.mask], atol=1e-5)
    find = tri.find_simplex(centres[at.mask.reshape(-1)])
    interior = dist[at.mask.reshape(-1)] < -1e-3
    same = find[interior] == at.tri_id[at.mask][interior]
    assert same.mean() > 0.99   # differs only for centres on a shared edge


def test_sphere_atlas_and_interpolated_positions_lie_on_the_sphere():
    verts, tris, uv = uv_sphere(12, 20)
    at = build_atlas(uv, tris, 64)
    check_atlas_invariants(at, len(tris))
    assert at.mask.all()     # the UV layout tiles the whole square
    pos = at.interpolate(verts)
    r = np.linalg.norm(pos, axis=-1)
    assert (r <= 1 + 1e-6).all() and (r > np.cos(np.pi / 12) - 1e-3).all()


def test_disk_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_FACE_CACHE", str(tmp_path))
    atlas_mod.clear_memory_cache()
    verts, tris, uv = plane_grid(n=6)
    model = FaceModel(name="grid/../x", mean_shape=verts.astype(np.float32),
                      triangles=tris, uv=uv.astype(np.float32))
    a1 = get_atlas(model, 48)
    files = list((tmp_path / "atlas").glob("*.npz"))
    assert len(files) == 1 and files[0].parent == tmp_path / "atlas"
    assert [p.name for p in (tmp_path / "atlas").iterdir()] == [files[0].name]   # no temp file
    assert get_atlas(model, 48) is a1            # memory cache
    atlas_mod.clear_memory_cache()
    a2 = get_atlas(model, 48)                    # from disk
    assert a2 is not a1
    for name in ("tri_id", "bary", "mask", "triangles"):
        np.testing.assert_array_equal(getattr(a1, name), getattr(a2, name))
    assert a2.num_vertices == a1.num_vertices == len(verts)
    # A corrupt file is rebuilt, not trusted.
    files[0].write_bytes(b"not an npz")
    atlas_mod.clear_memory_cache()
    a3 = get_atlas(model, 48)
    np.testing.assert_array_equal(a3.tri_id, a1.tri_id)
    atlas_mod.load_atlas(files[0])               # rewritten and valid again
    # Another size is another entry.
    assert get_atlas(model, 32).size == 32
    atlas_mod.clear_memory_cache()


def test_ict_atlas():
    model = ict_model()
    at = build_atlas(model.uv, model.triangles, 256)
    check_atlas_invariants(at, len(model.triangles))
    np.testing.assert_allclose(at.interpolate(model.uv)[at.mask], texel_centres(256)[at.mask],
                               atol=1e-5)
    assert at.mask.mean() > 0.3
    # Every triangle with a UV area of several texels owns texels.
    uvp = model.uv[model.triangles] * 256
    e1, e2 = uvp[:, 1] - uvp[:, 0], uvp[:, 2] - uvp[:, 0]
    area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    owned = np.zeros(len(model.triangles), bool)
    owned[np.unique(at.tri_id[at.mask])] = True
    assert owned[area > 4].all()


def test_to_grid_scatters_rows():
    verts, tris, uv = plane_grid(n=4)
    at = build_atlas(uv, tris, 16)
    m = at.texel_index.size
    vals = np.arange(m * 2, dtype=np.float32).reshape(m, 2)
    grid = at.to_grid(vals)
    assert grid.shape == (16, 16, 2)
    np.testing.assert_array_equal(grid[at.mask], vals)
    assert (grid[~at.mask] == 0).all()
    rows = np.arange(0, m, 3)
    part = at.to_grid(vals[rows], rows)
    np.testing.assert_array_equal(part.reshape(-1, 2)[at.texel_index[rows]], vals[rows])
    assert np.count_nonzero(part.any(-1)) <= rows.size


def test_to_grid_keeps_channel_counts_apart():
    """The cached flat index is per channel count: 3, 1 and 3 channels again."""
    verts, tris, uv = plane_grid(n=4)
    at = build_atlas(uv, tris, 16)
    m = at.texel_index.size
    rng = np.random.default_rng(0)
    for shape in ((m, 3), (m,), (m, 3), (m, 2, 2)):
        vals = rng.normal(size=shape).astype(np.float32)
        grid = at.to_grid(vals)
        assert grid.shape == (16, 16) + shape[1:]
        np.testing.assert_array_equal(grid[at.mask], vals)
        assert (grid[~at.mask] == 0).all()


def test_albedo_np_matches_the_float64_formula():
    """UVAlbedoModel.albedo_np (covered texels only, cached [K, N] basis) ==
    m_a + U_a p_a in float64, texels outside the model 0, batch of 2."""
    from tf_face.uv.albedo_model import UVAlbedoModel
    rng = np.random.default_rng(1)
    covered = rng.random((12, 12)) < 0.6
    mean = np.where(covered[..., None], rng.random((12, 12, 3)), 0.0).astype(np.float32)
    basis = np.where(covered[..., None, None], rng.normal(size=(12, 12, 3, 5)),
                     0.0).astype(np.float32)
    model = UVAlbedoModel(mean, basis)
    p = rng.normal(size=(2, 5)).astype(np.float32)
    want = mean.astype(np.float64)[None] + np.einsum("hwck,bk->bhwc", basis.astype(np.float64),
                                                     p.astype(np.float64))
    for _ in range(2):                      # first call builds the cache, second uses it
        got = model.albedo_np(p)
        assert got.shape == (2, 12, 12, 3) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert (got[:, ~covered] == 0).all()
    np.testing.assert_allclose(model.albedo_np(p[0])[0], want[0], atol=1e-5)
