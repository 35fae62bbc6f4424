"""FaceMeshLandmarker (468 points) and the landmark-file readers."""

import cv2
import numpy as np
import pytest
import skimage.data
from scipy.optimize import linear_sum_assignment

from tests.conftest import FACES, require_shared
from tf_face.errors import LandmarkError, NoFaceError
from tf_face.image_io import load_image
from tf_face.landmarks import (FaceDetector, FaceMeshLandmarker, detect_landmarks,
                               read_landmark_file, write_landmark_file)
from tf_face.landmarks.facemesh import crop_affine, mirrored_affine

# MediaPipe canonical indices (subject's sides)
R_EYE = [33, 133, 159, 145]       # outer, inner, upper, lower lid
L_EYE = [263, 362, 386, 374]
NOSE_TIP, UPPER_LIP, LOWER_LIP, CHIN = 1, 13, 14, 152
MOUTH_R, MOUTH_L = 61, 291
CHEEK_R, CHEEK_L = 234, 454


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def landmarker():
    return FaceMeshLandmarker()


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def astro_result(detector, landmarker, astronaut):
    det = detector(astronaut)[0]
    return det, landmarker(astronaut, det)


def _iod(pts):
    return float(np.linalg.norm(pts[R_EYE, :2].mean(0) - pts[L_EYE, :2].mean(0)))


def test_crop_affine_maps_centre_and_axes():
    a = crop_affine((100.0, 50.0), (0.0, 2.0), side=96.0, size=192)   # eyes pointing down
    c = a[:, :2] @ [95.5, 95.5] + a[:, 2]
    np.testing.assert_allclose(c, [100, 50])
    np.testing.assert_allclose(a[:, 0], [0, 0.5])      # crop +x -> image +y (eye direction)
    np.testing.assert_allclose(a[:, 1], [-0.5, 0])     # crop +y -> image -x


def test_astronaut_landmarks_in_the_right_regions(astro_result, landmarker):
    det, pts = astro_result
    assert pts.shape == (468, 3) and pts.dtype == np.float32
    assert landmarker.last_score > 0.9
    r_eye, l_eye = pts[R_EYE, :2].mean(0), pts[L_EYE, :2].mean(0)
    assert r_eye[0] < pts[NOSE_TIP, 0] < l_eye[0]               # subject's right eye on image left
    assert max(r_eye[1], l_eye[1]) < pts[NOSE_TIP, 1] < pts[UPPER_LIP, 1] < pts[LOWER_LIP, 1] < pts[CHIN, 1]
    assert pts[MOUTH_R, 0] < pts[UPPER_LIP, 0] < pts[MOUTH_L, 0]
    assert pts[159, 1] < pts[145, 1] and pts[386, 1] < pts[374, 1]   # upper lid above lower lid
    # landmarks agree with the detector's eye/nose/mouth keypoints
    iod = _iod(pts)
    assert 40 < iod < 80
    for k, p in zip(range(4), [r_eye, l_eye, pts[NOSE_TIP, :2], pts[[UPPER_LIP, LOWER_LIP], :2].mean(0)]):
        assert np.linalg.norm(p - det.keypoints[k]) < 0.25 * iod, k
    # all points inside the detection box grown by 25 % (box covers eyes..mouth)
    x0, y0, x1, y1 = det.box
    m = 0.25 * (x1 - x0)
    assert np.all((pts[:, 0] > x0 - m) & (pts[:, 0] < x1 + m) & (pts[:, 1] > y0 - m) & (pts[:, 1] < y1 + m))
    # depth: nose nearest the camera (negative), cheek sides farther, same scale as x
    assert pts[NOSE_TIP, 2] < 0 < min(pts[CHEEK_R, 2], pts[CHEEK_L, 2])
    assert 0.3 * iod < pts[CHEEK_R, 2] - pts[NOSE_TIP, 2] < 2.0 * iod


