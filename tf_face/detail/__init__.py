"""Wrinkle-level detail: the one detail-normal formula and its units.

``np_ops`` (numpy: serving, export) and ``tf_ops`` (TensorFlow: DRN training
and the per-photo fit, with gradients) implement the same maths, documented
in ``np_ops`` (grid normals, orientation, detail normal, displacement
conventions); ``tests/test_detail_normals.py`` ties them together.
Displacements are in **detail units**: inter-ocular distances of the face
model's mean shape (``model_detail_unit``).
"""

from __future__ import annotations

from tf_face.ibug import inter_ocular_distance


def model_detail_unit(model) -> float:
    """Inter-ocular distance of the model's mean shape (model units)."""
    if model.landmarks68 is None:
        extent = model.mean_shape.max(0) - model.mean_shape.min(0)
        return float(extent[0]) * 0.45
    return inter_ocular_distance(model.mean_shape[model.landmarks68])
