"""One detail-normal formula: TF (training) == numpy (serving, export) ==
an index-list reference built from ``grid_triangles``; an analytic case; the
TF path's gradient; the training vs serving displacement conventions."""

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_face.render.adjacency import grid_triangles  # noqa: E402
from tf_face.detail import np_ops as npd  # noqa: E402
from tf_face.detail import tf_ops as tfd  # noqa: E402


@pytest.fixture(scope="module")
def face_maps():
    """Position (pixels) and normal maps of the default model's 64² atlas, and valid."""
    from tf_face.facemodel import default_model
    from tf_face.uv import get_atlas
    from tf_face.facemodel.mesh import vertex_normals
    model = default_model()
    atlas = get_atlas(model, size=64)
    verts = model.mean_shape.astype(np.float64)
    nrm = atlas.interpolate(vertex_normals(verts, model.triangles).astype(np.float32))
    nrm = nrm / np.maximum(np.linalg.norm(nrm, axis=-1, keepdims=True), 1e-8)
    valid = atlas.mask & np.any(nrm != 0, axis=-1)
    nrm = np.where(valid[..., None], nrm, 0.0).astype(np.float32)
    # camera-like frame in pixels (y down), like UVSample.position: fit scale 30
    # px per model unit, a face ~80 px wide, ~2 px between texels
    pos = atlas.interpolate((verts * [30.0, -30.0, -30.0]).astype(np.float32))
    pos = np.where(atlas.mask[..., None], pos, 0.0).astype(np.float32)
    return pos, nrm, valid


def reference_normals(moved, base, ref, valid):
    """Index-list reference (float64): grid_triangles + bincount vertex normals."""
    tris, texel_index = grid_triangles(valid)
    tris = tris.astype(np.int64)

    def vnormals(p):
        v = p.reshape(-1, 3)[texel_index].astype(np.float64)
        a, b, c = (v[tris[:, k]] for k in range(3))
        fn = np.cross(b - a, c - a)
        acc = np.zeros_like(v)
        for k in range(3):
            for j in range(3):
                acc[:, j] += np.bincount(tris[:, k], fn[:, j], minlength=len(v))
        n = np.linalg.norm(acc, axis=1, keepdims=True)
        return np.where(n > 0, acc / np.maximum(n, 1e-300), 0.0)

    r = ref.reshape(-1, 3)[texel_index].astype(np.float64)
    r = r / np.maximum(np.linalg.norm(r, axis=1, keepdims=True), 1e-300)
    bn = vnormals(base)
    agree = np.einsum("ij,ij->i", bn, r)
    sign = -1.0 if np.sum(agree < 0) > np.sum(agree > 0) else 1.0
    n = r + sign * (vnormals(moved) - bn)
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    out = np.zeros((valid.size, 3))
    out[texel_index] = n
    return out.reshape(valid.shape + (3,)), sign


def tf_normals(pos, nrm, disp, valid, dtype=tf.float32):
    """TF path on one sample: Δd = disp · n̂ (disp [H,W]) -> [H,W,3], sign."""
    p = tf.constant(pos[None], dtype)
    n = tf.constant(nrm[None], dtype)
    v = tf.constant(valid[None, ..., None], dtype)
    delta = tfd.displacement_from_rate(tf.constant(disp[None, ..., None], dtype), n, v)
    orient = tfd.fd_orientation(p, n, v)          # the benchmark's name for it
    out = tfd.detail_normals(p, n, delta, v, orient)
    return out[0].numpy(), float(orient.numpy().reshape(-1)[0])


