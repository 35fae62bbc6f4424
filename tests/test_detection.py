"""BlazeFace decoding (anchors, regressors, weighted NMS) and FaceDetector on photos."""

import time

import cv2
import numpy as np
import pytest
import skimage.data

from tests.conftest import FACES, require_shared
from tf_face.errors import NoFaceError
from tf_face.image_io import load_image
from tf_face.landmarks import FaceDetector, FaceMeshLandmarker, detect_landmarks, read_landmark_file
from tf_face.landmarks.blazeface import (FULL_RANGE, SHORT_RANGE, box_iou, decode,
                                         make_anchors, weighted_nms)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


# ---------------------------------------------------------------- decoding maths

def test_anchor_layout():
    a = make_anchors(SHORT_RANGE.input_size, SHORT_RANGE.strides, SHORT_RANGE.anchors_per_cell)
    assert a.shape == (896, 2)
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[1], a[0])                       # 2 anchors per cell
    np.testing.assert_allclose(a[2], [1.5 / 16, 0.5 / 16])       # x varies fastest
    np.testing.assert_allclose(a[2 * 16], [0.5 / 16, 1.5 / 16])  # next row
    np.testing.assert_allclose(a[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(a[-1], [7.5 / 8, 7.5 / 8])
    f = make_anchors(FULL_RANGE.input_size, FULL_RANGE.strides, FULL_RANGE.anchors_per_cell)
    assert f.shape == (2304, 2)
    np.testing.assert_allclose(f[1], [1.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(f[48], [0.5 / 48, 1.5 / 48])


def test_decode_known_box_and_score_clipping():
    n = 128
    anchors = make_anchors(n, (8, 16), (2, 6))
    raw = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896, 1), -1e4, np.float32)      # huge: must not overflow
    k = 2 * (16 * 5 + 3)                                  # cell row 5, col 3
    raw[0, k, :4] = [4.0, -8.0, 32.0, 64.0]               # dx, dy (x first), w, h
    raw[0, k, 4:] = np.arange(12) - 6.0
    logits[0, k, 0] = 1e4
    logits[0, 7, 0] = np.log(0.4 / 0.6)                   # below threshold 0.5
    with np.errstate(all="raise"):
        boxes, kps, scores = decode(raw, logits, anchors, n, min_score=0.5)
    assert boxes.shape == (1, 4) and kps.shape == (1, 6, 2)
    cx, cy = 3.5 / 16 + 4 / n, 5.5 / 16 - 8 / n
    np.testing.assert_allclose(boxes[0], [cx - 16 / n, cy - 32 / n, cx + 16 / n, cy + 32 / n], atol=1e-6)
    np.testing.assert_allclose(kps[0, 0], [3.5 / 16 - 6 / n, 5.5 / 16 - 5 / n], atol=1e-6)
    assert scores[0] == 1.0
    _, _, s2 = decode(raw, logits, anchors, n, min_score=0.3)
    np.testing.assert_allclose(sorted(s2), [0.4, 1.0], atol=1e-6)


def test_weighted_nms_merges_overlaps_with_score_weights():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    kps = np.stack([np.full((6, 2), v) for v in (0.0, 1.0, 55.0)])
    scores = np.array([0.6, 0.9, 0.7])
    b, k, s = weighted_nms(boxes, kps, scores, 0.3)
    assert len(s) == 2
    np.testing.assert_allclose(s, [0.9, 0.7])
    w = np.array([0.9, 0.6]) / 1.5
    np.testing.assert_allclose(b[0], w[0] * boxes[1] + w[1] * boxes[0])
    np.testing.assert_allclose(k[0], np.full((6, 2), w[0] * 1.0))
    np.testing.assert_allclose(b[1], boxes[2])
    assert box_iou(boxes[0], boxes[2:3])[0] == 0


# ---------------------------------------------------------------- the real models

def test_astronaut_one_face_with_ordered_keypoints(detector, astronaut):
    dets = detector(astronaut)
    assert len(dets) == 1
    d = dets[0]
    x0, y0, x1, y1 = d.box
    assert d.score > 0.7
    assert 60 < x1 - x0 < 160 and 60 < y1 - y0 < 160          # face is ~100 px
    assert 150 < (x0 + x1) / 2 < 300 and 60 < (y0 + y1) / 2 < 200
    r_eye, l_eye, nose, mouth = d.keypoints[:4]
    assert r_eye[0] < l_eye[0]                                  # subject's right eye on image left
    assert max(r_eye[1], l_eye[1]) < nose[1] < mouth[1]          # eyes above nose above mouth
    assert d.keypoints[4, 0] < r_eye[0] and d.keypoints[5, 0] > l_eye[0]   # ears outside
    for p in d.keypoints[:4]:
        assert x0 <= p[0] <= x1 and y0 <= p[1] <= y1


def test_letterbox_and_downscale_are_undone(detector, astronaut):
    ref = detector(astronaut)[0]
    # non-square canvas, face at a known offset
    canvas = np.full((900, 600, 3), 127, np.uint8)
    canvas[300:812, 50:562] = astronaut
    d = detector(canvas)[0]
    shift = np.array([50, 300])
    eye = np.linalg.norm(ref.keypoints[1] - ref.keypoints[0])
    assert np.abs(d.keypoints[:4] - (ref.keypoints[:4] + shift)).max() < 0.1 * eye
    # 3x bigger than max_side: detection runs on a downscaled copy
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_LINEAR)
    db = detector(big)[0]
    # integer-centre pixels: x_big = 3 x + 1
    assert np.abs(db.keypoints[:4] - (3 * ref.keypoints[:4] + 1)).max() < 0.1 * 3 * eye
    assert abs(db.size / ref.size - 3) < 0.3


def test_small_face_on_large_canvas_needs_more_than_short_range(detector, astronaut):
    face = astronaut[40:240, 125:325]                  # ~95 px face in a 200 px patch
    patch = cv2.resize(face, (88, 88), interpolation=cv2.INTER_AREA)   # ~42 px face
    rng = np.random.default_rng(1)
    canvas = cv2.GaussianBlur(rng.integers(0, 255, (1000, 1000, 3), dtype=np.uint8), (0, 0), 8)
    canvas[400:488, 600:688] = patch
    dets = detector(canvas)
    assert "short" in detector.last_passes and len(detector.last_passes) > 1
    assert len(dets) >= 1
    centre = (dets[0].box[:2] + dets[0].box[2:]) / 2
    assert np.linalg.norm(centre - [644, 444]) < 20
    assert 25 < dets[0].size < 70


def test_no_face_gives_empty_list_and_no_face_error(detector):
    y, x = np.mgrid[0:240, 0:320]
    smooth = np.stack([x % 256, y % 256, (x + y) % 256], axis=2).astype(np.uint8)
    assert detector(smooth) == []
    with pytest.raises(NoFaceError):
        detect_landmarks(smooth, detector, FaceMeshLandmarker())


def test_bad_image_array_is_refused(detector):
    with pytest.raises(ValueError):
        detector(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        detector(np.zeros((10, 10, 3), np.float32))


def _photos(folder):
    d = require_shared(FACES / folder)
    return sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".png"))


