"""Eq. 1 on 2D landmarks: weak-perspective pose + linear shape/expression.

Minimises, in units of the observed inter-ocular distance d (see
``FitOptions``)::

    E = sum_k ||(L_k - P(l_k(c | R))) / d||^2 + sum_i w_i c_i^2,
    P(X) = s * (R X)[:2] * [1, -1] + t,   c = [alpha, beta],

i.e. with *squared* residuals (the paper writes ||.||_2; squaring gives the
least-squares problem that Levenberg-Marquardt solves, and the MAP reading
under Gaussian landmark noise). Only the landmark rows of the bases enter:
``mean_l`` [L,3], ``basis_l`` [L,3,K] (and the contour candidates' rows).

Solver: similarity init from the mean shape (``affine_init`` on non-contour
landmarks), then ``rounds`` x (contour selection, pose by damped Gauss-Newton,
coefficients in closed form), then joint LM on (log s, rotation vector
update R <- exp([w]x) R, t, c) with an analytic Jacobian, then a final
contour re-selection (and one more LM pass if it changed).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.linalg import lapack

from tf_face.errors import FitError
from tf_face.fitting.rotation import rotvec_to_matrix
from tf_face.fitting.similarity import affine_init

_DPOSV = lapack.dposv
_FLIP2 = np.array([1.0, -1.0])


@dataclasses.dataclass
class Problem:
    obs: np.ndarray        # [L, 2] observed, normalised units
    mean_v: np.ndarray     # [V?, 3] rows of the mean for the vertices in use
    basis_v: np.ndarray    # [V?, 3, K]
    idx: np.ndarray        # [L, m] rows into mean_v/basis_v (per landmark)
    wts: np.ndarray        # [L, m]
    reg: np.ndarray        # [K] w_s / w_e per coefficient
    lo: np.ndarray         # [K] lower bounds (-inf if none)
    hi: np.ndarray         # [K]
    free: np.ndarray       # [K] bool: coefficient is optimised


@dataclasses.dataclass
class State:
    s: float
    r: np.ndarray
    t: np.ndarray
    c: np.ndarray


def _spd_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve a symmetric positive definite system with one LAPACK call
    (``dposv``: Cholesky + triangular solves; the wrappers around
    ``cho_factor``/``cho_solve`` cost more than the ~150x150 solve itself),
    falling back to a general solve when the matrix is not positive definite."""
    _, x, info = _DPOSV(a, b, lower=0, overwrite_a=0, overwrite_b=0)
    if info != 0:
        x = np.linalg.solve(a, b)
    return x


def landmark_rows(prob: Problem):
    """(mean_l [L,3], basis_l [L,3,K]) for the current landmark indices."""
    mean_l = np.einsum("lm,lmc->lc", prob.wts, prob.mean_v[prob.idx])
    basis_l = np.einsum("lm,lmck->lck", prob.wts, prob.basis_v[prob.idx])
    return mean_l, basis_l


def _points(mean_l, basis_l, c):
    return mean_l + basis_l @ c if c.size else mean_l


def residual(st: State, mean_l, basis_l, prob: Problem):
    x = _points(mean_l, basis_l, st.c)
    y = x @ st.r.T
    p = st.s * y[:, :2] * _FLIP2 + st.t
    return p - prob.obs, y


def cost(res, st: State, prob: Problem) -> float:
    return float((res ** 2).sum() + (prob.reg * st.c ** 2).sum())


def jacobian(st: State, y, basis_l, prob: Problem, pose_only: bool = False) -> np.ndarray:
    """[2L, 6 + K]: d residual / d(log s, w, t, c) ([2L, 6] with pose_only)."""
    n, k = y.shape[0], (0 if pose_only else prob.reg.size)
    s = st.s
    j = np.zeros((n, 2, 6 + k))
    j[:, 0, 0] = s * y[:, 0]
    j[:, 1, 0] = -s * y[:, 1]
    # dY/dw = -[Y]x ; image x = s Y_x, image y = -s Y_y
    j[:, 0, 2] = s * y[:, 2]
    j[:, 0, 3] = -s * y[:, 1]
    j[:, 1, 1] = s * y[:, 2]
    j[:, 1, 3] = -s * y[:, 0]
    j[:, 0, 4] = 1.0
    j[:, 1, 5] = 1.0
    if k:
        rb = np.einsum("ij,ljk->lik", st.r[:2], basis_l)
        j[:, 0, 6:] = s * rb[:, 0]
        j[:, 1, 6:] = -s * rb[:, 1]
    return j.reshape(2 * n, 6 + k)


