"""Error metrics of the synthetic benchmark (``eval/synthetic_benchmark.py``), numpy only.

Conventions:

* UV maps are ``[H, W, C]`` arrays; masks are ``[H, W]`` bool. A metric over a
  mask returns ``(value, count)``; with an empty mask the value is NaN (never
  0, so an empty region cannot look perfect).
* Albedo errors are mean absolute differences over texels *and* channels
  (linear RGB, 0..1).
* Angular errors are in degrees between normalised vectors; texels where
  either vector is (near) zero are left out (they are not on the mesh).
* SH errors: RMS over the 27 coefficients ([9, 3]); the scale-invariant
  variant first scales the prediction by the least-squares factor
  ``alpha = <p, t> / <p, p>`` (albedo x light is only defined up to a global
  factor), and ``sh_relative_error`` divides the RMS by the truth's RMS.
* Detail normals can be compared relative to their own base normals
  (``relative_detail_error``), so that the base meshes' disagreement drops out.
* Per-group errors (skin-tone groups): ``group_means`` and the FAIR-style
  ``group_bias`` = largest minus smallest group mean.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tf_face.outputs import write_text_atomic
from tf_face.sh import FRONT_MEAN_BASIS, sh_basis_np

_EPS = 1e-8


def visibility_split(pipeline_mask, occlusion, atlas_mask):
    """(visible, hidden) texel masks.

    visible = atlas & pipeline visibility & not occluded (per the truth);
    hidden  = atlas & (not pipeline-visible or occluded). They partition the atlas.
    """
    atlas = np.asarray(atlas_mask, bool)
    seen = np.asarray(pipeline_mask, bool) & ~np.asarray(occlusion, bool)
    return atlas & seen, atlas & ~seen


def masked_mae(pred, truth, mask):
    """(mean |pred - truth| over masked texels and channels, number of texels)."""
    m = np.asarray(mask, bool)
    n = int(m.sum())
    if n == 0:
        return float("nan"), 0
    d = np.abs(np.asarray(pred, np.float64)[m] - np.asarray(truth, np.float64)[m])
    return float(d.mean()), n


def gain_invariant_mae(pred, truth, mask):
    """(min_k mean |k pred - truth| with k the least-squares gain over the masked
    texels and channels, number of texels).

    Albedo x light has a global scale that no single photo fixes (exposure);
    this leaves it out, so what remains is the albedo's shape, colour and detail.
    """
    m = np.asarray(mask, bool)
    n = int(m.sum())
    if n == 0:
        return float("nan"), 0
    p = np.asarray(pred, np.float64)[m]
    t = np.asarray(truth, np.float64)[m]
    pp = float(np.sum(p * p))
    k = float(np.sum(p * t)) / pp if pp > _EPS else 1.0
    return float(np.abs(k * p - t).mean()), n


def channel_gain(pred, truth, mask) -> np.ndarray:
    """[C] float32: per channel, the mean of ``pred`` over the mean of ``truth``
    over the masked texels (1 where the truth's mean is ~0 or nothing is masked):
    the colour and exposure of ``pred`` relative to ``truth``."""
    m = np.asarray(mask, bool)
    p = np.asarray(pred, np.float64)
    t = np.asarray(truth, np.float64)
    if not m.any():
        return np.ones(p.shape[-1], np.float32)
    mp, mt = p[m].mean(0), t[m].mean(0)
    return np.where(mt > _EPS, mp / np.maximum(mt, _EPS), 1.0).astype(np.float32)


def angular_error_map(a, b) -> np.ndarray:
    """Per-texel angle in degrees between a and b [..., 3]; NaN where either is ~0."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    ok = (na > 1e-6) & (nb > 1e-6)
    cos = np.sum(a * b, axis=-1) / np.maximum(na * nb, _EPS)
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return np.where(ok, ang, np.nan)


def mean_angular_error(a, b, mask):
    """(mean angle in degrees over masked texels where both vectors exist, count)."""
    ang = angular_error_map(a, b)
    m = np.asarray(mask, bool) & np.isfinite(ang)
    n = int(m.sum())
    if n == 0:
        return float("nan"), 0
    return float(ang[m].mean()), n


def sh_rms(pred, truth) -> float:
    """RMS over all coefficients of pred - truth (e.g. [9, 3])."""
    d = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    return float(np.sqrt(np.mean(d * d)))


def sh_scale_invariant_rms(pred, truth) -> float:
    """``min_alpha RMS(alpha * pred - truth)`` (alpha = <p, t> / <p, p>; 1 if pred = 0)."""
    p = np.asarray(pred, np.float64)
    t = np.asarray(truth, np.float64)
    pp = float(np.sum(p * p))
    alpha = float(np.sum(p * t)) / pp if pp > _EPS else 1.0
    return sh_rms(alpha * p, t)


def sh_relative_error(pred, truth) -> float:
    """RMS(pred - truth) / RMS(truth)."""
    t = np.asarray(truth, np.float64)
    return sh_rms(pred, t) / max(float(np.sqrt(np.mean(t * t))), _EPS)


def exposure_error(pred, truth) -> float:
    """|e(pred) / e(truth) - 1| with e(sh) the mean irradiance over camera-facing
    normals, averaged over the channels (``tf_face.sh.FRONT_MEAN_BASIS``): how
    far a light's overall brightness is off. One photo cannot tell a darker
    albedo under a brighter light from the reverse, so this part of the
    albedo error is decided by the light prior's exposure guess (the
    synthetic generator draws the mean front irradiance from 0.8-1.1; a
    guess of 0.95 is off by ~8% on average)."""
    e_pred = float(np.mean(FRONT_MEAN_BASIS @ np.asarray(pred, np.float64).reshape(9, 3)))
    e_true = float(np.mean(FRONT_MEAN_BASIS @ np.asarray(truth, np.float64).reshape(9, 3)))
    return abs(e_pred / e_true - 1.0) if abs(e_true) > _EPS else float("nan")


def light_colour_cast(normals, sh, mask, ratio: float = 0.6) -> tuple[float, float]:
    """(cast, negative): the shares of the masked texels whose irradiance under
    ``sh`` [9, 3] has one channel below ``ratio`` x another (a negative one
    included), and a negative channel. A white light scores (0, 0); a light
    whose colour changes with direction tints the re-render where its
    irradiance is low (teal nostrils under a light with little red from
    below). NaN for an empty mask."""
    m = np.asarray(mask, bool) & np.any(np.asarray(normals) != 0, -1)
    if not m.any():
        return float("nan"), float("nan")
    e = sh_basis_np(np.asarray(normals, np.float64)[m]) @ np.asarray(sh, np.float64)
    lo, hi = e.min(1), e.max(1)
    return (float(np.mean((lo < ratio * hi) | (lo < 0))), float(np.mean(lo < 0)))


def nanmean(values) -> float:
    """Mean of the finite values (NaN if none): per-face results -> one number."""
    v = np.asarray([x for x in values if x is not None], np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def relative_to_base(detail, base) -> np.ndarray:
    """Detail normals [..., 3] expressed in the frame of their base normals.

    The minimal rotation that takes ``base`` to +z (Rodrigues) is applied to
    ``detail``: a detail normal equal to its base normal becomes (0, 0, 1)
    whatever the base, so comparing two reconstructions this way leaves out
    how well their base meshes agree. Zero where either vector is ~0.
    """
    d = np.asarray(detail, np.float64)
    b = np.asarray(base, np.float64)
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    nd = np.linalg.norm(d, axis=-1, keepdims=True)
    ok = (nb > 1e-6) & (nd > 1e-6)
    b = b / np.where(ok, nb, 1.0)
    d = d / np.where(ok, nd, 1.0)
    # rotation about axis k = b x z by the angle between b and z:
    # v' = v cos + (k x v) sin + k (k . v)(1 - cos), with |k| = sin
    z = np.zeros_like(b)
    z[..., 2] = 1.0
    kx = np.cross(b, z)                           # |kx| = sin(theta)
    cos = b[..., 2:3]
    # v' = v cos + kx x v + kx (kx . v) / (1 + cos)
    out = d * cos + np.cross(kx, d) + kx * np.sum(kx * d, -1, keepdims=True) / np.maximum(1 + cos, 1e-9)
    return np.where(ok, out, 0.0)


def relative_detail_error(pred_detail, pred_base, true_detail, true_base, mask):
    """(mean angle in degrees between the two detail normals, each taken
    relative to its own base normal (``relative_to_base``), count)."""
    return mean_angular_error(relative_to_base(pred_detail, pred_base),
                              relative_to_base(true_detail, true_base), mask)


def group_means(values, groups, order=None) -> dict:
    """{group: mean of the finite values of its members} for per-item
    ``values`` and ``groups`` (same length; None / NaN values and None groups
    are left out; a group with no finite value is absent). Keys follow
    ``order`` (then first appearance)."""
    if len(values) != len(groups):
        raise ValueError(f"{len(values)} values but {len(groups)} groups")
    acc = {}
    for v, g in zip(values, groups):
        if g is None or v is None or not np.isfinite(v):
            continue
        acc.setdefault(g, []).append(float(v))
    keys = [g for g in (order or ()) if g in acc] + [g for g in acc if g not in (order or ())]
    return {g: float(np.mean(acc[g])) for g in keys}


def group_bias(means: dict):
    """FAIR-style bias of per-group mean errors: largest minus smallest
    (None with fewer than two groups: one group has no gap to measure)."""
    v = [float(x) for x in means.values() if x is not None and np.isfinite(x)]
    return float(max(v) - min(v)) if len(v) >= 2 else None


def json_safe(x):
    """Strict-JSON copy of a result: NaN/Inf -> None, numpy scalars -> Python,
    dict keys -> str, recursively (the benchmarks' JSON files)."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def write_result_json(path, result: dict) -> None:
    """Write a benchmark result as strict JSON (parent folders made) and say so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(json_safe(result), indent=2, allow_nan=False))
    print(f"wrote {path}")
