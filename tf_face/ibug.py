"""The iBUG-68 eyes and the inter-ocular distance (IOD), the one definition.

IOD = distance between the eye centres, each the mean of an eye's six iBUG
points (subject's right eye 36..41, on the image's left in a frontal photo;
left eye 42..47). It normalises the fit's ``landmark_rmse_iod`` and the
landmark benchmark, sizes synthetic occluders and skin patches, and (on the
model's mean shape) is the unit of the detail displacement maps.
"""

from __future__ import annotations

import numpy as np

#: iBUG-68 rows of the subject's right / left eye (their means are the eye centres)
RIGHT_EYE_68 = np.arange(36, 42)
LEFT_EYE_68 = np.arange(42, 48)


def eye_centres(points68) -> tuple[np.ndarray, np.ndarray]:
    """``(right, left)`` eye centres of ``[68, D]`` iBUG points (float64)."""
    p = np.asarray(points68, np.float64)
    if p.shape[0] != 68:
        raise ValueError(f"expected 68 iBUG points, got {p.shape}")
    return p[RIGHT_EYE_68].mean(0), p[LEFT_EYE_68].mean(0)


def inter_ocular_distance(points68) -> float:
    """Distance between the eye centres of ``[68, D]`` iBUG points (any D)."""
    right, left = eye_centres(points68)
    return float(np.linalg.norm(right - left))
