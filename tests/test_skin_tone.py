"""Skin tone (tf_face.skin_tone), the tone span of the default albedo prior and
the skin tones of synthetic faces."""

import numpy as np
import pytest

from tf_face import skin_tone as st
from tf_face.facemodel.albedo_prior import SKIN_LINEAR, TONE_MEAN_ITA, tone_model


def test_colour_conversions():
    # sRGB primaries / white in CIELAB (D65), the textbook values
    np.testing.assert_allclose(st.linear_rgb_to_lab([1.0, 1.0, 1.0]), [100, 0, 0], atol=1e-6)
    np.testing.assert_allclose(st.linear_rgb_to_lab([1.0, 0.0, 0.0]), [53.24, 80.09, 67.20], atol=0.02)
    np.testing.assert_allclose(st.linear_rgb_to_lab([0.0, 0.0, 1.0]), [32.30, 79.19, -107.86], atol=0.02)
    rgb = np.random.default_rng(0).uniform(0.001, 1.0, (50, 3))
    np.testing.assert_allclose(st.lab_to_linear_rgb(st.linear_rgb_to_lab(rgb)), rgb, atol=1e-9)
    assert st.delta_e76([50, 1, 2], [50, 4, 6]) == pytest.approx(5.0)


def test_ita_and_groups():
    assert st.ita_deg([50.0, 10.0, 20.0]) == pytest.approx(0.0)
    assert st.ita_deg([70.0, 0.0, 20.0]) == pytest.approx(45.0)
    assert st.ita_deg(np.array([[30.0, 5.0, 20.0]])) == pytest.approx([-45.0])
    assert [g[0] for g in st.ITA_GROUPS] == ["very_light", "light", "intermediate", "tan", "brown", "dark"]
    cases = {70: "very_light", 55.01: "very_light", 55: "light", 41.01: "light", 41: "intermediate",
             28.5: "intermediate", 28: "tan", 10.5: "tan", 10: "brown", -29.9: "brown", -30: "dark",
             -80: "dark"}
    for ita, name in cases.items():
        assert st.tone_group(ita) == name, ita
    with pytest.raises(ValueError):
        st.tone_group(float("nan"))
    with pytest.raises(ValueError, match="very_light"):
        st.group_range("purple")
    assert st.group_range("very_light") == (55.0, 70.0) and st.group_range("dark") == (-60.0, -30.0)


def test_monk_scale_and_reference_table():
    """The swatch ITAs and the reference table in the module docstring."""
    np.testing.assert_allclose(st.ita_deg(st.mst_lab()),
                               [83.0, 80.2, 71.7, 64.7, 50.3, 10.9, -20.1, -55.4, -78.3, -84.3], atol=0.05)
    table = {  # ITA, L*, a*, b*, linear RGB (as in the docstring)
        "very_light": (62.5, 85.9, 0.98, 18.7, 0.797, 0.665, 0.455),
        "light": (48.0, 76.0, 3.83, 23.4, 0.648, 0.477, 0.281),
        "intermediate": (34.5, 67.1, 5.52, 24.9, 0.507, 0.344, 0.184),
        "tan": (19.0, 59.0, 7.05, 26.1, 0.398, 0.248, 0.118),
        "brown": (-10.0, 46.1, 11.04, 22.3, 0.256, 0.132, 0.065),
        "dark": (-45.0, 34.4, 11.88, 15.6, 0.146, 0.067, 0.040),
    }
    assert list(st.GROUP_REFERENCE_LAB) == list(st.GROUP_NAMES)
    for name, row in table.items():
        lab, lin = st.GROUP_REFERENCE_LAB[name], st.GROUP_REFERENCE_LINEAR[name]
        assert st.GROUP_REFERENCE_ITA[name] == row[0]
        np.testing.assert_allclose(lab, row[1:4], atol=0.051)
        np.testing.assert_allclose(lin, row[4:], atol=0.0006)
        assert st.ita_deg(lab) == pytest.approx(row[0], abs=1e-9)
        assert st.tone_group(st.ita_deg(lab)) == name
        np.testing.assert_allclose(st.linear_rgb_to_lab(lin), lab, atol=1e-9)


def test_tone_curve_spans_the_range():
    itas = np.linspace(st.ITA_RANGE[0], st.ITA_RANGE[1], 131)
    lab = st.lab_for_ita(itas)
    np.testing.assert_allclose(st.ita_deg(lab), itas, atol=1e-9)
    assert np.all(np.diff(lab[:, 0]) < 0)                      # darker as ITA falls
    assert np.all(lab[:, 2] > 10) and np.all(lab[:, 1] > 0)    # yellowish-red: skin
    rgb = st.lab_to_linear_rgb(lab)
    assert np.all(rgb > 0.02) and np.all(rgb < 0.95)
    assert np.all((rgb[:, 0] > rgb[:, 1]) & (rgb[:, 1] > rgb[:, 2]))
    with pytest.raises(ValueError):
        st.lab_for_ita(89.0)
    ita, cols = st.tone_distribution(8)
    assert ita.shape == (48,) and cols.shape == (48, 3)
    assert [st.tone_group(t) for t in ita[::8]] == list(st.GROUP_NAMES)


