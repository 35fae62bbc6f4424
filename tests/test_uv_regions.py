"""UV feature regions (tf_face.uv.regions): eyes and brows from the 68-landmark
correspondence, checked on a hand-made layout with known areas and on the
default model's layout."""

import numpy as np
import pytest

from tf_face.ibug import inter_ocular_distance
from tf_face.uv import regions


def _hand_made_landmarks():
    """68 UV points: two square "eyes" (0.1 wide, centres 0.4 apart) and two
    flat brow lines 0.1 above them; every other point at the centre."""
    lm = np.full((68, 2), 0.5)
    square = np.array([[-0.05, 0.0], [-0.05, -0.05], [0.05, -0.05], [0.05, 0.0],
                       [0.05, 0.05], [-0.05, 0.05]])       # a 0.1 x 0.1 hexagon-ordered square
    for first, cx in ((36, 0.3), (42, 0.7)):
        lm[first:first + 6] = square + [cx, 0.5]
    for first, cx in ((17, 0.3), (22, 0.7)):
        lm[first:first + 5, 0] = cx + np.linspace(-0.08, 0.08, 5)
        lm[first:first + 5, 1] = 0.4
    return lm


def test_hand_made_areas():
    """Eyes: the squares grown by EYE_GROW_IOD x IOD (a rounded square);
    brows: rectangles 0.16 wide and (above + below) x IOD tall."""
    lm = _hand_made_landmarks()
    uv, ids, size = lm, np.arange(68), 400
    iod = inter_ocular_distance(lm)
    assert iod == pytest.approx(0.4)
    eyes = regions.feature_mask(uv, ids, size, ("eyes",))
    g = regions.EYE_GROW_IOD * iod
    area = 2 * (0.01 + 4 * 0.1 * g + np.pi * g * g)           # Minkowski sum with a disc
    assert eyes.sum() / size ** 2 == pytest.approx(area, rel=0.06)
    brows = regions.feature_mask(uv, ids, size, ("brows",))
    area = 2 * 0.16 * (regions.BROW_ABOVE_IOD + regions.BROW_BELOW_IOD) * iod
    assert brows.sum() / size ** 2 == pytest.approx(area, rel=0.06)
    # the brow band hangs below the brow line (v down): texels above it end
    # BROW_ABOVE_IOD x IOD above
    rows = np.nonzero(brows.any(1))[0]
    top = 0.4 - regions.BROW_ABOVE_IOD * iod
    assert (rows.min() + 0.5) / size == pytest.approx(top, abs=2 / size)
    bottom = 0.4 + regions.BROW_BELOW_IOD * iod
    assert (rows.max() + 0.5) / size == pytest.approx(bottom, abs=2 / size)
    both = regions.feature_mask(uv, ids, size)
    np.testing.assert_array_equal(both, eyes | brows)


def test_default_layout():
    """On the default model: the eye centres and the brow hair (just under the
    brow points) are inside; nose tip, mouth and cheeks are not; the layout is
    symmetric, so is the mask."""
    from tf_face.facemodel.default import load_default_geometry
    g = load_default_geometry()
    size = 256
    m = regions.model_feature_mask(g, size)
    lm = np.asarray(g.uv, np.float64)[g.landmarks68]
    iod = inter_ocular_distance(lm)

    def at(p):
        c = np.floor(np.asarray(p) * size).astype(int)
        return bool(m[c[1], c[0]])

    assert at(lm[36:42].mean(0)) and at(lm[42:48].mean(0))
    for i in range(17, 27):
        assert at(lm[i] + [0, 0.06 * iod]), i
    for p in (lm[30], lm[48:68].mean(0), lm[[2, 31]].mean(0), lm[[14, 35]].mean(0)):
        assert not at(p)
    iou = (m & m[:, ::-1]).sum() / (m | m[:, ::-1]).sum()
    assert iou > 0.9, iou


def test_lips_region():
    """``lips``: the outer lip contour grown by LIPS_GROW_IOD x IOD. On the
    hand-made layout (all 12 points at the centre) that is a disc of that
    radius; on the default layout it holds the mouth corners and the lips'
    middle, not the nose tip or the eyes; it is not a default feature."""
    lm = _hand_made_landmarks()
    size = 400
    lips = regions.feature_mask(lm, np.arange(68), size, ("lips",))
    r = regions.LIPS_GROW_IOD * inter_ocular_distance(lm)
    assert lips.sum() / size ** 2 == pytest.approx(np.pi * r * r, rel=0.1)
    assert "lips" not in regions.FEATURES and "lips" in regions.STROKE_KEEP
    from tf_face.facemodel.default import load_default_geometry
    g = load_default_geometry()
    m = regions.model_feature_mask(g, 256, ("lips",))
    uv = np.asarray(g.uv, np.float64)[g.landmarks68]

    def at(p):
        c = np.floor(np.asarray(p) * 256).astype(int)
        return bool(m[c[1], c[0]])
    for p in (uv[48], uv[54], uv[[51, 57]].mean(0)):
        assert at(p)
    for p in (uv[30], uv[36:42].mean(0), uv[42:48].mean(0)):
        assert not at(p)


def test_bad_arguments():
    lm = _hand_made_landmarks()
    with pytest.raises(ValueError, match="unknown features"):
        regions.feature_mask(lm, np.arange(68), 64, ("eyes", "nose"))
    with pytest.raises(ValueError, match="68"):
        regions.feature_mask(lm, np.arange(60), 64)


def test_centre_and_beard_regions():
    """``centre`` (the skin test's reference): the nose and the cheeks under
    the eyes, not the eyes, the mouth or the forehead; ``beard``: the lower
    face (mouth, chin, lower cheeks), not the nose tip, the eyes or the
    forehead. Neither is a default feature; both are symmetric on the
    default layout and do not overlap much (the nostril line is their border)."""
    from tf_face.facemodel.default import load_default_geometry
    g = load_default_geometry()
    size = 256
    lm = np.asarray(g.uv, np.float64)[g.landmarks68]
    centre = regions.model_feature_mask(g, size, ("centre",))
    beard = regions.model_feature_mask(g, size, ("beard",))

    def at(m, p):
        c = np.floor(np.asarray(p) * size).astype(int)
        return bool(m[c[1], c[0]])

    forehead = lm[[19, 24]].mean(0) - [0, 0.3 * inter_ocular_distance(lm)]
    for p in (lm[30], lm[[40, 31]].mean(0), lm[[47, 35]].mean(0), lm[28]):
        assert at(centre, p), p
    for p in (lm[36:42].mean(0), lm[42:48].mean(0), lm[62], lm[8], forehead):
        assert not at(centre, p), p
    for p in (lm[62], lm[57], lm[[8, 57]].mean(0), lm[[5, 48]].mean(0), lm[[11, 54]].mean(0)):
        assert at(beard, p), p
    for p in (lm[30], lm[36:42].mean(0), forehead, lm[0]):
        assert not at(beard, p), p
    assert (centre & beard).sum() < 0.05 * min(centre.sum(), beard.sum())
    for m in (centre, beard):
        assert (m & m[:, ::-1]).sum() / (m | m[:, ::-1]).sum() > 0.9
    assert not (regions.model_feature_mask(g, size) & centre).sum() > 0.1 * centre.sum()