def test_package_photos(detector):
    photos = _photos("package_photos")
    found = {}
    for p in photos:
        dets = detector(load_image(p))
        found[p.name] = dets
        sizes = [d.size for d in dets]
        assert sizes == sorted(sizes, reverse=True)            # largest first
    rate = np.mean([len(v) > 0 for v in found.values()])
    print(f"\npackage_photos detection rate: {rate:.0%} of {len(photos)}")
    assert rate == 1.0
    if "group1.jpg" in found:
        assert len(found["group1.jpg"]) >= 5                   # six people
    for name, dets in found.items():
        if name != "group1.jpg":
            assert len(dets) == 1, name
    if "messi5.jpg" in found:
        img = load_image(FACES / "package_photos" / "messi5.jpg")
        _, _, short_scores = detector.short.run(img, detector.min_score)
        assert len(short_scores) == 0                          # short range alone misses it
        assert found["messi5.jpg"][0].size < 60


def test_deep3d_photos_match_their_five_point_files(detector):
    photos = _photos("deep3d_examples")
    n_found, errs = 0, []
    for p in photos:
        dets = detector(load_image(p))
        n_found += bool(dets)
        ref_file = p.parent / "detections" / (p.stem + ".txt")
        if not dets or not ref_file.is_file():
            continue
        ref = read_landmark_file(ref_file)      # image-left eye, image-right eye, nose, mouth l, r
        kp = dets[0].keypoints
        ours = kp[:4]
        theirs = np.stack([ref[0], ref[1], ref[2], (ref[3] + ref[4]) / 2])
        iod = np.linalg.norm(ref[1] - ref[0])
        errs.append(np.linalg.norm(ours - theirs, axis=1).mean() / iod)
    rate = n_found / len(photos)
    print(f"\ndeep3d_examples detection rate: {rate:.0%} of {len(photos)}; "
          f"keypoint error vs 5-point files: mean {np.mean(errs):.3f} max {np.max(errs):.3f} x IOD")
    assert rate == 1.0
    assert np.mean(errs) < 0.15 and np.max(errs) < 0.3


def test_report_speed(detector, astronaut):
    """Prints warm ms per detect and per landmark call (no timing assert); the
    timed landmarks match the photo's annotated five points."""
    lm = FaceMeshLandmarker()
    d = detector(astronaut)[0]
    lm(astronaut, d)
    photo = require_shared(FACES / "deep3d_examples" / "000002.jpg")
    img = load_image(photo)
    detector(img)
    reps = 10
    t = time.perf_counter()
    for _ in range(reps):
        dd = detector(img)
    t_det = (time.perf_counter() - t) / reps * 1e3
    t = time.perf_counter()
    for _ in range(reps):
        pts = lm(img, dd[0])
    t_lm = (time.perf_counter() - t) / reps * 1e3
    print(f"\ndetect {t_det:.1f} ms ({detector.last_passes}), landmarks {t_lm:.1f} ms "
          f"(refine={lm.refine}) on {img.shape}")
    assert pts.shape == (468, 3)
    # FaceMesh eye corners (33/133, 362/263), nose tip (1), mouth corners (61, 291)
    # against the photo's annotated points (image-left eye, right eye, nose, mouth l, r)
    ref = read_landmark_file(photo.parent / "detections" / "000002.txt")
    ours = np.stack([pts[[33, 133], :2].mean(0), pts[[362, 263], :2].mean(0),
                     pts[1, :2], pts[61, :2], pts[291, :2]])
    iod = np.linalg.norm(ref[1] - ref[0])
    err = np.linalg.norm(ours - ref, axis=1) / iod
    assert err.max() < 0.25 and err.mean() < 0.12, err


