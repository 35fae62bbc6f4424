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

import importlib

_EXPORTS = {"Difficulty": "sampling", "SyntheticFace": "sampling", "euler_rotation": "sampling",
            "sample_face": "sampling", "SyntheticTruth": "scene", "render_face": "scene"}


def __getattr__(name):
    # lazy (PEP 562): `python -m tf_face.synthetic.make_dataset` imports this package
    # first, and the renderer imports TensorFlow, which the job imports quietly itself
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"tf_face.synthetic.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tf_face.synthetic' has no attribute {name!r}")


__all__ = ["Difficulty", "SyntheticFace", "SyntheticTruth", "euler_rotation", "render_face",
           "sample_face"]
