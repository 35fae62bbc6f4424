"""``FitOptions``: the knobs of Eq. 1 (the paper gives none of these numbers).

Units. The data term of Eq. 1 is measured in units of the observed
inter-ocular distance (IOD): every residual is divided by the distance between
the observed eye centres before squaring, so ``w_shape``/``w_expr`` do not
depend on the photo's resolution or the face's size in it. With that scaling
the MAP reading of Eq. 1 is ``w = (sigma / IOD)^2`` for landmark noise of
``sigma`` pixels per coordinate and unit-variance coefficients.

Defaults (chosen by the sweep in ``tf_face/fitting/README.md``, ICT model,
68 landmarks, Gaussian noise 0-4 % IOD):

* ``w_shape = 1e-3``: the dense shape error is flat for 3e-4..3e-3 at 1-2 %
  IOD noise (a typical detector); smaller weights over-fit the noise, larger
  ones pull every face to the mean.
* ``w_expr = 1e-3``: same sweep for the expression weights (ICT blendshape
  weights live in [0, 1], so the prior mostly breaks ties between shapes that
  move the same landmarks).
* ``rounds = 3`` alternations of (contour selection, pose, closed-form
  coefficients) then ``lm_iterations = 20`` Levenberg-Marquardt steps on all
  parameters with Marquardt's diagonal scaling and ``lm_damping = 1e-3``
  initial lambda (x10 on a rejected step, /3 on an accepted one).
* ``sliding_contour = True`` with ``contour_near_yaw_deg = 30``: on the side
  of the face turned towards the camera by more than this the jaw line is
  visible and annotators mark it, so the fixed landmark vertex is used there;
  elsewhere the silhouette candidate is chosen.
* ``expr_bounds = "auto"``: the model attribute ``expr_bounds`` when a loader
  sets one, else (0, 1) for ICT models (blendshapes, name starting with
  "ict"), else unbounded (PCA expression bases). Bounds are enforced by
  projection (clipping plus an active set in the linear solves and in LM).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple, Union


@dataclasses.dataclass
class FitOptions:
    w_shape: float = 1e-3          # w_s of Eq. 1 (data term in IOD units)
    w_expr: float = 1e-2           # w_e of Eq. 1
    rounds: int = 2                # alternations pose <-> coefficients
    lm_iterations: int = 10        # joint Levenberg-Marquardt steps
    lm_damping: float = 1e-3       # initial lambda (relative, Marquardt scaling)
    sliding_contour: bool = True   # choose jaw landmarks on the silhouette
    contour_near_yaw_deg: float = 30.0  # near side turned more than this: fixed vertex
    expr_bounds: Union[str, None, Tuple[float, float]] = "auto"
    fit_shape: bool = True         # False: keep alpha = 0 (pose/expression only)
    fit_expr: bool = True          # False: keep beta = 0
    lm_tolerance: float = 1e-4     # stop when the relative cost decrease is below

    def validate(self) -> "FitOptions":
        from tf_face.errors import FitError
        if not (self.w_shape >= 0 and self.w_expr >= 0):
            raise FitError("fit options: w_shape and w_expr must be >= 0")
        if self.rounds < 0 or self.lm_iterations < 0:
            raise FitError("fit options: rounds and lm_iterations must be >= 0")
        if not self.lm_damping > 0:
            raise FitError("fit options: lm_damping must be > 0")
        return self


def resolve_expr_bounds(model, options: FitOptions) -> Optional[Tuple[float, float]]:
    """Bounds for the expression coefficients (see module docstring)."""
    b = options.expr_bounds
    if b == "auto":
        b = getattr(model, "expr_bounds", None)
        if b is None and str(model.name).lower().startswith("ict"):
            b = (0.0, 1.0)
    if b is None:
        return None
    lo, hi = float(b[0]), float(b[1])
    return lo, hi
