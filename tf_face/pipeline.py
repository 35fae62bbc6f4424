"""The geometry pipeline: photo -> detection -> landmarks -> fit (Eq. 1) -> UV sample.

``GeometryPipeline`` holds everything that is loaded once (face model, UV atlas,
TFLite interpreters) and runs one photo at a time::

    pipe = GeometryPipeline("default")
    result = pipe.run(load_image("face.jpg"))
    result.sample.texture      # [256, 256, 3] UV texture I_t(UV)

Landmarks come from MediaPipe's 468-point model unless the caller passes
landmarks read from a file (68-point iBUG or 5-point). Models that are not
driven by all 468 points (BFM, ICT, ...) get the 68 iBUG landmarks through the
default model's 468 -> 68 correspondence.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Optional

import numpy as np

from tf_face.errors import show_path
from tf_face.facemodel import default_model, load_face_model
from tf_face.image_io import load_image
from tf_face.landmarks import FaceDetector, FaceMeshLandmarker, detect_landmarks
from tf_face.landmarks.landmark_files import check_landmarks_in_image, read_landmark_file
from tf_face.types import Detection, FittedFace, UVSample
from tf_face.uv import get_atlas, unwrap

# Below this face-presence score the landmark model is not looking at a face it
# can handle (heavy occlusion, extreme pose beyond ~70 deg yaw, not a face).
MIN_LANDMARK_SCORE = 0.5


def read_inputs(image_path, landmarks_path=None):
    """Load and check a photo (and an optional landmark file): cheap, no model.

    The CLIs call this before loading any model, so bad input fails fast with
    the same one-line error everywhere."""
    image = load_image(image_path)
    landmarks = None
    if landmarks_path:
        landmarks = read_landmark_file(landmarks_path)
        # the points must belong to this photo: far-off points would fit a face
        # outside it (an all-black texture, or a failure deep in the renderer)
        check_landmarks_in_image(landmarks, image.shape, show_path(landmarks_path))
    return image, landmarks


class _Timed:
    """Wraps a callable model and adds up the milliseconds spent in its calls."""

    def __init__(self, fn):
        self._fn, self.ms = fn, 0.0

    def __call__(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self._fn(*args, **kwargs)
        finally:
            self.ms += (time.perf_counter() - t) * 1e3

    def __getattr__(self, name):
        return getattr(self._fn, name)


@dataclasses.dataclass
class PipelineResult:
    detection: Optional[Detection]  # the face used (None with a landmark file)
    num_faces: int              # faces detected in the photo (0 with a landmark file)
    face_index: int
    landmarks: np.ndarray       # [468,3] MediaPipe points, or [68,2] / [5,2] from a file
    landmark_source: str        # "mediapipe" or "file"
    landmark_score: float       # face-presence score of the landmark model (1.0 for files)
    fitted: FittedFace
    sample: UVSample
    timings_ms: dict

    def fit_json(self) -> dict:
        out = self.fitted.to_json()
        out.update({
            "landmark_source": self.landmark_source,
            "landmark_score": float(self.landmark_score),
            "num_faces": self.num_faces,
            "face_index": self.face_index,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "visible_texels": int(self.sample.mask.sum()),
        })
        if self.detection is not None:
            det = self.detection
            out["detection"] = {"box": np.round(det.box, 2).tolist(), "score": float(det.score)}
        return out


class GeometryPipeline:
    """Loads a face model, its UV atlas and the TFLite models once; runs photos."""

    def __init__(self, model: str = "default", uv_size: int = 256, min_cos: float = 0.2,
                 fit_options=None, landmark_flip: bool = True):
        # lazy: tf_face.fitting loads scipy.linalg (~150 ms); every CLI imports pipeline for --help
        from tf_face.fitting import FitOptions

        t0 = time.perf_counter()
        self.model = load_face_model(model)
        self.default = default_model()
        self.atlas = get_atlas(self.model, size=uv_size)
        self.min_cos = float(min_cos)
        self.fit_options = fit_options if fit_options is not None else FitOptions()
        # the landmarker's last pass averaged with its mirror image (facemesh module doc);
        # the default model's vertices are the landmarker's points
        self.landmark_flip = bool(landmark_flip)
        self._detector = None
        self._landmarker = None
        self.load_ms = (time.perf_counter() - t0) * 1e3

    @property
    def detector(self):
        if self._detector is None:
            self._detector = FaceDetector()
        return self._detector

    @property
    def landmarker(self):
        if self._landmarker is None:
            self._landmarker = FaceMeshLandmarker(
                mirror=self.default.mirror if self.landmark_flip else None)
        return self._landmarker

    def _fit_landmarks(self, landmarks: np.ndarray, source: str) -> np.ndarray:
        """The landmark array the model's fit expects."""
        if source == "file" or self.model.observed_shape:
            return landmarks
        # 468 MediaPipe points -> 68 iBUG points via the default model's correspondence
        return landmarks[self.default.landmarks68, :2]

    def run(self, image: np.ndarray, landmarks: Optional[np.ndarray] = None,
            face_index: int = 0) -> PipelineResult:
        """Run one RGB uint8 image [H,W,3]; ``landmarks`` from a file skip detection."""
        from tf_face.fitting import fit_face  # lazy: see __init__ (scipy.linalg)

        timings: dict[str, float] = {}
        detection, num_faces = None, 0
        score = 1.0
        if landmarks is None:
            detector, landmarker = _Timed(self.detector), _Timed(self.landmarker)
            # skips detections the landmark model rejects, fixes turned faces
            detection, landmarks, num_faces = detect_landmarks(
                image, detector, landmarker, face_index=face_index,
                min_presence=MIN_LANDMARK_SCORE)
            # >= MIN_LANDMARK_SCORE: detect_landmarks skips faces scoring below it
            score = float(getattr(self.landmarker, "last_score", 1.0))
            timings["detect"] = detector.ms
            timings["landmarks"] = landmarker.ms
            source = "mediapipe"
        else:
            source = "file"
        t = time.perf_counter()
        fitted = fit_face(self.model, self._fit_landmarks(landmarks, source),
                          image_size=image.shape[:2], options=self.fit_options)
        timings["fit"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        sample = unwrap(image, fitted, self.model, self.atlas, min_cos=self.min_cos)
        timings["unwrap"] = (time.perf_counter() - t) * 1e3
        timings["total"] = sum(timings.values())
        return PipelineResult(detection, num_faces, face_index, landmarks, source, score,
                              fitted, sample, timings)
