"""UV atlas: the fixed map from texels to mesh triangles.

For a face model the texel -> (triangle, barycentrics) map depends only on the
topology and the UV layout, so it is computed once per model and size and
cached (in memory and on disk).  Every per-vertex quantity then reaches UV
space with one gather and a weighted sum (``UVAtlas.interpolate``).

Conventions (see ``tf_face.types``):

* ``uv`` in [0, 1]^2, u right, v **down**; texel ``(i, j)`` of a ``size x size``
  atlas has its centre at ``u = (j + 0.5) / size, v = (i + 0.5) / size``.
* The UV triangles are rasterised with ``tf_face.raster.zbuffer.rasterize``
  (all at depth 0) in texel coordinates ``(u * size - 0.5, v * size - 0.5)``,
  whose integer points are the texel centres.  A texel belongs to the mesh when
  its centre lies inside or on the boundary of a UV triangle.  Texels on an
  edge shared by two triangles (and texels of overlapping UV triangles) map to
  exactly one triangle, the one with the lowest id.
* No dilation: the mask is exactly the set of texels whose centre is covered,
  so every mask texel has a genuine surface point (barycentrics >= -1e-7, sum
  1).  Padding a texture beyond the mask border, e.g. to avoid dark seams when
  a renderer samples it bilinearly, is an export-time step on the texture, not
  part of the atlas.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from pathlib import Path

import numpy as np

from tf_face.assets import cache_dir
from tf_face.outputs import atomic_write_file
from tf_face.raster.zbuffer import rasterize

ATLAS_FORMAT_VERSION = 1


@dataclasses.dataclass
class UVAtlas:
    """Per-texel triangle id and barycentrics of a mesh's UV layout."""
    size: int
    tri_id: np.ndarray      # [H, W] int32, -1 outside the mesh
    bary: np.ndarray        # [H, W, 3] float32, 0 outside
    mask: np.ndarray        # [H, W] bool, tri_id >= 0
    triangles: np.ndarray   # [T, 3] int32
    num_vertices: int
    # Derived, for fast interpolation: flat texel ids of the mask [M] (row
    # major), their triangles' vertex ids [M, 3] and weights [M, 3].
    texel_index: np.ndarray = dataclasses.field(init=False, repr=False)
    vertex_ids: np.ndarray = dataclasses.field(init=False, repr=False)
    weights: np.ndarray = dataclasses.field(init=False, repr=False)

    def __post_init__(self):
        self.tri_id = np.asarray(self.tri_id, np.int32)
        self.bary = np.asarray(self.bary, np.float32)
        self.mask = np.asarray(self.mask, bool)
        self.triangles = np.asarray(self.triangles, np.int32)
        self.texel_index = np.flatnonzero(self.mask)
        tid = self.tri_id.reshape(-1)[self.texel_index]
        self.vertex_ids = self.triangles[tid]
        self.weights = self.bary.reshape(-1, 3)[self.texel_index]

    @property
    def shape(self) -> tuple[int, int]:
        return self.tri_id.shape

    def _matrix(self, dtype):
        """Sparse [M, V] interpolation matrix (3 weights per row), built once per dtype."""
        key = f"_sparse_{np.dtype(dtype).name}"
        mat = self.__dict__.get(key)
        if mat is None:
            # lazy: scipy.sparse costs ~80 ms; uv is on every CLI's start-up path
            import scipy.sparse
            m = self.texel_index.size
            mat = scipy.sparse.csr_matrix(
                (self.weights.reshape(-1).astype(dtype), self.vertex_ids.reshape(-1),
                 np.arange(0, 3 * m + 1, 3)), shape=(m, self.num_vertices))
            self.__dict__[key] = mat
        return mat

    def interpolate_texels(self, vertex_values) -> np.ndarray:
        """Interpolate per-vertex values at the mask texels only: [M, ...].

        float64 input is interpolated in float64, anything else in float32.
        """
        vals = np.asarray(vertex_values)
        if vals.shape[0] != self.num_vertices:
            raise ValueError(f"expected {self.num_vertices} vertex values, got {vals.shape[0]}")
        dtype = np.float64 if vals.dtype == np.float64 else np.float32
        flat = vals.reshape(vals.shape[0], -1).astype(dtype, copy=False)
        out = self._matrix(dtype) @ flat
        return np.asarray(out, dtype).reshape((-1,) + vals.shape[1:])

    def interpolate(self, vertex_values) -> np.ndarray:
        """Barycentric interpolation of per-vertex values into UV space.

        ``[V]`` -> ``[H, W]``, ``[V, C]`` -> ``[H, W, C]`` (any trailing
        shape is kept); zeros outside the mask.  The result is float64 for
        float64 input, float32 otherwise.
        """
        return self.to_grid(self.interpolate_texels(vertex_values))

    def to_grid(self, texel_values, rows=None) -> np.ndarray:
        """Scatter values of the mask texels [M, ...] into a [H, W, ...] grid (0 elsewhere).

        With ``rows`` (indices into the M mask texels), ``texel_values`` holds
        only those texels.
        """
        vals = np.asarray(texel_values)
        h, w = self.shape
        tex = self.texel_index if rows is None else self.texel_index[rows]
        if vals.shape[0] != tex.size:
            raise ValueError(f"expected {tex.size} texel values, got {vals.shape[0]}")
        inner = vals.shape[1:]
        c = int(np.prod(inner, dtype=np.int64))
        out = np.zeros(h * w * c, vals.dtype)
        # A flat 1-D scatter is several times faster than assigning rows; the
        # flat index of the whole mask is built once per channel count (8x
        # faster again: the unwrap scatters three maps per photo).
        if rows is None:
            flat = self._flat_index(c)
        else:
            flat = (tex[:, None] * c + np.arange(c)).reshape(-1)
        out[flat] = vals.reshape(-1)
        return out.reshape((h, w) + inner)

    def _flat_index(self, channels: int) -> np.ndarray:
        """Flat indices [M * channels] of the mask texels' channels, cached per count."""
        key = f"_flat_index_{channels}"
        idx = self.__dict__.get(key)
        if idx is None:
            idx = (self.texel_index[:, None] * channels + np.arange(channels)).reshape(-1)
            self.__dict__[key] = idx
        return idx


