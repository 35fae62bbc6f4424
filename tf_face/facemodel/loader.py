"""``load_face_model(spec)``: one entry point for every face model.

Specs: ``default`` | ``bfm2009:PATH`` | ``bfm2017:PATH`` | ``deep3d:PATH`` |
``ict:FOLDER`` | ``ict_npz:PATH``. A bad spec, a missing file, a file of the
wrong format, missing keys, wrong shapes or a pickle-based file raise
``tf_face.errors.FaceModelError`` with a one-line message. Nothing is ever
unpickled (see ``safe_io``).
"""

from __future__ import annotations

from tf_face.errors import FaceModelError
from tf_face.facemodel.base import FaceModel
from tf_face.facemodel.bfm import load_bfm2009, load_bfm2017, load_deep3d
from tf_face.facemodel.default import default_model

KINDS = ("default", "bfm2009", "bfm2017", "deep3d", "ict", "ict_npz")


def load_face_model(spec: str) -> FaceModel:
    """Load a face model from a spec string (see module docstring)."""
    if not isinstance(spec, str) or not spec.strip():
        raise FaceModelError(f"face model spec must be one of {', '.join(KINDS)} "
                             "(with :PATH for all but default)")
    spec = spec.strip()
    if spec == "default":
        return default_model()
    kind, sep, path = spec.partition(":")
    if not sep or kind not in KINDS or kind == "default" or not path:
        raise FaceModelError(f"unknown face model spec {spec!r}; use default, bfm2009:PATH, "
                             "bfm2017:PATH, deep3d:PATH, ict:FOLDER or ict_npz:PATH")
    if kind == "bfm2009":
        return load_bfm2009(path)
    if kind == "bfm2017":
        return load_bfm2017(path)
    if kind == "deep3d":
        return load_deep3d(path)
    if kind == "ict":
        # lazy (both ict imports): ict -> fitting loads scipy.linalg (~150 ms) at start-up
        from tf_face.facemodel.ict import load_ict_obj_folder
        return load_ict_obj_folder(path)
    from tf_face.facemodel.ict import load_ict_npz
    return load_ict_npz(path)
