"""Tests of the vectorised numpy z-buffer rasteriser against float64 brute force."""

import numpy as np
import pytest

from tf_face.raster.zbuffer import rasterize


def _brute_force(v, t, h, w, cull=False):
    """Per-triangle loop over all pixel centres (c, r), float64 reference."""
    v = np.asarray(v, np.float64)
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    best = np.full((h, w), np.inf)
    tid = np.full((h, w), -1)
    margin = np.full((h, w), np.inf)   # distance of the winner's centre to its edges
    for k, (i0, i1, i2) in enumerate(t):
        a, b, c = v[i0], v[i1], v[i2]
        det = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if abs(det) < 1e-12 or (cull and det >= 0):
            continue
        w1 = ((cc - a[0]) * (c[1] - a[1]) - (rr - a[1]) * (c[0] - a[0])) / det
        w2 = ((b[0] - a[0]) * (rr - a[1]) - (b[1] - a[1]) * (cc - a[0])) / det
        w0 = 1 - w1 - w2
        mn = np.minimum(np.minimum(w0, w1), w2)
        z = w0 * a[2] + w1 * b[2] + w2 * c[2]
        win = (mn >= 0) & (z < best)
        best[win], tid[win], margin[win] = z[win], k, mn[win]
    return tid, best, margin


def _random_mesh(rng, n_tri, h, w):
    centres = rng.uniform([-10, -10], [w + 10, h + 10], size=(n_tri, 2))
    pts = centres[:, None, :] + rng.normal(scale=12, size=(n_tri, 3, 2))
    z = rng.uniform(0, 100, size=(n_tri, 1, 1)) + rng.normal(scale=3, size=(n_tri, 3, 1))
    v = np.concatenate([pts, z], 2).reshape(-1, 3)
    return v, np.arange(3 * n_tri).reshape(n_tri, 3)


@pytest.mark.parametrize("cull", [False, True])
def test_matches_brute_force(cull):
    rng = np.random.default_rng(1)
    h, w = 70, 90
    v, t = _random_mesh(rng, 60, h, w)
    tid, bary, depth = rasterize(v, t, h, w, cull_backfaces=cull)
    ref_tid, ref_depth, margin = _brute_force(v, t, h, w, cull)
    assert tid.shape == (h, w) and tid.dtype == np.int32
    assert bary.dtype == np.float32 and depth.dtype == np.float32
    clear = margin > 1e-6   # away from edges, where the eps tolerance may differ
    clear |= ref_tid < 0
    assert (tid[clear] == ref_tid[clear]).all()
    assert np.isinf(depth[tid < 0]).all() and (bary[tid < 0] == 0).all()
    cov = tid >= 0
    np.testing.assert_allclose(depth[cov & clear], ref_depth[cov & clear], rtol=1e-5, atol=1e-3)
    assert cov.sum() > (0.1 if cull else 0.3) * h * w


def test_pixel_count_matches_area_and_barycentrics_linear():
    v = np.array([[10.3, 5.7, 1.0], [180.2, 40.1, 2.0], [60.9, 150.4, 3.0]])
    t = np.array([[0, 1, 2]])
    tid, bary, depth = rasterize(v, t, 200, 200)
    area = 0.5 * abs((v[1, 0] - v[0, 0]) * (v[2, 1] - v[0, 1])
                     - (v[1, 1] - v[0, 1]) * (v[2, 0] - v[0, 0]))
    perimeter = sum(np.linalg.norm(v[i, :2] - v[(i + 1) % 3, :2]) for i in range(3))
    assert abs((tid == 0).sum() - area) < 0.5 * perimeter
    # Barycentrics reproduce a linear function of the image point exactly,
    # with pixel (r, c) centred at the point (c, r).
    f = lambda x, y: 0.7 * x - 1.3 * y + 5.0  # noqa: E731
    fv = f(v[:, 0], v[:, 1])
    rr, cc = np.nonzero(tid == 0)
    interp = (bary[rr, cc] * fv[None, :]).sum(1)
    np.testing.assert_allclose(interp, f(cc, rr), atol=2e-3)
    np.testing.assert_allclose(bary[rr, cc].sum(1), 1.0, atol=1e-6)
    assert (bary[rr, cc] >= -1e-6).all()
    # Depth is the linear interpolation of the vertex z.
    np.testing.assert_allclose(depth[rr, cc], (bary[rr, cc] * v[:, 2]).sum(1), atol=1e-4)


