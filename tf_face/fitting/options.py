"""``FitOptions``: the knobs of Eq. 1 (the paper gives none of these numbers).

Units. The data term of Eq. 1 is measured in units of the observed
inter-ocular distance (IOD): every residual is divided by the distance between
the observed eye centres before squaring, so ``w_shape``/``w_expr`` do not
depend on the photo's resolution or the face's size in it. With that scaling
the MAP reading of Eq. 1 is ``w = (sigma / IOD)^2`` for landmark noise of
``sigma`` pixels per coordinate and unit-variance coefficients.

Defaults (chosen by ``python -m tf_face.fitting.weight_sweep``; table in
``tf_face/fitting/README.md``: ICT model, 68 landmarks, 8 random faces, yaw
up to 40 deg, Gaussian noise 0 / 1 / 3 % IOD per coordinate):

* ``w_shape = 1e-3``, ``w_expr = 1e-2``: within 0.015 cm of the lowest
  dense shape error at 1 % and 3 % noise (0.42 / 0.50 cm against 0.70 cm for
  the mean shape), and within 0.002 of the lowest blendshape-weight error
  there. Smaller weights over-fit the noise (w_shape = 1e-4 at 3 %:
  0.91 cm); larger ones pull every face to the mean. Real 68-point detectors
  are at 2-5 % IOD, so the weights are tuned for noisy input; for
  near-perfect synthetic landmarks w_shape = 1e-4, w_expr = 1e-3 is better.
* ``rounds = 2`` alternations of (contour selection, pose by damped
  Gauss-Newton, coefficients in closed form), then ``lm_iterations = 10``
  Levenberg-Marquardt steps on all parameters with Marquardt's diagonal
  scaling, ``lm_damping = 1e-3`` initial lambda (x10 on a rejected step, /3
  on an accepted one), stopping when the cost falls by less than
  ``lm_tolerance = 1e-4`` (relative). In the sweep, 1-3 rounds and 5-20 LM
  steps or a tolerance of 1e-8 change the errors by < 0.005 cm.
* ``sliding_contour = True`` with ``contour_near_yaw_deg = 30``: on the side
  of the face turned towards the camera by more than this the jaw line is
  visible and annotators mark it, so the fixed landmark vertex is used there;
  elsewhere the silhouette candidate is chosen (see ``contour.py``). Without
  sliding the dense error (0 % noise, w_shape 1e-4) is 1.41 cm, not 0.36 cm.
* ``contour_along_jaw = True``: in the final pass each jaw landmark may also
  slide along the jaw (within half the distance to its neighbours) to the
  point nearest its observation: jaw points 1-7 / 9-15 are semi-landmarks and
  detectors space them differently from the model (MediaPipe vs ICT: up to
  0.08 IOD). Shared photos, ICT: median landmark RMSE 0.035 -> 0.027 IOD;
  synthetic faces (``README.md``): pose and dense error about the same.
* ``expr_bounds = "auto"``: the model attribute ``expr_bounds`` when a loader
  sets one, else (0, 1) for ICT models (blendshapes, name starting with
  "ict"), else unbounded (PCA expression bases). Bounds are enforced by
  projection (clipping plus an active set in the linear solves and in LM),
  not by a reparameterisation, so beta = 0 (neutral) stays the prior mean.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple, Union

from tf_face.errors import FitError


@dataclasses.dataclass
class FitOptions:
    w_shape: float = 1e-3          # w_s of Eq. 1 (data term in IOD units)
    w_expr: float = 1e-2           # w_e of Eq. 1
    rounds: int = 2                # alternations pose <-> coefficients
    lm_iterations: int = 10        # joint Levenberg-Marquardt steps
    lm_damping: float = 1e-3       # initial lambda (relative, Marquardt scaling)
    sliding_contour: bool = True   # choose jaw landmarks on the silhouette
    contour_near_yaw_deg: float = 30.0  # near side turned more than this: fixed vertex
    contour_along_jaw: bool = True  # a jaw landmark may also slide along the jaw (contour.py)
    expr_bounds: Union[str, None, Tuple[float, float]] = "auto"
    fit_shape: bool = True         # False: keep alpha = 0 (pose/expression only)
    fit_expr: bool = True          # False: keep beta = 0
    lm_tolerance: float = 1e-4     # stop when the relative cost decrease is below

    def validate(self) -> "FitOptions":
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
