"""Photo-like synthetic faces that know their ground truth.

``sample_face(rng, model, difficulty, ict=None, skin_tone=None) -> SyntheticFace``
draws a face (``sampling``; the skin tone uniformly over the six ITA groups of
``tf_face.skin_tone``, or only ``skin_tone``); ``render_face(face, image_size=512) -> (image uint8,
SyntheticTruth)`` renders it (``scene``). ``python -m
tf_face.synthetic.make_dataset`` writes photos, truth and TFRecord shards made
by the real geometry pipeline, plus an alignment report.

Modules: ``shape`` (random smooth shapes on the default mesh), ``ict_shapes``
(optional ICT identities/expressions transferred onto it), ``albedo`` (prior
draw at the drawn skin tone + pores, freckles, moles, lips, brow hair, eyes), ``wrinkles``
(displacement map, IOD units), ``normals`` (bump-mapped detail normals),
``lighting`` (SH), ``occluders``, ``background``, ``head`` (proxy head/neck),
``scene`` (render + truth), ``alignment`` (truth vs pipeline sample),
``sheet`` (contact sheets), ``make_dataset`` (the job).

All ground-truth maps are in the **default model's UV space** (256 x 256),
albedo in linear RGB, normals and SH in the camera frame of ``tf_face.types``.
"""

from tf_face.synthetic.sampling import Difficulty, SyntheticFace, euler_rotation, sample_face
from tf_face.synthetic.scene import SyntheticTruth, render_face

__all__ = ["Difficulty", "SyntheticFace", "SyntheticTruth", "euler_rotation", "render_face",
           "sample_face"]
