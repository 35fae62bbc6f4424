"""Small synthetic UV-sample shards with known albedo and lighting.

Not the photo-like synthetic-face generator (``tf_face.synthetic``): these are
UV maps made directly from a face model's albedo prior, its mean-shape normals
and random SH lighting (shaded with the same maths as training), for fast
tests of the training jobs and the checkpoint / resume / multi-worker logic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_face.data import encode_example, extras_spec, write_shard
from tf_face.facemodel import load_face_model
from tf_face.facemodel.mesh import vertex_normals
from tf_face.render import sh_shade
from tf_face.srgb import linear_to_srgb_tf
from tf_face.types import UVSample
from tf_face.uv import get_atlas
from tf_face.uv.albedo_model import albedo_from_coeffs, uv_albedo_model


def make_toy_shards(out_dir, model_spec: str = "default", num_samples: int = 8,
                    num_shards: int = 2, seed: int = 0, num_albedo: int | None = 8,
                    uv_size: int = 256) -> dict:
    """Write ``num_shards`` shards of UV samples; returns the ground truth."""
    rng = np.random.default_rng(seed)
    model = load_face_model(model_spec)
    atlas = get_atlas(model, size=uv_size)
    albedo_model = uv_albedo_model(model, atlas, num_albedo)
    verts = model.mean_shape.astype(np.float64)
    normals_v = vertex_normals(verts, model.triangles)          # model frame == camera frame
    normal_map = atlas.interpolate(normals_v.astype(np.float32))
    normal_map /= np.maximum(np.linalg.norm(normal_map, axis=-1, keepdims=True), 1e-8)
    normal_map = np.where(atlas.mask[..., None], normal_map, 0.0).astype(np.float32)
    position = atlas.interpolate((verts * 100.0).astype(np.float32))   # "pixels"
    k = albedo_model.num_components
    p_a = rng.normal(0.0, 0.7, size=(num_samples, k)).astype(np.float32)
    sh = np.zeros((num_samples, 9, 3), np.float32)
    sh[:, 0, :] = rng.uniform(0.7, 1.0, size=(num_samples, 1))
    sh[:, 1:4, :] = rng.normal(0.0, 0.25, size=(num_samples, 3, 1))
    albedo = albedo_from_coeffs(tf.constant(albedo_model.mean), tf.constant(albedo_model.basis),
                                tf.constant(p_a))
    normals_b = tf.constant(np.repeat(normal_map[None], num_samples, 0))
    shaded = sh_shade(albedo, normals_b, tf.constant(sh)).numpy()
    texture = linear_to_srgb_tf(tf.constant(shaded)).numpy()
    mask = atlas.mask.copy()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fit = {"model": model_spec, "scale": 100.0, "rotation": np.eye(3).tolist(), "translation": [0.0, 0.0],
           "landmark_rmse_iod": 0.0, "image_size": [512, 512]}
    per = int(np.ceil(num_samples / num_shards))
    for s in range(num_shards):
        examples = []
        for i in range(s * per, min(num_samples, (s + 1) * per)):
            sample = UVSample(texture[i].astype(np.float32), mask, normal_map, position)
            examples.append(encode_example(sample, fit, f"toy_{i:04d}",
                                           {"gt_sh": sh[i], "gt_p_a": p_a[i]}))
        write_shard(examples, out / f"toy-{s:05d}-of-{num_shards:05d}.tfrecord",
                    uv_size=atlas.size,
                    extras=extras_spec({"gt_sh": sh[0], "gt_p_a": p_a[0]}))
    return {"p_a": p_a, "sh": sh, "texture": texture}
