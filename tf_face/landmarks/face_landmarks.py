"""Convenience: detect the faces in a photo and landmark one of them."""

from __future__ import annotations

import numpy as np

from tf_face.errors import NoFaceError
from tf_face.landmarks.blazeface import MIN_FACE_SCORE
from tf_face.types import Detection


def detect_landmarks(image: np.ndarray, detector, landmarker, face_index: int = 0,
                     min_presence: float = MIN_FACE_SCORE, orientation_below: float = 0.8
                     ) -> tuple[Detection, np.ndarray, int]:
    """Return ``(detection, landmarks [468, 3], number of detections)``.

    Detections are taken largest first; one whose landmark face-presence
    score (``landmarker.last_score``) is below ``min_presence`` is treated as
    a false positive and skipped (BlazeFace's threshold, the same
    ``MIN_FACE_SCORE``, lets a few through, e.g. on strongly rotated
    photos), so ``face_index`` counts
    verified faces.  Only the faces up to ``face_index`` are landmarked.
    A detection scoring below ``orientation_below`` first goes through
    ``detector.fix_orientation`` (faces turned by 90-180 degrees score
    0.6-0.86 on the astronaut, upright faces 0.79-0.99 on the shared photos;
    the check costs four short-range runs, ~8 ms, so the gate is set low;
    faces turned by 90 degrees that score above it are usually still
    landmarked correctly thanks to the refinement pass).  The returned
    detection is the corrected one.
    Raises ``NoFaceError`` (one-line message) when there is no such face.
    """
    if face_index < 0:
        raise NoFaceError(f"face_index must be >= 0, got {face_index}")
    dets = detector(image)
    if not dets:
        raise NoFaceError("no face found in the image")
    verified = 0
    for det in dets:
        if det.score < orientation_below and hasattr(detector, "fix_orientation"):
            det = detector.fix_orientation(image, det)
        pts = landmarker(image, det)
        if landmarker.last_score < min_presence:
            continue
        if verified == face_index:
            return det, pts, len(dets)
        verified += 1
    if verified == 0:
        raise NoFaceError(f"no face found in the image ({len(dets)} detection(s) "
                          f"rejected by the landmark model)")
    raise NoFaceError(f"face_index={face_index} but only {verified} face(s) found")
