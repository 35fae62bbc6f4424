"""Random face shapes for the default model (which has no shape basis).

The default model is a single mean shape (``tf_face.facemodel.default``), so
shape variation is made here as a sum of smooth deformations of the mean, in
the model frame (+x subject's left, +y up, +z out of the face; unit RMS
radius):

* a global anisotropic scale (width, height, depth; +-6 % at strength 1);
* ``num_bumps`` Gaussian radial-basis bumps ``d_k exp(-|X - c_k|^2 / 2 r_k^2)``
  centred on random vertices, radius 0.25-0.7 units, displacement mostly along
  the vertex normal (amplitude ~0.05 units, about 3 mm on a real face), each
  **mirrored** (centre at the mirror vertex, x component negated) so the face
  stays symmetric;
* ``num_asym`` smaller unmirrored bumps (asymmetry, ~1/3 of the amplitude).

Everything is low-frequency (radii >> triangle size), so the MediaPipe
landmark model can observe the result and the default model's fit
(a similarity onto the observed 468 points) reproduces it.

The mesh is always the default model's (468 vertices): the ground truth must
live in its UV space, which is what the real pipeline unwraps into. With the
ICT model present, ``ict_shapes`` replaces these bumps by ICT identities and
expressions transferred onto the default mesh (``sample_face(..., ict=...)``).
"""

from __future__ import annotations

import numpy as np

from tf_face.facemodel.mesh import vertex_normals


def random_shape(rng: np.random.Generator, model, strength: float = 1.0,
                 num_bumps: int = 6, num_asym: int = 3) -> np.ndarray:
    """A random smooth deformation of ``model.mean_shape``: [V, 3] float64."""
    base = np.asarray(model.mean_shape, np.float64)
    normals = vertex_normals(base, model.triangles)
    mirror = (np.asarray(model.mirror, np.int64) if model.mirror is not None
              else np.arange(len(base)))
    scale = 1.0 + strength * rng.uniform(-0.06, 0.06, size=3)
    out = base * scale
    flip = np.array([-1.0, 1.0, 1.0])

    def bump(centre_id: int, radius: float, vec: np.ndarray, mirrored: bool) -> np.ndarray:
        c = base[centre_id]
        w = np.exp(-((base - c) ** 2).sum(1) / (2 * radius ** 2))
        d = w[:, None] * vec[None, :]
        if mirrored:
            cm = base[mirror[centre_id]]
            wm = np.exp(-((base - cm) ** 2).sum(1) / (2 * radius ** 2))
            if mirror[centre_id] == centre_id:   # midline: already symmetric when x = 0
                vec = vec * np.array([0.0, 1.0, 1.0])
                return w[:, None] * vec[None, :]
            d = d + wm[:, None] * (vec * flip)[None, :]
        return d

    for k in range(num_bumps + num_asym):
        asym = k >= num_bumps
        cid = int(rng.integers(len(base)))
        radius = rng.uniform(0.25, 0.7)
        amp = strength * rng.normal(0.0, 0.05) * (0.35 if asym else 1.0)
        tangential = rng.normal(0.0, 0.3, size=3)
        vec = amp * (normals[cid] + tangential)
        out += bump(cid, radius, vec, mirrored=not asym)
    return out
