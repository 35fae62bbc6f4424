"""Random 2nd-order SH lighting (camera frame: x right, y up, z towards the camera).

``random_sh(rng, harshness)`` = ambient + one key light (+ sometimes a
coloured fill light), projected on the 9 Lambertian-convolved SH functions of
``tf_face.render.sh`` via ``tf_face.viz.image_renderer`` (same constants
and order). ``harshness`` in [0, 1] sets the range sampled from:

* 0: soft, frontal, white light — ambient 0.75-0.95, key 0.15-0.35 within
  ~20 deg of the view axis;
* 1: harsh side light — ambient down to 0.03, key up to 1.1, azimuth up to
  ~85 deg off the view axis, more often coloured (warm/cool tints, a second
  light of another colour from the other side).

Each draw picks ``h = harshness * U(0.5, 1)`` so a dataset mixes easy and hard
lights. Intensities are scaled so the mean irradiance over camera-facing
normals (a fixed, uniform-in-disc set) is 0.8-1.1 (albedo x irradiance stays
mostly below 1 before the sRGB curve; a side light leaves the far side dark).
"""

from __future__ import annotations

import math

import numpy as np

from tf_face.viz.image_renderer import ambient_light, directional_light, sh_shading


def _direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])


def _tint(rng, amount: float) -> np.ndarray:
    warm = np.array([1.0, 0.82, 0.6])
    cool = np.array([0.7, 0.85, 1.0])
    base = warm if rng.random() < 0.5 else cool
    t = np.clip(amount * rng.uniform(0.3, 1.0), 0, 1)
    c = (1 - t) * np.ones(3) + t * base
    return c / c.mean()


def random_sh(rng: np.random.Generator, harshness: float = 0.5) -> np.ndarray:
    """A random [9, 3] SH lighting (float64), see the module docstring."""
    h = float(np.clip(harshness, 0.0, 1.0)) * rng.uniform(0.5, 1.0)
    ambient = rng.uniform(0.75, 0.95) * (1 - h) + rng.uniform(0.03, 0.2) * h
    key = rng.uniform(0.15, 0.35) * (1 - h) + rng.uniform(0.7, 1.1) * h
    # azimuth: uniform at h = 0, skewed towards the side (|az| large) as h grows
    az = rng.choice([-1.0, 1.0]) * rng.uniform(0, 1) ** (1 - 0.7 * h) * (20 + 65 * h)
    el = rng.uniform(-15, 40)
    coloured = rng.random() < 0.15 + 0.5 * h
    amb_col = _tint(rng, 0.3) if coloured else np.ones(3)
    key_col = _tint(rng, 0.6 * h + 0.2) if coloured else np.ones(3)
    sh = ambient_light(ambient * amb_col) + directional_light(_direction(az, el), key * key_col)
    if coloured and rng.random() < 0.5:
        fill = rng.uniform(0.1, 0.4) * h
        sh += directional_light(_direction(-np.sign(az) * rng.uniform(40, 80), rng.uniform(-10, 30)),
                                fill * _tint(rng, 1.0))
    # normalise the mean irradiance over camera-facing normals to ~[0.8, 1.1]
    front = float(sh_shading(_FRONT_NORMALS, sh).mean())
    sh *= rng.uniform(0.8, 1.1) / max(front, 1e-6)
    return sh


def _front_normals() -> np.ndarray:
    """Fixed cosine-weighted set of camera-facing unit normals (z > 0)."""
    g = np.linspace(-0.95, 0.95, 15)
    x, y = np.meshgrid(g, g)
    keep = x ** 2 + y ** 2 < 0.95
    x, y = x[keep], y[keep]
    return np.stack([x, y, np.sqrt(1 - x ** 2 - y ** 2)], 1)


_FRONT_NORMALS = _front_normals()