@pytest.mark.parametrize("size", [64, 256])
def test_face_skin_mask(size):
    import cv2

    from tf_face.facemodel.albedo_prior import rasterise_polygon
    from tf_face.facemodel.default import load_default_geometry, region_loops
    from tf_face.facemodel import default_model
    from tf_face.uv import get_atlas
    mask = st.face_skin_mask(size)
    assert mask.shape == (size, size) and mask.dtype == bool and not mask.flags.writeable
    share = mask.mean()
    assert 0.1 < share < 0.25
    # left/right symmetric (the UV layout is), inside the atlas
    assert (mask & mask[:, ::-1]).sum() / (mask | mask[:, ::-1]).sum() > 0.9
    atlas = get_atlas(default_model(), size)
    assert np.all(atlas.mask[mask])
    # never on brows, eyes or lips (their loops dilated by 2 % of the map)
    uv = load_default_geometry().uv
    feats = np.zeros((size, size), np.float32)
    for loops in region_loops().values():
        for lp in loops:
            feats = np.maximum(feats, rasterise_polygon(uv, lp, size, 0.0))
    d = max(1, round(0.02 * size))
    feats = cv2.dilate((feats > 0.5).astype(np.uint8), np.ones((2 * d + 1, 2 * d + 1), np.uint8)) > 0
    assert not (mask & feats).any()
    # three pieces: two cheeks and the forehead
    n, _ = cv2.connectedComponents(mask.astype(np.uint8))
    assert n - 1 == 3


def test_skin_ita():
    mask = st.face_skin_mask(64)
    for name, c in st.GROUP_REFERENCE_LINEAR.items():
        alb = np.broadcast_to(c, (64, 64, 3)).copy()
        alb[~mask] = 0.9                                   # outside the mask: ignored
        assert st.skin_ita(alb, mask) == pytest.approx(st.GROUP_REFERENCE_ITA[name], abs=1e-6)
        assert st.skin_ita(alb) == pytest.approx(st.GROUP_REFERENCE_ITA[name], abs=1e-6)
    # the mean linear colour, not the mean ITA
    alb = np.zeros((64, 64, 3))
    alb[::2] = st.GROUP_REFERENCE_LINEAR["very_light"]
    alb[1::2] = st.GROUP_REFERENCE_LINEAR["dark"]
    mean = 0.5 * (st.GROUP_REFERENCE_LINEAR["very_light"] + st.GROUP_REFERENCE_LINEAR["dark"])
    full = np.ones((64, 64), bool)
    assert st.skin_ita(alb, full) == pytest.approx(float(st.ita_deg(st.linear_rgb_to_lab(mean))))
    assert np.isnan(st.skin_ita(alb, np.zeros((64, 64), bool)))
    with pytest.raises(ValueError):
        st.skin_ita(alb, np.ones((32, 32), bool))


def test_is_monochrome():
    rng = np.random.default_rng(0)
    grey = np.repeat(rng.uniform(0.02, 0.9, (32, 32, 1)), 3, -1)
    assert st.is_monochrome(grey)
    # a greyscale JPEG: +-1/255 of chroma noise per channel in sRGB
    srgb = st.srgb_to_linear(np.clip(grey ** (1 / 2.2) + rng.integers(-1, 2, grey.shape) / 255,
                                     0, 1))
    assert st.is_monochrome(srgb)
    # skin of every group is coloured, and so is the least coloured shared photo's
    # face (deca_examples/image03786 under a blue sky: L*, a*, b* ~ 55.5, 7.7, 8.0)
    for c in list(st.GROUP_REFERENCE_LINEAR.values()) + [st.lab_to_linear_rgb([55.5, 7.7, 8.0])]:
        assert not st.is_monochrome(np.broadcast_to(c, (8, 8, 3)))
    # only the masked texels count, up to the 95th percentile
    mixed = grey.copy()
    mixed[:, :16] = st.GROUP_REFERENCE_LINEAR["tan"]
    left = np.zeros((32, 32), bool)
    left[:, :16] = True
    assert st.is_monochrome(mixed, ~left) and not st.is_monochrome(mixed, left)
    few = grey.copy()
    few[0, :20] = st.GROUP_REFERENCE_LINEAR["tan"]        # 2% of the texels: still grey
    assert st.is_monochrome(few)
    assert not st.is_monochrome(grey, np.zeros((32, 32), bool))     # nothing to judge
    with pytest.raises(ValueError):
        st.is_monochrome(grey, np.ones((16, 16), bool))
    with pytest.raises(ValueError):
        st.is_monochrome(grey[..., 0])


