"""The weights folder written by the training jobs, read for inference.

Layout (``tf_face.training.jobs``): ``bnet.keras``, ``fan.keras``,
``drn.keras`` (+ ``.weights.h5``) and ``tf_face_weights.json`` with the face
model spec, the number K of albedo components, the UV size, the colour space
(``"linear"``: every albedo is linear RGB while textures are sRGB),
``detail_unit`` (the face model's inter-ocular distance, model units) and
``drn_max_displacement``.

A **release folder** (what ``train.release`` ships and ``train.export``
writes) holds the inference weights only: ``<net>.json`` (the Keras
architecture), ``<net>.weights.npz`` (the weights in ``model.weights`` order,
float16 or float32, read with ``allow_pickle=False``), the same
``tf_face_weights.json``, ``MODEL_CARD.md`` and ``manifest.json`` (format
version, sha256 and size of every file), checked at load: a corrupt or
truncated file is a one-line error that names it.

Without an explicit folder the CLI uses ``DEFAULT_WEIGHTS_DIR``: the release
weights shipped in the package (``tf_face/weights/<version>/``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Optional

import numpy as np

from tf_face import __version__
from tf_face.errors import TfFaceError
from tf_face.facemodel import load_face_model
from tf_face.file_hash import sha256_file
from tf_face.outputs import atomic_output_dir, write_json
from tf_face.uv import get_atlas
# TF-loading imports stay in functions: cli.reconstruct imports this at start-up
# (test_import_weight)

CONFIG_FILE = "tf_face_weights.json"   # same name as tf_face.training.jobs.CONFIG_FILE
NETWORKS = ("bnet", "fan", "drn")
MANIFEST = "manifest.json"
MODEL_CARD = "MODEL_CARD.md"
RELEASE_FORMAT = 1            # manifest format_version this code reads and writes
RELEASE_VERSION = "v4"        # the shipped weights' folder name
PACKAGED_WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / RELEASE_VERSION
#: The release weights shipped with the package (``python -m train.release`` made them).
DEFAULT_WEIGHTS_DIR = PACKAGED_WEIGHTS_DIR
MAKE_WEIGHTS_HINT = ("reinstall tf_face (the package ships release weights in "
                     f"tf_face/weights/{RELEASE_VERSION}), make your own with "
                     "python -m train.release --output_dir=W, or train with "
                     "python -m train.train_bnet, then train.train_fan, then train.train_drn "
                     "(--data=SHARDS --output_dir=W) and pass --weights_dir=W")


def is_release_folder(folder) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def _network_files(folder) -> list:
    if is_release_folder(folder):
        return [f"{n}{suffix}" for n in NETWORKS for suffix in (".json", ".weights.npz")]
    return [f"{n}.keras" for n in NETWORKS]


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
    missing = [n for n in (CONFIG_FILE, *_network_files(folder))
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
    except FileNotFoundError as exc:
        raise WeightsError(f"{path} not found; {MAKE_WEIGHTS_HINT}") from exc
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path} is not readable JSON ({e})") from e
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
        raise WeightsError(f"{path}: missing or bad field ({e})") from e
    if cfg.color_space not in ("linear", "srgb"):
        raise WeightsError(f"{path}: color_space must be linear or srgb, got {cfg.color_space!r}")
    if cfg.num_albedo < 0 or cfg.uv_size < 32 or not cfg.detail_unit > 0:
        raise WeightsError(f"{path}: bad num_albedo / uv_size / detail_unit")
    return cfg


def read_manifest(folder) -> dict:
    """``manifest.json`` of a release folder, its version checked."""
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        version = int(manifest["format_version"])
        files = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise WeightsError(f"{path} is not a tf_face weights manifest ({type(e).__name__}: {e})"
                           ) from e
    if version < RELEASE_FORMAT:
        raise WeightsError(f"{folder} holds weights of an older tf_face release format "
                           f"(version {version}; this tf_face reads {RELEASE_FORMAT}); re-export "
                           f"them with python -m train.export --weights_dir=TRAINING_FOLDER")
    if version > RELEASE_FORMAT:
        raise WeightsError(f"{folder} holds weights of a newer tf_face release format "
                           f"(version {version}; this tf_face reads {RELEASE_FORMAT}); "
                           f"upgrade tf_face")
    return {"format_version": version, "files": files, **{
        k: v for k, v in manifest.items() if k not in ("format_version", "files")}}


def verify_manifest(folder) -> dict:
    """Check every file of a release folder against its sha256 and size.

    One-line ``WeightsError`` naming the first file that is missing,
    truncated or corrupt.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    for name, entry in sorted(manifest["files"].items()):
        if Path(name).name != name:
            raise WeightsError(f"{folder / MANIFEST}: bad file name {name!r}")
        path = folder / name
        if not path.is_file():
            raise WeightsError(f"{path} is missing (listed in {MANIFEST}); re-copy the folder")
        size = path.stat().st_size
        if size != int(entry["bytes"]):
            raise WeightsError(f"{path} is truncated or altered: {size} bytes, "
                               f"{MANIFEST} says {entry['bytes']}; re-copy it")
        if sha256_file(path) != entry["sha256"]:
            raise WeightsError(f"{path} is corrupt: its sha256 differs from {MANIFEST}; "
                               f"re-copy it")
    return manifest