def _rot90_points(x, y, w, h, k):
    """Integer pixel centres under np.rot90 (counter-clockwise) applied k times."""
    for _ in range(k):
        x, y = y, (w - 1) - x
        h, w = w, h
    return x, y


@pytest.mark.parametrize("k", [1, 2, 3])
def test_photo_turned_on_its_side_is_found(detector, astronaut, k):
    ref = detector(astronaut)[0]
    turned = np.ascontiguousarray(np.rot90(astronaut, k))
    dets = detector(turned)
    assert len(dets) == 1, f"rot90 k={k}: {len(dets)} faces"
    cx, cy = _rot90_points((ref.box[0] + ref.box[2]) / 2, (ref.box[1] + ref.box[3]) / 2,
                           astronaut.shape[1], astronaut.shape[0], k)
    centre = (dets[0].box[:2] + dets[0].box[2:]) / 2
    assert np.linalg.norm(centre - [cx, cy]) < 0.25 * ref.size
    assert abs(dets[0].size / ref.size - 1) < 0.3


@pytest.mark.parametrize("k", [1, 2, 3])
def test_unrotate_inverts_rot90(k):
    from tf_face.landmarks.blazeface import _unrotate
    rng = np.random.default_rng(k)
    h, w = 40, 70
    kps = rng.random((2, 6, 2)) * [w, h]            # continuous coordinates in the photo
    boxes = np.array([[5.0, 6.0, 20.0, 30.0], [30.0, 2.0, 60.0, 12.0]])
    # continuous coords: rot90 maps (x, y) -> (y, w - x), once per turn
    def fwd(x, y):
        ww, hh = w, h
        for _ in range(k):
            x, y = y, ww - x
            ww, hh = hh, ww
        return x, y
    rx, ry = fwd(kps[..., 0], kps[..., 1])
    bx, by = fwd(boxes[:, [0, 2]], boxes[:, [1, 3]])
    rboxes = np.stack([bx.min(1), by.min(1), bx.max(1), by.max(1)], axis=1)
    b, kp, _ = _unrotate(rboxes, np.stack([rx, ry], -1), (h, w, 3), k)
    np.testing.assert_allclose(kp, kps, atol=1e-9)
    np.testing.assert_allclose(b, boxes, atol=1e-9)


def test_upright_search_runs_only_when_nothing_is_found(detector, astronaut):
    detector(astronaut)
    assert not any(p.startswith("rot") for p in detector.last_passes)
    y, x = np.mgrid[0:240, 0:320]
    smooth = np.stack([x % 256, y % 256, (x + y) % 256], axis=2).astype(np.uint8)
    detector(smooth)
    assert {"rot90:short", "rot270:short", "rot180:short"} <= set(detector.last_passes)


@pytest.mark.parametrize("shape", [(1, 1, 3), (8, 400, 3), (10000, 10, 3), (17, 3000, 3)])
def test_tiny_and_extreme_aspect_noise_has_no_face(detector, shape):
    img = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    assert detector(img) == []


@pytest.mark.parametrize("shape,at", [((200, 3000, 3), (10, 2400)), ((3000, 200, 3), (2500, 5))])
def test_face_in_an_extreme_aspect_image_is_found_where_it_was_put(detector, astronaut, shape, at):
    ref = detector(astronaut)[0]                        # box about x 178..272, y 80..174
    crop = astronaut[40:220, 130:320]
    img = np.zeros(shape, np.uint8)
    img[at[0]:at[0] + crop.shape[0], at[1]:at[1] + crop.shape[1]] = crop
    dets = detector(img)
    assert len(dets) == 1
    # the detector sees the long side scaled to its input (the face is ~8 px
    # there), so it places the face to ~0.1 face sizes; the ears are looser
    shift = np.array([at[1] - 130, at[0] - 40], np.float64)
    d = dets[0]
    centre, ref_centre = (d.box[:2] + d.box[2:]) / 2, (ref.box[:2] + ref.box[2:]) / 2 + shift
    assert np.linalg.norm(centre - ref_centre) < 0.15 * ref.size
    assert abs(d.size / ref.size - 1) < 0.2
    # eyes, nose, mouth
    err = np.linalg.norm(d.keypoints[:4] - (ref.keypoints[:4] + shift), axis=1)
    assert err.max() < 0.15 * ref.size, err / ref.size