def test_tone_model_numbers():
    mean, axes, std = tone_model()
    np.testing.assert_allclose(mean, SKIN_LINEAR)
    assert float(st.ita_deg(st.linear_rgb_to_lab(SKIN_LINEAR))) == pytest.approx(TONE_MEAN_ITA)
    np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(std, [0.342, 0.049, 0.018], atol=0.0015)
    # the group references in tone coordinates: all within 3 sigma
    for c in st.GROUP_REFERENCE_LINEAR.values():
        assert np.linalg.norm((c - mean) @ axes / std) < 2.5


def test_default_prior_reaches_every_group():
    """Least-squares prior coefficients for a map of each group's reference
    colour over the skin mask: ||p|| <= 3 and the fitted skin colour within
    Delta E 2 of the reference (the tone span of the prior)."""
    from tf_face.facemodel.default import default_albedo_prior
    mean, basis, std, support = default_albedo_prior(256)
    mask = st.face_skin_mask(256)
    assert st.skin_ita(mean, mask) == pytest.approx(TONE_MEAN_ITA, abs=0.01)
    a = basis[mask].astype(np.float64).reshape(-1, basis.shape[-1])
    m0 = mean[mask].astype(np.float64)
    ata = a.T @ a
    for name, c in st.GROUP_REFERENCE_LINEAR.items():
        y = (c[None] - m0).reshape(-1)
        # B-Net's objective with a tiny weight on ||p||^2 (the unweighted least
        # squares on the mask alone is not unique: lips/eyes components vanish there)
        p = np.linalg.solve(ata + 1e-6 * len(y) * np.eye(len(ata)), a.T @ y)
        fit = m0 + (a @ p).reshape(-1, 3)
        lab = st.linear_rgb_to_lab(fit.mean(0))
        assert np.linalg.norm(p) <= 3.0, (name, np.linalg.norm(p))
        assert st.delta_e76(lab, st.GROUP_REFERENCE_LAB[name]) <= 2.0, name
        assert st.tone_group(st.ita_deg(lab)) == name
        full = (mean.astype(np.float64) + basis.astype(np.float64) @ p)[support]
        assert np.mean((full > 0) & (full < 1)) > 0.99, name


@pytest.fixture(scope="module")
def model():
    from tf_face.facemodel import default_model
    return default_model()


def test_synthetic_faces_span_the_groups(model):
    from tf_face.facemodel.default import default_albedo_prior
    from tf_face.synthetic import Difficulty, sample_face
    mean, basis, _, _ = default_albedo_prior(256)
    mask = st.face_skin_mask(256)
    d = Difficulty(max_yaw=30.0)
    drawn, measured = [], []
    for i in range(30):
        f = sample_face(np.random.default_rng([21, i]), model, d)
        assert f.skin_group in st.GROUP_NAMES and st.tone_group(f.ita_deg) == f.skin_group
        assert st.ITA_RANGE[1] <= f.ita_deg <= st.ITA_RANGE[0]
        # the oracle-PCA baseline relies on prior_albedo = m_a + U_a p_a exactly
        recon = mean + np.einsum("hwck,k->hwc", basis, f.prior_coeffs)
        np.testing.assert_allclose(f.prior_albedo, recon, atol=2e-6)
        assert st.skin_ita(f.prior_albedo, mask) == pytest.approx(f.ita_deg, abs=0.01)
        drawn.append(f.skin_group)
        measured.append(st.skin_ita(f.albedo, mask))
        assert abs(measured[-1] - f.ita_deg) < 3.0
    assert set(drawn) == set(st.GROUP_NAMES)
    measured_groups = [st.tone_group(t) for t in measured]
    assert set(measured_groups) == set(st.GROUP_NAMES)
    assert np.mean(np.array(measured_groups) == np.array(drawn)) >= 0.9


def test_synthetic_skin_tone_choice(model):
    from tf_face.synthetic import sample_face
    from tf_face.synthetic.albedo import HAIR_COLOURS, hair_colour
    for i in range(4):
        f = sample_face(np.random.default_rng([22, i]), model, skin_tone="dark")
        assert f.skin_group == "dark" and st.tone_group(st.skin_ita(f.albedo)) == "dark"
    a = sample_face(np.random.default_rng(5), model, skin_tone="all")
    b = sample_face(np.random.default_rng(5), model, skin_tone=None)
    assert a.skin_group == b.skin_group and np.array_equal(a.albedo, b.albedo)
    with pytest.raises(ValueError, match="very_light, light, intermediate, tan, brown, dark"):
        sample_face(np.random.default_rng(0), model, skin_tone="olive")
    # hair that goes with the tone: no blond or red on dark skin
    rng = np.random.default_rng(0)
    light_ones = {3, 4, 6}
    dark_hair = {int(np.argmin(np.abs(HAIR_COLOURS - hair_colour(rng, "dark")).sum(1))) for _ in range(300)}
    assert not dark_hair & light_ones and 0 in dark_hair
    light_hair = {int(np.argmin(np.abs(HAIR_COLOURS - hair_colour(rng, "very_light")).sum(1)))
                  for _ in range(300)}
    assert light_hair == set(range(len(HAIR_COLOURS)))