@pytest.mark.parametrize("angle, tol", [(30, 0.015), (60, 0.03)])
def test_rotation_is_undone(detector, landmarker, astronaut, astro_result, angle, tol):
    det, ref = astro_result
    cx, cy = det.keypoints[2]
    rot = cv2.getRotationMatrix2D((float(cx), float(cy)), angle, 1.0)
    img = cv2.warpAffine(astronaut, rot, astronaut.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    dets = detector(img)
    assert dets, f"no face at {angle} degrees"
    pts = landmarker(img, dets[0])
    back = pts[:, :2] @ cv2.invertAffineTransform(rot)[:, :2].T + cv2.invertAffineTransform(rot)[:, 2]
    err = np.linalg.norm(back - ref[:, :2], axis=1) / _iod(ref)
    print(f"\nrotation {angle}: mean {err.mean():.4f} max {err.max():.4f} x IOD")
    assert err.mean() < tol and err.max() < 0.08
    assert np.abs(pts[:, 2] - ref[:, 2]).mean() < 0.03 * _iod(ref)   # depth is roll-invariant


def mirror_map(points: np.ndarray, iters: int = 5) -> np.ndarray:
    """perm with points[perm[i]] = mirror partner of i, from the 3D shape alone.

    Reflect the shape, then alternate Hungarian matching and a rigid
    (Procrustes) alignment of the reflection to the shape.
    """
    x = points - points.mean(0)
    e = x[L_EYE[0]] - x[R_EYE[0]]
    e /= np.linalg.norm(e)
    reflected = x - 2 * np.outer(x @ e, e)          # reflect across the mid-sagittal plane guess
    z = reflected
    for _ in range(iters):
        _, perm = linear_sum_assignment(((z[:, None] - x[None]) ** 2).sum(-1))
        a, b = reflected - reflected.mean(0), x[perm] - x[perm].mean(0)
        u, _, vt = np.linalg.svd(a.T @ b)
        d = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
        z = a @ (u @ d @ vt) + x[perm].mean(0)
    return perm


def test_mirror_consistency(detector, landmarker, astronaut, astro_result):
    _, ref = astro_result
    perm = mirror_map(ref.astype(np.float64))
    assert np.mean(perm[perm] == np.arange(468)) > 0.95          # an involution
    assert 15 <= np.sum(perm == np.arange(468)) <= 45            # midline points
    assert perm[R_EYE[0]] == L_EYE[0] and perm[NOSE_TIP] == NOSE_TIP
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    pts = landmarker(flipped, detector(flipped)[0]).astype(np.float64)
    pts[:, 0] = astronaut.shape[1] - 1 - pts[:, 0]                # flip back (pixel centres)
    err = np.linalg.norm(pts[:, :2] - ref[perm, :2], axis=1) / _iod(ref)
    print(f"\nmirror: mean {err.mean():.4f} max {err.max():.4f} x IOD")
    assert err.mean() < 0.035 and err.max() < 0.12
    assert np.abs(pts[:, 2] - ref[perm, 2]).mean() < 0.03 * _iod(ref)


def test_mirrored_affine_maps_the_mirrored_crop():
    a = crop_affine((100.0, 50.0), (1.0, 0.3), side=96.0)
    m = mirrored_affine(a)
    for u, v in [(0, 0), (10, 20), (191, 5), (95.5, 95.5)]:
        np.testing.assert_allclose(m[:, :2] @ [u, v] + m[:, 2], a[:, :2] @ [191 - u, v] + a[:, 2],
                                   atol=1e-9)
    np.testing.assert_allclose(mirrored_affine(m), a, atol=1e-12)     # its own inverse


def test_flip_average(detector, landmarker, astronaut, astro_result):
    """With ``mirror``, the last pass is averaged with its run on the mirrored
    crop (points renamed by ``mirror``): the result is that average, keeps the
    plain run's score and crop, and a mirrored photo gives the mirrored points
    far more closely than without it."""
    from tf_face.facemodel import default_model
    perm = default_model().mirror
    det, plain = astro_result
    one = FaceMeshLandmarker()
    np.testing.assert_array_equal(one(astronaut, det), plain)
    tta = FaceMeshLandmarker(mirror=perm)
    pts = tta(astronaut, det)
    assert pts.shape == (468, 3) and pts.dtype == np.float32
    np.testing.assert_allclose(tta.last_affine, one.last_affine)
    assert tta.last_score == pytest.approx(one.last_score)
    flipped_run = FaceMeshLandmarker().run_crop(astronaut, mirrored_affine(one.last_affine))
    np.testing.assert_allclose(pts, (plain + flipped_run[perm]) / 2, atol=1e-3)
    assert 0.005 * _iod(plain) < np.abs(pts[:, :2] - plain[:, :2]).mean() < 0.05 * _iod(plain)
    # mirror consistency, with and without
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    d = detector(flipped)[0]
    errs = {}
    for name, lm, ref in (("plain", landmarker, plain), ("flip", tta, pts)):
        back = lm(flipped, d).astype(np.float64)
        back[:, 0] = astronaut.shape[1] - 1 - back[:, 0]
        errs[name] = (np.linalg.norm(back[perm, :2] - ref[:, :2], axis=1) / _iod(ref)).mean()
    print(f"\nmirror consistency: plain {errs['plain']:.4f}, "
          f"flip-averaged {errs['flip']:.4f} x IOD")
    assert errs["flip"] < 0.5 * errs["plain"]
    with pytest.raises(ValueError, match="own inverse"):
        FaceMeshLandmarker(mirror=np.arange(467))
    with pytest.raises(ValueError, match="own inverse"):
        FaceMeshLandmarker(mirror=np.roll(np.arange(468), 1))


def test_refinement_reduces_rotation_error(detector, astronaut, astro_result):
    """The second, landmark-based crop pass makes results less box-dependent."""
    _, ref = astro_result
    one_pass = FaceMeshLandmarker(refine=False)
    rot = cv2.getRotationMatrix2D(tuple(float(v) for v in astro_result[0].keypoints[2]), 45, 1.0)
    img = cv2.warpAffine(astronaut, rot, astronaut.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
    d = detector(img)[0]
    inv = cv2.invertAffineTransform(rot)
    ref1 = one_pass(astronaut, detector(astronaut)[0])
    back1 = one_pass(img, d)[:, :2] @ inv[:, :2].T + inv[:, 2]
    back2 = FaceMeshLandmarker(refine=True)(img, d)[:, :2] @ inv[:, :2].T + inv[:, 2]
    e1 = np.linalg.norm(back1 - ref1[:, :2], axis=1).mean()
    e2 = np.linalg.norm(back2 - ref[:, :2], axis=1).mean()
    assert e2 < e1


def test_shared_photos_agree_with_five_point_files(detector, landmarker):
    folder = require_shared(FACES / "deep3d_examples")
    errs = []
    for txt in sorted((folder / "detections").glob("*.txt")):
        photo = next((folder / (txt.stem + ext) for ext in (".jpg", ".png")
                      if (folder / (txt.stem + ext)).is_file()), None)
        if photo is None:
            continue
        ref = read_landmark_file(txt)        # image-left eye, image-right eye, nose, mouth l/r
        img = load_image(photo)
        _, pts, _ = detect_landmarks(img, detector, landmarker)
        ours = np.stack([pts[R_EYE, :2].mean(0), pts[L_EYE, :2].mean(0), pts[NOSE_TIP, :2],
                         pts[MOUTH_R, :2], pts[MOUTH_L, :2]])
        errs.append(np.linalg.norm(ours - ref, axis=1).mean() / np.linalg.norm(ref[1] - ref[0]))
    errs = np.array(errs)
    print(f"\n468-landmark 5-point error on {len(errs)} photos: mean {errs.mean():.3f} "
          f"max {errs.max():.3f} x IOD")
    assert len(errs) >= 10
    assert errs.mean() < 0.1 and errs.max() < 0.2


def test_face_index_out_of_range(detector, landmarker, astronaut):
    with pytest.raises(NoFaceError, match="face_index=1"):
        detect_landmarks(astronaut, detector, landmarker, face_index=1)


# ---------------------------------------------------------------- landmark files

def test_pts_and_txt_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    pts68 = (rng.random((68, 2)) * 1000).astype(np.float32)
    write_landmark_file(tmp_path / "a.pts", pts68, fmt="pts")
    text = (tmp_path / "a.pts").read_text()
    assert text.startswith("version: 1\nn_points: 68\n{\n") and text.endswith("}\n")
    np.testing.assert_allclose(read_landmark_file(tmp_path / "a.pts"), pts68, rtol=1e-6)
    pts5 = (rng.random((5, 2)) * 300).astype(np.float32)
    write_landmark_file(tmp_path / "b.txt", pts5, fmt="txt")
    out = read_landmark_file(tmp_path / "b.txt")
    assert out.shape == (5, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, pts5, rtol=1e-6)


def test_reads_ibug_style_and_tab_separated(tmp_path):
    body = "\n".join(f"{i + 0.5}\t{2 * i}" for i in range(68))
    (tmp_path / "ibug.pts").write_text(f"version: 1\r\nn_points:  68\r\n{{\r\n{body}\r\n}}\r\n")
    out = read_landmark_file(tmp_path / "ibug.pts")
    np.testing.assert_allclose(out[:, 0], np.arange(68) + 0.5)
    np.testing.assert_allclose(out[:, 1], 2 * np.arange(68))


def test_deep3d_five_point_files():
    folder = require_shared(FACES / "deep3d_examples" / "detections")
    files = sorted(folder.glob("*.txt"))
    assert files
    for f in files:
        p = read_landmark_file(f)
        assert p.shape == (5, 2)
        assert p[0, 0] < p[1, 0] and p[3, 0] < p[4, 0]       # image-left before image-right
        assert max(p[0, 1], p[1, 1]) < p[2, 1] < min(p[3, 1], p[4, 1])


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("# only a comment\n\n", "empty"),
    ("\n".join("1 2" for _ in range(67)), "67 landmarks"),
    ("\n".join("1 2" for _ in range(6)), "6 landmarks"),
    ("\n".join(["1 2"] * 4 + ["1 abc"]), "non-numeric"),
    ("\n".join(["1 2"] * 4 + ["1 2 3"]), "should hold"),
    ("\n".join(["1 2"] * 4 + ["nan 2"]), "NaN"),
    ("version: 1\nn_points: 68\n{\n" + "1 2\n" * 5 + "}\n", "n_points=68"),
    ("version: 1\nn_points: 5\n" + "1 2\n" * 5, "block"),
])
def test_bad_landmark_files(tmp_path, text, match):
    path = tmp_path / "bad.pts"
    path.write_text(text)
    with pytest.raises(LandmarkError, match=match) as e:
        read_landmark_file(path)
    assert "\n" not in str(e.value)


