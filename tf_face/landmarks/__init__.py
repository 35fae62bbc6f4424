"""Face detection (BlazeFace) and 468 landmarks (MediaPipe Face Mesh) on TFLite.

Public API::

    from tf_face.landmarks import FaceDetector, FaceMeshLandmarker, read_landmark_file
    dets = FaceDetector()(image)            # list[Detection], largest first
    pts = FaceMeshLandmarker()(image, dets[0])   # [468, 3] float32 image pixels

``image`` is uint8 ``[H, W, 3]`` RGB (``tf_face.image_io.load_image``).
Nothing loads TensorFlow until the first call.  See ``blazeface`` and
``facemesh`` for the input ranges, anchor layout and keypoint order.
"""

from tf_face.landmarks.blazeface import FaceDetector
from tf_face.landmarks.facemesh import FaceMeshLandmarker
from tf_face.landmarks.landmark_files import read_landmark_file, write_landmark_file
from tf_face.landmarks.face_landmarks import detect_landmarks

__all__ = ["FaceDetector", "FaceMeshLandmarker", "read_landmark_file",
           "write_landmark_file", "detect_landmarks"]
