"""The linear albedo model R_a = m_a + U_a p_a in UV space (Eq. 2), as tensors.

Per-vertex albedo models (BFM, Deep3D) reach UV through the model's UV atlas
(one interpolation per component, done once); UV-space priors (the default
model) are used as they are, resized if the UV size differs.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import tensorflow as tf

from tf_face.errors import FaceModelError


@dataclasses.dataclass
class UVAlbedoModel:
    mean: np.ndarray    # [H, W, 3] float32, linear RGB
    basis: np.ndarray   # [H, W, 3, K] float32, std-scaled (unit-variance coefficients)
    # the basis's skin-tone columns (``FaceModel.albedo_tone_columns``); () : none named
    tone_columns: tuple = ()

    @property
    def num_components(self) -> int:
        return int(self.basis.shape[-1])

    def albedo_np(self, p_a) -> np.ndarray:
        """Numpy R_a [B, H, W, 3] float32 = mean + basis @ p_a (p_a [B, K]).

        Only the texels the model covers (mean or a component nonzero; the
        rest are 0 by construction) are computed, from a ``[K, N]`` copy of
        their basis rows built on first use (N x K x 4 bytes, ~56 MB for the
        default 256² model): the product is memory bound, and this reads 0.7x
        the bytes, contiguously -- 2x faster than ``basis.reshape(-1, K) @ p``.
        """
        rows, basis_t, mean = self._texel_basis()
        p = np.asarray(p_a, np.float32).reshape(-1, self.num_components)
        out = np.zeros((p.shape[0], self.mean.size), np.float32)
        out[:, rows] = mean + p @ basis_t
        return out.reshape((-1,) + self.mean.shape)

    def _texel_basis(self):
        cached = self.__dict__.get("_texel_basis_cache")
        if cached is None:
            k = self.num_components
            flat = self.basis.reshape(-1, k)
            rows = np.flatnonzero(np.any(flat != 0, axis=1) | (self.mean.reshape(-1) != 0))
            cached = (rows, np.ascontiguousarray(flat[rows].T, np.float32),
                      self.mean.reshape(-1)[rows].astype(np.float32))
            self.__dict__["_texel_basis_cache"] = cached
        return cached

    def tensors(self):
        return (tf.constant(self.mean, tf.float32), tf.constant(self.basis, tf.float32))


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] == size and img.shape[1] == size:
        return img.astype(np.float32)
    flat = img.reshape(img.shape[0], img.shape[1], -1).astype(np.float32)
    chunks = [cv2.resize(np.ascontiguousarray(flat[..., i:i + 4]), (size, size), interpolation=cv2.INTER_LINEAR)
              for i in range(0, flat.shape[-1], 4)]
    out = np.concatenate([c.reshape(size, size, -1) for c in chunks], axis=-1)
    return out.reshape((size, size) + img.shape[2:])


def uv_albedo_model(model, atlas, num_components: int | None = None) -> UVAlbedoModel:
    """The albedo model of ``model`` in the UV space of ``atlas``."""
    if model.albedo_basis is None or model.albedo_mean is None:
        raise FaceModelError(
            f"face model {model.name!r} has no albedo model; B-Net needs one "
            "(use --model=default, bfm2009:, bfm2017: or deep3d:)")
    size = atlas.size
    if model.albedo_space == "uv":
        mean = _resize(np.asarray(model.albedo_mean), size)
        basis = _resize(np.asarray(model.albedo_basis), size)
    else:
        v = model.num_vertices
        k = model.albedo_basis.shape[-1]
        mean = atlas.interpolate(np.asarray(model.albedo_mean, np.float32))
        basis = atlas.interpolate(np.asarray(model.albedo_basis, np.float32).reshape(v, 3 * k))
        basis = basis.reshape(size, size, 3, k)
    if num_components is not None:
        basis = basis[..., :num_components]
    mask = atlas.mask[..., None]
    mean = np.where(mask, mean, 0.0).astype(np.float32)
    basis = np.where(mask[..., None], basis, 0.0).astype(np.float32)
    k = basis.shape[-1]
    tone = tuple(int(c) for c in model.albedo_tone_columns if int(c) < k)
    return UVAlbedoModel(mean, basis, tone)


def albedo_from_coeffs(mean, basis, p_a):
    """R_a [B, H, W, 3] = mean + basis @ p_a (p_a [B, K])."""
    return mean[None] + tf.einsum("hwck,bk->bhwc", basis, p_a)