def build_atlas(uv, triangles, size: int = 256) -> UVAtlas:
    """Rasterise a UV layout (``uv`` [V, 2] in [0,1], v down) into a ``size``² atlas."""
    size = int(size)
    if size < 1:
        raise ValueError(f"atlas size must be positive, got {size}")
    uv = np.asarray(uv, np.float64)
    tris = np.asarray(triangles, np.int32)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"uv must be [V,2], got {uv.shape}")
    pts = np.zeros((uv.shape[0], 3))
    pts[:, :2] = uv * size - 0.5
    tri_id, bary, _ = rasterize(pts, tris, size, size)
    return UVAtlas(size=size, tri_id=tri_id, bary=bary, mask=tri_id >= 0,
                   triangles=tris, num_vertices=int(uv.shape[0]))


# ---------------------------------------------------------------- caching
_MEMORY: dict[tuple[str, int], UVAtlas] = {}
_LOCK = threading.Lock()


def _cache_file(key: str, size: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:120]
    return cache_dir() / "atlas" / f"{safe}-{int(size)}.npz"


def save_atlas(atlas: UVAtlas, path: Path) -> None:
    """Write an atlas as .npz atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write_file(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, version=np.int32(ATLAS_FORMAT_VERSION), size=np.int32(atlas.size),
                 num_vertices=np.int64(atlas.num_vertices), tri_id=atlas.tri_id,
                 bary=atlas.bary, triangles=atlas.triangles)


def load_atlas(path: Path) -> UVAtlas:
    """Read an atlas written by ``save_atlas`` (no pickle); ValueError if malformed."""
    with np.load(Path(path), allow_pickle=False) as d:
        if int(d["version"]) != ATLAS_FORMAT_VERSION:
            raise ValueError("atlas format version mismatch")
        size = int(d["size"])
        tri_id, bary, tris = d["tri_id"], d["bary"], d["triangles"]
        nv = int(d["num_vertices"])
    if (tri_id.shape != (size, size) or bary.shape != (size, size, 3)
            or tris.ndim != 2 or tris.shape[1] != 3 or tri_id.max(initial=-1) >= len(tris)):
        raise ValueError("atlas arrays have inconsistent shapes")
    return UVAtlas(size=size, tri_id=tri_id, bary=bary, mask=tri_id >= 0,
                   triangles=tris, num_vertices=nv)


def get_atlas(model, size: int = 256) -> UVAtlas:
    """The atlas of a ``FaceModel`` (cached in memory and on disk).

    Disk cache: ``tf_face.assets.cache_dir()/atlas/<model.key()>-<size>.npz``;
    a missing, unreadable or mismatching file is rebuilt and rewritten.
    """
    key = model.key()
    mem_key = (key, int(size))
    with _LOCK:
        hit = _MEMORY.get(mem_key)
    if hit is not None:
        return hit
    tris = np.asarray(model.triangles, np.int32)
    path = _cache_file(key, size)
    atlas = None
    if path.is_file():
        try:
            atlas = load_atlas(path)
            if (atlas.size != int(size) or atlas.num_vertices != model.num_vertices
                    or not np.array_equal(atlas.triangles, tris)):
                atlas = None
        except Exception:  # corrupt / truncated / foreign file: rebuild
            atlas = None
    if atlas is None:
        atlas = build_atlas(model.uv, tris, size)
        try:
            save_atlas(atlas, path)
        except OSError:
            pass  # read-only cache: keep the in-memory copy
    with _LOCK:
        _MEMORY[mem_key] = atlas
    return atlas


def clear_memory_cache() -> None:
    with _LOCK:
        _MEMORY.clear()