def _load_release_network(folder: Path, name: str):
    import keras

    import tf_face.models  # noqa: F401 - registers the custom layers
    arch, weights_path = folder / f"{name}.json", folder / f"{name}.weights.npz"
    try:
        model = keras.models.model_from_json(arch.read_text())
    except Exception as e:  # noqa: BLE001 - the user's file
        raise WeightsError(f"{arch}: not a Keras architecture this tf_face can build "
                           f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                           ) from e
    try:
        with np.load(weights_path, allow_pickle=False) as z:
            arrays = [z[f"w{i:04d}"] for i in range(len(z.files))]
    except (OSError, ValueError, KeyError) as e:
        raise WeightsError(f"{weights_path} is not readable ({type(e).__name__}: {e})") from e
    if len(arrays) != len(model.weights):
        raise WeightsError(f"{weights_path} holds {len(arrays)} arrays; the architecture in "
                           f"{arch.name} has {len(model.weights)} weights")
    for var, arr in zip(model.weights, arrays):
        if tuple(arr.shape) != tuple(var.shape):
            raise WeightsError(f"{weights_path}: weight {var.path} has shape "
                               f"{tuple(arr.shape)}, expected {tuple(var.shape)} (weights "
                               f"from another network width or UV size?)")
        var.assign(arr.astype(np.float32))
    return model


def check_networks(nets: dict, cfg: WeightsConfig) -> None:
    """The networks fit the config: input [None, S, S, 3] with S = uv_size,
    B-Net output K + 27, FAN 3 channels, DRN 1 -- else one line naming the file."""
    release = cfg.folder is not None and is_release_folder(cfg.folder)
    s, k = cfg.uv_size, cfg.num_albedo
    want_out = {"bnet": (None, k + 27), "fan": (None, s, s, 3), "drn": (None, s, s, 1)}
    for name, model in nets.items():
        path = Path(cfg.folder or ".") / (f"{name}.json" if release else f"{name}.keras")
        got_in = tuple(model.inputs[0].shape)
        if got_in != (None, s, s, 3):
            raise WeightsError(f"{path}: input shape {got_in}, expected {(None, s, s, 3)} "
                               f"(uv_size {s} in {CONFIG_FILE}); weights of another UV size?")
        got_out = tuple(model.outputs[0].shape)
        if name in want_out and got_out != want_out[name]:
            raise WeightsError(f"{path}: output shape {got_out}, expected {want_out[name]} "
                               f"(num_albedo {k}, uv_size {s} in {CONFIG_FILE})")


