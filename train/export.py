"""Export trained weights: SavedModel with serving signatures (+ TFLite).

    python -m train.export --weights_dir=W --output=DIR [--tflite]
        [--texture_dir=DIR] [--max_photos=8] [--overwrite]

DIR is a SavedModel (``saved_model_cli show --dir DIR --all`` lists the
signatures ``albedo_and_details``, ``bnet``, ``fan``, ``drn``, ``config`` and
``serving_default`` = ``albedo_and_details``; see
``tf_face.serving.savedmodel`` for inputs/outputs and units). With
``--tflite`` it also holds ``DIR/tflite/<net>_<precision>.tflite`` for
bnet/fan/drn x float32/float16/int8 (dynamic range), and
``DIR/tflite/comparison.json`` + a printed table: size, latency and max/mean
abs difference vs TF on real unwrapped UV textures -- the ``texture.png``
files under ``--texture_dir`` (``tf_face.cli.unwrap`` outputs) or, by
default, the astronaut and the photos of ../shared/data/faces run through the
geometry pipeline (at most ``--max_photos``).

``python -m tf_face.cli.reconstruct --backend=tflite --tflite_dir=DIR/tflite``
uses those files.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
flags.DEFINE_string("weights_dir", None, "Trained weights folder (bnet/fan/drn.keras + "
                    "tf_face_weights.json).")
flags.DEFINE_string("output", None, "SavedModel folder to write.")
flags.DEFINE_bool("tflite", False, "Also convert to TFLite (float32/float16/int8) and compare.")
flags.DEFINE_string("texture_dir", None, "Folder searched for texture.png (unwrap outputs) "
                    "used for the TFLite comparison; default: photos through the pipeline.")
flags.DEFINE_integer("max_photos", 8, "Textures used for the TFLite comparison.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.DEFINE_bool("debug", False, "Show tracebacks of internal errors.")


def default_photos() -> list:
    import skimage.data

    from tf_face.cli.common import IMAGE_SUFFIXES
    from tf_face.outputs import write_png_rgb
    tmp = Path(tempfile.mkdtemp(prefix="tf_face_export_"))
    write_png_rgb(tmp / "astronaut.png", skimage.data.astronaut())
    photos = [tmp / "astronaut.png"]
    faces = REPO.parent / "shared" / "data" / "faces"
    if faces.is_dir():
        photos += sorted(p for p in faces.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                         and "detections" not in p.parts and p.name != "astronaut.png")
    return photos


def load_textures(texture_dir, max_photos, cfg, log=print):
    import numpy as np

    from tf_face.errors import TfFaceError
    from tf_face.image_io import load_image
    from tf_face.serving.compare import textures_from_photos
    if texture_dir:
        files = sorted(Path(texture_dir).rglob("texture.png"))[:max_photos]
        if not files:
            raise TfFaceError(f"no texture.png under --texture_dir {texture_dir}")
        tex = [load_image(f).astype(np.float32) / 255.0 for f in files]
        if any(t.shape != (cfg.uv_size, cfg.uv_size, 3) for t in tex):
            raise TfFaceError(f"textures under {texture_dir} are not {cfg.uv_size}x{cfg.uv_size}")
        return tex, [str(f) for f in files]
    from tf_face.pipeline import GeometryPipeline
    pipe = GeometryPipeline(cfg.model, uv_size=cfg.uv_size)
    return textures_from_photos(pipe, default_photos(), max_photos, log)


def export(weights_dir, output, tflite: bool, texture_dir=None, max_photos=8,
           overwrite=False, log=print) -> dict:
    from tf_face.outputs import atomic_output_dir, write_json
    from tf_face.serving.savedmodel import SIGNATURES, export_savedmodel
    from tf_face.serving.weights import resolve_weights_dir

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
    from tf_face.serving.backends import TFBackend
    from tf_face.serving.compare import compare_tflite, format_table
    from tf_face.serving.tflite import export_tflite
    from tf_face.serving.weights import load_albedo_model, load_networks, read_weights_config
    from tf_face.uv import get_atlas
    from tf_face.facemodel import load_face_model

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


def main(argv):
    del argv
    from absl import logging

    from tf_face.cli.common import quiet_tensorflow, run_single
    quiet_tensorflow()
    logging.set_verbosity(logging.WARNING)  # the TFLite converter logs at INFO
    if not FLAGS.weights_dir or not FLAGS.output:
        print("error: --weights_dir and --output are required", file=sys.stderr)
        return 2
    return run_single(lambda: export(FLAGS.weights_dir, Path(FLAGS.output), FLAGS.tflite,
                                     FLAGS.texture_dir, FLAGS.max_photos, FLAGS.overwrite),
                      FLAGS.debug)


if __name__ == "__main__":
    app.run(main)
