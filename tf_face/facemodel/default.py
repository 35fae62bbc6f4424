"""The default face model: MediaPipe FaceMesh topology, 468 vertices.

Everything here is computed by this project (``build_default``) and stored in
the small asset ``data/default_model.npz`` (arrays only):

* ``mean_shape`` [468,3]: the symmetric, pose-normalised mean of the 468
  MediaPipe landmarks of frontal, closed-mouth faces, model frame (+x subject's
  left, +y up, +z out of the face), unit RMS radius.
* ``triangles`` [898,3]: Delaunay in UV restricted to the face oval, eyes and
  mouth filled (a topological disk: Euler characteristic 1, one boundary loop
  = the 36-vertex face oval), CCW seen from +z.
* ``uv`` [468,2]: profile-arc-length cylindrical layout, v down, symmetric
  (u <-> 1 - u under ``mirror``), in [0.02, 0.98].
* ``mirror`` [468]: left/right partner of each vertex (midline -> itself).
* ``landmarks68`` [68]: the 468 -> 68 correspondence in iBUG order.
* ``region_*``: vertex loops (lips, brows, eyes) for the albedo prior.

The model has no shape or expression basis: the landmark detector observes
every vertex, so fitting is a similarity and the observed shape
(``observed_shape=True``). Its albedo prior (``albedo_space="uv"``) is the
hand-built, low-frequency prior of ``albedo_prior`` — a prior, not a
scan-derived model.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from tf_face.errors import FaceModelError
from tf_face.facemodel.albedo_prior import (DEFAULT_NUM_COMPONENTS, TONE_AXES, build_albedo_prior,
                                           prior_layout)
from tf_face.facemodel.base import FaceModel
from tf_face.facemodel.safe_io import read_npz

ASSET = Path(__file__).resolve().parent / "data" / "default_model.npz"
DEFAULT_ALBEDO_SIZE = 256


@functools.lru_cache(maxsize=1)
def _asset() -> dict:
    if not ASSET.is_file():
        raise FaceModelError(f"default model asset missing: {ASSET}; rebuild it with "
                             "python -m tf_face.facemodel.build.build_default")
    return read_npz(ASSET, "default model")


def region_loops() -> dict[str, list[np.ndarray]]:
    """Region name -> list of closed vertex-id loops (lips, brows, eyes)."""
    d = _asset()
    out: dict[str, list[np.ndarray]] = {}
    for k in sorted(d):
        if k.startswith("region_"):
            name = k[len("region_"):].rsplit("_", 1)[0]
            out.setdefault(name, []).append(d[k].astype(np.int64))
    return out


@functools.lru_cache(maxsize=4)
def default_albedo_prior(size: int = DEFAULT_ALBEDO_SIZE,
                         num_components: int = DEFAULT_NUM_COMPONENTS):
    """(mean [size,size,3], basis [size,size,3,K], std [K], support [size,size]).

    ``basis[..., k] / std[k]`` are orthonormal in ``<A,B> = sum over support
    texels and RGB of A*B / |support|``; see ``albedo_prior``. Cached.
    """
    d = _asset()
    return build_albedo_prior(d["uv"], d["triangles"], region_loops(), size=int(size),
                              num_components=int(num_components))


@functools.lru_cache(maxsize=4)
def default_tone_columns(num_components: int = DEFAULT_NUM_COMPONENTS,
                         size: int = DEFAULT_ALBEDO_SIZE) -> tuple[int, ...]:
    """Indices of the skin-tone columns (``tone0..2``) among the first
    ``num_components`` of the default albedo prior built at ``size``
    (``prior_layout``)."""
    d = _asset()
    names = prior_layout(d["uv"], d["triangles"], region_loops(), int(size),
                         int(num_components))
    return tuple(i for i, n in enumerate(names) if n in TONE_AXES)


def load_default_geometry() -> FaceModel:
    """The default model without the albedo prior (cheap)."""
    d = _asset()
    return FaceModel(
        name="default", mean_shape=d["mean_shape"].astype(np.float32),
        triangles=d["triangles"].astype(np.int32), uv=d["uv"].astype(np.float32),
        landmarks68=d["landmarks68"].astype(np.int32), mirror=d["mirror"].astype(np.int32),
        observed_shape=True, units=str(d["units"])).validate()


class _LazyAlbedo:
    """Data descriptor: the UV albedo prior is built on first access (~1 s).

    ``default_model()`` is called by code that needs only the geometry (the
    468 -> 68 map, the mesh); building the 256^2 x 100 basis (78 MB) there
    would cost time and memory for nothing.
    """

    def __set_name__(self, owner, name):
        self.slot = "_" + name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return None
        if obj.__dict__.get("_albedo_pending"):
            obj.__dict__["_albedo_pending"] = False
            mean, basis, std, _ = default_albedo_prior()
            obj.__dict__.update(_albedo_mean=mean, _albedo_basis=basis, _albedo_std=std,
                                _albedo_tone_columns=default_tone_columns())
        return obj.__dict__.get(self.slot)

    def __set__(self, obj, value):
        obj.__dict__[self.slot] = value


class DefaultFaceModel(FaceModel):
    """``FaceModel`` whose UV albedo prior is computed lazily (same fields)."""

    albedo_mean = _LazyAlbedo()
    albedo_basis = _LazyAlbedo()
    albedo_std = _LazyAlbedo()
    albedo_tone_columns = _LazyAlbedo()


@functools.lru_cache(maxsize=1)
def default_model() -> FaceModel:
    """The default model with its UV albedo prior (256^2, K = 100). Cached.

    Geometry is ready at once; ``albedo_mean`` / ``albedo_basis`` /
    ``albedo_std`` are built on first access (``default_albedo_prior``), and
    with them ``albedo_tone_columns`` (``tone0..2``, ``default_tone_columns``).
    """
    g = load_default_geometry()
    m = DefaultFaceModel(**{f.name: getattr(g, f.name) for f in dataclasses.fields(FaceModel)})
    m.albedo_space = "uv"
    m.__dict__["_albedo_pending"] = True
    return m
