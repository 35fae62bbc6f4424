"""Random photo backgrounds (linear RGB float [H, W, 3] in [0, 1]).

One of: a smooth two-colour gradient; low-frequency multi-scale noise
("blurry room"); a texture of random blurred rectangles and stripes
(shelves, windows, wallpaper). Every background gets a little fine noise.
"""

from __future__ import annotations

import cv2
import numpy as np

KINDS = ("gradient", "noise", "texture")


def _colour(rng) -> np.ndarray:
    return rng.uniform(0.02, 0.6, 3) ** 1.3


def random_background(rng: np.random.Generator, height: int, width: int,
                      kind: str | None = None) -> np.ndarray:
    kind = kind or KINDS[int(rng.integers(len(KINDS)))]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "gradient":
        ang = rng.uniform(0, 2 * np.pi)
        t = (np.cos(ang) * xx / width + np.sin(ang) * yy / height)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        c0, c1 = _colour(rng), _colour(rng)
        img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    elif kind == "noise":
        img = np.zeros((height, width, 3), np.float32)
        for sigma_frac, w in ((0.25, 0.6), (0.08, 0.3), (0.02, 0.1)):
            small = rng.random((16, 16, 3)).astype(np.float32)
            layer = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
            layer = cv2.GaussianBlur(layer, (0, 0), sigma_frac * width * 0.25)
            img += w * layer
        img = np.clip(img, 0, 1) * _colour(rng) * 2.0
    else:
        img = np.ones((height, width, 3), np.float32) * _colour(rng)
        for _ in range(int(rng.integers(4, 12))):
            x0, y0 = rng.integers(0, width), rng.integers(0, height)
            w, h = rng.integers(width // 12, width // 2), rng.integers(height // 12, height // 2)
            cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)),
                          tuple(float(v) for v in _colour(rng)), -1)
        if rng.random() < 0.5:
            period = rng.uniform(8, 40)
            stripes = 0.5 + 0.5 * np.sin(2 * np.pi * xx / period)
            img = img * (0.8 + 0.2 * stripes[..., None])
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.0, 6.0))
    img = img + rng.normal(0, 0.01, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float64)
