"""MediaPipe Face Mesh: 468 3D landmarks from ``face_landmark.tflite``.

Model: input ``1x192x192x3`` float32 RGB in **[0, 1]** (current MediaPipe;
[-1, 1] also gives plausible points, a mirror-consistency check favoured
[0, 1]); outputs (read by name) ``conv2d_21`` ``[1,1,1,1404]`` = 468 x (x, y, z)
in crop pixels and ``conv2d_31``, a face-presence logit ``[1,1,1,1]``.

Crop (``face_crop``): a square of side ``scale * max(box w, box h)``
(scale 1.5) centred on the detection box, rotated so that the line from the
subject's right eye keypoint to the left eye keypoint is the crop's +x axis
(roll removed).  The crop -> image map is the affine
``p_img = centre + (side / 192) * [e, e_perp] @ (p_crop - 95.5)`` with ``e`` the
unit eye direction and ``e_perp = (-e_y, e_x)`` (y down); the crop is sampled
with ``cv2.warpAffine`` (bilinear, border replicated); when the crop shrinks
the face by 2x or more, its region is first block-averaged by that integer
factor so that large faces (10000 px photos) do not alias.

Output (``FaceMeshLandmarker.__call__``): ``[468, 3]`` float32 in image
pixels with pixel centres at integer coordinates (the model's crop outputs
are continuous coordinates, pixel i spanning [i, i+1), so 0.5 is subtracted
before mapping; warpAffine samples crop pixel centres): x = column,
y = row, z = depth on the same pixel scale (crop z times ``side / 192``),
**negative towards the camera**, roughly zero-mean over the face (nose tip
~ -0.12 x crop side).  Landmark order is MediaPipe's canonical face-mesh
order (e.g. 1 = nose tip, 33/133 = subject's right eye corners, 263/362 =
left eye corners, 13/14 = inner lips; "right" = subject's right).

``refine=True`` (default) runs the model a second time on a crop computed from
the first pass's landmarks (their bounding box in the eye-aligned frame,
roll from the eye corners 33 -> 263, scale 1.5), as MediaPipe does when
tracking.  Measured on the astronaut: de-rotation error at 30 degrees of
roll 0.8% -> 0.2-0.6% of the eye distance, at 60 degrees 2.6% -> 1.4-2.0%,
sensitivity to a 10% box change 1.1% -> 0.5%; mirror consistency stays at
~2% (more passes improve rotation further but worsen mirror consistency, so
one refinement pass it is, plus more while the crop still turns by more than
10 degrees per pass, i.e. only when the detector's roll was far off: the model
under-corrects a large roll by about half per pass).  Costs a second model
run (~1.5 ms) on most faces.

``mirror`` (a [468] permutation: each point's left/right partner, e.g. the
default face model's ``mirror``, whose vertices are these points): the last
pass also runs on the same crop mirrored left to right, its points are
renamed by ``mirror`` (its "right eye corner" is the subject's left) and
mapped back through the mirrored crop, and the two are averaged -- flip
test-time augmentation, one more model run. The model's errors on a face and
on its mirror image are not the same (it leans differently on a face turned
left and one turned right), so the average is closer to the truth and
exactly mirror-consistent. Measured on synthetic faces with known vertices
(seed 3000, 60 faces, yaw up to 60 deg; ``tf_face.synthetic.registration``
after the fit's mesh refinement): median 468-point error 0.0364 -> 0.0358
IOD (mean 0.0456 -> 0.0442), median misregistration 3.89 -> 3.62 texels
(mean 4.29 -> 4.20), better on 38 and 39 of the 60 faces; seed 2000, 30
faces, before the refinement: misregistration mean 6.14 -> 5.87 texels
(22 of 30 better). On real photos: the 5-point agreement with
Deep3DFaceRecon's detection files (``deep3d_examples/detections``, 25
photos) 0.0565 -> 0.0547 IOD mean; the ICT model's 68-landmark fit
residual over the 56 shared photos 0.0266 -> 0.0264 IOD median; a mirrored
astronaut gives the mirrored points to 0.0059 IOD mean instead of 0.0217.
Cost: the landmark step 4.1 -> 6.1 ms (median, 56 shared photos).
``GeometryPipeline`` passes the default model's ``mirror``
(``landmark_flip``); the class's default is without it, as
``facemodel.build`` observed the faces the default model was built from.
Not kept: two more crops, 0.9x and 1.1x the size, each with its mirror (six
runs): on the same 60 faces no better than the flip alone (misregistration
mean 4.24 vs 4.20 texels, 25 of 60 better). Nor a third refinement pass on
every face before the flip: on those 60 faces 468-point error mean 0.0442
-> 0.0424 IOD (42 better), but on 30 faces of seed 2000 0.0503 -> 0.0500
(15 better, misregistration 12 of 30 better) and on the 25 real photos'
5-point files 0.0547 -> 0.0544 mean, 0.0534 -> 0.0543 median.
"""