def test_missing_or_binary_landmark_file(tmp_path):
    with pytest.raises(LandmarkError, match="not found"):
        read_landmark_file(tmp_path / "none.pts")
    with pytest.raises(LandmarkError, match="regular file"):
        read_landmark_file(tmp_path)
    (tmp_path / "bin.pts").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(LandmarkError):
        read_landmark_file(tmp_path / "bin.pts")


def test_false_positive_is_skipped_by_presence_score(detector, landmarker, astronaut):
    """A detection on a face-free patch is rejected; the real face is returned."""
    from tf_face.types import Detection
    real = detector(astronaut)[0]
    fake = Detection(box=np.array([300, 300, 500, 500], np.float32),   # the suit, no face
                     keypoints=np.array([[350, 350], [450, 350], [400, 400], [400, 450],
                                         [310, 360], [490, 360]], np.float32), score=0.6)

    class Fixed:
        def __call__(self, image):
            return [fake, real]

    det, pts, n = detect_landmarks(astronaut, Fixed(), landmarker)
    assert det is real and n == 2
    landmarker(astronaut, fake)
    assert landmarker.last_score < 0.5
    with pytest.raises(NoFaceError, match="only 1 face"):
        detect_landmarks(astronaut, Fixed(), landmarker, face_index=1)


