"""The work of ``python -m train.export`` as functions (tests call these; the
absl flags live in ``train/export.py`` only, so importing this defines none).

``export(weights_dir, output, tflite)`` writes the SavedModel (see
``tf_face.serving.savedmodel``) and, with ``tflite``, ``output/tflite/`` with
every network at float32 / float16 / int8 plus ``comparison.json`` (see
``tf_face.serving.compare``), printing the comparison table.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data

from tf_face.errors import TfFaceError
from tf_face.facemodel import load_face_model
from tf_face.image_io import IMAGE_SUFFIXES, load_image
from tf_face.outputs import atomic_output_dir, write_json, write_png_rgb
from tf_face.pipeline import GeometryPipeline
from tf_face.serving.backends import TFBackend
from tf_face.serving.tflite import export_tflite
from tf_face.serving.weights import (load_albedo_model, load_networks, read_weights_config,
                                     resolve_weights_dir)
from tf_face.uv import get_atlas
# TF-loading imports stay in functions: train.export imports this at start-up (test_import_weight)

REPO = Path(__file__).resolve().parents[2]


def default_photos(tmp: Path) -> list:
    """The astronaut (written into ``tmp``) and the shared photos when present."""
    write_png_rgb(tmp / "astronaut.png", skimage.data.astronaut())
    photos = [tmp / "astronaut.png"]
    faces = REPO.parent / "shared" / "data" / "faces"
    if faces.is_dir():
        photos += sorted(p for p in faces.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                         and "detections" not in p.parts and p.name != "astronaut.png")
    return photos


def load_textures(texture_dir, max_photos, cfg, log=print):
    from tf_face.serving.compare import textures_from_photos
    if texture_dir:
        files = sorted(Path(texture_dir).rglob("texture.png"))[:max_photos]
        if not files:
            raise TfFaceError(f"no texture.png under --texture_dir {texture_dir}")
        tex = [load_image(f).astype(np.float32) / 255.0 for f in files]
        if any(t.shape != (cfg.uv_size, cfg.uv_size, 3) for t in tex):
            raise TfFaceError(f"textures under {texture_dir} are not {cfg.uv_size}x{cfg.uv_size}")
        return tex, [str(f) for f in files]
    pipe = GeometryPipeline(cfg.model, uv_size=cfg.uv_size)
    with tempfile.TemporaryDirectory(prefix="tf_face_export_") as tmp:   # removed after use
        return textures_from_photos(pipe, default_photos(Path(tmp)), max_photos, log)


def export(weights_dir, output, tflite: bool, texture_dir=None, max_photos=8,
           overwrite=False, log=print) -> dict:
    from tf_face.serving.savedmodel import SIGNATURES, export_savedmodel

    weights_dir = resolve_weights_dir(weights_dir)
    result = {"savedmodel": str(output), "signatures": list(SIGNATURES)}
    with atomic_output_dir(output, overwrite=overwrite) as tmp:
        t = time.perf_counter()
        sm_tmp = tmp / "savedmodel"
        export_savedmodel(weights_dir, sm_tmp)
        for p in sm_tmp.iterdir():
            os.replace(p, tmp / p.name)
        sm_tmp.rmdir()
        log(f"SavedModel written ({time.perf_counter() - t:.1f} s)")
        if tflite:
            result["tflite"] = export_and_compare(weights_dir, tmp / "tflite", texture_dir,
                                                  max_photos, log)
            write_json(tmp / "tflite" / "comparison.json", result["tflite"])
    log(f"wrote {output}  (inspect: saved_model_cli show --dir {output} --all)")
    return result


def export_and_compare(weights_dir, folder, texture_dir, max_photos, log=print) -> dict:
    from tf_face.serving.compare import compare_tflite, format_table

    cfg = read_weights_config(weights_dir)
    nets = load_networks(weights_dir)
    t = time.perf_counter()
    export_tflite(nets, folder, cfg.uv_size, cfg.num_albedo)
    log(f"TFLite models converted ({time.perf_counter() - t:.1f} s)")
    face = load_face_model(cfg.model)
    albedo = load_albedo_model(cfg, face)
    tf_backend = TFBackend(weights_dir, cfg, albedo, networks=nets)
    textures, used = load_textures(texture_dir, max_photos, cfg, log)
    rows = compare_tflite(tf_backend, folder, textures, get_atlas(face, size=cfg.uv_size).mask,
                          cfg.color_space)
    log(format_table(rows))
    fan16 = next(r for r in rows if r["net"] == "fan" and r["precision"] == "float16")
    worst16 = max(r.get("max_abs_display_255", 0.0) for r in rows if r["precision"] == "float16")
    goals = {"fan_float16_size_mb": fan16["size_mb"], "fan_float16_le_4mb": fan16["size_mb"] <= 4.0,
             "float16_albedo_max_abs_display_255": worst16,
             "float16_albedo_le_2_255": worst16 <= 2.0}
    log("goals: " + json.dumps(goals))
    return {"rows": rows, "goals": goals, "textures": used, "color_space": cfg.color_space}