from __future__ import annotations

import cv2
import numpy as np

from tf_face.landmarks.blazeface import area_downscale
from tf_face.landmarks.tflite_model import TFLiteModel, small_model_threads
from tf_face.types import Detection

INPUT_SIZE = 192
NUM_LANDMARKS = 468
LANDMARKS_OUTPUT = "conv2d_21"   # the .tflite output names: [1,1,1,1404] points
PRESENCE_OUTPUT = "conv2d_31"    # and [1,1,1,1] face-presence logit
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263
NOSE_TIP = 1


def crop_affine(centre, eye_dir, side: float, size: int = INPUT_SIZE) -> np.ndarray:
    """2x3 affine mapping crop pixel centres (u, v) in 0..size-1 to image pixels."""
    e = np.asarray(eye_dir, np.float64)
    norm = np.linalg.norm(e)
    e = e / norm if norm > 1e-9 else np.array([1.0, 0.0])
    k = side / size
    a = np.array([[e[0], -e[1]], [e[1], e[0]]]) * k   # columns: e, e_perp
    c = (size - 1) / 2     # crop pixel centres are 0..size-1
    t = np.asarray(centre, np.float64) - a @ np.array([c, c])
    return np.concatenate([a, t[:, None]], axis=1)


def face_crop(detection: Detection, scale: float = 1.5, turn_degrees: float = 0.0) -> np.ndarray:
    """Crop affine from a BlazeFace detection (box centre, eye keypoints).

    ``turn_degrees`` turns the crop's axes further (used to retry a crop when
    the detector's eye keypoints are wrong on faces with a large roll).
    """
    b = np.asarray(detection.box, np.float64)
    kp = np.asarray(detection.keypoints, np.float64)
    centre = ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)
    side = scale * max(b[2] - b[0], b[3] - b[1])
    e = kp[1] - kp[0]
    t = np.deg2rad(turn_degrees)
    e = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ e
    return crop_affine(centre, e, side)


