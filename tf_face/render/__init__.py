"""Training ops of tf_face: SH shading and mesh-Laplacian smoothness.

One API over two backends: the custom C++/CUDA ops (``ops/``, built by
``make ops``) and their pure-TF reference (``tf_face.render.reference``, the
specification). See ``tf_face.render.ops`` for backend selection.
"""

from tf_face.render._library import OpsUnavailableError
from tf_face.render.adjacency import (Adjacency, GridAdjacency, grid_adjacency,
                                      grid_triangles, mesh_adjacency)
from tf_face.render.ops import BACKENDS, mesh_laplacian_smoothness, ops_available, sh_shade
from tf_face.render.sh import (LAMBERT_BAND, SH_K, SH_NUM_COEFFS, ambient_sh,
                               normalize_normals, sh_basis)

__all__ = [
    "Adjacency", "BACKENDS", "GridAdjacency", "LAMBERT_BAND", "OpsUnavailableError",
    "SH_K", "SH_NUM_COEFFS", "ambient_sh", "grid_adjacency", "grid_triangles",
    "mesh_adjacency", "mesh_laplacian_smoothness", "normalize_normals",
    "ops_available", "sh_basis", "sh_shade",
]
