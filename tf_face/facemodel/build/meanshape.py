"""Reference shape of the default model: pose-normalised, averaged, symmetric.

Steps (all float64):

1. ``image_to_model``: MediaPipe image-pixel landmarks -> model frame
   (x = column, y = -row, z = -depth; for a frontal photo the subject's left
   appears on the image right, so model +x = subject's left).
2. ``similarity_align`` / ``generalised_procrustes``: 3-D similarity
   Procrustes (Umeyama) of every face onto the running mean, iterated.
3. ``mirror_map``: Hungarian matching of the reflected shapes (x -> -x) to
   the shapes themselves (cost averaged over all aligned faces); the result
   is forced to be an involution.
4. ``symmetrise``: rotate the shape so its best mirror plane is x = 0, then
   average it with its mirror image; midline points get x = 0 exactly.
5. ``face_frontal``: rotate about x so the plane fitted to the face oval
   faces +z (defines "frontal" independently of the photos' mean pitch).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.transform import Rotation

REFLECT = np.array([-1.0, 1.0, 1.0])


def image_to_model(points: np.ndarray) -> np.ndarray:
    """[N,3] image pixels (x col, y row, z depth nearer<0) -> model frame."""
    return np.asarray(points, np.float64) * np.array([1.0, -1.0, -1.0])


def similarity_align(src: np.ndarray, dst: np.ndarray, allow_reflection: bool = False):
    """Umeyama: (s, R, t) minimising ||s R src + t - dst||; returns aligned src too."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a)
    d = np.eye(3)
    if not allow_reflection and np.linalg.det(u @ vt) < 0:
        d[2, 2] = -1
    r = u @ d @ vt
    s = float(np.trace(np.diag(sig) @ d) / (a ** 2).sum())
    t = mu_d - s * r @ mu_s
    return s, r, t, s * a @ r.T + mu_d


def normalise(shape: np.ndarray) -> np.ndarray:
    """Centre at the centroid and scale to unit RMS radius."""
    c = shape - shape.mean(0)
    return c / np.sqrt((c ** 2).sum(1).mean())


def generalised_procrustes(shapes: list[np.ndarray], iters: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean of similarity-aligned shapes; returns (mean, per-shape RMS residual)."""
    mean = normalise(shapes[0])
    for _ in range(iters):
        aligned = [similarity_align(s, mean)[3] for s in shapes]
        new = normalise(np.mean(aligned, 0))
        new = similarity_align(new, mean)[3]  # keep the orientation of the first
        done = np.abs(new - mean).max() < 1e-9
        mean = new
        if done:
            break
    resid = np.array([np.sqrt(((a - mean) ** 2).sum(1).mean()) for a in aligned])
    return mean, resid


def mirror_map(shapes) -> np.ndarray:
    """[N] int: each vertex's mirror partner, by Hungarian matching.

    ``shapes``: one [N,3] shape or a list of them, all aligned to a frame whose
    mirror plane is x = 0 (+x = the subject's left). The cost of pairing i with
    j is the mean over the shapes of |x_i - reflect(x_j)|; using many faces
    (open and closed mouths, different people) disambiguates points that
    nearly coincide in one face (closed lips). A non-involutive assignment is
    repaired by pairing i <-> m[i] and sending leftovers to themselves.
    """
    shapes = [shapes] if isinstance(shapes, np.ndarray) and shapes.ndim == 2 else list(shapes)
    cost = sum(np.linalg.norm(s[:, None, :] - (s * REFLECT)[None, :, :], axis=2)
               for s in shapes) / len(shapes)
    _, col = linear_sum_assignment(cost)
    m = col.copy()
    for i in range(len(m)):
        j = m[i]
        if m[j] != i:
            m[j] = i
    bad = m[m] != np.arange(len(m))
    m[bad] = np.flatnonzero(bad)
    return m.astype(np.int32)


def symmetrise(shape: np.ndarray, mirror: np.ndarray, iters: int = 5) -> np.ndarray:
    """Rotate so the mirror plane is x = 0, then average with the mirror image."""
    s = shape - shape.mean(0)
    for _ in range(iters):
        target = (s * REFLECT)[mirror]
        _, r, _, _ = similarity_align(s, target)
        half = Rotation.from_matrix(r).as_rotvec() * 0.5
        s = s @ Rotation.from_rotvec(half).as_matrix().T
        s = s - s.mean(0)
        s[:, 0] -= s[:, 0].mean()
    out = 0.5 * (s + (s * REFLECT)[mirror])
    mid = mirror == np.arange(len(mirror))
    out[mid, 0] = 0.0
    return out


def plane_normal(points: np.ndarray) -> np.ndarray:
    c = points - points.mean(0)
    return np.linalg.svd(c, full_matrices=False)[2][2]


def face_frontal(shape: np.ndarray, oval: np.ndarray) -> np.ndarray:
    """Rotate about the x axis so the face-oval plane's normal is +z."""
    n = plane_normal(shape[oval])
    if n[2] < 0:
        n = -n
    angle = np.arctan2(n[1], n[2])          # rotation about x taking n to (nx, 0, *)
    r = Rotation.from_rotvec([angle, 0.0, 0.0]).as_matrix()
    return shape @ r.T


def canonical_frame(shape: np.ndarray, oval, right_eye, left_eye) -> np.ndarray:
    """Rotate/centre a shape so +x runs from the right to the left eye centroid
    and +z is the face-oval plane's normal (pointing out of the face).

    Gives a rough mirror frame without any mirror map (used before the first
    Hungarian matching, so a yawed first photo cannot bias it).
    """
    c = shape - shape.mean(0)
    ex = c[list(left_eye)].mean(0) - c[list(right_eye)].mean(0)
    n = plane_normal(c[list(oval)])
    if np.median(c @ n) < 0:   # most face points lie in front of the oval plane
        n = -n
    ex = ex - (ex @ n) * n
    ex /= np.linalg.norm(ex)
    ey = np.cross(n, ex)
    return c @ np.stack([ex, ey, n], 1)
