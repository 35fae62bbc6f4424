"""Loading photos from untrusted paths into ``uint8 [H, W, 3]`` RGB arrays.

``load_image(path)`` is the only way the pipeline reads a photo. Conventions
and choices:

* Output: C-contiguous ``np.uint8`` array ``[H, W, 3]`` in **RGB** order
  (OpenCV decodes BGR; we convert).
* 16-bit images are reduced to 8 bits by rounding ``v / 257`` (65535 -> 255).
  Float images (TIFF/EXR) are assumed to be in [0, 1] and are clipped.
* Alpha (RGBA, grey + alpha) is **composited over white**: cut-out portraits
  usually have a transparent background whose hidden RGB values are arbitrary
  (often black), and white is the neutral choice for a face detector.
* Greyscale and palette images become three equal channels.
* JPEG EXIF orientation is applied (OpenCV does it for ``IMREAD_COLOR``).
* Large images (10000x10000 = 1e8 pixels) load; above ``MAX_PIXELS`` the file
  is refused before decoding (dimensions are read from the header), which
  guards against decompression bombs.
* Every problem caused by the file raises ``tf_face.errors.ImageError`` with a
  one-line message: missing path, a directory or other non-regular file
  (devices and FIFOs are never opened), an empty file, bytes that are not an
  image, a truncated JPEG (no EOI marker after the last scan: OpenCV would
  otherwise silently return grey-filled partial data) or PNG (no IEND chunk).
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import cv2
import numpy as np

from tf_face.errors import ImageError, show_path

#: The photo file types the CLIs, the data collection and export accept.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}

MAX_PIXELS = 1 << 28          # 268 Mpx; 10000x10000 = 100 Mpx is fine


_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _read_bytes(path) -> tuple[Path, bytes]:
    try:
        p = Path(os.fsdecode(path))
    except TypeError as exc:
        raise ImageError(f"image path must be a string or path, got {type(path).__name__}") from exc
    try:
        st = os.stat(p)
    except FileNotFoundError as exc:
        raise ImageError(f"{show_path(p)}: no such file") from exc
    except (OSError, ValueError) as e:   # ValueError: embedded NUL byte
        raise ImageError(
            f"{show_path(p)}: cannot access ({getattr(e, 'strerror', None) or e})") from e
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"{show_path(p)}: is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{show_path(p)}: not a regular file")
    if st.st_size == 0:
        raise ImageError(f"{show_path(p)}: empty file (0 bytes)")
    try:
        with open(p, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageError(f"{show_path(p)}: cannot read ({e.strerror or e})") from e
    if not data:
        raise ImageError(f"{show_path(p)}: empty file (0 bytes)")
    return p, data


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from the first SOFn segment, or None."""
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:          # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg_len = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7,
                      0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return h, w
        if marker == 0xDA:          # start of scan before any SOF
            return None
        i += 2 + seg_len
    return None


def _check_structure(p: Path, data: bytes) -> None:
    """Reject truncated JPEG/PNG and oversized images before decoding."""
    size = None
    if data.startswith(_JPEG_MAGIC):
        last_sos = data.rfind(b"\xff\xda")
        last_eoi = data.rfind(b"\xff\xd9")
        # An EXIF thumbnail carries its own SOS/EOI; the main image's scan is
        # the last SOS and must be followed by an EOI.
        if last_sos < 0 or last_eoi < last_sos:
            raise ImageError(f"{show_path(p)}: truncated JPEG (no end-of-image marker after the image data)")
        size = _jpeg_size(data)
    elif data.startswith(_PNG_MAGIC):
        if len(data) < 33 or data.rfind(b"IEND") < 0:
            raise ImageError(f"{show_path(p)}: truncated PNG (no IEND chunk)")
        if data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            size = (h, w)
    if size is not None:
        h, w = size
        if h == 0 or w == 0:
            raise ImageError(f"{show_path(p)}: image has zero size ({w}x{h})")
        if h * w > MAX_PIXELS:
            raise ImageError(f"{show_path(p)}: image too large ({w}x{h} pixels; limit {MAX_PIXELS} pixels)")


def _to_uint8_rgb(img: np.ndarray, p: Path) -> np.ndarray:
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(np.nan_to_num(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif img.dtype == np.int8 or img.dtype == np.int16 or img.dtype == np.int32:
        raise ImageError(f"{show_path(p)}: unsupported signed pixel type {img.dtype}")
    elif img.dtype != np.uint8:
        raise ImageError(f"{show_path(p)}: unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ImageError(f"{show_path(p)}: unsupported image layout {img.shape}")
    c = img.shape[2]
    if c == 1:
        return np.ascontiguousarray(np.repeat(img, 3, axis=2))
    if c == 2:  # grey + alpha
        grey = _over_white(img[:, :, :1], img[:, :, 1:2])
        return np.ascontiguousarray(np.repeat(grey, 3, axis=2))
    if c == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if c == 4:
        rgb = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)
        return _over_white(rgb, img[:, :, 3:4])
    raise ImageError(f"{show_path(p)}: unsupported number of channels {c}")


def _over_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite uint8 colour over white with a uint8 alpha (rounded)."""
    if alpha.min() == 255:
        return np.ascontiguousarray(color)
    a = alpha.astype(np.uint16)
    out = (color.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def load_image(path) -> np.ndarray:
    """Read an image file into ``uint8 [H, W, 3]`` RGB; see the module docstring.

    Raises ``ImageError`` (one-line message) for anything the file is to blame for.
    """
    p, data = _read_bytes(path)
    _check_structure(p, data)
    buf = np.frombuffer(data, np.uint8)
    # JPEG: IMREAD_COLOR applies the EXIF orientation and is always 8-bit BGR.
    # Others: IMREAD_UNCHANGED keeps alpha and 16 bits so we convert properly.
    flags = cv2.IMREAD_COLOR if data.startswith(_JPEG_MAGIC) else cv2.IMREAD_UNCHANGED
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else "decoder error"
        raise ImageError(f"{show_path(p)}: cannot decode image ({msg})") from e
    if img is None or img.size == 0:
        raise ImageError(f"{show_path(p)}: not an image or unsupported image format")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise ImageError(f"{show_path(p)}: image too large ({img.shape[1]}x{img.shape[0]} pixels)")
    return _to_uint8_rgb(img, p)
