"""User landmark files: iBUG 68-point text and 5-point Deep3DFaceRecon files.

Accepted formats (x = column, y = row in image pixels, as written):

* iBUG ``.pts``::

      version: 1
      n_points: 68
      {
      x y
      ...
      }

  (the declared ``n_points`` must match the points between the braces).
  Note: iBUG files count pixels from 1; we return the values unchanged.
* plain text, one ``x y`` pair per line (whitespace, tab or comma separated),
  68 or 5 lines.  Deep3DFaceRecon's ``detections/NAME.txt`` are of this kind
  with 5 points: left eye, right eye, nose, mouth left, mouth right, where
  "left" is the *image* left (subject's right).
* ``#`` starts a comment; blank lines are ignored.

``read_landmark_file(path)`` returns float32 ``[68, 2]`` or ``[5, 2]`` and
raises ``LandmarkError`` with a one-line message for a missing/unreadable
file, wrong count, non-numeric or non-finite values, or an empty file.
``write_landmark_file`` writes either format (round trip).
``check_landmarks_in_image(points, image_shape)`` refuses points that cannot
belong to the photo (most of them outside it, or all in one spot), so a
wrong file fails with one line instead of giving a black texture.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from tf_face.errors import LandmarkError, show_path

VALID_COUNTS = (68, 5)
MAX_FILE_BYTES = 1 << 20


def _read_text(path) -> tuple[Path, str]:
    try:
        p = Path(os.fsdecode(path))
    except TypeError as exc:
        raise LandmarkError(
            f"landmark path must be a string or path, got {type(path).__name__}") from exc
    try:
        st = os.stat(p)
    except FileNotFoundError as exc:
        raise LandmarkError(f"{show_path(p)}: landmark file not found") from exc
    except (OSError, ValueError) as e:   # ValueError: embedded NUL byte
        raise LandmarkError(f"{show_path(p)}: cannot access landmark file "
                            f"({getattr(e, 'strerror', None) or e})") from e
    if not stat.S_ISREG(st.st_mode):
        raise LandmarkError(f"{show_path(p)}: landmark path is not a regular file")
    if st.st_size > MAX_FILE_BYTES:
        raise LandmarkError(f"{show_path(p)}: landmark file too large ({st.st_size} bytes)")
    try:
        return p, p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LandmarkError(f"{show_path(p)}: landmark file is not UTF-8 text") from exc
    except OSError as e:
        raise LandmarkError(f"{show_path(p)}: cannot read landmark file ({e.strerror or e})") from e


def parse_landmarks(text: str, name: str = "landmarks") -> np.ndarray:
    """Parse landmark text (either format); see the module docstring."""
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    if not lines:
        raise LandmarkError(f"{name}: empty landmark file")
    declared = None
    if lines[0].lower().startswith("version"):
        header = {}
        i = 0
        while i < len(lines) and lines[i] != "{":
            key, _, val = lines[i].partition(":")
            header[key.strip().lower()] = val.strip()
            i += 1
        if i == len(lines) or lines[-1] != "}":
            raise LandmarkError(f"{name}: .pts file without '{{' ... '}}' block")
        try:
            declared = int(header.get("n_points", ""))
        except ValueError as exc:
            raise LandmarkError(f"{name}: .pts header has no valid n_points") from exc
        lines = lines[i + 1:-1]
    pts = []
    for k, line in enumerate(lines):
        parts = line.replace(",", " ").split()
        if len(parts) != 2:
            raise LandmarkError(f"{name}: line {k + 1} should hold 'x y', got {line[:40]!r}")
        try:
            pts.append((float(parts[0]), float(parts[1])))
        except ValueError as exc:
            raise LandmarkError(
                f"{name}: non-numeric value on point line {k + 1}: {line[:40]!r}") from exc
    if not pts:
        raise LandmarkError(f"{name}: no points in landmark file")
    arr = np.asarray(pts, np.float64)
    if declared is not None and declared != len(arr):
        raise LandmarkError(f"{name}: header says n_points={declared} but {len(arr)} points follow")
    if len(arr) not in VALID_COUNTS:
        raise LandmarkError(f"{name}: {len(arr)} landmarks; expected 68 (iBUG) or 5")
    if not np.all(np.isfinite(arr)):
        raise LandmarkError(f"{name}: landmark file holds NaN or infinite values")
    return arr.astype(np.float32)


def read_landmark_file(path) -> np.ndarray:
    """Read a 68- or 5-point landmark file -> float32 ``[N, 2]`` (x, y) pixels."""
    p, text = _read_text(path)
    return parse_landmarks(text, show_path(p))


MIN_INSIDE_FRACTION = 0.5   # at least half of the points inside the photo
MIN_SPREAD_PX = 4.0         # the points must span at least this many pixels


def check_landmarks_in_image(points: np.ndarray, image_shape, name: str = "landmarks") -> None:
    """Raise ``LandmarkError`` unless ``points`` ([N, 2] x, y pixels) are plausible
    for a photo of ``image_shape`` (H, W, ...): at least half of them inside the
    photo (a face cut by the border is fine) and not all in one spot."""
    pts = np.asarray(points, np.float64)[:, :2]
    h, w = int(image_shape[0]), int(image_shape[1])
    # iBUG files count from 1, so allow a pixel of slack on each side
    inside = ((pts[:, 0] >= -1) & (pts[:, 0] <= w + 1)
              & (pts[:, 1] >= -1) & (pts[:, 1] <= h + 1))
    if inside.mean() < MIN_INSIDE_FRACTION:
        lo, hi = pts.min(0), pts.max(0)
        raise LandmarkError(
            f"{name}: {int((~inside).sum())} of {len(pts)} landmarks lie outside the "
            f"{w}x{h} photo (x {lo[0]:.0f}..{hi[0]:.0f}, y {lo[1]:.0f}..{hi[1]:.0f}); "
            f"is this the landmark file of this photo, in its pixels?")
    spread = float(np.max(pts.max(0) - pts.min(0)))
    if spread < MIN_SPREAD_PX:
        raise LandmarkError(f"{name}: the {len(pts)} landmarks span only {spread:.1f} pixels; "
                            f"a face needs more")


def write_landmark_file(path, points: np.ndarray, fmt: str = "pts") -> None:
    """Write ``[N, 2]`` points as iBUG ``.pts`` (``fmt='pts'``) or plain ``x y`` lines."""
    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be [N, 2], got {pts.shape}")
    body = "\n".join(f"{x:.9g} {y:.9g}" for x, y in pts)
    if fmt == "pts":
        text = f"version: 1\nn_points: {len(pts)}\n{{\n{body}\n}}\n"
    elif fmt == "txt":
        text = body + "\n"
    else:
        raise ValueError(f"unknown landmark file format {fmt!r}")
    Path(path).write_text(text)
