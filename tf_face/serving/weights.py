"""The weights folder written by the training jobs, read for inference.

Layout (``tf_face.training.jobs``): ``bnet.keras``, ``fan.keras``,
``drn.keras`` (+ ``.weights.h5``) and ``tf_face_weights.json`` with the face
model spec, the number K of albedo components, the UV size, the colour space
(``"linear"``: every albedo is linear RGB while textures are sRGB),
``detail_unit`` (the face model's inter-ocular distance, model units) and
``drn_max_displacement``.

Without an explicit folder the CLI uses ``DEFAULT_WEIGHTS_DIR`` -- what
``make demo`` trains (``<repo>/demo_out/weights``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np

from tf_face.errors import TfFaceError

CONFIG_FILE = "tf_face_weights.json"   # same name as tf_face.training.jobs.CONFIG_FILE
NETWORKS = ("bnet", "fan", "drn")
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Where ``make demo`` writes its trained weights (DEMO_OUT=demo_out in the Makefile).
DEFAULT_WEIGHTS_DIR = REPO_ROOT / "demo_out" / "weights"
MAKE_WEIGHTS_HINT = ("run `make demo` (trains them into demo_out/weights), or train your own "
                     "with python -m train.train_bnet, then train.train_fan, then "
                     "train.train_drn (--data=SHARDS --output_dir=W) and pass --weights_dir=W")


class WeightsError(TfFaceError):
    """A weights folder is missing, incomplete or unreadable."""


@dataclasses.dataclass
class WeightsConfig:
    folder: Optional[Path]        # None: no weights (--appearance=fit)
    model: str                    # face model spec (GeometryPipeline / load_face_model)
    num_albedo: int               # K
    uv_size: int
    color_space: str              # "linear" | "srgb"
    detail_unit: float            # model units per detail unit (inter-ocular distance)
    drn_max_displacement: float   # |r_d| bound, detail units
    raw: dict

    def to_json(self) -> dict:
        return {"folder": None if self.folder is None else str(self.folder), "model": self.model, "num_albedo": self.num_albedo,
                "uv_size": self.uv_size, "color_space": self.color_space,
                "detail_unit": self.detail_unit,
                "drn_max_displacement": self.drn_max_displacement}


def resolve_weights_dir(weights_dir=None) -> Path:
    """The weights folder to use: ``weights_dir`` or ``DEFAULT_WEIGHTS_DIR``.

    Raises a one-line ``WeightsError`` that names the command making them.
    """
    if weights_dir:
        folder = Path(weights_dir)
        if not folder.is_dir():
            raise WeightsError(f"--weights_dir {folder} is not a directory; {MAKE_WEIGHTS_HINT}")
    else:
        folder = DEFAULT_WEIGHTS_DIR
        if not (folder / CONFIG_FILE).is_file():
            raise WeightsError(f"no trained weights at {folder} (the default); "
                               f"{MAKE_WEIGHTS_HINT}")
    missing = [n for n in (CONFIG_FILE, *(f"{k}.keras" for k in NETWORKS))
               if not (folder / n).is_file()]
    if missing:
        raise WeightsError(f"weights folder {folder} lacks {', '.join(missing)}; "
                           f"{MAKE_WEIGHTS_HINT}")
    return folder


def read_weights_config(folder) -> WeightsConfig:
    folder = Path(folder)
    path = folder / CONFIG_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"{path} not found; {MAKE_WEIGHTS_HINT}") from None
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path} is not readable JSON ({e})") from None
    if not isinstance(raw, dict):
        raise WeightsError(f"{path} must hold a JSON object")
    try:
        cfg = WeightsConfig(
            folder=folder, model=str(raw.get("model", "default")),
            num_albedo=int(raw["num_albedo"]), uv_size=int(raw.get("uv_size", 256)),
            color_space=str(raw.get("color_space", "linear")),
            detail_unit=float(raw.get("detail_unit", 1.0)),
            drn_max_displacement=float(raw.get("drn_max_displacement", 0.05)), raw=raw)
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"{path}: missing or bad field ({e})") from None
    if cfg.color_space not in ("linear", "srgb"):
        raise WeightsError(f"{path}: color_space must be linear or srgb, got {cfg.color_space!r}")
    if cfg.num_albedo < 0 or cfg.uv_size < 32 or not cfg.detail_unit > 0:
        raise WeightsError(f"{path}: bad num_albedo / uv_size / detail_unit")
    return cfg


def load_networks(folder) -> dict:
    """``{"bnet", "fan", "drn"}`` -> Keras models (custom layers registered)."""
    from tf_face.training.jobs import load_stage_model
    try:
        return {name: load_stage_model(folder, name) for name in NETWORKS}
    except TfFaceError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt .keras is the user's file
        raise WeightsError(f"could not load the networks in {folder}: "
                           f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                           ) from None


def load_albedo_model(cfg: WeightsConfig, face_model=None):
    """B-Net's linear albedo model (UV mean [S,S,3], basis [S,S,3,K]) for ``cfg``.

    Built exactly as training builds it (``uv_albedo_model``), from the face
    model named in the config (or the ``face_model`` given).
    """
    from tf_face.facemodel import load_face_model
    from tf_face.training.albedo_model import uv_albedo_model
    from tf_face.uv import get_atlas

    model = face_model if face_model is not None else load_face_model(cfg.model)
    atlas = get_atlas(model, size=cfg.uv_size)
    albedo = uv_albedo_model(model, atlas, cfg.num_albedo)
    if albedo.num_components != cfg.num_albedo:
        raise WeightsError(f"{cfg.folder}: num_albedo={cfg.num_albedo} but face model "
                           f"{model.name!r} has {albedo.num_components} albedo components")
    return albedo


def albedo_from_coeffs_np(mean: np.ndarray, basis: np.ndarray, p_a: np.ndarray) -> np.ndarray:
    """Numpy ``R_a = m_a + U_a p_a``: p_a [B,K] -> [B,S,S,3] float32."""
    s = mean.shape[0]
    flat = basis.reshape(-1, basis.shape[-1])
    out = mean.reshape(1, -1) + (np.asarray(p_a, np.float32) @ flat.T)
    return out.reshape(-1, s, s, 3).astype(np.float32)
