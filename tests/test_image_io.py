"""tf_face.image_io.load_image: good images in every layout, bad files refused."""

import os

import cv2
import numpy as np
import pytest

from tf_face.errors import ImageError
from tf_face.image_io import load_image


def _rgb_gradient(h=48, w=64):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1),
                     (x + y) * 255 // (h + w - 2)], axis=2).astype(np.uint8)


def _write(path, img_rgb_or_raw, bgr=True):
    img = img_rgb_or_raw
    if bgr and img.ndim == 3 and img.shape[2] >= 3:
        img = img.copy()
        img[..., :3] = img[..., 2::-1]
    assert cv2.imwrite(str(path), img)
    return path


def test_png_roundtrip_is_rgb(tmp_path):
    rgb = _rgb_gradient()
    out = load_image(_write(tmp_path / "a.png", rgb))
    assert out.dtype == np.uint8 and out.shape == rgb.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_is_rgb_order(tmp_path):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 250  # pure red
    out = load_image(_write(tmp_path / "red.jpg", rgb))
    assert out[..., 0].mean() > 240 and out[..., 1].mean() < 15 and out[..., 2].mean() < 15


def test_16bit_png_is_reduced_to_8bit(tmp_path):
    rgb8 = _rgb_gradient()
    rgb16 = np.minimum(rgb8.astype(np.uint32) * 257 + 100, 65535).astype(np.uint16)  # +100/257 rounds away
    out = load_image(_write(tmp_path / "deep.png", rgb16))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb8)


def test_rgba_is_composited_over_white(tmp_path):
    rgb = _rgb_gradient()
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :10] = 0        # fully transparent -> white
    alpha[:, 10:20] = 128    # half -> halfway to white
    rgba = np.concatenate([rgb, alpha[..., None]], axis=2)
    out = load_image(_write(tmp_path / "rgba.png", rgba))
    assert out.shape == rgb.shape
    np.testing.assert_array_equal(out[:, :10], 255)
    np.testing.assert_array_equal(out[:, 20:], rgb[:, 20:])
    half = (rgb[:, 10:20].astype(float) * 128 + 255 * 127) / 255
    assert np.abs(out[:, 10:20] - half).max() <= 1


def test_grayscale_becomes_three_equal_channels(tmp_path):
    grey = _rgb_gradient()[..., 0]
    out = load_image(_write(tmp_path / "grey.png", grey, bgr=False))
    assert out.shape == grey.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], grey)


def test_huge_image_loads(tmp_path):
    # 10000 x 10000: a flat JPEG is small on disk and decodes in well under a second.
    big = np.full((10000, 10000, 3), (30, 120, 200), np.uint8)   # BGR on disk
    path = tmp_path / "big.jpg"
    assert cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 50])
    del big
    out = load_image(path)
    assert out.shape == (10000, 10000, 3)
    assert abs(int(out[5000, 5000, 0]) - 200) <= 3 and abs(int(out[5000, 5000, 2]) - 30) <= 3


def test_oversized_header_is_refused_before_decoding(tmp_path):
    # a PNG claiming 30000 x 30000 (900 Mpx): refused from the header alone
    png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    fake = png[:16] + (30000).to_bytes(4, "big") * 2 + png[24:]
    path = tmp_path / "bomb.png"
    path.write_bytes(fake)
    with pytest.raises(ImageError, match="too large"):
        load_image(path)


def _assert_one_line(err):
    msg = str(err.value)
    assert msg and "\n" not in msg


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageError, match="not an image") as e:
        load_image(path)
    _assert_one_line(e)


def test_truncated_jpeg_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8), (0, 0), 2)
    data = cv2.imencode(".jpg", img)[1].tobytes()
    full = tmp_path / "full.jpg"
    full.write_bytes(data)
    assert load_image(full).shape == (200, 300, 3)
    for frac in (0.5, 0.9):
        path = tmp_path / f"cut{frac}.jpg"
        path.write_bytes(data[:int(len(data) * frac)])
        with pytest.raises(ImageError, match="truncated") as e:
            load_image(path)
        _assert_one_line(e)


def test_truncated_png_is_refused(tmp_path):
    data = cv2.imencode(".png", _rgb_gradient())[1].tobytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ImageError):
        load_image(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty") as e:
        load_image(path)
    _assert_one_line(e)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_fifo_is_not_opened(tmp_path):
    path = tmp_path / "pipe.jpg"
    os.mkfifo(path)
    with pytest.raises(ImageError, match="regular file"):   # would block if opened
        load_image(path)


def test_exif_orientation_is_applied(tmp_path):
    # Hand-made EXIF APP1 with Orientation = 6 ("rotate 90 CW to display").
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = (0, 0, 255)   # BGR red on the left half
    jpg = cv2.imencode(".jpg", img)[1].tobytes()
    tiff = (b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01"          # 1 IFD entry
            + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"  # Orientation=6
            + b"\x00\x00\x00\x00")
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    path = tmp_path / "rotated.jpg"
    path.write_bytes(jpg[:2] + app1 + jpg[2:])
    out = load_image(path)
    assert out.shape == (40, 20, 3)            # displayed portrait
    assert out[:15, :, 0].mean() > 200         # red (left half) is now on top
    assert out[25:, :, 0].mean() < 50


def test_odd_paths(tmp_path):
    with pytest.raises(ImageError, match="cannot access"):
        load_image(str(tmp_path / "a\0b.png"))
    with pytest.raises(ImageError, match="must be a string"):
        load_image(123)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / ".." / "does-not-exist" / "x.png")


def test_message_stays_one_line_for_newline_in_name(tmp_path):
    path = tmp_path / "bad\nname.jpg"
    path.write_text("not an image")
    with pytest.raises(ImageError) as e:
        load_image(path)
    _assert_one_line(e)
