"""Convenience: detect the faces in a photo and landmark one of them."""

from __future__ import annotations

import numpy as np

from tf_face.errors import NoFaceError
from tf_face.types import Detection


def detect_landmarks(image: np.ndarray, detector, landmarker,
                     face_index: int = 0) -> tuple[Detection, np.ndarray, int]:
    """Return ``(detection, landmarks [468, 3], number of faces)``.

    ``face_index`` counts faces largest first.  Raises ``NoFaceError`` when
    there is no face or ``face_index`` is out of range (one-line messages).
    """
    dets = detector(image)
    if not dets:
        raise NoFaceError("no face found in the image")
    if not 0 <= face_index < len(dets):
        raise NoFaceError(f"face_index={face_index} but only {len(dets)} face(s) found")
    det = dets[face_index]
    return det, landmarker(image, det), len(dets)
