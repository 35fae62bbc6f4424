"""Image-space renderer: coverage, SH shading identities, relighting direction, yaw."""

import numpy as np
import pytest

from tests.conftest import ICT_NPZ, require_shared
from tests.test_export import hemisphere_mesh
from tf_face.sh import sh_basis_np
from tf_face.viz import image_renderer as ir
from tf_face.types import model_to_image

H = W = 200
R = 80.0


@pytest.fixture(scope="module")
def cap():
    return hemisphere_mesh(33, R, (100.0, 100.0))


def _grey(value=0.8, size=64):
    return np.full((size, size, 3), value)


def test_sh_basis_matches_tf_reference():
    import tensorflow as tf
    from tf_face.render.sh import sh_basis
    n = np.random.default_rng(1).normal(size=(50, 3))
    n[0] = 0.0
    ref = sh_basis(tf.constant(n, tf.float64)).numpy()
    np.testing.assert_allclose(sh_basis_np(n), ref, atol=1e-12)


def test_ambient_and_directional_light():
    n = np.random.default_rng(2).normal(size=(400, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    np.testing.assert_allclose(ir.sh_shading(n, ir.ambient_light([0.5, 1.0, 2.0])),
                               np.tile([0.5, 1.0, 2.0], (400, 1)), atol=1e-12)
    d = np.array([0.3, -0.4, 0.866])
    d /= np.linalg.norm(d)
    shade = ir.sh_shading(n, ir.directional_light(d, 1.0))[:, 0]
    lambert = np.maximum(n @ d, 0.0)
    # order-2 SH approximates the clamped cosine to within ~0.1 (Ramamoorthi & Hanrahan)
    assert np.abs(shade - lambert).max() < 0.12
    assert np.corrcoef(shade, lambert)[0, 1] > 0.98


def test_render_covers_the_disc_and_shades_exactly(cap):
    v, t, uv = cap
    img, alpha = ir.render(v, t, uv, _grey(0.8), ir.ambient_light(1.0), H, W,
                           color_space="srgb")
    covered = alpha > 0.5
    assert abs(covered.sum() / (np.pi * R * R) - 1.0) < 0.03
    np.testing.assert_allclose(img[covered], 0.8, atol=1e-6)   # albedo * irradiance 1
    assert (img[~covered] == 0).all()


def test_background_and_supersampling(cap):
    v, t, uv = cap
    photo = np.zeros((H, W, 3), np.uint8)
    photo[..., 1] = 255
    img, alpha = ir.render(v, t, uv, _grey(0.5), ir.ambient_light(1.0), H, W,
                           background=photo, supersample=3, color_space="srgb")
    assert ((alpha > 0) & (alpha < 1)).sum() > 100              # anti-aliased rim
    np.testing.assert_allclose(img[alpha == 0], [[0.0, 1.0, 0.0]] * int((alpha == 0).sum()))
    edge = (alpha > 0.2) & (alpha < 0.8)
    np.testing.assert_allclose(img[edge][:, 1], 0.5 * alpha[edge] + (1 - alpha[edge]), atol=1e-5)
    _, alpha1 = ir.render(v, t, uv, _grey(0.5), ir.ambient_light(1.0), H, W)
    assert abs(alpha.sum() / alpha1.sum() - 1.0) < 0.01


def test_albedo_is_sampled_with_texel_centres(cap):
    v, t, uv = cap
    tex = np.zeros((4, 4, 3))
    tex[:, :2, 0] = 1.0          # left half of the UV map red, right half blue
    tex[:, 2:, 2] = 1.0
    img, alpha = ir.render(v, t, uv, tex, ir.ambient_light(1.0), H, W)
    assert img[100, 40, 0] > 0.99 and img[100, 40, 2] < 0.01    # image left = u < 0.5
    assert img[100, 160, 2] > 0.99 and img[100, 160, 0] < 0.01


@pytest.mark.parametrize("name,half", [("image_left", "left"), ("image_right", "right"),
                                       ("top", "top")])
def test_relighting_brightens_the_named_side(cap, name, half):
    v, t, uv = cap
    img, alpha = ir.render(v, t, uv, _grey(0.7), ir.sh_light_from(name), H, W)
    lum = img.mean(-1)
    cov = alpha > 0.5
    left, right = cov.copy(), cov.copy()
    left[:, 100:] = False
    right[:, :100] = False
    top, bottom = cov.copy(), cov.copy()
    top[100:] = False
    bottom[:100] = False
    pairs = {"left": (left, right), "right": (right, left), "top": (top, bottom)}
    lit, dark = pairs[half]
    assert lum[lit].mean() > lum[dark].mean() + 0.1


def test_presets_differ_and_are_not_blank(cap):
    v, t, uv = cap
    imgs = {k: ir.render(v, t, uv, _grey(0.7), sh, H, W)[0] for k, sh in
            ir.preset_lightings().items()}
    assert set(imgs) >= {"frontal", "image_left", "image_right", "top", "coloured"}
    for img in imgs.values():
        assert img.std() > 0.05
    col = imgs["coloured"]
    assert col[100, 40, 0] > col[100, 40, 2] and col[100, 160, 2] > col[100, 160, 0]
    names = list(imgs)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            assert np.abs(imgs[names[i]] - imgs[names[j]]).mean() > 0.01


def test_rotate_yaw_moves_the_apex_right(cap):
    v, _, _ = cap
    apex = np.argmin(v[:, 2])
    center = 0.5 * (v.min(0) + v.max(0))
    turned = ir.rotate_yaw(v, 30.0)
    depth = center[2] - v[apex, 2]          # how far the apex sticks out towards the camera
    assert turned[apex, 0] - v[apex, 0] == pytest.approx(depth * np.sin(np.radians(30)), rel=1e-9)
    np.testing.assert_allclose(turned[:, 1], v[:, 1])
    np.testing.assert_allclose(ir.rotate_yaw(turned, -30.0, center=center), v, atol=1e-9)


def test_novel_view_render_moves_the_marked_apex(cap):
    v, t, uv = cap
    tex = np.full((64, 64, 3), 0.6)
    tex[28:36, 28:36] = [1.0, 0.0, 0.0]     # a red dot at the apex (uv = 0.5, 0.5)
    for yaw in (-30.0, 30.0):
        img, _ = ir.render(v, t, uv, tex, ir.ambient_light(1.0), H, W, yaw_deg=yaw)
        red = (img[..., 0] > 0.8) & (img[..., 1] < 0.2)
        cx = np.nonzero(red)[1].mean()
        # rotation about the bounding-box centre, R/2 behind the apex
        expect = 100.0 + 0.5 * R * np.sin(np.radians(yaw))
        assert abs(cx - expect) < 4.0, (yaw, cx, expect)


def test_normal_map_drives_the_shading_and_turns_with_yaw(cap):
    v, t, uv = cap
    nmap = np.zeros((32, 32, 3))
    nmap[..., 2] = 1.0                       # "detail normals": flat, facing the camera
    sh = ir.sh_light_from("image_left")
    img, alpha = ir.render(v, t, uv, _grey(0.5), sh, H, W, normal_map=nmap, color_space="srgb")
    inside = alpha > 0.5
    expect = 0.5 * ir.sh_shading(np.array([0.0, 0.0, 1.0]), sh)
    np.testing.assert_allclose(img[inside], np.broadcast_to(expect, img[inside].shape), atol=1e-6)
    base, _ = ir.render(v, t, uv, _grey(0.5), sh, H, W)          # without details
    assert base[inside].std() > 0.05
    img30, alpha30 = ir.render(v, t, uv, _grey(0.5), sh, H, W, normal_map=nmap, yaw_deg=30.0,
                               color_space="srgb")
    n30 = ir.yaw_rotation_camera(30.0) @ [0.0, 0.0, 1.0]
    expect30 = 0.5 * ir.sh_shading(n30, sh)
    inside30 = alpha30 > 0.5
    np.testing.assert_allclose(img30[inside30], np.broadcast_to(expect30, img30[inside30].shape),
                               atol=1e-6)
    assert n30[0] > 0


def test_ict_face_left_light_brightens_image_left_cheek():
    path = require_shared(ICT_NPZ)
    d = np.load(path, allow_pickle=False)
    tris = d["triangles"][d["narrow_face_tri_mask"]].astype(np.int64)
    uv = d["uv"].astype(np.float64).copy()
    uv[:, 1] = 1.0 - uv[:, 1]
    vi = model_to_image(d["mean"], 12.0, np.eye(3), np.array([128.0, 128.0]))
    lm = d["landmarks68"]
    # iBUG 68: 2 / 14 are on the jaw contour at cheek height; the subject's right
    # (ids 0-7) is on the image left in a frontal view.
    left_cheek, right_cheek = vi[lm[3], :2], vi[lm[13], :2]
    assert left_cheek[0] < right_cheek[0]
    toward = lambda p, q: np.round(p + 0.3 * (q - p)).astype(int)   # step inside the face
    nose = vi[lm[30], :2]
    pl, pr = toward(left_cheek, nose), toward(right_cheek, nose)
    out = {}
    for name in ("image_left", "image_right"):
        img, alpha = ir.render(vi, tris, uv, _grey(0.7), ir.sh_light_from(name), 256, 256)
        assert alpha[pl[1], pl[0]] == 1 and alpha[pr[1], pr[0]] == 1
        lum = img.mean(-1)
        out[name] = (lum[pl[1] - 2:pl[1] + 3, pl[0] - 2:pl[0] + 3].mean(),
                     lum[pr[1] - 2:pr[1] + 3, pr[0] - 2:pr[0] + 3].mean())
    assert out["image_left"][0] > out["image_left"][1] + 0.1
    assert out["image_right"][1] > out["image_right"][0] + 0.1
    assert out["image_left"][0] > out["image_right"][0] + 0.1


def test_empty_view_and_bad_mask(cap):
    v, t, uv = cap
    far = v + [1000.0, 0.0, 0.0]                 # entirely outside the image
    img, alpha = ir.render(far, t, uv, _grey(), ir.ambient_light(), H, W, background=(0.2, 0.3, 0.4))
    assert (alpha == 0).all()
    np.testing.assert_allclose(img, np.broadcast_to([0.2, 0.3, 0.4], img.shape), atol=1e-6)
    with pytest.raises(ValueError):
        ir.render(v, t, uv, _grey(size=64), ir.ambient_light(), H, W, uv_mask=np.ones((32, 32)))


def test_uv_mask_stops_black_bleeding(cap):
    v, t, uv = cap
    tex = np.zeros((8, 8, 3))
    tex[:, :4] = 0.9                              # valid left half, black (invalid) right half
    mask = np.zeros((8, 8), bool)
    mask[:, :4] = True
    img_m, _ = ir.render(v, t, uv, tex, ir.ambient_light(), H, W, uv_mask=mask, color_space="srgb")
    img_n, _ = ir.render(v, t, uv, tex, ir.ambient_light(), H, W, color_space="srgb")
    # just left of the boundary (u slightly < 0.5) plain bilinear mixes in black
    assert img_n[100, 95, 0] < 0.85 and img_m[100, 95, 0] == pytest.approx(0.9, abs=1e-5)


def test_yaw_turns_the_detail_normals_with_the_mesh(cap):
    """A flat "detail" normal map on a mesh turned by 30 degrees (the yaw views of
    tf_face.viz.views): a constant colour under directional light, equal to the
    shading of the turned normal."""
    v, t, uv = cap
    nmap = np.zeros((16, 16, 3))
    nmap[..., 2] = 1.0
    sh = ir.sh_light_from("image_left")
    img, alpha = ir.render(v, t, uv, _grey(0.6), sh, H, W, normal_map=nmap, yaw_deg=30.0,
                           supersample=1, color_space="srgb")
    inside = alpha > 0.99
    assert inside.mean() > 0.2
    expect = 0.6 * ir.sh_shading(ir.yaw_rotation_camera(30.0) @ [0, 0, 1.0], sh)
    assert np.abs(expect - 0.6 * ir.sh_shading([0, 0, 1.0], sh)).max() > 0.05   # yaw matters
    np.testing.assert_allclose(img[inside].mean(0), expect, atol=0.02)


def test_linear_colour_space_encodes_srgb(cap):
    v, t, uv = cap
    img, alpha = ir.render(v, t, uv, _grey(0.2), ir.ambient_light(1.0), H, W)   # default linear
    expect = 1.055 * 0.2 ** (1 / 2.4) - 0.055                                     # sRGB(0.2)
    np.testing.assert_allclose(img[alpha > 0.5], expect, atol=1e-6)
    with pytest.raises(ValueError):
        ir.render(v, t, uv, _grey(), ir.ambient_light(), H, W, color_space="xyz")
