"""UV space: the per-model UV atlas (texel -> triangle + barycentrics) and the
unwrap of a photo into UV (texture, visibility mask, normal and position maps).
"""

from tf_face.uv.atlas import UVAtlas, build_atlas, get_atlas
from tf_face.uv.unwrap import unwrap

__all__ = ["UVAtlas", "build_atlas", "get_atlas", "unwrap"]
