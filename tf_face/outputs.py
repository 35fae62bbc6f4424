"""Writing pipeline outputs: atomic output folders, UV maps, overlays, fit.json.

Every output folder is written into a temporary sibling folder first and
renamed into place at the end, so a failure never leaves a partial folder.
An existing folder is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from tf_face.errors import TfFaceError

OVERLAY_MAX_SIDE = 1600  # overlays of huge photos are downscaled to this long side


class OutputExistsError(TfFaceError):
    """The output folder exists and --overwrite was not given."""


def check_output_free(out_dir, overwrite: bool = False) -> None:
    """Raise ``OutputExistsError`` if ``out_dir`` holds something and not overwrite."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputExistsError(f"{out_dir} exists; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_output_dir(out_dir, overwrite: bool = False):
    """Yield a temp dir that becomes ``out_dir`` when the block succeeds."""
    out_dir = Path(out_dir)
    check_output_free(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path, data) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def write_png_rgb(path, rgb_float_or_uint8) -> None:
    img = np.asarray(rgb_float_or_uint8)
    if img.dtype != np.uint8:
        img = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    if img.ndim == 3:
        img = img[..., ::-1]  # RGB -> BGR for OpenCV
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")


def normals_to_rgb(normals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Unit normals [H,W,3] -> RGB in [0,1] (n * 0.5 + 0.5), black outside mask."""
    rgb = normals * 0.5 + 0.5
    return np.where(mask[..., None], rgb, 0.0)


def draw_overlay(image: np.ndarray, vertices_image: np.ndarray, triangles: np.ndarray,
                 landmarks_2d: np.ndarray | None = None,
                 detection_box: np.ndarray | None = None) -> np.ndarray:
    """Mesh wireframe (green), landmarks (red) and the face box (blue) on the photo."""
    h, w = image.shape[:2]
    scale = min(1.0, OVERLAY_MAX_SIDE / max(h, w))
    canvas = image if scale == 1.0 else cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))),
        interpolation=cv2.INTER_AREA)
    canvas = np.ascontiguousarray(canvas[..., ::-1])  # BGR for drawing
    shift = 4  # sub-pixel drawing precision
    f = float(1 << shift) * scale
    pts = np.round(vertices_image[:, :2] * f).astype(np.int32)
    polys = [pts[t] for t in triangles]
    thick = max(1, round(max(canvas.shape[:2]) / 800))
    cv2.polylines(canvas, polys, True, (60, 200, 60), thick, cv2.LINE_AA, shift)
    if landmarks_2d is not None:
        r = max(2, thick * 2) << shift
        for p in np.round(np.asarray(landmarks_2d)[:, :2] * f).astype(np.int32):
            cv2.circle(canvas, (int(p[0]), int(p[1])), r, (40, 40, 230), -1, cv2.LINE_AA, shift)
    if detection_box is not None:
        b = np.round(np.asarray(detection_box) * f).astype(np.int32)
        cv2.rectangle(canvas, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (230, 120, 30),
                      thick, cv2.LINE_AA, shift)
    return canvas[..., ::-1]


def write_unwrap_outputs(directory, image: np.ndarray, result, model) -> list:
    """Write texture/mask/normals/position/overlay/fit.json of one PipelineResult.

    The overlay shows the fitted mesh and the landmarks the fit used (for the
    468-point MediaPipe landmarks: their 68 iBUG points, for readability)."""
    d = Path(directory)
    s = result.sample
    write_png_rgb(d / "texture.png", np.where(s.mask[..., None], s.texture, 0.0))
    cv2.imwrite(str(d / "mask.png"), s.mask.astype(np.uint8) * 255)
    write_png_rgb(d / "normals.png", normals_to_rgb(s.normals, np.any(s.normals != 0, axis=-1)))
    np.save(d / "position.npy", s.position.astype(np.float32))
    np.save(d / "normals.npy", s.normals.astype(np.float32))
    lm = np.asarray(result.fitted.landmarks_observed)
    if lm.shape[0] == model.num_vertices and model.landmarks68 is not None:
        lm = lm[model.landmarks68]
    box = result.detection.box if result.detection is not None else None
    write_png_rgb(d / "overlay.png", draw_overlay(image, result.fitted.vertices_image,
                                                   model.triangles, lm, box))
    write_json(d / "fit.json", result.fit_json())
    return sorted(p.name for p in d.iterdir())
