"""Second-order real spherical harmonics with Lambertian convolution: the
constants and the numpy basis (no TensorFlow; the TF twin is
``tf_face.render.sh.sh_basis``, the C++/CUDA one ``ops/kernels/sh_math.h``).

Convention (shared with the C++/CUDA kernels, ``ops/kernels/sh_math.h``):
normals are in the tf_face camera frame (x right, y up, z towards the camera)
and are normalised before evaluating the basis. The nine basis functions,
ordered l = 0; l = 1 (m = -1, 0, 1); l = 2 (m = -2 .. 2), already multiplied by
the Lambertian kernel's band factors A_0 = pi, A_1 = 2 pi / 3, A_2 = pi / 4
(Ramamoorthi & Hanrahan 2001), are::

    H0 = pi    * 1/(2 sqrt(pi))                        = 0.886227
    H1 = 2pi/3 * sqrt(3)/(2 sqrt(pi))  * y             = 1.023327 y
    H2 = 2pi/3 * sqrt(3)/(2 sqrt(pi))  * z             = 1.023327 z
    H3 = 2pi/3 * sqrt(3)/(2 sqrt(pi))  * x             = 1.023327 x
    H4 = pi/4  * sqrt(15)/(2 sqrt(pi)) * x y           = 0.858086 xy
    H5 = pi/4  * sqrt(15)/(2 sqrt(pi)) * y z           = 0.858086 yz
    H6 = pi/4  * sqrt(5)/(4 sqrt(pi))  * (3 z^2 - 1)   = 0.247708 (3z^2 - 1)
    H7 = pi/4  * sqrt(15)/(2 sqrt(pi)) * x z           = 0.858086 xz
    H8 = pi/4  * sqrt(15)/(4 sqrt(pi)) * (x^2 - y^2)   = 0.429043 (x^2 - y^2)

Shading is ``I_c = albedo_c * sum_i sh[i, c] * H_i(n_hat)`` (``sh`` is
``[B, 9, 3]``: 9 coefficients per RGB channel). With ``sh[0] = 1/H0`` and the
rest zero the shading is the albedo itself (ambient light of irradiance 1).
A zero normal has ``n_hat = 0`` and zero gradient.

``tests/test_image_renderer.py`` and ``tests/test_ops_shade.py`` tie the numpy,
TF and C++ bases together.
"""

from __future__ import annotations

import math

import numpy as np

SH_NUM_COEFFS = 9

#: Band factors of the clamped-cosine (Lambertian) kernel.
LAMBERT_BAND = (math.pi, 2.0 * math.pi / 3.0, math.pi / 4.0)

#: Real SH normalisation constants c_lm (before the Lambertian factor).
SH_C0 = 0.5 * math.sqrt(1.0 / math.pi)
SH_C1 = math.sqrt(3.0 / (4.0 * math.pi))
SH_C2 = 0.5 * math.sqrt(15.0 / math.pi)
SH_C3 = 0.25 * math.sqrt(5.0 / math.pi)
SH_C4 = 0.25 * math.sqrt(15.0 / math.pi)

#: The five distinct products A_l * c_lm used by the basis.
SH_K = (
    LAMBERT_BAND[0] * SH_C0,
    LAMBERT_BAND[1] * SH_C1,
    LAMBERT_BAND[2] * SH_C2,
    LAMBERT_BAND[2] * SH_C3,
    LAMBERT_BAND[2] * SH_C4,
)

#: mean of the SH basis over camera-facing unit normals uniform in the image
#: disc (E[z] = 2/3, E[z^2] = 1/2, odd and mixed moments 0): ``FRONT_MEAN_BASIS
#: @ gamma`` [3] is a light's mean irradiance on a face seen from the front,
#: per channel -- its overall brightness (the exposure)
FRONT_MEAN_BASIS = np.array([SH_K[0], 0.0, SH_K[1] * 2.0 / 3.0, 0.0, 0.0, 0.0,
                             SH_K[3] * (3 * 0.5 - 1.0), 0.0, 0.0])


def sh_basis_np(normals) -> np.ndarray:
    """Lambertian-convolved SH basis in float64 numpy: ``[..., 3] -> [..., 9]``.

    Normals are normalised first (a zero normal stays zero).
    """
    n = np.asarray(normals, np.float64)
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(length > 0, n / np.maximum(length, 1e-300), 0.0)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    k0, k1, k2, k3, k4 = SH_K
    return np.stack([k0 * np.ones_like(x), k1 * y, k1 * z, k1 * x, k2 * x * y, k2 * y * z,
                     k3 * (3.0 * z * z - 1.0), k2 * x * z, k4 * (x * x - y * y)], axis=-1)
