"""Fitting (Eq. 1): landmarks -> pose (s, R, t) and shape/expression
coefficients of a ``FaceModel``. See ``fit.py`` for the input forms,
``options.py`` for the weights and their units, ``eq1.py`` for the solver and
``contour.py`` for the sliding jaw landmarks."""

from tf_face.fitting.options import FitOptions
from tf_face.fitting.fit import fit_face

__all__ = ["FitOptions", "fit_face"]
