"""Landmarks as weighted vertex sums.

A landmark k of a model is ``l_k = sum_j weights[k, j] * X[indices[k, j]]``
(padded with weight 0). The 68-point iBUG landmarks are single vertices; the
5-point set of face-alignment files (and of Deep3DFaceRecon's detections) has
two "virtual" landmarks, the eye centres, that are means of six vertices.

Sliding contour landmarks (``contour``: landmark row -> candidate vertex ids,
front of the face -> ear) replace their row's single vertex by the candidate
chosen for the current pose (``tf_face.fitting.contour``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_face.errors import FitError
from tf_face.ibug import LEFT_EYE_68, RIGHT_EYE_68

# iBUG-68 rows of the eye centres: tf_face.ibug (the one IOD definition).
# MediaPipe FaceMesh eye corners (subject's right eye: 33 outer, 133 inner;
# left eye: 362 inner, 263 outer), used for the IOD of 468-point fits when the
# model has no 68-point correspondence.
MEDIAPIPE_RIGHT_EYE = np.array([33, 133])
MEDIAPIPE_LEFT_EYE = np.array([362, 263])


@dataclasses.dataclass
class LandmarkSpec:
    indices: np.ndarray     # [L, m] int64 vertex ids
    weights: np.ndarray     # [L, m] float64, rows sum to 1
    contour: dict           # row -> [C] int64 candidate ids (front -> ear)
    right_eye_rows: np.ndarray  # rows whose mean is the subject's right eye centre
    left_eye_rows: np.ndarray

    @property
    def num(self) -> int:
        return int(self.indices.shape[0])

    def main_vertex(self) -> np.ndarray:
        """[L] the vertex with the largest weight in each row."""
        j = np.argmax(self.weights, axis=1)
        return self.indices[np.arange(self.num), j]


def spec_68(model) -> LandmarkSpec:
    if model.landmarks68 is None:
        raise FitError(f"face model {model.name!r} has no 68-landmark indices; "
                       "it cannot be fitted to 68 landmarks")
    ids = np.asarray(model.landmarks68, np.int64).reshape(68, 1)
    contour = {int(k): np.asarray(v, np.int64).ravel()
               for k, v in (model.contour_candidates or {}).items()
               if 0 <= int(k) < 68 and len(v)}
    return LandmarkSpec(ids, np.ones((68, 1)), contour, RIGHT_EYE_68, LEFT_EYE_68)


def spec_5(model) -> LandmarkSpec:
    """Image-left eye centre, image-right eye centre, nose tip, image-left and
    image-right mouth corner = iBUG mean(36..41), mean(42..47), 30, 48, 54."""
    if model.landmarks68 is None:
        raise FitError(f"face model {model.name!r} has no 68-landmark indices; "
                       "it cannot be fitted to 5 landmarks")
    lm = np.asarray(model.landmarks68, np.int64)
    idx = np.zeros((5, 6), np.int64)
    w = np.zeros((5, 6))
    idx[0], w[0] = lm[RIGHT_EYE_68], 1.0 / 6
    idx[1], w[1] = lm[LEFT_EYE_68], 1.0 / 6
    for row, k in ((2, 30), (3, 48), (4, 54)):
        idx[row, 0], w[row, 0] = lm[k], 1.0
    return LandmarkSpec(idx, w, {}, np.array([0]), np.array([1]))


def eye_distance(points2d: np.ndarray, spec: LandmarkSpec) -> float:
    """Inter-ocular distance (eye centres) of observed [L, 2] landmarks."""
    a = points2d[spec.right_eye_rows].mean(axis=0)
    b = points2d[spec.left_eye_rows].mean(axis=0)
    return float(np.linalg.norm(a - b))
