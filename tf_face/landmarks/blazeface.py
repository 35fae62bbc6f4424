"""BlazeFace face detection (MediaPipe's TFLite models), decoded in NumPy.

Models (from the pinned MediaPipe wheel, see ``tf_face.assets``):

* short range ``face_detection_short_range.tflite``: input ``1x128x128x3``
  float32 RGB in **[-1, 1]**; outputs ``regressors [1, 896, 16]`` and
  ``classificators [1, 896, 1]`` (logits).
* full range ``face_detection_full_range_sparse.tflite``: input ``1x192x192x3``
  in [-1, 1]; outputs ``Identity [1, 2304, 16]`` and ``Identity_1 [1, 2304, 1]``
  (read by name: ``BlazeFaceSpec``).

Anchor layout (``make_anchors``): for each stride, a grid of
``ceil(input/stride)`` cells, listed row by row, cell by cell, with all anchors
of one cell consecutive; the anchor centre is ``((col + 0.5) / cols,
(row + 0.5) / rows)`` in normalised input coordinates and anchors have a fixed
unit size.  Short range: stride 8 -> 16x16 cells x 2 anchors (512), then
stride 16 -> 8x8 cells x 6 anchors (384) = 896.  Full range: stride 4 ->
48x48 cells x 1 anchor = 2304.

Regressors per anchor (16 numbers, input pixels, **x before y**):
``[dx, dy, w, h, kx0, ky0, ..., kx5, ky5]``; centre = anchor + d / input_size,
size = w / input_size (no anchor scaling).  Keypoint order (subject's sides):
0 right eye (image left for a frontal face), 1 left eye, 2 nose tip,
3 mouth centre, 4 right ear tragion, 5 left ear tragion.
Score = sigmoid(clip(logit, -100, 100)).

Overlapping detections are merged by *weighted* non-maximum suppression
(``weighted_nms``): the best remaining detection and everything overlapping it
by IoU > 0.3 are averaged with score weights (box and keypoints); the merged
score is the best one.

``FaceDetector`` letterboxes the (possibly downscaled) photo to the square
input (centred, black = -1 padding), runs short range first, then full range
unless short range found exactly one face that is not small in the frame
(>= 15% of the long side), and, when still nothing was found, full range on
overlapping tiles (2x2, 3x3, 4x4), so that faces of ~40 px in a photo of up
to ``max_side`` (1280) px are found (larger photos are block-averaged first,
so there the limit is ~3% of the long side).  When nothing is found at all,
the photo turned by 90/270/180 degrees is tried.  ``fix_orientation`` re-checks
one face in its four quarter turns (BlazeFace finds faces turned by 90-180
degrees but misplaces their keypoints).  Detections are returned in
original-image pixels, largest first, with pixel centres at integer
coordinates (the model's normalised outputs are continuous coordinates,
pixel i spanning [i, i+1); we subtract 0.5).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from tf_face.landmarks.tflite_model import TFLiteModel, small_model_threads
from tf_face.types import Detection


@dataclasses.dataclass(frozen=True)
class BlazeFaceSpec:
    asset: str
    input_size: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]
    boxes_output: str       # the .tflite output names: [1, A, 16] box + keypoint offsets
    scores_output: str      # and [1, A, 1] score logits


MIN_SIDE = 16   # photos with a side below this have no findable face: []
#: MediaPipe's face-presence threshold (a probability): the short-range BlazeFace
#: score and the face mesh's presence score (``face_landmarks.detect_landmarks``)
MIN_FACE_SCORE = 0.5
SHORT_RANGE = BlazeFaceSpec("face_detection_short_range.tflite", 128, (8, 16), (2, 6),
                            "regressors", "classificators")
FULL_RANGE = BlazeFaceSpec("face_detection_full_range_sparse.tflite", 192, (4,), (1,),
                           "Identity", "Identity_1")


def make_anchors(input_size: int, strides, anchors_per_cell) -> np.ndarray:
    """Anchor centres ``[N, 2]`` (x, y) in [0, 1], in the models' output order."""
    out = []
    for stride, per_cell in zip(strides, anchors_per_cell):
        n = int(math.ceil(input_size / stride))
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n,
                             indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out, axis=0).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray,
           input_size: int, min_score: float):
    """Decode raw outputs; keep anchors with score >= min_score.

    Returns ``boxes [K, 4]`` (x0, y0, x1, y1), ``keypoints [K, 6, 2]`` in
    normalised input coordinates, and ``scores [K]``.
    """
    logits = np.clip(raw_scores.reshape(-1).astype(np.float64), -100.0, 100.0)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.nonzero(scores >= min_score)[0]
    raw = raw_boxes.reshape(-1, 16)[keep].astype(np.float64) / input_size
    anc = anchors[keep].astype(np.float64)
    cx = raw[:, 0] + anc[:, 0]
    cy = raw[:, 1] + anc[:, 1]
    w = raw[:, 2]
    h = raw[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kps = raw[:, 4:16].reshape(-1, 6, 2) + anc[:, None, :]
    return boxes, kps, scores[keep]


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one ``[4]`` box against ``[K, 4]`` boxes (x0, y0, x1, y1)."""
    ix0 = np.maximum(box[0], boxes[:, 0])
    iy0 = np.maximum(box[1], boxes[:, 1])
    ix1 = np.minimum(box[2], boxes[:, 2])
    iy1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = 0.3):
    """Weighted NMS; returns (boxes, keypoints, scores) of the merged faces."""
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    remaining = np.ones(len(scores), bool)
    out_b, out_k, out_s = [], [], []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        idx = np.nonzero(remaining)[0]
        overlap = idx[box_iou(boxes[i], boxes[idx]) > iou_threshold]
        overlap = np.union1d(overlap, [i])
        w = scores[overlap]
        w = w / w.sum()
        out_b.append((boxes[overlap] * w[:, None]).sum(0))
        out_k.append((keypoints[overlap] * w[:, None, None]).sum(0))
        out_s.append(scores[i])
        remaining[overlap] = False
    if not out_s:
        return np.zeros((0, 4)), np.zeros((0, 6, 2)), np.zeros((0,))
    return np.array(out_b), np.array(out_k), np.array(out_s)


class _BlazeFaceRunner:
    """One BlazeFace model + its anchors + a preallocated input buffer."""

    def __init__(self, spec: BlazeFaceSpec, num_threads: int | None):
        self.spec = spec
        self.model = TFLiteModel(spec.asset, num_threads or small_model_threads())
        self.anchors = make_anchors(spec.input_size, spec.strides, spec.anchors_per_cell)
        n = spec.input_size
        self._u8 = np.zeros((n, n, 3), np.uint8)
        self._f32 = np.zeros((1, n, n, 3), np.float32)

    def run(self, image: np.ndarray, min_score: float):
        """Detect in ``image`` (uint8 RGB); boxes/keypoints in its pixels.

        Coordinates are continuous (pixel i spans [i, i+1)).
        """
        n = self.spec.input_size
        small, f = area_downscale(image, max(1, max(image.shape[:2]) // n))
        h, w = small.shape[:2]
        s = n / max(h, w)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        ox, oy = (n - nw) // 2, (n - nh) // 2
        self._u8.fill(0)
        self._u8[oy:oy + nh, ox:ox + nw] = cv2.resize(small, (nw, nh),
                                                      interpolation=cv2.INTER_LINEAR)
        np.multiply(self._u8, 2.0 / 255.0, out=self._f32[0], casting="unsafe")
        self._f32 -= 1.0
        outs = self.model(self._f32)
        raw_boxes, raw_scores = outs[self.spec.boxes_output], outs[self.spec.scores_output]
        boxes, kps, scores = decode(raw_boxes, raw_scores, self.anchors, n, min_score)
        # undo the letterbox: input px -> image px (separate x/y factors)
        sx, sy = nw / (w * f), nh / (h * f)
        boxes = boxes * n
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - ox) / sx
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - oy) / sy
        kps = kps * n
        kps[..., 0] = (kps[..., 0] - ox) / sx
        kps[..., 1] = (kps[..., 1] - oy) / sy
        return boxes, kps, scores


class FaceDetector:
    """All faces in a photo, largest first, in original-image pixels.

    Args:
      min_score: score threshold of the short-range model (``MIN_FACE_SCORE``).
      full_range_min_score: threshold of the full-range model (MediaPipe: 0.6).
      iou_threshold: weighted-NMS overlap threshold.
      max_side: photos larger than this are downscaled by an integer factor
        (block average) for detection only; results are mapped back to the
        original pixels.
      small_face_fraction: full range runs too unless short range found
        exactly one face of at least this fraction of the photo's long side
        (several faces hint at a group photo with further small faces).
      tiles: also run full range on overlapping tiles when the whole-photo
        passes find nothing (small faces in big photos).
      upright_search: when nothing is found, also try the photo turned by
        90, 270 and 180 degrees (short + full range, no tiles); faces on
        their side are then found and their keypoints map back.
      num_threads: TFLite threads per model (default ``small_model_threads()``: 2
        where the process has 2+ cores).

    Models load lazily on first call and are reused; calls allocate little.
    Call with ``image`` uint8 ``[H, W, 3]`` RGB (see ``tf_face.image_io``);
    returns ``list[Detection]`` (empty when there is no face).
    """

    def __init__(self, min_score: float = MIN_FACE_SCORE, full_range_min_score: float = 0.6,
                 iou_threshold: float = 0.3, max_side: int = 1280,
                 small_face_fraction: float = 0.15, tiles: bool = True,
                 upright_search: bool = True, num_threads: int | None = None):
        self.min_score = float(min_score)
        self.full_range_min_score = float(full_range_min_score)
        self.iou_threshold = float(iou_threshold)
        self.max_side = int(max_side)
        self.small_face_fraction = float(small_face_fraction)
        self.tiles = bool(tiles)
        self.upright_search = bool(upright_search)
        self.short = _BlazeFaceRunner(SHORT_RANGE, num_threads)
        self.full = _BlazeFaceRunner(FULL_RANGE, num_threads)
        self.last_passes: list[str] = []   # which passes ran on the last call

    def __call__(self, image: np.ndarray) -> list[Detection]:
        image = _check_image(image)
        h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE:
            return []          # too small to hold a findable face
        work, f = area_downscale(image, -(-max(h, w) // self.max_side))
        self.last_passes = []
        boxes, kps, scores = self._detect(work, self.tiles, "")
        if len(scores) == 0 and self.upright_search:
            # photo on its side or upside down (e.g. lost EXIF orientation)
            for k in (1, 3, 2):
                rotated = np.ascontiguousarray(np.rot90(work, k))
                b, kp, s = self._detect(rotated, False, f"rot{90 * k}:")
                if len(s):
                    boxes, kps, scores = _unrotate(b, kp, work.shape, k)
                    scores = s
                    break
        if len(scores) == 0:
            return []
        # continuous coordinates (pixel i spans [i, i+1)) of the working image
        # -> original image, then to the integer-centre convention (pixel i's
        # centre at i) that cv2.warpAffine / remap and the rest of tf_face use
        boxes = boxes * f - 0.5
        kps = kps * f - 0.5
        dets = [Detection(box=b.astype(np.float32), keypoints=k.astype(np.float32),
                          score=float(s)) for b, k, s in zip(boxes, kps, scores)]
        dets.sort(key=lambda d: -d.size)
        return dets

    def fix_orientation(self, image: np.ndarray, detection: Detection,
                        margin: float = 0.05) -> Detection:
        """Re-detect one face in its 4 quarter turns and keep the upright one.

        BlazeFace finds faces turned by 90-180 degrees but with misplaced
        keypoints (it sees an upright face), which gives the landmark crop a
        wrong roll; its score is highest when the face is upright.  A square
        of 3x the face size around the detection is turned by 0/90/180/270
        degrees (``np.rot90``, exact), short range runs on each, and the
        detection from the best-scoring turn (if it beats turn 0 by
        ``margin``) is mapped back.  Costs four short-range runs.
        """
        image = _check_image(image)
        b = np.asarray(detection.box, np.float64)
        cx, cy = (b[0] + b[2]) / 2 + 0.5, (b[1] + b[3]) / 2 + 0.5   # continuous
        side = max(8, int(round(3 * detection.size)))
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        h, w = image.shape[:2]
        sub = image[max(y0, 0):min(y0 + side, h), max(x0, 0):min(x0 + side, w)]
        crop = cv2.copyMakeBorder(sub, max(-y0, 0), max(y0 + side - h, 0),
                                  max(-x0, 0), max(x0 + side - w, 0),
                                  cv2.BORDER_CONSTANT, value=(0, 0, 0))
        best, score0 = None, 0.0
        for k in range(4):
            turned = np.ascontiguousarray(np.rot90(crop, k))
            bb, kk, ss = weighted_nms(*self.short.run(turned, 0.3), self.iou_threshold)
            if not len(ss):
                continue
            centres = (bb[:, :2] + bb[:, 2:]) / 2
            near = np.linalg.norm(centres - side / 2, axis=1) < 0.5 * detection.size
            if not near.any():
                continue
            i = int(np.argmax(np.where(near, ss, -1)))
            if k == 0:
                score0 = ss[i]
            if best is None or ss[i] > best[0]:
                best = (ss[i], k, bb[i:i + 1], kk[i:i + 1])
        if best is None or best[1] == 0:
            return detection
        score, k, bb, kk = best
        if score < score0 + margin:
            return detection
        bb, kk, _ = _unrotate(bb, kk, (side, side), k)
        shift = np.array([x0 - 0.5, y0 - 0.5])
        return Detection(box=(bb[0] + np.tile(shift, 2)).astype(np.float32),
                         keypoints=(kk[0] + shift).astype(np.float32), score=float(score))

    def _detect(self, work: np.ndarray, tiles: bool, tag: str):
        """Short range, then full range / tiles as needed; merged by NMS."""
        found = []
        self.last_passes.append(tag + "short")
        found.append(self.short.run(work, self.min_score))
        long_side = max(work.shape[:2])
        short_faces = weighted_nms(*found[0], self.iou_threshold)[0]
        if (len(short_faces) != 1
                or _max_size(short_faces) < self.small_face_fraction * long_side):
            self.last_passes.append(tag + "full")
            found.append(self.full.run(work, self.full_range_min_score))
            if tiles and not any(len(f[2]) for f in found):
                for grid in (2, 3, 4):
                    if long_side / grid < FULL_RANGE.input_size:
                        break
                    self.last_passes.append(f"{tag}tiles{grid}")
                    found += self._run_tiles(work, grid)
                    if any(len(f[2]) for f in found):
                        break
        boxes = np.concatenate([f[0] for f in found])
        kps = np.concatenate([f[1] for f in found])
        scores = np.concatenate([f[2] for f in found])
        return weighted_nms(boxes, kps, scores, self.iou_threshold)

    def _run_tiles(self, work: np.ndarray, grid: int):
        """Full range on ``grid x grid`` square tiles overlapping by ~1/3."""
        h, w = work.shape[:2]
        side = int(math.ceil(max(h, w) / grid * 1.5))
        side = min(side, max(h, w))
        out = []
        for ty in _tile_starts(h, side, grid):
            for tx in _tile_starts(w, side, grid):
                tile = work[ty:ty + side, tx:tx + side]
                b, k, s = self.full.run(tile, self.full_range_min_score)
                if len(s):
                    b = b + [tx, ty, tx, ty]
                    k = k + [tx, ty]
                    out.append((b, k, s))
        return out


def _unrotate(boxes, kps, shape, k):
    """Map continuous coordinates in ``np.rot90(img, k)`` back to ``img``."""
    h, w = shape[:2]

    def back(x, y):
        if k == 1:
            return w - y, x
        if k == 2:
            return w - x, h - y
        return y, h - x          # k == 3

    kx, ky = back(kps[..., 0], kps[..., 1])
    cx, cy = back(boxes[:, [0, 2, 0, 2]], boxes[:, [1, 1, 3, 3]])
    new_boxes = np.stack([cx.min(1), cy.min(1), cx.max(1), cy.max(1)], axis=1)
    return new_boxes, np.stack([kx, ky], axis=-1), None


def area_downscale(image: np.ndarray, factor: int) -> tuple[np.ndarray, int]:
    """Average ``factor x factor`` pixel blocks (OpenCV's fast integer INTER_AREA).

    The last ``< factor`` rows/columns are dropped so that the map is exact:
    continuous coordinate x in the result is x * factor in ``image``.
    """
    factor = int(factor)
    if factor <= 1:
        return image, 1
    h, w = image.shape[0] // factor, image.shape[1] // factor
    if h < 1 or w < 1:
        return image, 1
    return cv2.resize(image[:h * factor, :w * factor], (w, h),
                      interpolation=cv2.INTER_AREA), factor


def _tile_starts(length: int, side: int, grid: int) -> list[int]:
    if length <= side:
        return [0]
    return sorted({int(round(v)) for v in np.linspace(0, length - side, grid)})


def _max_size(boxes: np.ndarray) -> float:
    if len(boxes) == 0:
        return 0.0
    return float(np.max(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 [H, W, 3] RGB image, got {image.dtype} {image.shape}")
    return image
