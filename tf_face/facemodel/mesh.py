"""Mesh helpers shared by the face-model loaders and the default-model build.

Conventions (see ``tf_face.types``): model frame +x = subject's left, +y = up,
+z = out of the face; triangles counter-clockwise seen from outside; UV in
[0, 1]^2 with v down.
"""

from __future__ import annotations

import numpy as np


def face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unnormalised face normals (b - a) x (c - a), [T, 3] (length = 2 * area)."""
    v = np.asarray(vertices, np.float64)
    a, b, c = (v[triangles[:, i]] for i in range(3))
    return np.cross(b - a, c - a)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals [V, 3], float64 (zero for unused vertices).

    The one vertex-normal formula of tf_face (unwrap, renders, synthetic
    faces, the fit's contour): the sum of the incident ``face_normals``
    (``(b - a) x (c - a)``, length 2 * area), normalised; outward for
    triangles counter-clockwise seen from outside in a right-handed frame.
    """
    t = np.asarray(triangles, np.int64)
    fn = face_normals(vertices, t)
    idx = t.reshape(-1)
    out = np.empty((len(vertices), 3))
    for k in range(3):
        out[:, k] = np.bincount(idx, weights=np.repeat(fn[:, k], 3), minlength=len(vertices))
    n = np.linalg.norm(out, axis=1, keepdims=True)
    return np.divide(out, n, out=np.zeros_like(out), where=n > 0)


def edge_counts(triangles: np.ndarray) -> dict[tuple[int, int], int]:
    """Undirected edge -> number of incident triangles."""
    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    e = np.sort(e, axis=1)
    uniq, cnt = np.unique(e, axis=0, return_counts=True)
    return {(int(a), int(b)): int(c) for (a, b), c in zip(uniq, cnt)}


def boundary_loops(triangles: np.ndarray) -> list[list[int]]:
    """Boundary loops as vertex lists, following the triangles' orientation."""
    counts = edge_counts(triangles)
    nxt: dict[int, int] = {}
    for t in triangles:
        for i in range(3):
            a, b = int(t[i]), int(t[(i + 1) % 3])
            if counts[(min(a, b), max(a, b))] == 1:
                nxt[a] = b
    loops, seen = [], set()
    for start in list(nxt):
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen and v in nxt:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        loops.append(loop)
    return loops


def topology_report(triangles: np.ndarray, num_vertices: int | None = None) -> dict:
    """V, E, F, Euler characteristic, boundary loops, manifoldness, orientation."""
    t = np.asarray(triangles)
    used = np.unique(t)
    nv = len(used) if num_vertices is None else num_vertices
    counts = edge_counts(t)
    directed = np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]])
    _, dcnt = np.unique(directed, axis=0, return_counts=True)
    # vertex-manifold: each boundary vertex has exactly one outgoing boundary edge
    bnd = [e for e, c in counts.items() if c == 1]
    bdeg = np.bincount(np.array(bnd).ravel(), minlength=nv) if bnd else np.zeros(nv, int)
    loops = boundary_loops(t)
    return {
        "V": int(nv), "E": len(counts), "F": int(len(t)),
        "euler": int(nv - len(counts) + len(t)),
        "non_manifold_edges": int(sum(c > 2 for c in counts.values())),
        "boundary_edges": len(bnd),
        "boundary_loops": len(loops),
        "boundary_loop_lengths": sorted((len(l) for l in loops), reverse=True),
        "max_boundary_vertex_degree": int(bdeg.max()) if len(bdeg) else 0,
        "consistently_oriented": bool(dcnt.max() == 1),
        "unused_vertices": int(nv - len(used)),
    }


def cylindrical_uv(vertices: np.ndarray, margin: float = 0.02) -> np.ndarray:
    """UV from a vertical cylinder around the head, v down, aspect preserved.

    The axis is the vertical line x = centre of the x range, z = the smallest z
    of the mesh (so points at the back-most depth map to +-90 degrees and the
    sides never wrap). u is arc length (angle times the median radius), v is
    -y; both are scaled by one factor to fill [margin, 1 - margin] along the
    longer side and centred along the other. Symmetric meshes (x -> -x) get
    symmetric UVs (u -> 1 - u).
    """
    v = np.asarray(vertices, np.float64)
    cx = 0.5 * (v[:, 0].min() + v[:, 0].max())
    cz = v[:, 2].min()
    theta = np.arctan2(v[:, 0] - cx, v[:, 2] - cz)
    radius = np.median(np.hypot(v[:, 0] - cx, v[:, 2] - cz))
    u = theta * radius
    w = -v[:, 1]
    return fit_unit_square(np.stack([u, w], 1), margin, centre_u=0.0)