def test_depth_order_independent_of_triangle_order():
    near = [[10, 10, 1.0], [90, 15, 1.0], [40, 90, 1.0]]
    far = [[5, 5, 9.0], [95, 50, 9.0], [20, 95, 9.0]]
    for order in ([near, far], [far, near]):
        v = np.array(order[0] + order[1], np.float64)
        t = np.array([[0, 1, 2], [3, 4, 5]])
        tid, _, depth = rasterize(v, t, 100, 100)
        near_id = 0 if order[0] is near else 1
        assert tid[40, 40] == near_id and depth[40, 40] == pytest.approx(1.0)
        assert (tid == 1 - near_id).sum() > 0          # the far one shows elsewhere
        assert (depth[tid == near_id] == 1.0).all()


def test_shared_edges_have_no_cracks_and_no_double_cover():
    # A grid of squares split along diagonals, with vertices exactly on pixel
    # centres so many pixel centres lie on shared edges.
    n, step = 8, 6
    ys, xs = np.mgrid[0:n + 1, 0:n + 1] * step
    v = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1).astype(np.float64)
    i = (np.arange(n)[:, None] * (n + 1) + np.arange(n)[None, :]).ravel()
    t = np.concatenate([np.stack([i, i + 1, i + n + 2], 1), np.stack([i, i + n + 2, i + n + 1], 1)])
    size = n * step + 1
    tid, bary, _ = rasterize(v, t, size + 3, size + 3)
    assert (tid[:size, :size] >= 0).all()          # closed square, every centre covered
    assert (tid[size:, :] < 0).all() and (tid[:, size:] < 0).all()
    # Ties on shared edges go to the lowest triangle id.
    assert tid[0, 0] == 0 and tid[step, step] == 0
    # Each triangle's pixels reproduce the vertex positions.
    rr, cc = np.nonzero(tid >= 0)
    pos = np.einsum("nk,nkc->nc", bary[rr, cc], v[t[tid[rr, cc]]][:, :, :2])
    np.testing.assert_allclose(pos, np.stack([cc, rr], 1), atol=1e-4)


def test_chunking_does_not_change_the_result():
    rng = np.random.default_rng(3)
    v, t = _random_mesh(rng, 200, 64, 64)
    v[:, 2] = np.round(v[:, 2] / 10)   # many exact depth ties
    full = rasterize(v, t, 64, 64)
    chunked = rasterize(v, t, 64, 64, max_candidates=500)
    for a, b in zip(full, chunked):
        np.testing.assert_array_equal(a, b)


def test_degenerate_and_offscreen_triangles():
    v = np.array([[0, 0, 0], [10, 10, 0], [20, 20, 0],          # collinear
                  [5, 5, 0], [5, 5, 0], [30, 2, 0],             # repeated vertex
                  [np.nan, 1, 0], [30, 30, 0], [1, 30, 0],       # NaN
                  [-50, -50, 0], [-40, -50, 0], [-45, -40, 0],   # off screen
                  [1e9, 1e9, 0], [2e9, 1e9, 0], [1e9, 3e9, 0]], np.float64)
    t = np.arange(15).reshape(5, 3)
    tid, bary, depth = rasterize(v, t, 40, 40)
    assert (tid == -1).all() and np.isinf(depth).all()
    # Empty inputs.
    tid, _, _ = rasterize(np.zeros((0, 3)), np.zeros((0, 3), int), 5, 7)
    assert tid.shape == (5, 7) and (tid == -1).all()


def test_backface_culling_follows_the_image_frame_convention():
    from tf_face.types import model_to_image
    # CCW seen from +z (outside) in the model frame: faces a frontal camera.
    model_tri = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]])
    img = model_to_image(model_tri, 20.0, np.eye(3), np.array([32.0, 32.0]))
    tid, _, _ = rasterize(img, [[0, 1, 2]], 64, 64, cull_backfaces=True)
    assert (tid == 0).sum() > 100
    tid, _, _ = rasterize(img, [[0, 2, 1]], 64, 64, cull_backfaces=True)
    assert (tid == -1).all()
