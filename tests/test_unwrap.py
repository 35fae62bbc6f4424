"""Unwrap round trips: render a mesh with a known UV texture, unwrap it, compare.

The scene is two spheres (a big one and a small one in front of it) whose
visibility is known analytically (view angle, occlusion of one sphere by the
other, image bounds); the ICT face model checks self-occlusion at 60 degrees
of yaw through the texture round trip.
"""

import numpy as np
import pytest

from tf_face.facemodel.base import FaceModel
from tf_face.raster.zbuffer import rasterize
from tf_face.types import FittedFace, model_to_image
from tf_face.uv.atlas import build_atlas
from tf_face.testing.uv_maps import combine, uv_sphere
from tf_face.facemodel.mesh import vertex_normals
from tf_face.uv.unwrap import unwrap

from tests.test_uv_atlas import ict_model

H = W = 256
SIZE = 128
CA, RA = np.array([0.0, 0.0, 0.0]), 1.0
CB, RB = np.array([0.5, 0.3, 1.5]), 0.4
SCALE = 90.0
BACKGROUND = np.array([0.1, 0.9, 0.1])


def known_texture(uv, freq=1.0):
    u, v = uv[..., 0], uv[..., 1]
    return np.stack([0.5 + 0.3 * np.sin(2 * np.pi * freq * 2 * u) * np.cos(2 * np.pi * freq * v),
                     0.5 + 0.3 * np.cos(2 * np.pi * freq * (3 * u + v)),
                     0.3 + 0.5 * u * (1 - v)], -1)


def render(vi, tris, uv, freq=1.0):
    """Render the textured mesh (no anti-aliasing) with the z-buffer rasteriser."""
    tid, bary, _ = rasterize(vi, tris, H, W)
    img = np.broadcast_to(BACKGROUND, (H, W, 3)).copy()
    cov = tid >= 0
    uvp = np.einsum("nk,nkc->nc", bary[cov], uv[tris[tid[cov]]])
    img[cov] = known_texture(uvp, freq)
    return img


def yaw(deg):
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def fitted_face(verts_model, rotation, translation, scale=SCALE):
    vi = model_to_image(verts_model, scale, rotation, translation).astype(np.float32)
    return FittedFace(model_name="test", vertices_image=vi, vertices_model=verts_model.astype(np.float32),
                      scale=scale, rotation=rotation, translation=np.asarray(translation, float),
                      shape_coeffs=np.zeros(0, np.float32), expr_coeffs=np.zeros(0, np.float32),
                      landmarks_observed=np.zeros((0, 2), np.float32),
                      landmark_vertices=np.zeros(0, np.int32), landmark_rmse_iod=0.0,
                      image_size=(H, W))


@pytest.fixture(scope="module")
def two_spheres():
    a = uv_sphere(16, 28, RA, CA, uv_box=(0.0, 0.0, 0.5, 1.0))
    b = uv_sphere(16, 28, RB, CB, uv_box=(0.5, 0.0, 1.0, 1.0))
    verts, tris, uv = combine(a, b)
    model = FaceModel(name="spheres", mean_shape=verts.astype(np.float32), triangles=tris,
                      uv=uv.astype(np.float32)).validate()
    return model, build_atlas(model.uv, model.triangles, SIZE)


def analytic_texels(rotation, translation):
    """Per texel: camera-frame point, normal and the analytic occlusion margin."""
    i, j = np.mgrid[0:SIZE, 0:SIZE]
    u, v = (j + 0.5) / SIZE, (i + 0.5) / SIZE
    on_b = u > 0.5
    lam = 2 * np.pi * np.where(on_b, u - 0.5, u) / 0.5
    phi = np.pi * v
    d = np.stack([np.sin(phi) * np.sin(lam), np.cos(phi), np.sin(phi) * np.cos(lam)], -1)
    centre = np.where(on_b[..., None], CB, CA)
    radius = np.where(on_b, RB, RA)[..., None]
    to_cam = lambda p: SCALE * p @ rotation.T + [translation[0], -translation[1], 0]  # noqa: E731
    pc = to_cam(centre + radius * d)
    n = d @ rotation.T
    # Occlusion by the other sphere: signed xy distance to its disc (px).
    oc = np.where(on_b[..., None], to_cam(CA[None])[0], to_cam(CB[None])[0])
    orad = SCALE * np.where(on_b, RA, RB)
    dxy = np.linalg.norm(pc[..., :2] - oc[..., :2], axis=-1)
    front_z = oc[..., 2] + np.sqrt(np.maximum(orad ** 2 - dxy ** 2, 0))
    occluded = (dxy < orad) & (front_z > pc[..., 2])
    occ_margin = np.abs(dxy - orad)
    # Distance to the sphere's own outline (the 1-pixel outline band is masked).
    own = to_cam(centre)
    outline = SCALE * radius[..., 0] - np.linalg.norm(pc[..., :2] - own[..., :2], axis=-1)
    return pc, n, occluded, np.minimum(occ_margin, outline)