@pytest.mark.parametrize("flip", [False, True])
def test_tf_numpy_and_index_reference_agree_on_the_face_atlas(face_maps, flip):
    pos, nrm, valid = face_maps
    if flip:                       # the other orientation of the majority vote
        nrm = -nrm
    rng = np.random.default_rng(0)
    disp = (rng.normal(size=valid.shape) * 0.5 * valid).astype(np.float32)   # pixels
    moved = npd.displace_np(pos, nrm, disp, valid)
    got_np = npd.detail_normals_np(moved, pos, nrm, valid)
    got_tf, sign_tf = tf_normals(pos, nrm, disp, valid)
    want, sign = reference_normals(moved, pos, nrm, valid)
    assert sign_tf == npd.grid_orientation(pos, nrm, valid) == sign
    np.testing.assert_allclose(got_tf, got_np, atol=1e-5)
    np.testing.assert_allclose(got_np, want, atol=1e-5)
    assert (got_np[~valid] == 0).all() and (got_tf[~valid] == 0).all()
    # the displacement matters (not a trivially passing identity)
    assert np.abs(got_np - nrm)[valid].max() > 0.1
    # the map-level helper of the export tests is the same formula
    from tests.test_export import detail_normals
    np.testing.assert_allclose(detail_normals(moved, valid, reference_normals=nrm,
                                              base_positions=pos), want, atol=1e-6)


def test_orientation_votes_agree_with_numpy_per_sample(face_maps):
    pos, nrm, valid = face_maps
    p = tf.constant(np.stack([pos, pos]), tf.float32)
    n = tf.constant(np.stack([nrm, -nrm]), tf.float32)
    v = tf.constant(np.stack([valid, valid])[..., None], tf.float32)
    got = tfd.grid_orientation(p, n, v).numpy().reshape(-1)
    want = [npd.grid_orientation(pos, nrm, valid), npd.grid_orientation(pos, -nrm, valid)]
    assert list(got) == want and want[0] == -want[1]


