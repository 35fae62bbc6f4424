"""The one inter-ocular distance (tf_face.ibug): analytic values and its users agree."""

import numpy as np
import pytest

from tf_face import ibug


def _points(right, left, dim=2):
    p = np.zeros((68, dim))
    p[36:42] = right
    p[42:48] = left
    p[36] += 1.0          # the means, not the corners, are the eye centres
    p[39] -= 1.0
    return p


def test_iod_is_the_distance_between_eye_centres():
    assert ibug.inter_ocular_distance(_points([-3.0, 0.0], [3.0, 4.0])) == pytest.approx(
        np.hypot(6.0, 4.0), abs=1e-12)
    p3 = _points([0.0, 1.0, 2.0], [0.0, 1.0, 7.0], dim=3)
    assert ibug.inter_ocular_distance(p3) == pytest.approx(5.0, abs=1e-12)
    right, left = ibug.eye_centres(p3)
    np.testing.assert_allclose(right, [0, 1, 2], atol=1e-12)
    np.testing.assert_allclose(left, [0, 1, 7], atol=1e-12)
    with pytest.raises(ValueError):
        ibug.inter_ocular_distance(np.zeros((5, 2)))


def test_users_share_the_definition():
    from tf_face.detail import model_detail_unit
    from tf_face.facemodel import default_model
    from tf_face.fitting.landmark_spec import spec_68

    model = default_model()
    lm = model.mean_shape[model.landmarks68].astype(np.float64)
    want = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))   # float64 reference
    assert model_detail_unit(model) == pytest.approx(want, rel=1e-12)
    assert ibug.inter_ocular_distance(lm) == pytest.approx(want, rel=1e-12)
    spec = spec_68(model)
    assert list(spec.right_eye_rows) == list(range(36, 42))
    assert list(spec.left_eye_rows) == list(range(42, 48))
