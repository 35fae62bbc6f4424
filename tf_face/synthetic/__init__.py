"""Photo-like synthetic faces that know their ground truth.

``sample_face(rng, model, difficulty) -> SyntheticFace`` draws a face
(``sampling``); ``render_face(face, image_size) -> (image, SyntheticTruth)``
renders it (``scene``). ``python -m tf_face.synthetic.make_dataset`` writes
photos, truth and TFRecord shards made by the real geometry pipeline.
"""

from tf_face.synthetic.sampling import Difficulty, SyntheticFace, euler_rotation, sample_face
from tf_face.synthetic.scene import SyntheticTruth, render_face

__all__ = ["Difficulty", "SyntheticFace", "SyntheticTruth", "euler_rotation", "render_face",
           "sample_face"]