def fit_unit_square(uv: np.ndarray, margin: float, centre_u: float | None = None) -> np.ndarray:
    """Scale/translate 2-D points uniformly into [margin, 1 - margin]^2, centred.

    With ``centre_u`` given, that u value maps to exactly 0.5 (keeps symmetry).
    """
    uv = np.asarray(uv, np.float64)
    lo, hi = uv.min(0), uv.max(0)
    if centre_u is not None:
        half_u = max(hi[0] - centre_u, centre_u - lo[0])
        lo = np.array([centre_u - half_u, lo[1]])
        hi = np.array([centre_u + half_u, hi[1]])
    span = (hi - lo).max()
    s = (1.0 - 2 * margin) / max(span, 1e-12)
    mid = 0.5 * (lo + hi)
    return ((uv - mid) * s + 0.5).astype(np.float32)


def contour_candidates(vertices: np.ndarray, triangles: np.ndarray,
                       landmarks68: np.ndarray, extra: dict | None = None,
                       max_candidates: int = 24,
                       front_reach_deg: float = 45.0) -> dict[int, np.ndarray]:
    """Sliding-contour candidates for the jaw landmark slots 0-7 and 9-16.

    For slot j with landmark vertex p: the vertices in a horizontal band
    (|y - p_y| < one median edge length) on p's side of the face (same sign of
    x relative to the midline) whose angle round a vertical axis
    (atan2(|x|, z - z_c), z_c = the mesh's mean depth) is at most
    ``front_reach_deg`` in front of p's or anywhere beyond it: a side turned
    away from the camera has its silhouette *in front of* the frontal jaw
    vertex, so the candidates must reach there (at 60 deg yaw, candidates that
    only went from p towards the ear gave a 9 deg pose error)
    and whose vertex normal does not point backwards (n_z > -0.3). The band is
    cut into arc-length bins (half an edge length, or wider so that at most
    ``max_candidates`` bins cover the band); per bin the vertex nearest p's
    height is kept (ties: the front-most). p first, then the others ordered front -> ear. ``extra`` (slot -> ids)
    adds model-provided candidates (ICT's jawline lists; those within 1.5
    edge lengths of p's height) before binning.
    Slot 8 (chin) does not slide.
    """
    v = np.asarray(vertices, np.float64)
    tri = np.asarray(triangles)
    e = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    edge_len = float(np.median(np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)))
    normals = vertex_normals(v, tri)
    used = np.zeros(len(v), bool)
    used[tri.ravel()] = True
    cx = 0.5 * (v[:, 0].min() + v[:, 0].max())
    zc = float(v[used, 2].mean())
    ang = np.arctan2(np.abs(v[:, 0] - cx), v[:, 2] - zc)
    radius = float(np.median(np.hypot(v[used, 0] - cx, v[used, 2] - zc)))
    out: dict[int, np.ndarray] = {}
    reach = np.radians(front_reach_deg)
    for slot in list(range(0, 8)) + list(range(9, 17)):
        p = int(landmarks68[slot])
        side = np.sign(v[p, 0] - cx) or (-1.0 if slot < 8 else 1.0)
        sel = (used & (np.abs(v[:, 1] - v[p, 1]) < edge_len)
               & (np.sign(v[:, 0] - cx) == side) & (ang >= ang[p] - reach)
               & (normals[:, 2] > -0.3))
        cand = set(np.flatnonzero(sel).tolist())
        if extra and slot in extra:
            cand |= {int(i) for i in extra[slot] if ang[int(i)] >= ang[p] - reach
                     and abs(v[int(i), 1] - v[p, 1]) < 1.5 * edge_len}
        cand.discard(p)
        cand = np.array(sorted(cand), dtype=np.int64)
        chosen = [p]
        if len(cand):
            arc = (ang[cand] - ang[cand].min()) * radius
            width = max(0.5 * edge_len, arc.max() / max_candidates)
            bins = np.floor(arc / width).astype(int)
            dy = np.abs(v[cand, 1] - v[p, 1])
            for b in np.unique(bins):
                inb = np.flatnonzero(bins == b)
                best = inb[np.lexsort((ang[cand[inb]], dy[inb]))[0]]  # nearest height, then front-most
                chosen.append(int(cand[best]))
        chosen = chosen[:max_candidates]
        out[slot] = np.array(chosen, dtype=np.int32)
    return out