@pytest.mark.parametrize("deg,tx", [(0.0, 128.0), (60.0, 128.0), (-30.0, 40.0)])
def test_two_spheres_round_trip(two_spheres, deg, tx):
    model, atlas = two_spheres
    rot, trans = yaw(deg), np.array([tx, 120.0])
    fitted = fitted_face(model.mean_shape.astype(np.float64), rot, trans)
    image = render(fitted.vertices_image.astype(np.float64), model.triangles, model.uv)
    sample = unwrap(image, fitted, model, atlas, min_cos=0.2)
    mask = sample.mask
    for arr in (sample.texture, sample.normals, sample.position):
        assert arr.dtype == np.float32 and arr.shape == (SIZE, SIZE, 3)
    assert mask.dtype == bool and mask.shape == (SIZE, SIZE)

    pc, n, occluded, occ_margin = analytic_texels(rot, trans)
    x, y = pc[..., 0], -pc[..., 1]
    visible = (n[..., 2] > 0.2) & ~occluded & (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
    clear = ((np.abs(n[..., 2] - 0.2) > 0.08) & (occ_margin > 3)
             & (np.minimum.reduce([x, W - 1 - x, y, H - 1 - y]) ** 2 > 4))
    # Hidden texels (back side, behind the other sphere, outside the photo)
    # are masked; clearly visible ones are not.
    assert not mask[clear & ~visible].any()
    assert mask[clear & visible].all()
    assert (clear & visible).sum() > 1000
    if deg == 0.0:
        assert (clear & occluded & (n[..., 2] > 0.3)).sum() > 50   # the occlusion case happens
    if tx == 40.0:
        assert (clear & (x < 0) & (n[..., 2] > 0.3)).sum() > 50     # the out-of-image case happens

    # Texture round trip on visible texels.
    i, j = np.mgrid[0:SIZE, 0:SIZE]
    truth = known_texture(np.stack([(j + 0.5) / SIZE, (i + 0.5) / SIZE], -1))
    err = np.abs(sample.texture - truth).max(-1)
    seam = (np.abs(j - SIZE / 2 + 0.5) < 2) | (j < 1) | (j > SIZE - 2)  # UV seams of the spheres
    assert err[mask & clear & ~seam].max() < 0.03
    assert err[mask].mean() < 0.01
    assert (sample.texture[~mask] == 0).all()
    # Normal and position maps (whole atlas) against the analytic sphere.
    cos = (sample.normals * n).sum(-1)
    assert cos[atlas.mask & (np.abs(n[..., 1]) < 0.95)].min() > 0.98
    np.testing.assert_allclose(np.linalg.norm(sample.normals[atlas.mask], axis=-1), 1, atol=1e-5)
    assert np.abs(sample.position - pc).max(-1)[atlas.mask].max() < 1.5


def test_uint8_image_and_min_cos(two_spheres):
    model, atlas = two_spheres
    rot, trans = yaw(20.0), np.array([128.0, 128.0])
    fitted = fitted_face(model.mean_shape.astype(np.float64), rot, trans)
    image = render(fitted.vertices_image.astype(np.float64), model.triangles, model.uv)
    img8 = np.round(image * 255).astype(np.uint8)
    s8 = unwrap(img8, fitted, model, atlas)
    sf = unwrap(image, fitted, model, atlas)
    np.testing.assert_array_equal(s8.mask, sf.mask)
    assert np.abs(s8.texture - sf.texture).max() < 1.0 / 255 + 1e-6
    # A lower cosine threshold only adds texels, and they are the grazing ones.
    wide = unwrap(image, fitted, model, atlas, min_cos=-1.0)
    assert (wide.mask >= sf.mask).all() and wide.mask.sum() > sf.mask.sum()
    extra = wide.mask & ~sf.mask
    assert (sf.normals[extra][:, 2] <= 0.2 + 1e-6).all()


def test_vertex_normals_point_outwards():
    verts, tris, _ = uv_sphere(10, 16, 2.0, (1.0, -1.0, 0.5))
    n = vertex_normals(verts, tris)
    radial = (verts - [1.0, -1.0, 0.5]) / 2.0
    norm = np.linalg.norm(n, axis=1)
    # Two pole copies at the seam touch only zero-area triangles: normal 0.
    assert (norm == 0).sum() == 2
    np.testing.assert_allclose(norm[norm > 0], 1.0, atol=1e-9)
    assert ((n * radial).sum(1)[norm > 0] > 0.97).all()
    # Scaling and rotating the mesh rotates the normals.
    rot = yaw(35.0)
    np.testing.assert_allclose(vertex_normals(3.0 * verts @ rot.T, tris), n @ rot.T, atol=1e-9)


def test_vertex_normals_are_area_weighted():
    """The one vertex-normal formula (tf_face.facemodel.mesh): the shared edge's
    vertices of a big +z triangle and a small +x one lean 4:1 towards +z; the
    renderer's camera-frame normals are the same formula after IMAGE_FLIP."""
    from tf_face.types import IMAGE_FLIP
    from tf_face.viz.image_renderer import vertex_normals_camera

    verts = np.array([[0, 0, 0], [0, 1, 0], [-4, 0, 0], [0, 0, 1], [9, 9, 9]], np.float64)
    tris = np.array([[0, 1, 2], [0, 1, 3]])        # areas 2 (normal +z) and 0.5 (+x)
    n = vertex_normals(verts, tris)
    edge = np.array([0.5, 0.0, 2.0]) / np.hypot(0.5, 2.0)
    np.testing.assert_allclose(n, [edge, edge, [0, 0, 1], [1, 0, 0], [0, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(vertex_normals_camera(verts * IMAGE_FLIP, tris), n, atol=1e-12)


def test_ict_self_occlusion_at_60_degrees():
    model = ict_model()
    atlas = build_atlas(model.uv, model.triangles, SIZE)
    n_model = vertex_normals(model.mean_shape, model.triangles)
    nose = int(np.argmax(model.mean_shape[:, 2]))
    assert n_model[nose, 2] > 0.8                      # outward = +z at the nose tip
    centre = model.mean_shape.mean(0)
    verts = model.mean_shape.astype(np.float64) - centre
    fitted = fitted_face(verts, yaw(60.0), np.array([128.0, 128.0]), scale=8.0)
    image = render(fitted.vertices_image.astype(np.float64), model.triangles, model.uv, freq=2.0)
    i, j = np.mgrid[0:SIZE, 0:SIZE]
    truth = known_texture(np.stack([(j + 0.5) / SIZE, (i + 0.5) / SIZE], -1), freq=2.0)

    def bad_fraction(sample):
        err = np.abs(sample.texture - truth).max(-1)[sample.mask]
        return (err > 0.08).mean(), sample.mask.sum()

    frac, n_vis = bad_fraction(unwrap(image, fitted, model, atlas))
    assert n_vis > 0.15 * atlas.mask.sum()
    assert frac < 0.01
    # Without the occlusion test (huge depth tolerance), texels hidden behind
    # the nose pick up wrong colours: the z-buffer is what keeps them out.
    frac_no_occ, n_no_occ = bad_fraction(unwrap(image, fitted, model, atlas, depth_tol=1e6))
    assert n_no_occ > n_vis and frac_no_occ > 3 * frac + 0.005


def test_image_formats_and_mismatched_atlas(two_spheres):
    model, atlas = two_spheres
    rot, trans = yaw(10.0), np.array([128.0, 128.0])
    fitted = fitted_face(model.mean_shape.astype(np.float64), rot, trans)
    image = render(fitted.vertices_image.astype(np.float64), model.triangles, model.uv)
    ref = unwrap(image, fitted, model, atlas)
    grey = image.mean(-1)
    s_grey = unwrap(np.round(grey * 255).astype(np.uint8), fitted, model, atlas)
    np.testing.assert_array_equal(s_grey.mask, ref.mask)
    np.testing.assert_allclose(s_grey.texture[..., 0], s_grey.texture[..., 2])
    rgba = np.concatenate([image, np.ones((H, W, 1))], -1)
    np.testing.assert_allclose(unwrap(rgba, fitted, model, atlas).texture, ref.texture, atol=1e-6)
    img16 = np.round(image * 65535).astype(np.uint16)
    np.testing.assert_allclose(unwrap(img16, fitted, model, atlas).texture, ref.texture, atol=1e-4)
    # Bright pixel (0, 0) never leaks into the texture (outside texels are 0).
    bright = image.copy()
    bright[:3, :3] = 1.0
    s = unwrap(bright, fitted, model, atlas)
    assert (s.texture[~s.mask] == 0).all()
    other = build_atlas(model.uv[:10], np.array([[0, 1, 2]]), 16)
    with pytest.raises(ValueError):
        unwrap(image, fitted, model, other)
    with pytest.raises(ValueError):
        unwrap(np.zeros((4, 4, 2)), fitted, model, atlas)
