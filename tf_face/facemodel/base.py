"""``FaceModel``: a face model is data, not code.

All loaders (default MediaPipe-topology model, BFM 2009 / 2017, Deep3DFaceRecon,
ICT-FaceKit) return this one dataclass. Frames and UV conventions are in
``tf_face.types``.

Bases are stored as ``[V, 3, K]`` arrays **already scaled by their standard
deviations**, so coefficients are unit-variance (``alpha ~ N(0, I)``), which is
what the regularisers ``w_s ||alpha||^2`` of Eq. 1 and ``||p_a||^2`` of Eq. 4
assume. Expression bases that are blendshapes (ICT) are stored as they are
(weights in [0, 1]).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Optional

import numpy as np

from tf_face.errors import FaceModelError


@dataclasses.dataclass
class FaceModel:
    name: str
    mean_shape: np.ndarray                      # [V, 3] float32, model frame
    triangles: np.ndarray                       # [T, 3] int32, CCW from outside
    uv: np.ndarray                              # [V, 2] float32 in [0,1], v down
    landmarks68: Optional[np.ndarray] = None    # [68] int32 vertex ids, iBUG order
    shape_basis: Optional[np.ndarray] = None    # [V, 3, Ks] float32 (std-scaled)
    expr_basis: Optional[np.ndarray] = None     # [V, 3, Ke] float32
    # Albedo prior R_a = m_a + U_a p_a, linear RGB in [0, 1]; either per vertex
    # (albedo_space == "vertex": mean [V,3], basis [V,3,Ka]) or per texel
    # (albedo_space == "uv": mean [H,W,3], basis [H,W,3,Ka]).
    albedo_mean: Optional[np.ndarray] = None
    albedo_basis: Optional[np.ndarray] = None
    albedo_space: str = "vertex"
    # Optional [Ka] standard deviations the albedo basis columns were scaled by
    # (basis / std is orthonormal in the prior's inner product).
    albedo_std: Optional[np.ndarray] = None
    # Indices of the albedo basis columns that hold the skin tone (one number
    # per face that every texel measures alike; the light/albedo fit keeps the
    # paper's w_a on them and weighs the others more, ``tf_face.appearance.
    # light_albedo.prior_weights``). Empty: the basis names none (a scan PCA
    # such as the BFM's mixes tone and space), and every column keeps w_a.
    albedo_tone_columns: tuple = ()
    # Sliding jaw contour: landmark slot (0..16) -> candidate vertex ids ordered
    # from the front of the face outwards (ear side); empty dict = no sliding.
    contour_candidates: dict = dataclasses.field(default_factory=dict)
    mirror: Optional[np.ndarray] = None         # [V] int32 left/right mirror map
    # True when the landmark detector observes every vertex (default model:
    # the 468 MediaPipe points are the mesh), so the fit is a similarity only.
    observed_shape: bool = False
    units: str = ""
    # Names of the expression components (ICT blendshapes); may be empty.
    expr_names: list = dataclasses.field(default_factory=list)

    @property
    def num_vertices(self) -> int:
        return int(self.mean_shape.shape[0])

    @property
    def num_shape(self) -> int:
        return 0 if self.shape_basis is None else int(self.shape_basis.shape[-1])

    @property
    def num_expr(self) -> int:
        return 0 if self.expr_basis is None else int(self.expr_basis.shape[-1])

    @property
    def num_albedo(self) -> int:
        return 0 if self.albedo_basis is None else int(self.albedo_basis.shape[-1])

    def shape(self, alpha=None, beta=None) -> np.ndarray:
        """Vertices [V, 3] for shape coefficients alpha and expression beta."""
        out = self.mean_shape.astype(np.float64).copy()
        if alpha is not None and len(alpha) and self.shape_basis is not None:
            out += self.shape_basis @ np.asarray(alpha, np.float64)
        if beta is not None and len(beta) and self.expr_basis is not None:
            out += self.expr_basis @ np.asarray(beta, np.float64)
        return out

    def key(self) -> str:
        """Stable hash of the topology + UV layout (keys the UV-atlas cache)."""
        h = hashlib.sha256()
        for arr in (self.triangles.astype(np.int32), self.uv.astype(np.float32)):
            h.update(np.ascontiguousarray(arr).tobytes())
        return f"{self.name}-{h.hexdigest()[:16]}"

    def validate(self) -> "FaceModel":
        """Check shapes and index ranges; raise FaceModelError with the reason."""
        v = self.mean_shape
        if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 3:
            raise FaceModelError(f"{self.name}: mean shape must be [V,3], got {v.shape}")
        n = v.shape[0]
        t = self.triangles
        if t.ndim != 2 or t.shape[1] != 3 or t.shape[0] == 0:
            raise FaceModelError(f"{self.name}: triangles must be [T,3], got {t.shape}")
        if t.min() < 0 or t.max() >= n:
            raise FaceModelError(f"{self.name}: triangle ids outside [0, {n})")
        if self.uv.shape != (n, 2):
            raise FaceModelError(f"{self.name}: uv must be [{n},2], got {self.uv.shape}")
        for nm in ("shape_basis", "expr_basis"):
            b = getattr(self, nm)
            if b is not None and (b.ndim != 3 or b.shape[:2] != (n, 3)):
                raise FaceModelError(f"{self.name}: {nm} must be [{n},3,K], got {b.shape}")
        if self.landmarks68 is not None:
            lm = self.landmarks68
            if lm.shape != (68,) or lm.min() < 0 or lm.max() >= n:
                raise FaceModelError(f"{self.name}: landmarks68 must be 68 ids in [0,{n})")
        if self.albedo_basis is not None:
            if self.albedo_space == "vertex":
                ok = (self.albedo_mean.shape == (n, 3) and self.albedo_basis.ndim == 3
                      and self.albedo_basis.shape[:2] == (n, 3))
            elif self.albedo_space == "uv":
                ok = (self.albedo_mean.ndim == 3 and self.albedo_basis.ndim == 4
                      and self.albedo_basis.shape[:3] == self.albedo_mean.shape)
            else:
                ok = False
            if not ok:
                raise FaceModelError(f"{self.name}: albedo mean/basis shapes do not match")
        tone = np.asarray(self.albedo_tone_columns, np.int64).reshape(-1)
        if tone.size:
            if self.albedo_basis is None:
                raise FaceModelError(f"{self.name}: albedo_tone_columns without an albedo basis")
            if (tone.min() < 0 or tone.max() >= self.num_albedo
                    or np.unique(tone).size != tone.size):
                raise FaceModelError(f"{self.name}: albedo_tone_columns must be distinct ids in "
                                     f"[0, {self.num_albedo}), got {tuple(tone.tolist())}")
        return self
