"""Face models: the default MediaPipe-topology model and loaders for BFM 2009,
BFM 2017/2019, Deep3DFaceRecon's BFM_model_front.mat and ICT-FaceKit.

Every loader returns a ``FaceModel`` in the model frame of ``tf_face.types``.
"""

from tf_face.facemodel.base import FaceModel
from tf_face.facemodel.default import default_model as _dm
from tf_face.facemodel.loader import load_face_model


def default_model() -> FaceModel:
    """The cached default model (468 MediaPipe vertices); see ``default``."""
    return _dm()


__all__ = ["FaceModel", "load_face_model", "default_model"]