def apply_step(st: State, delta: np.ndarray, prob: Problem) -> State:
    c = st.c + delta[6:]
    c = np.clip(c, prob.lo, prob.hi)
    return State(s=st.s * float(np.exp(delta[0])),
                 r=rotvec_to_matrix(delta[1:4]) @ st.r,
                 t=st.t + delta[4:6], c=c)


def levenberg_marquardt(st: State, prob: Problem, iterations: int, damping: float,
                        pose_only: bool = False, tol: float = 1e-10) -> State:
    """Projected LM (coefficients at an active bound are held there)."""
    k = prob.reg.size
    mean_l, basis_l = landmark_rows(prob)
    res, y = residual(st, mean_l, basis_l, prob)
    cur = cost(res, st, prob)
    lam = damping
    nparam = 6 + k
    for _ in range(iterations):
        j = jacobian(st, y, basis_l, prob, pose_only)
        a = j.T @ j
        g = j.T @ res.ravel()
        m = a.shape[0]
        if not pose_only:
            a[np.arange(6, m), np.arange(6, m)] += prob.reg
            g[6:] += prob.reg * st.c
        active = np.zeros(m, bool)
        if not pose_only and k:
            at_lo = (st.c <= prob.lo) & (g[6:] > 0)
            at_hi = (st.c >= prob.hi) & (g[6:] < 0)
            active[6:] = at_lo | at_hi | ~prob.free
        act = ~active
        diag = np.diag(a).copy()
        improved = False
        rel = 0.0
        for _try in range(8):
            aa = a[np.ix_(act, act)] + lam * np.diag(diag[act] + 1e-12)
            try:
                d_act = _spd_solve(aa, -g[act])
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            delta = np.zeros(nparam)
            delta[np.nonzero(act)[0]] = d_act
            cand = apply_step(st, delta, prob)
            r2, y2 = residual(cand, mean_l, basis_l, prob)
            c2 = cost(r2, cand, prob)
            if c2 < cur:
                rel = (cur - c2) / max(cur, 1e-300)
                st, res, y, cur = cand, r2, y2, c2
                lam = max(lam / 3.0, 1e-12)
                improved = True
                break
            lam *= 10.0
        if not improved or rel < tol:
            break
    return st


def solve_coefficients(st: State, prob: Problem) -> np.ndarray:
    """Closed-form c given the pose: ridge least squares, bounds by an active
    set (clip, hold the clipped ones, re-solve the rest; a few passes)."""
    k = prob.reg.size
    if k == 0 or not prob.free.any():
        return st.c
    mean_l, basis_l = landmark_rows(prob)
    rb = np.einsum("ij,ljk->lik", st.r[:2], basis_l) * (st.s * _FLIP2)[None, :, None]
    a = rb.reshape(-1, k)
    base = st.s * (mean_l @ st.r[:2].T) * _FLIP2 + st.t
    b = (prob.obs - base).ravel()
    ata = a.T @ a + np.diag(prob.reg)
    atb = a.T @ b
    c = np.where(prob.free, 0.0, st.c)
    fixed = ~prob.free
    for _ in range(4):
        f = ~fixed
        if not f.any():
            break
        rhs = atb[f] - ata[np.ix_(f, fixed)] @ c[fixed]
        c[f] = _spd_solve(ata[np.ix_(f, f)] + 1e-12 * np.eye(f.sum()), rhs)
        clipped = f & ((c < prob.lo) | (c > prob.hi))
        c = np.clip(c, prob.lo, prob.hi)
        if not clipped.any():
            break
        fixed = fixed | clipped
    return c


def initial_pose(prob: Problem, rows: np.ndarray) -> State:
    mean_l, _ = landmark_rows(prob)
    s, r, t = affine_init(mean_l[rows], prob.obs[rows])
    if not (np.isfinite(s) and s > 0):
        raise FitError("fit: could not initialise the pose from the landmarks")
    return State(s=s, r=r, t=t, c=np.zeros(prob.reg.size))