def test_upscaled_photo_gives_scaled_landmarks(detector, landmarker, astronaut, astro_result):
    """Pixel-centre convention and the large-crop prefilter: x_big = k x + (k - 1) / 2."""
    _, ref = astro_result
    k = 3
    big = cv2.resize(astronaut, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
    pts = landmarker(big, detector(big)[0])
    expect = ref[:, :2] * k + (k - 1) / 2
    err = np.linalg.norm(pts[:, :2] - expect, axis=1) / (k * _iod(ref))
    assert err.mean() < 0.01
    assert np.abs((pts[:, :2] - expect).mean(0)).max() < 0.1 * k     # no half-pixel bias
    np.testing.assert_allclose(np.std(pts[:, 2]) / np.std(ref[:, 2]), k, rtol=0.03)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_landmarks_of_a_photo_turned_on_its_side(detector, landmarker, astronaut, astro_result, k):
    """90/180/270 degrees: BlazeFace finds the face but misplaces its
    keypoints; detect_landmarks' orientation fix must recover the landmarks."""
    _, ref = astro_result
    turned = np.ascontiguousarray(np.rot90(astronaut, k))
    _, pts, _ = detect_landmarks(turned, detector, landmarker)
    assert landmarker.last_score > 0.9
    x, y = pts[:, 0], pts[:, 1]
    h, w = turned.shape[:2]
    for _ in range(k):      # undo one counter-clockwise turn: (x, y) -> (h - 1 - y, x)
        x, y = (h - 1) - y, x
        h, w = w, h
    err = np.linalg.norm(np.stack([x, y], 1) - ref[:, :2], axis=1) / _iod(ref)
    print(f"\nrot90 k={k}: mean {err.mean():.4f} x IOD")
    assert err.mean() < 0.03


def test_odd_landmark_paths(tmp_path):
    with pytest.raises(LandmarkError, match="cannot access"):
        read_landmark_file(str(tmp_path / "a\0b.pts"))
    with pytest.raises(LandmarkError, match="must be a string"):
        read_landmark_file(None)


def test_tflite_wrapper_reads_outputs_by_name():
    """The one TFLite wrapper: MediaPipe's outputs by tensor name, ours by signature
    name (tests/test_tflite), whatever their order in the file."""
    from tf_face.landmarks import blazeface, facemesh
    from tf_face.landmarks.blazeface import MIN_FACE_SCORE
    from tf_face.landmarks.tflite_model import TFLiteModel

    mesh = TFLiteModel("face_landmark.tflite")
    assert mesh.output_names == (facemesh.LANDMARKS_OUTPUT, facemesh.PRESENCE_OUTPUT)
    out = mesh(np.zeros(mesh.input_shape, np.float32))
    assert out[facemesh.LANDMARKS_OUTPUT].size == 468 * 3
    assert out[facemesh.PRESENCE_OUTPUT].size == 1
    for spec in (blazeface.SHORT_RANGE, blazeface.FULL_RANGE):
        shapes = TFLiteModel(spec.asset).output_shapes()
        assert shapes[spec.boxes_output][-1] == 16 and shapes[spec.scores_output][-1] == 1
    with pytest.raises(ValueError):
        TFLiteModel()
    # one presence threshold for the detector and the landmark model
    assert FaceDetector().min_score == MIN_FACE_SCORE == 0.5
    assert detect_landmarks.__defaults__[1] == MIN_FACE_SCORE


def test_pipeline_flip_averages_its_landmarks():
    from tf_face.facemodel import default_model
    from tf_face.pipeline import GeometryPipeline
    np.testing.assert_array_equal(GeometryPipeline().landmarker.mirror, default_model().mirror)
    assert GeometryPipeline(landmark_flip=False).landmarker.mirror is None
