"""Data passed between the stages of the geometry pipeline.

Coordinate frames (used everywhere in tf_face):

* **Model frame** (``FaceModel.mean_shape``): right-handed, +x = subject's
  left, +y = up, +z = out of the face (towards a frontal camera); the model's
  own units (BFM: micrometres/mm, ICT: cm, default: a normalised unit).
  Triangles are counter-clockwise seen from outside, so the outward normal of
  triangle (a, b, c) is ``(b - a) x (c - a)``.
* **Image frame** (``FittedFace.vertices_image``): x = column in pixels,
  y = row in pixels (down), z = depth in pixels, *smaller z = nearer the
  camera* (MediaPipe's convention). Right-handed as well.
  Weak perspective: ``vertices_image = s * (R @ X) * [1, -1, -1] + [tx, ty, 0]``
  (see ``model_to_image``); R = identity is a frontal face.
* **Camera frame** (normal and position maps): x = right, y = up, z = towards
  the camera, pixel units; ``camera = image * [1, -1, -1]``. SH lighting is
  expressed in this frame.
* **UV**: ``uv`` in [0, 1]^2 with u to the right and v *down* (texel row =
  v * H), i.e. image convention. OBJ export flips v.
"""

from __future__ import annotations

import dataclasses

import numpy as np

IMAGE_FLIP = np.array([1.0, -1.0, -1.0], dtype=np.float64)


def model_to_image(points: np.ndarray, scale: float, rotation: np.ndarray,
                   translation: np.ndarray) -> np.ndarray:
    """Apply the weak-perspective pose: [N,3] model -> [N,3] image frame."""
    rotated = np.asarray(points, np.float64) @ np.asarray(rotation, np.float64).T
    out = scale * rotated * IMAGE_FLIP
    out[:, 0] += translation[0]
    out[:, 1] += translation[1]
    return out


@dataclasses.dataclass
class Detection:
    """One face found by BlazeFace, in original-image pixels."""
    box: np.ndarray          # [4] float: x0, y0, x1, y1
    keypoints: np.ndarray    # [6, 2] float: right eye, left eye, nose tip, mouth,
                             #   right ear tragion, left ear tragion (subject's sides)
    score: float

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@dataclasses.dataclass
class FittedFace:
    """Result of Eq. 1: pose, coefficients, and the posed mesh."""
    model_name: str
    vertices_image: np.ndarray     # [V, 3] float32, image frame
    vertices_model: np.ndarray     # [V, 3] float32, model frame, pose removed
    scale: float
    rotation: np.ndarray           # [3, 3] float64, in SO(3)
    translation: np.ndarray        # [2] float64, pixels
    shape_coeffs: np.ndarray       # [Ks] float32 (unit-variance units), may be empty
    expr_coeffs: np.ndarray        # [Ke] float32, may be empty
    landmarks_observed: np.ndarray  # [L, 2] float32, pixels
    landmark_vertices: np.ndarray  # [L] int32, vertex used for each landmark (after sliding)
    landmark_rmse_iod: float       # RMS reprojection error / inter-ocular distance
    image_size: tuple[int, int]    # (height, width) of the photo

    def to_json(self) -> dict:
        return {
            "model": self.model_name,
            "scale": float(self.scale),
            "rotation": np.asarray(self.rotation).tolist(),
            "translation": np.asarray(self.translation).tolist(),
            "shape_coeffs": np.asarray(self.shape_coeffs).tolist(),
            "expr_coeffs": np.asarray(self.expr_coeffs).tolist(),
            "landmark_rmse_iod": float(self.landmark_rmse_iod),
            "image_size": list(self.image_size),
        }


@dataclasses.dataclass
class UVSample:
    """One photo unwrapped into UV space (what the networks train on)."""
    texture: np.ndarray   # [H, W, 3] float32 in [0, 1], sRGB as in the photo
    mask: np.ndarray      # [H, W] bool: texel visible in the photo
    normals: np.ndarray   # [H, W, 3] float32 unit normals, camera frame; 0 outside the atlas
    position: np.ndarray  # [H, W, 3] float32 camera-frame positions (pixels); 0 outside
