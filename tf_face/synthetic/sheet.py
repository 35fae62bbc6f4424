"""Contact sheets of synthetic faces: photo | GT albedo | GT displacement |
pipeline texture (or the truth's re-render when no sample is given).

Display choices: albedo linear -> sRGB; displacement mapped to grey with
``128 + 127 * d / 0.03`` (0.03 IOD = white/black); the unwrapped texture as
stored (sRGB), invisible texels dark blue; occluded texels tinted red.
"""

from __future__ import annotations

import cv2
import numpy as np

from tf_face.srgb import linear_to_srgb
from tf_face.synthetic.alignment import true_rerender_uv


def sheet_row(image, truth, texture=None, mask=None, tile: int = 256) -> np.ndarray:
    alb = (linear_to_srgb(truth.albedo) * 255).round().astype(np.uint8)
    disp = np.clip(128 + truth.displacement / 0.03 * 127, 0, 255).astype(np.uint8)
    disp = np.repeat(disp[..., None], 3, 2)
    if texture is None:
        texture = true_rerender_uv(truth.albedo, truth.normals, truth.sh)
        mask = truth.visible
    tex = (np.clip(np.asarray(texture, np.float64), 0, 1) * 255).round().astype(np.uint8)
    m = np.asarray(mask).reshape(tex.shape[:2]) > 0.5
    tex[~m] = (20, 20, 60)
    tex[truth.occlusion] = (tex[truth.occlusion] * 0.5 + np.array([127, 0, 0])).astype(np.uint8)
    tiles = [cv2.resize(np.asarray(image), (tile, tile), interpolation=cv2.INTER_AREA)]
    tiles += [cv2.resize(t, (tile, tile), interpolation=cv2.INTER_NEAREST) for t in (alb, disp, tex)]
    return np.concatenate(tiles, axis=1)


def save_sheet(rows: list, path) -> None:
    sheet = np.concatenate(rows, axis=0)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
