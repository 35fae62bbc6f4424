"""Optional: ICT-FaceKit identities and expressions, transferred onto the
default (MediaPipe-topology) mesh.

Why transfer instead of rendering the ICT mesh: the ground truth must live in
the default model's UV space, which the pipeline unwraps into. So the
geometry stays the default mesh; only ICT's *deformations* are used:

1. the ICT mean is aligned to the default mean shape by a similarity
   (Umeyama, least squares) on the iBUG-68 landmarks 17-67 of both models
   (the jaw contour 0-16 is defined differently by the two and is left out);
2. each default vertex is attached to its nearest ICT vertex after the
   alignment (ICT's face area has ~9400 vertices, spacing ~3 mm, so the
   attachment error is small against the ~cm scale of the deformations);
3. a face = default mean + (similarity rotation and scale) applied to the ICT
   delta ``shape(alpha, beta) - mean`` at the attached vertices, with
   ``alpha ~ N(0, shape_scale^2 I)`` (unit-variance identity coefficients)
   and a sparse expression: 0-3 blendshapes from ``EXPRESSIONS`` with
   weights U(0, max_weight) (jaw opening and blinks are left out: the default
   mesh has its mouth and eyes filled, so an open mouth or a closed lid would
   stretch the lip / iris texture).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_face.facemodel import default_model, load_face_model

EXPRESSIONS = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
    "browOuterUp_R", "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R",
    "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R", "mouthDimple_L", "mouthDimple_R",
    "mouthFrown_L", "mouthFrown_R", "mouthLeft", "mouthRight", "mouthPress_L", "mouthPress_R",
    "mouthPucker", "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R",
    "noseSneer_L", "noseSneer_R",
)


def similarity(src: np.ndarray, dst: np.ndarray):
    """(s, R, t) minimising sum |s R src + t - dst|^2 (Umeyama 1991)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / (a ** 2).sum(1).mean())
    return scale, rot, mu_d - scale * rot @ mu_s


@dataclasses.dataclass
class IctShapes:
    ict: object                 # FaceModel (ict_npz)
    nearest: np.ndarray         # [468] ICT vertex attached to each default vertex
    scale: float
    rotation: np.ndarray
    expr_ids: np.ndarray        # indices into ict.expr_basis of EXPRESSIONS

    @classmethod
    def load(cls, path, default=None) -> "IctShapes":
        # lazy: scipy.spatial costs ~350 ms at start-up of make_dataset / eval
        from scipy.spatial import cKDTree

        default = default_model() if default is None else default
        ict = load_face_model(f"ict_npz:{path}")
        sel = np.arange(17, 68)
        src = np.asarray(ict.mean_shape, np.float64)[ict.landmarks68[sel]]
        dst = np.asarray(default.mean_shape, np.float64)[default.landmarks68[sel]]
        s, rot, t = similarity(src, dst)
        aligned = s * np.asarray(ict.mean_shape, np.float64) @ rot.T + t
        _, nearest = cKDTree(aligned).query(np.asarray(default.mean_shape, np.float64))
        names = list(ict.expr_names)
        ids = np.array([names.index(n) for n in EXPRESSIONS if n in names], np.int64)
        return cls(ict=ict, nearest=np.asarray(nearest, np.int64), scale=s, rotation=rot,
                   expr_ids=ids)

    def deform(self, base: np.ndarray, alpha, beta) -> np.ndarray:
        """``base`` [468,3] + the transferred ICT delta for (alpha, beta)."""
        delta = self.ict.shape(alpha, beta) - np.asarray(self.ict.mean_shape, np.float64)
        return np.asarray(base, np.float64) + self.scale * delta[self.nearest] @ self.rotation.T

    def sample(self, rng: np.random.Generator, base: np.ndarray, shape_scale: float = 1.0,
               max_weight: float = 0.6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(vertices [468,3], alpha [Ks], beta [Ke]) of a random ICT identity + expression."""
        alpha = rng.normal(0.0, shape_scale, self.ict.num_shape)
        beta = np.zeros(self.ict.num_expr)
        k = int(rng.integers(0, 4))
        if k and len(self.expr_ids):
            pick = rng.choice(self.expr_ids, size=min(k, len(self.expr_ids)), replace=False)
            beta[pick] = rng.uniform(0.0, max_weight, len(pick))
        return self.deform(base, alpha, beta), alpha, beta
