"""Sliding jaw-contour landmarks.

A 2D landmark detector marks the jaw on the visible outline of the face. For a
turned face that outline (the silhouette) runs over different vertices than
the frontal jaw line, so each contour landmark has a list of candidate
vertices (``FaceModel.contour_candidates``: landmark slot -> ids ordered from
the front of the face towards the ear) and the one on the silhouette is used.

Rule (ours; the paper only says "sliding landmarks"):

* Each slot belongs to one side of the face: the sign of the model-frame x
  of its fixed vertex relative to the centroid of the 68 landmarks
  (subject's right = -x).
* The side's outward axis ``d`` (model -x or +x) rotated by R gives
  ``toward = (R d)_z`` (camera-frame z points to the camera). If
  ``toward > sin(contour_near_yaw_deg)`` that side is turned towards the camera
  and the visible jaw line itself is annotated: the fixed vertex is used.
* Otherwise the candidate whose projection lies furthest along the projected
  outward axis (image-plane direction of ``R d``) is chosen: for candidate
  lines that cross the silhouette this is the silhouette vertex (the extreme
  point of the face outline in that direction).

``horizontal_candidates`` builds candidate lists for models that only have a
jaw line (e.g. the ICT file): per slot, the mesh vertices in a horizontal
band around the fixed vertex, on its side, inside an optional vertex mask.
"""

from __future__ import annotations

import numpy as np


class ContourTable:
    """Padded candidate table for vectorised selection."""

    def __init__(self, rows, fixed_ids, cand_lists, side_sign):
        self.rows = np.asarray(rows, np.int64)            # [S] landmark rows
        self.fixed = np.asarray(fixed_ids, np.int64)      # [S] fixed vertex ids
        n = max((len(c) for c in cand_lists), default=0)
        self.ids = np.zeros((len(rows), n), np.int64)
        self.valid = np.zeros((len(rows), n), bool)
        for i, c in enumerate(cand_lists):
            self.ids[i, :len(c)] = c
            self.valid[i, :len(c)] = True
        self.side = np.asarray(side_sign, np.float64)     # [S] -1 right, +1 left

    @classmethod
    def from_spec(cls, spec, mean_shape):
        if not spec.contour:
            return None
        rows = sorted(spec.contour)
        fixed = spec.main_vertex()
        centre_x = mean_shape[spec.main_vertex(), 0].mean()
        side = [1.0 if mean_shape[fixed[r], 0] >= centre_x else -1.0 for r in rows]
        return cls(rows, fixed[rows], [spec.contour[r] for r in rows], side)

    def select(self, cand_points: np.ndarray, rotation: np.ndarray,
               near_yaw_deg: float) -> np.ndarray:
        """Chosen vertex id per slot [S].

        ``cand_points`` [S, n, 3]: model-frame positions of ``self.ids`` under
        the current coefficients."""
        axis = np.zeros((len(self.rows), 3))
        axis[:, 0] = self.side
        rot_axis = axis @ rotation.T                        # [S, 3] camera frame
        toward = rot_axis[:, 2]
        dir2 = rot_axis[:, :2] * np.array([1.0, -1.0])      # image-plane direction
        proj = cand_points @ rotation.T                     # [S, n, 3]
        score = (proj[..., 0] * dir2[:, None, 0]
                 - proj[..., 1] * dir2[:, None, 1])          # image y flips
        score = np.where(self.valid, score, -np.inf)
        best = self.ids[np.arange(len(self.rows)), np.argmax(score, axis=1)]
        near = toward > np.sin(np.radians(near_yaw_deg))
        return np.where(near, self.fixed, best)


def horizontal_candidates(vertices: np.ndarray, fixed_ids: dict, band: float,
                          vertex_mask=None, centre_x: float = 0.0,
                          inner_fraction: float = 0.5, outer_fraction: float = 1.0,
                          max_candidates: int = 256) -> dict:
    """slot -> candidate ids: vertices with |y - y_fixed| <= band on the fixed
    vertex's side, between ``inner_fraction`` and ``outer_fraction`` of the
    fixed vertex's distance from the midline x = centre_x (the inner limit
    keeps the nose out of the cheek's line; the outer limit 1.0 makes the
    frontal silhouette the fixed jaw vertex itself), inside ``vertex_mask``, ordered by |x| increasing (front of the face ->
    ear), thinned to ``max_candidates``. The fixed vertex is always included.
    (A candidate line must reach *in front of* the jaw vertex: a side turned
    away from the camera has its silhouette nearer the nose.)"""
    v = np.asarray(vertices, np.float64)
    ok = np.ones(len(v), bool) if vertex_mask is None else np.asarray(vertex_mask, bool)
    out = {}
    for slot, vid in fixed_ids.items():
        p = v[int(vid)]
        side = np.sign(p[0] - centre_x) or 1.0
        reach = (v[:, 0] - centre_x) * side
        sel = np.nonzero(ok & (np.abs(v[:, 1] - p[1]) <= band)
                         & (reach >= inner_fraction * abs(p[0] - centre_x))
                         & (reach <= outer_fraction * abs(p[0] - centre_x)))[0]
        sel = sel[np.argsort(np.abs(v[sel, 0] - centre_x), kind="stable")]
        if len(sel) > max_candidates:
            sel = sel[np.linspace(0, len(sel) - 1, max_candidates).round().astype(int)]
        if int(vid) not in sel:
            sel = np.append(sel, int(vid))
        out[int(slot)] = sel.astype(np.int64)
    return out