def mirrored_affine(affine: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The crop affine of the same square seen in a mirror: crop pixel (u, v)
    maps to where ``affine`` maps (size - 1 - u, v)."""
    a = np.asarray(affine, np.float64).copy()
    a[:, 2] = a[:, 2] + a[:, 0] * (size - 1)
    a[:, 0] = -a[:, 0]
    return a


def landmark_crop(landmarks: np.ndarray, scale: float = 1.5) -> np.ndarray:
    """Crop affine from landmarks: rotated bounding box of the points, squared."""
    pts = np.asarray(landmarks, np.float64)[:, :2]
    e = pts[LEFT_EYE_OUTER] - pts[RIGHT_EYE_OUTER]
    e = e / max(np.linalg.norm(e), 1e-9)
    rot = np.array([[e[0], e[1]], [-e[1], e[0]]])      # image -> upright frame
    q = pts @ rot.T
    lo, hi = q.min(0), q.max(0)
    centre = rot.T @ ((lo + hi) / 2)
    side = scale * float(np.max(hi - lo))
    return crop_affine(centre, e, side)


def _prefilter(image: np.ndarray, affine: np.ndarray):
    """Block-average the crop's region first when the crop shrinks it >= 2x.

    Bilinear warping alone would alias (a 4000 px face squeezed into 192 px).
    Returns the source to warp and the crop -> source affine.
    """
    k = np.sqrt(abs(np.linalg.det(affine[:, :2])))       # image px per crop px
    f = int(k)
    if f < 2:
        return image, affine
    h, w = image.shape[:2]
    corners = np.array([[0, 0], [INPUT_SIZE - 1, 0], [0, INPUT_SIZE - 1],
                        [INPUT_SIZE - 1, INPUT_SIZE - 1]], np.float64)
    pts = corners @ affine[:, :2].T + affine[:, 2]
    x0, y0 = np.clip(np.floor(pts.min(0)) - f, 0, [w - 1, h - 1]).astype(int)
    x1, y1 = np.clip(np.ceil(pts.max(0)) + f + 1, 1, [w, h]).astype(int)
    if x1 - x0 < 2 * f or y1 - y0 < 2 * f:
        return image, affine
    small, f = area_downscale(image[y0:y1, x0:x1], f)
    a = affine.copy()
    a[:, :2] /= f
    # image integer coords -> sub-image -> continuous /f -> small pixel centres
    a[:, 2] = (affine[:, 2] - [x0, y0] + 0.5) / f - 0.5
    return small, a


def _angle_between(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees between the crop x-axes of two crop affines."""
    u, v = a[:, 0], b[:, 0]
    c = float(u @ v) / max(float(np.linalg.norm(u) * np.linalg.norm(v)), 1e-12)
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


class FaceMeshLandmarker:
    """468 landmarks for one detected face.

    Args:
      scale: crop side relative to the detection box (MediaPipe: 1.5).
      refine: second pass on a crop from the first pass's landmarks.
      reroll_degrees, max_passes: further refinement passes run while the
        new crop is turned by more than ``reroll_degrees`` from the previous
        one (the detector's roll was far off), up to ``max_passes`` runs.
      num_threads: TFLite threads (default ``small_model_threads()``: 2 where
        the process has 2+ cores).

      mirror: [468] int, each point's left/right partner: average the last
        pass with its run on the mirrored crop (module docstring); None: not.

    ``__call__(image, detection)`` -> ``[468, 3]`` float32 image-pixel
    landmarks (see module docstring); ``last_score`` is the face-presence
    probability of the last (unmirrored) model run, ``last_affine`` its crop
    -> image map.
    """

    def __init__(self, scale: float = 1.5, refine: bool = True,
                 reroll_degrees: float = 10.0, max_passes: int = 4,
                 num_threads: int | None = None, mirror=None):
        self.mirror = None
        if mirror is not None:
            m = np.asarray(mirror)
            if (m.shape != (NUM_LANDMARKS,) or not np.issubdtype(m.dtype, np.integer)
                    or not np.array_equal(np.sort(m), np.arange(NUM_LANDMARKS))
                    or not np.array_equal(m[m], np.arange(NUM_LANDMARKS))):
                raise ValueError(f"mirror must be a [{NUM_LANDMARKS}] integer permutation that "
                                 "is its own inverse (each point's left/right partner)")
            self.mirror = m.astype(np.int64)
        self.scale = float(scale)
        self.reroll_degrees = float(reroll_degrees)
        self.max_passes = max(2, int(max_passes))
        self.refine = bool(refine)
        self.model = TFLiteModel("face_landmark.tflite", num_threads or small_model_threads())
        self._crop = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        self._input = np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32)
        self.last_score = float("nan")
        self.last_affine = None

    def run_crop(self, image: np.ndarray, affine: np.ndarray) -> np.ndarray:
        """Run the model on the crop given by ``affine`` (crop -> image)."""
        src, src_affine = _prefilter(image, affine)
        cv2.warpAffine(src, src_affine, (INPUT_SIZE, INPUT_SIZE), dst=self._crop,
                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_REPLICATE)
        np.multiply(self._crop, 1.0 / 255.0, out=self._input[0], casting="unsafe")
        outs = self.model(self._input)
        pts = outs[LANDMARKS_OUTPUT]
        logit = float(outs[PRESENCE_OUTPUT].reshape(()))
        self.last_score = float(1.0 / (1.0 + np.exp(-np.clip(logit, -100, 100))))
        self.last_affine = affine
        crop = pts.reshape(NUM_LANDMARKS, 3).astype(np.float64)
        crop[:, :2] -= 0.5     # continuous crop coords -> integer pixel centres
        out = np.empty((NUM_LANDMARKS, 3), np.float32)
        out[:, :2] = crop[:, :2] @ affine[:, :2].T + affine[:, 2]
        k = np.sqrt(abs(np.linalg.det(affine[:, :2])))     # side / 192
        out[:, 2] = crop[:, 2] * k
        return out

    def __call__(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 [H, W, 3] RGB image, got {image.dtype} {image.shape}")
        pts = self.run_crop(image, face_crop(detection, self.scale))
        if self.refine:
            # One refinement pass; more while the crop keeps turning by more
            # than reroll_degrees (the model under-corrects a large roll by
            # about half per pass), at most max_passes model runs in all.
            for _ in range(self.max_passes - 1):
                previous = self.last_affine
                crop = landmark_crop(pts, self.scale)
                pts = self.run_crop(image, crop)
                if _angle_between(previous, crop) <= self.reroll_degrees:
                    break
        if self.mirror is not None:
            affine, score = self.last_affine, self.last_score
            flipped = self.run_crop(image, mirrored_affine(affine))
            self.last_affine, self.last_score = affine, score
            pts = ((pts.astype(np.float64) + flipped[self.mirror].astype(np.float64)) / 2
                   ).astype(np.float32)
        return pts