def load_networks(folder) -> dict:
    """``{"bnet", "fan", "drn"}`` -> Keras models (custom layers registered).

    A release folder is checked against its manifest first.
    """
    from tf_face.models.saving import load_stage_model
    folder = Path(folder)
    try:
        if is_release_folder(folder):
            verify_manifest(folder)
            nets = {name: _load_release_network(folder, name) for name in NETWORKS}
        else:
            nets = {name: load_stage_model(folder, name) for name in NETWORKS}
        check_networks(nets, read_weights_config(folder))
        return nets
    except TfFaceError:
        raise
    except Exception as e:  # noqa: BLE001 - a corrupt .keras is the user's file
        raise WeightsError(f"could not load the networks in {folder}: "
                           f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                           ) from e


def load_albedo_model(cfg: WeightsConfig, face_model=None):
    """B-Net's linear albedo model (UV mean [S,S,3], basis [S,S,3,K]) for ``cfg``.

    Built exactly as training builds it (``uv_albedo_model``), from the face
    model named in the config (or the ``face_model`` given).
    """
    from tf_face.uv.albedo_model import uv_albedo_model

    model = face_model if face_model is not None else load_face_model(cfg.model)
    atlas = get_atlas(model, size=cfg.uv_size)
    albedo = uv_albedo_model(model, atlas, cfg.num_albedo)
    if albedo.num_components != cfg.num_albedo:
        raise WeightsError(f"{cfg.folder}: num_albedo={cfg.num_albedo} but face model "
                           f"{model.name!r} has {albedo.num_components} albedo components")
    return albedo


def _write_manifest(folder: Path, dtype: str) -> dict:
    manifest = {"format_version": RELEASE_FORMAT, "tf_face_version": __version__,
                "weights_dtype": dtype,
                "files": {p.name: {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                          for p in sorted(folder.iterdir())
                          if p.is_file() and p.name != MANIFEST}}
    write_json(folder / MANIFEST, manifest)
    return manifest


def write_release(src_folder, dst_folder, dtype: str = "float16", networks=None) -> dict:
    """Write the release folder of ``src_folder`` (a training weights folder).

    Inference weights only (no optimiser state, discriminator or checkpoints),
    each network's weights cast to ``dtype`` ("float16" | "float32"), the
    config (without training-machine paths), then ``manifest.json``.
    ``networks`` ({name: keras.Model}) skips loading them from ``src_folder``.
    Written beside ``dst_folder`` and renamed into place
    (``outputs.atomic_output_dir``). Returns the manifest.
    """
    if dtype not in ("float16", "float32"):
        raise WeightsError(f"dtype must be float16 or float32, got {dtype!r}")
    src, dst = Path(src_folder), Path(dst_folder)
    cfg = read_weights_config(src)
    nets = networks if networks is not None else load_networks(src)
    config = json.loads(json.dumps(cfg.raw))
    config.update({"release_format": RELEASE_FORMAT, "weights_dtype": dtype})
    for stage in config.get("stages", {}).values():
        stage.pop("data", None)   # a path on the training machine
    with atomic_output_dir(dst, overwrite=True) as tmp:
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        for name in NETWORKS:
            model = nets[name]
            (tmp / f"{name}.json").write_text(model.to_json())
            arrays = {f"w{i:04d}": np.asarray(v.numpy()).astype(dtype)
                      for i, v in enumerate(model.weights)}
            with open(tmp / f"{name}.weights.npz", "wb") as f:
                np.savez_compressed(f, **arrays)
        manifest = _write_manifest(tmp, dtype)
    return manifest


def add_release_files(folder, files=(), model_card: Optional[str] = None) -> dict:
    """Copy ``files`` (e.g. the benchmark JSON) into a release folder, write
    ``model_card`` as ``MODEL_CARD.md`` and renew the manifest."""
    folder = Path(folder)
    manifest = verify_manifest(folder)
    for f in files:
        shutil.copyfile(f, folder / Path(f).name)
    if model_card is not None:
        (folder / MODEL_CARD).write_text(model_card)
    return _write_manifest(folder, manifest.get("weights_dtype", "float16"))
