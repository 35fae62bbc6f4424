"""Synthetic training set: rendered photos + ground truth + shards from the REAL pipeline.

    python -m tf_face.synthetic.make_dataset --output=DIR --num_faces=N --seed=S \\
        [--image_size=512 --max_yaw=60 --occlusion_prob=0.3 --light_harshness=0.5 ...]
        [--ict_npz=../shared/data/ict_face_model.npz]

Writes

* ``DIR/photos/face_NNNNN.png`` (sRGB photo) and ``face_NNNNN.extras.npz``
  (the record extras: ``gt_albedo`` [256,256,3] linear RGB, ``gt_displacement``
  [256,256] IOD units along the base normal, ``gt_sh`` [9,3], ``gt_occlusion``
  and ``gt_visible`` [256,256] bool, ``gt_normals`` [256,256,3] camera-frame
  detail normals), all in the default model's UV space;
* ``DIR/truth/face_NNNNN.npz``: the full ``SyntheticTruth`` (mesh, pose, ...;
  ``np.load(..., allow_pickle=False)``);
* ``DIR/shards/``: ``train.preprocess``'s job (``run_preprocess``) over
  ``DIR/photos`` — detect -> landmarks -> fit -> unwrap on each photo, NOT the
  true geometry — with the sidecars stored as record extras;
  ``DIR/shards/failures.json`` lists the photos the pipeline rejected (copied
  to ``DIR/failures.json``);
* ``DIR/synthetic.json``: the settings; ``DIR/report.json``: detection rate,
  per-face and summary alignment of the pipeline's samples with the truth
  (``alignment``), timings.

Face i is drawn from ``numpy.random.default_rng([seed, i])``, so a face does
not depend on ``num_faces`` and a rerun with the same flags rewrites the same
bytes; faces whose photo, sidecar and truth files exist are not re-rendered
(resume), and the preprocessing job resumes by itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from absl import flags
from tqdm import tqdm

from tf_face.cli.common import run_single
from tf_face.data import list_shards, parse_example, read_index
from tf_face.data.preprocess import run_preprocess
from tf_face.data.shards import write_json_atomic
from tf_face.errors import TfFaceError
from tf_face.facemodel import default_model
from tf_face.outputs import atomic_write_file, write_bytes_atomic
from tf_face.synthetic.ict_shapes import IctShapes
from tf_face.uv import get_atlas
# TF-loading imports stay in functions, run after main's quiet_tensorflow() (test_import_weight)

FACE_NAME = "face_{:05d}"


def _atomic_npz(path: Path, arrays: dict) -> None:
    with atomic_write_file(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def _atomic_png(path: Path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    write_bytes_atomic(path, buf.tobytes())


def generate_faces(output, num_faces: int, seed: int, difficulty=None, image_size: int = 512,
                   progress: bool = True, ict_npz=None) -> dict:
    """Render faces 0..num_faces-1 into ``output/photos`` and ``output/truth``.

    ``ict_npz``: path of the ICT model npz to take shapes/expressions from
    (``ict_shapes``); None = the default model's random smooth shapes.
    Returns ``{"rendered", "skipped", "seconds_per_face"}``.
    """
    from tf_face.synthetic.sampling import Difficulty, sample_face
    from tf_face.synthetic.scene import render_face

    out = Path(output)
    photos, truth_dir = out / "photos", out / "truth"
    photos.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    difficulty = (difficulty or Difficulty()).validate()
    model = default_model()
    atlas = get_atlas(model, 256)
    ict = None
    if ict_npz:
        ict = IctShapes.load(ict_npz, model)
    rendered = skipped = 0
    t0 = time.perf_counter()
    for i in tqdm(range(num_faces), desc="render", unit="face", file=sys.stderr,
                  disable=not progress):
        name = FACE_NAME.format(i)
        files = (photos / f"{name}.png", photos / f"{name}.extras.npz", truth_dir / f"{name}.npz")
        if all(p.is_file() for p in files):
            skipped += 1
            continue
        rng = np.random.default_rng([int(seed), i])
        face = sample_face(rng, model, difficulty, ict=ict)
        image, truth = render_face(face, image_size, model=model, atlas=atlas)
        full = truth.to_npz()
        full["difficulty"] = np.array(json.dumps(dataclasses.asdict(difficulty)))
        full["occluders"] = np.array(json.dumps(face.occluders))
        full["seed"] = np.array([int(seed), i], np.int64)
        full["shape_source"] = np.array(face.shape_source)
        full["ict_alpha"] = face.ict_alpha
        full["ict_beta"] = face.ict_beta
        _atomic_npz(files[2], full)
        _atomic_npz(files[1], truth.extras())
        _atomic_png(files[0], image)       # the photo last: its presence marks a complete face
        rendered += 1
    dt = time.perf_counter() - t0
    return {"rendered": rendered, "skipped": skipped,
            "seconds_per_face": dt / rendered if rendered else None}


def alignment_report(shards_dir) -> dict:
    """Alignment (``alignment.alignment_stats``) of every record in the shards."""
    import tensorflow as tf

    from tf_face.synthetic.alignment import alignment_stats

    per_face = {}
    for shard in list_shards(shards_dir):
        index, _ = read_index(shard)
        if index is None:
            continue
        uv = int(index.get("uv_size", 256))
        for raw in tf.data.TFRecordDataset(str(shard)):
            rec = parse_example(raw, uv_size=uv, extras=index["extras"])
            ex = {k: v.numpy() for k, v in rec["extras"].items()}
            st = alignment_stats(rec["texture"].numpy(), rec["mask"].numpy(), ex["gt_albedo"],
                                 ex["gt_normals"], ex["gt_sh"], ex["gt_visible"],
                                 ex["gt_occlusion"])
            per_face[rec["image_id"].numpy().decode()] = st
    corr = np.array([v["corr"] for v in per_face.values()], np.float64)
    mae = np.array([v["mae"] for v in per_face.values()], np.float64)
    ok = np.isfinite(corr)
    return {"records": len(per_face),
            "corr_mean": float(corr[ok].mean()) if ok.any() else None,
            "corr_median": float(np.median(corr[ok])) if ok.any() else None,
            "corr_min": float(corr[ok].min()) if ok.any() else None,
            "mae_mean": float(mae[ok].mean()) if ok.any() else None,
            "per_face": per_face}


def make_dataset(output, num_faces: int, seed: int, difficulty=None, image_size: int = 512,
                 shard_size: int = 64, workers: int = 1, progress: bool = True,
                 overwrite: bool = False, ict_npz=None) -> dict:
    """The whole job (module docstring); returns the report dict."""
    from tf_face.synthetic.sampling import Difficulty

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    difficulty = (difficulty or Difficulty()).validate()
    settings = {"num_faces": int(num_faces), "seed": int(seed), "image_size": int(image_size),
                "difficulty": dataclasses.asdict(difficulty), "uv_size": 256,
                "displacement_units": "inter-ocular distance (eye centres), along the base normal",
                "albedo_space": "linear RGB, default model UV",
                "shapes": "ict" if ict_npz else "default"}
    old = out / "synthetic.json"
    if old.is_file() and not overwrite:
        prev = json.loads(old.read_text())
        keys = ("seed", "image_size", "difficulty", "shapes")
        if {k: prev.get(k) for k in keys} != {k: settings[k] for k in keys}:
            raise TfFaceError(f"{out} holds a synthetic set made with other settings; "
                              "use another --output or --overwrite")
    if overwrite:
        for sub in ("photos", "truth", "shards"):
            shutil.rmtree(out / sub, ignore_errors=True)
    write_json_atomic(old, settings)
    gen = generate_faces(out, num_faces, seed, difficulty, image_size, progress, ict_npz)
    t = time.perf_counter()
    summary = run_preprocess(out / "photos", out / "shards", shard_size=shard_size,
                             workers=workers, model="default", uv_size=256, progress=progress,
                             overwrite=overwrite)
    pre_s = time.perf_counter() - t
    failures = json.loads((out / "shards" / "failures.json").read_text())
    write_json_atomic(out / "failures.json", failures)
    report = alignment_report(out / "shards")
    report.update({
        "num_faces": int(num_faces), "failed": len(failures),
        "detection_rate": (num_faces - len(failures)) / max(num_faces, 1),
        "render_seconds_per_face": gen["seconds_per_face"],
        "pipeline_seconds_per_face": (pre_s / summary.photos_processed
                                      if summary.photos_processed else None),
        "settings": settings,
    })
    write_json_atomic(out / "report.json", report)
    return report


def main(argv):
    del argv
    from tf_face.synthetic.sampling import Difficulty
    from tf_face.tf_import import quiet_tensorflow
    quiet_tensorflow()   # the pipeline's TFLite models load TF; its start-up lines stay quiet

    f = flags.FLAGS
    if not f.output:
        print("error: --output is required", file=sys.stderr)
        return 2
    diff = Difficulty(max_yaw=f.max_yaw, max_pitch=f.max_pitch, max_roll=f.max_roll,
                      occlusion_prob=f.occlusion_prob, light_harshness=f.light_harshness,
                      shape_strength=f.shape_strength, wrinkle_strength=f.wrinkle_strength,
                      wrinkle_variety=f.wrinkle_variety, albedo_detail=f.albedo_detail,
                      camera_noise=f.camera_noise, solid_occluder_prob=f.solid_occluder_prob)
    box = {}

    def job():
        try:
            diff.validate()
        except ValueError as e:
            raise TfFaceError(str(e)) from e
        if f.num_faces < 1 or f.image_size < 64:
            raise TfFaceError("--num_faces must be >= 1 and --image_size >= 64")
        box["r"] = make_dataset(f.output, f.num_faces, f.seed, diff, f.image_size,
                                f.shard_size, f.workers, overwrite=f.overwrite,
                                ict_npz=f.ict_npz or None)

    code = run_single(job, debug=f.debug)
    r = box.get("r")
    if r is not None:
        print(f"{r['records']} UV samples from {r['num_faces']} synthetic faces; "
              f"{r['failed']} rejected by the pipeline (detection rate {r['detection_rate']:.0%}); "
              f"alignment corr mean {r['corr_mean']}, "
              f"see {os.path.join(f.output, 'report.json')}", file=sys.stderr)
    return code


def _define_flags():
    from tf_face.synthetic.sampling import Difficulty
    d = Difficulty()
    flags.DEFINE_string("output", None, "Output folder.")
    flags.DEFINE_integer("num_faces", 16, "Number of faces.")
    flags.DEFINE_integer("seed", 0, "Seed (face i uses default_rng([seed, i])).")
    flags.DEFINE_integer("image_size", 512, "Photo size in pixels (square).")
    flags.DEFINE_integer("shard_size", 64, "Records per shard.")
    flags.DEFINE_integer("workers", 1, "Pipeline worker processes (<=1: in this process).")
    flags.DEFINE_bool("overwrite", False, "Delete photos/truth/shards of an earlier run first.")
    flags.DEFINE_bool("debug", False, "Show the traceback of an error (with the exception it wraps).")
    flags.DEFINE_string("ict_npz", "", "ICT model npz (e.g. ../shared/data/ict_face_model.npz): "
                        "take shapes/expressions from ICT-FaceKit (default: random smooth shapes).")
    flags.DEFINE_float("max_yaw", d.max_yaw, "Yaw ~ U(-max_yaw, max_yaw) degrees.")
    flags.DEFINE_float("max_pitch", d.max_pitch, "Pitch range, degrees.")
    flags.DEFINE_float("max_roll", d.max_roll, "Roll range, degrees.")
    flags.DEFINE_float("occlusion_prob", d.occlusion_prob, "Probability of >= 1 occluder.")
    flags.DEFINE_float("light_harshness", d.light_harshness,
                       "0 soft frontal white light .. 1 harsh side / coloured light.")
    flags.DEFINE_float("shape_strength", d.shape_strength, "Random shape deformation amount.")
    flags.DEFINE_float("wrinkle_strength", d.wrinkle_strength, "Wrinkle depth multiplier.")
    flags.DEFINE_float("wrinkle_variety", d.wrinkle_variety,
                       "0: every face has every wrinkle family at fixed sites (the data of "
                       "releases v1-v3) .. 1: families present at random, sites and depths varied.")
    flags.DEFINE_float("albedo_detail", d.albedo_detail, "Pores/freckles/moles amount.")
    flags.DEFINE_float("camera_noise", d.camera_noise, "Blur + sensor noise amount (0 = none).")
    flags.DEFINE_float("solid_occluder_prob", d.solid_occluder_prob,
                       "Probability of a fringe or a cap over the forehead (0: none, the "
                       "data of every release so far).")


if __name__ == "__main__":
    from absl import app

    _define_flags()   # TF-free (tests/test_import_weight.py): --help stays fast
    app.run(main)
