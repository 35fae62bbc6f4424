"""Sliding jaw-contour landmarks.

A 2D landmark detector marks the jaw on the visible outline of the face. For a
turned face that outline (the silhouette) runs over different vertices than
the frontal jaw line, so each contour landmark has candidate vertices
(``FaceModel.contour_candidates``: landmark slot -> ids, the fixed landmark
vertex first) and the one on the outline is used. Detectors also disagree
with a model about *where along* the jaw its points 1-7 and 9-15 lie (they
are semi-landmarks, defined by even spacing between ear and chin; MediaPipe's
face oval has few vertices near the ear, so our 468 -> 68 jaw points 1 and 2
lie ~0.08 IOD above / below ICT's), so in the last pass of the fit a contour
landmark may also slide along the jaw, within about half the distance to its
neighbours.

Rule (ours; the paper only says "sliding landmarks"):

* Each slot has a model-frame *outward* direction ``o`` (the outward normal of
  the jaw polyline of iBUG 0-16 in the mean shape's front view: +-x at the
  ears, about -y at the chin) and a side (sign of its fixed vertex's x).
* Its candidates are cut into *strips* across the jaw: vertices grouped by
  their coordinate along the jaw tangent (strip width = the candidates'
  median nearest-neighbour distance, about one mesh edge); strip 0 holds the
  fixed vertex.
* In each strip, if the slot's side is turned towards the camera by more than
  ``contour_near_yaw_deg`` (``toward = (R x_side)_z > sin``), the jaw line
  itself is visible and annotated: the strip's vertex nearest the jaw line
  (the fixed vertex in strip 0) is used. Otherwise the strip's vertex that
  lies furthest out along the image-plane direction of ``R o`` (the outline:
  for strips that cross the silhouette this is the silhouette vertex).
* Strip 0 while the pose and coefficients are found; in the final pass, with
  ``FitOptions.contour_along_jaw``, the strip whose vertex projects nearest
  to the observed landmark. (Sliding along the jaw in every round lets pitch
  and face shape trade off against the jaw points' vertical positions: 5 deg
  rotation error on exact synthetic landmarks of a frontal face.)

Candidates must cross the outline *on the face*. ``jaw_contour_candidates``
builds, per slot, a patch from inside the face out to the jaw line (no
further: beyond it lie the underside of the chin and the front of the neck,
which is wider than the chin, so "furthest out" there is a neck vertex; the
ICT loader's earlier horizontal bands over the whole face area did exactly
that — astronaut landmark RMSE 0.112 IOD, jaw points 6-10 up to 0.54 IOD off),
along the jaw within ``along`` of the neighbour spacing, inside a vertex mask
(ICT: the narrow face area, no neck, ears or scalp). A side turned away has
its outline *in front of* the jaw vertex (nearer the nose), inside the patch;
a frontal face's outline is the jaw line itself.

``horizontal_candidates`` builds plain horizontal candidate lines (a model
with only a jaw line; the synthetic fixture of ``tests/test_fitting.py``).
"""

from __future__ import annotations

import numpy as np

JAW = np.arange(17)