def test_training_and_serving_conventions_give_the_same_normals(face_maps):
    """Training: P / (s·u), Δd = r_d n̂; serving: pixels, d_px = r_d·s·u
    (the conventions of tf_face.detail.np_ops's module doc)."""
    from tf_face.serving.reconstruct import detail_maps
    from tf_face.types import UVSample
    pos, nrm, valid = face_maps
    scale, unit = 30.0, 0.7                             # fit scale, detail unit
    rate = (np.random.default_rng(1).normal(size=valid.shape) * 0.02).astype(np.float32)
    sample = UVSample(np.zeros(pos.shape, np.float32), valid, nrm, pos)
    v_serve, disp_px, _, n_serve = detail_maps(sample, valid, rate, scale, unit)
    assert (v_serve == valid).all()
    n_train, _ = tf_normals(pos / (scale * unit), nrm, rate, valid)
    np.testing.assert_allclose(disp_px, rate * scale * unit * valid, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(n_train, n_serve, atol=1e-5)
    assert np.abs(n_serve - nrm)[valid].max() > 0.1


def test_tilted_plane_with_a_linear_ramp_has_the_known_normal():
    """P = (c, -r, a·c) (a plane tilted about the y axis), reference = its unit
    normal n̂, displaced by the linear ramp d = k·c along n̂: the moved surface
    is the plane spanned by (1, 0, a) + k n̂ and (0, -1, 0), whose unit normal
    is the detail normal everywhere (borders included: a plane's grid normals
    are the same at every texel)."""
    h, w, a, k = 9, 11, 0.5, 0.2
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    pos = np.stack([c, -r, a * c], -1)
    n_hat = np.array([-a, 0.0, 1.0]) / np.hypot(a, 1.0)   # (dP/dv x dP/du) direction: +z side
    nrm = np.broadcast_to(n_hat, pos.shape).copy()
    valid = np.ones((h, w), bool)
    disp = k * c
    moved = pos + disp[..., None] * n_hat
    # the moved surface is a plane spanned by d/dc = (1, 0, a) + k n̂ and d/dr = (0, -1, 0)
    tc, tr = np.array([1.0, 0.0, a]) + k * n_hat, np.array([0.0, -1.0, 0.0])
    plane = np.cross(tr, tc)
    plane /= np.linalg.norm(plane)
    assert plane @ n_hat > 0
    # base grid normal = n̂ exactly, so n = normalise(n̂ + (plane - n̂)) = plane
    got_np = npd.detail_normals_np(moved, pos, nrm, valid)
    got_tf, sign = tf_normals(pos, nrm, disp, valid, tf.float64)
    assert sign == 1.0
    np.testing.assert_allclose(got_np, np.broadcast_to(plane, pos.shape), atol=1e-6)
    np.testing.assert_allclose(got_tf, np.broadcast_to(plane, pos.shape), atol=1e-12)
    # mirrored layout (u runs to -x): the vote flips the grid normals, same result
    pos_m = pos * [-1.0, 1.0, 1.0]
    nrm_m = nrm * [-1.0, 1.0, 1.0]
    moved_m = pos_m + disp[..., None] * nrm_m
    want_m = np.broadcast_to(plane * [-1.0, 1.0, 1.0], pos.shape)
    got_m, sign_m = tf_normals(pos_m, nrm_m, disp, valid, tf.float64)
    assert sign_m == -1.0 == npd.grid_orientation(pos_m, nrm_m, valid)
    np.testing.assert_allclose(got_m, want_m, atol=1e-12)
    np.testing.assert_allclose(npd.detail_normals_np(moved_m, pos_m, nrm_m, valid), want_m,
                               atol=1e-6)


def test_zero_displacement_gives_the_reference_normals(face_maps):
    pos, nrm, valid = face_maps
    zero = np.zeros(valid.shape, np.float32)
    got_tf, _ = tf_normals(pos, nrm, zero, valid)
    np.testing.assert_allclose(got_tf, nrm, atol=1e-6)
    np.testing.assert_allclose(npd.detail_normals_np(pos, pos, nrm, valid), nrm, atol=1e-6)


def test_tf_path_gradient_matches_finite_differences():
    """tf.test.compute_gradient of the TF detail normals w.r.t. the moving rate (float64)."""
    rng = np.random.default_rng(2)
    h, w = 6, 7
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    pos = np.stack([c, -r, 0.3 * np.sin(c) + 0.2 * np.cos(r)], -1)[None]
    nrm = rng.normal(size=(1, h, w, 3)) * 0.1 + [0.0, 0.0, 1.0]
    valid = np.ones((1, h, w, 1))
    valid[0, 0, 0] = valid[0, 4, 5] = 0.0
    p, n, v = (tf.constant(x, tf.float64) for x in (pos, nrm, valid))
    orient = tfd.grid_orientation(p, n, v)
    weights = tf.constant(rng.normal(size=(1, h, w, 3)))

    def f(rate):
        delta = tfd.displacement_from_rate(rate, n, v)
        return tf.reduce_sum(weights * tfd.detail_normals(p, n, delta, v, orient), axis=-1)

    rate0 = tf.constant(rng.normal(size=(1, h, w, 1)) * 0.2)
    theo, numer = tf.test.compute_gradient(f, [rate0], delta=1e-6)
    assert np.abs(theo[0]).max() > 0.1
    np.testing.assert_allclose(theo[0], numer[0], atol=1e-6)
    # and finite through the training graph at Δd = 0 and at invalid texels
    rate = tf.Variable(tf.zeros((1, h, w, 1), tf.float64))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(f(rate))
    g = tape.gradient(loss, rate)
    assert np.all(np.isfinite(g.numpy()))


def test_serving_detail_maps_in_one_pass_equal_the_two_steps():
    """displaced_detail_normals_np (serving) = displace_np then detail_normals_np, bit for bit."""
    rng = np.random.default_rng(3)
    h, w = 40, 48
    pos = (rng.normal(size=(h, w, 3)) * 30).astype(np.float32)
    nrm = rng.normal(size=(h, w, 3)).astype(np.float32)
    valid = rng.random((h, w)) > 0.2
    nrm[~valid & (rng.random((h, w)) > 0.5)] = 0
    disp = (rng.normal(size=(h, w)) * 0.5 * valid).astype(np.float32)
    moved = npd.displace_np(pos, nrm, disp, valid)
    want = npd.detail_normals_np(moved, pos, nrm, valid)
    got_moved, got = npd.displaced_detail_normals_np(pos, nrm, disp, valid)
    np.testing.assert_array_equal(got_moved, moved)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float32 and got_moved.dtype == np.float32
    assert not np.array_equal(moved, pos)