def jaw_frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(outward [17,2], tangent [17,2]) unit vectors of the jaw polyline of
    iBUG 0-16 in the model frame's x-y plane, from ``points`` [68, >=2].
    Outward points away from the centroid of the 68 points; the tangent runs
    from slot 0 (subject's right) towards 16."""
    p = np.asarray(points, np.float64)[:, :2]
    centre = p.mean(axis=0)
    jaw = p[JAW]
    nxt, prv = jaw[np.minimum(JAW + 1, 16)], jaw[np.maximum(JAW - 1, 0)]
    tan = nxt - prv
    tan /= np.maximum(np.linalg.norm(tan, axis=1, keepdims=True), 1e-12)
    out = np.stack([tan[:, 1], -tan[:, 0]], axis=1)
    flip = np.einsum("ij,ij->i", jaw - centre, out) < 0
    out[flip] *= -1.0
    return out, tan


class ContourTable:
    """Candidate strips of the sliding slots, padded for vectorised selection."""

    def __init__(self, rows, fixed_ids, strips, jaw_ids, axis, side):
        self.rows = np.asarray(rows, np.int64)             # [S] landmark rows
        self.fixed = np.asarray(fixed_ids, np.int64)       # [S] fixed vertex ids
        ns = max((len(st) for st in strips), default=1)
        nc = max((len(c) for st in strips for c in st), default=1)
        self.ids = np.zeros((len(rows), ns, nc), np.int64)     # [S, strips, n]
        self.valid = np.zeros((len(rows), ns, nc), bool)
        self.jaw = np.zeros((len(rows), ns), np.int64)         # [S, strips] jaw-line vertex
        self.strip_valid = np.zeros((len(rows), ns), bool)
        for i, st in enumerate(strips):
            for j, c in enumerate(st):
                self.ids[i, j, :len(c)] = c
                self.valid[i, j, :len(c)] = True
                self.jaw[i, j] = jaw_ids[i][j]
                self.strip_valid[i, j] = True
        self.axis = np.asarray(axis, np.float64)           # [S, 3] outward, model frame
        self.side = np.asarray(side, np.float64)           # [S] -1 right, +1 left

    @classmethod
    def from_spec(cls, spec, mean_shape):
        """Strips from ``spec.contour`` (slot -> candidate ids) on the mean
        shape. For a 68-point spec the outward directions and the tangent come
        from the jaw polyline (``jaw_frame``); otherwise +-x and one strip."""
        if not spec.contour:
            return None
        v = np.asarray(mean_shape, np.float64)
        rows = sorted(spec.contour)
        main = spec.main_vertex()
        centre_x = v[main, 0].mean()
        side = [1.0 if v[main[r], 0] >= centre_x else -1.0 for r in rows]
        if spec.num == 68:
            outward, tangent = jaw_frame(v[main])
        else:
            outward = tangent = None
        axis, strips, jaw_ids = [], [], []
        for r, sd in zip(rows, side):
            p = int(main[r])
            cand = np.unique(np.r_[np.asarray(spec.contour[r], np.int64), p])
            if outward is None or r >= 17:
                axis.append([sd, 0.0, 0.0])
                strips.append([cand])
                jaw_ids.append([p])
                continue
            o, t = outward[r], tangent[r]
            axis.append([o[0], o[1], 0.0])
            rel = v[cand, :2] - v[p, :2]
            along, across = rel @ t, rel @ o
            width = _strip_width(v[cand, :2])
            k = np.round(along / width).astype(np.int64)
            order = np.argsort(np.abs(np.unique(k)), kind="stable")   # strip 0 first
            st, jw = [], []
            for key in np.unique(k)[order]:
                members = cand[k == key]
                st.append(members)
                # the strip's point on the jaw line: nearest to the tangent
                # line through the fixed vertex (the fixed vertex in strip 0)
                jw.append(p if key == 0 else int(members[np.argmin(np.abs(across[k == key]))]))
            strips.append(st)
            jaw_ids.append(jw)
        return cls(rows, main[rows], strips, jaw_ids, axis, side)

    def select(self, cand_points: np.ndarray, rotation: np.ndarray, near_yaw_deg: float,
               cand_image: np.ndarray | None = None, obs: np.ndarray | None = None
               ) -> np.ndarray:
        """Chosen vertex id per slot [S].

        ``cand_points`` [S, strips, n, 3]: model-frame positions of
        ``self.ids`` under the current coefficients. With ``cand_image``
        [S, strips, n, 2] (their projections) and ``obs`` [S, 2] (the
        observed landmarks, same frame) the strip nearest the observation is
        chosen; else strip 0."""
        s_idx = np.arange(len(self.rows))
        side_axis = np.zeros((len(self.rows), 3))
        side_axis[:, 0] = self.side
        toward = (side_axis @ rotation.T)[:, 2]
        rot_axis = self.axis @ rotation.T                       # [S, 3] camera frame
        proj = cand_points @ rotation.T                         # [S, J, n, 3]
        score = (proj[..., 0] * rot_axis[:, None, None, 0]
                 + proj[..., 1] * rot_axis[:, None, None, 1])
        score = np.where(self.valid, score, -np.inf)
        pick = np.argmax(score, axis=2)                         # [S, J]
        near = toward > np.sin(np.radians(near_yaw_deg))
        outline = np.take_along_axis(self.ids, pick[..., None], axis=2)[..., 0]
        chosen = np.where(near[:, None], self.jaw, outline)     # [S, J] vertex ids
        if cand_image is None or obs is None or self.ids.shape[1] == 1:
            return chosen[:, 0]
        # image position of each strip's chosen vertex
        where = np.where(near[:, None], np.argmax(self.ids == self.jaw[..., None], axis=2), pick)
        q = np.take_along_axis(cand_image, where[..., None, None], axis=2)[:, :, 0]  # [S, J, 2]
        d = ((q - obs[:, None, :]) ** 2).sum(-1)
        d = np.where(self.strip_valid, d, np.inf)
        return chosen[s_idx, np.argmin(d, axis=1)]


def _strip_width(xy: np.ndarray) -> float:
    """Median nearest-neighbour distance of the candidates (x-y plane): about
    one mesh edge, so that every strip has vertices all the way across."""
    if len(xy) < 2:
        return 1.0
    d = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    w = float(np.median(d.min(axis=1)))
    return w if w > 0 else 1.0


def jaw_contour_candidates(vertices: np.ndarray, triangles: np.ndarray,
                           landmarks68: np.ndarray, vertex_mask=None, normals=None,
                           along: float = 0.5, inner_fraction: float = 0.5,
                           outer: float = 0.0, min_normal_z: float = -0.3) -> dict:
    """slot (0-7, 9-16) -> candidate ids: a patch of the face around jaw
    landmark ``p``, fixed vertex first, the rest ordered from the inside of
    the face outwards.

    With the jaw frame of ``jaw_frame`` (outward ``o``, tangent ``t`` at p),
    the vertices

    * across the jaw: from ``inner_fraction`` of p's distance from the face
      centre (centroid of the 68 landmarks) inside p out to ``outer`` (model
      units) beyond the tangent line through p, i.e. up to the jaw line;
    * along it: between ``along`` x the distance to the previous and to the
      next jaw landmark (slots 0 and 16: symmetric);
    * strictly on p's side of the midline (x of the chin, landmark 8),
      inside ``vertex_mask``, used by a triangle
      and not facing backwards (normal z > ``min_normal_z``).
    """
    v = np.asarray(vertices, np.float64)
    tri = np.asarray(triangles, np.int64)
    lm = np.asarray(landmarks68, np.int64)
    if normals is None:
        # lazy: import cycle (facemodel.ict imports this module)
        from tf_face.facemodel.mesh import vertex_normals
        normals = vertex_normals(v, tri)
    ok = np.zeros(len(v), bool)
    ok[tri.ravel()] = True
    if vertex_mask is not None:
        ok &= np.asarray(vertex_mask, bool)
    ok &= normals[:, 2] > min_normal_z
    outward, tangent = jaw_frame(v[lm])
    centre = v[lm, :2].mean(axis=0)
    jaw = v[lm[JAW], :2]
    mid_x = v[lm[8], 0]           # the chin is on the midline
    out = {}
    for slot in list(range(0, 8)) + list(range(9, 17)):
        p = int(lm[slot])
        o, t = outward[slot], tangent[slot]
        rel = v[:, :2] - v[p, :2]
        a, d = rel @ t, rel @ o
        nxt = (jaw[slot + 1] - jaw[slot]) @ t if slot < 16 else None
        prv = (jaw[slot - 1] - jaw[slot]) @ t if slot > 0 else None
        hi = along * (nxt if nxt is not None else -prv)
        lo = along * (prv if prv is not None else -nxt)
        side = np.sign(v[p, 0] - mid_x) or 1.0
        sel = ok & (a >= lo) & (a <= hi) & (d >= -inner_fraction * ((v[p, :2] - centre) @ o)) \
            & (d <= outer) & ((v[:, 0] - mid_x) * side > 0)
        ids = np.flatnonzero(sel)
        ids = ids[ids != p]
        ids = ids[np.argsort(d[ids], kind="stable")]
        out[slot] = np.r_[p, ids].astype(np.int64)
    return out


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
