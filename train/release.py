"""The release recipe: the weights tf_face ships, reproducible on 2 CPU cores.

    python -m train.release --output_dir=W            (or: make weights)
    python -m train.release --output_dir=W --recipe=paper   (the paper's objective)

Steps (each one the command a user would type, printed before it runs; each
resumes, so a killed run continues where it stopped when started again):

1. ``W/data``: ``--num_faces`` synthetic faces with ground truth
   (``tf_face.synthetic.make_dataset``: skin tones uniform over the six ITA
   groups, yaw up to 60°, occluders, harsh light, wrinkles present at random
   and at varied sites: ``--wrinkle_variety``), each photo
   through the **real** geometry pipeline into TFRecord shards.
2. ``W/train``: B-Net -> FAN -> DRN (``train.train_bnet`` / ``train_fan`` /
   ``train_drn``) with the paper's summed losses and weights. ``--recipe=cpu``
   (default) adds what makes the networks learn in CPU hours instead of GPU
   days: synthetic supervision (``--w_sup``: an L1 term to the ground truth
   the shards carry, see ``tf_face.training.stages.supervised_loss``), larger
   learning rates, narrower networks (B-Net width 16, FAN/DRN ngf 8: at half
   the paper's UNet width FAN and DRN score as at full width on the held-out
   faces and run 2.5-3x faster, v2's MODEL_CARD.md). ``--recipe=paper`` is the paper's
   self-supervised objective and learning rate (set the widths and steps with
   the flags).
3. ``W/release``: inference weights only (``tf_face.serving.weights.write_release``;
   float16 by default, the fp16-vs-fp32 output difference is measured and
   written to the model card), with ``manifest.json``.
4. ``W/benchmark.json`` + sheet: ``eval/synthetic_benchmark.py`` on held-out
   faces (``--bench_seed``, never a training seed), networks vs the per-photo
   fit vs the baselines, per tone group, with the release weights.
5. ``W/learning_curves.png`` (training losses vs step, from TensorBoard logs)
   and ``W/release/MODEL_CARD.md`` (data and licences, every setting, steps,
   wall time, benchmark, learning curves, fp16 check, the command).

``--ship`` then copies ``W/release`` into ``tf_face/weights/<version>/`` (the
package default). Wall time is summed over resumed runs
(``W/release_log.json``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
from absl import app, flags

from eval.synthetic_benchmark import format_table
from train.job_flags import UPSAMPLE_KINDS
from tf_face.cli.common import quiet_tensorflow, run_command_step, run_single
from tf_face.tf_import import VERBOSE_HELP
from tf_face.data import make_dataset
from tf_face.errors import TfFaceError
from tf_face.facemodel import load_face_model
from tf_face.outputs import atomic_output_dir, write_json
from tf_face.serving.weights import (PACKAGED_WEIGHTS_DIR, add_release_files, load_networks,
                                     verify_manifest, write_release)
from tf_face.uv import get_atlas
# TF-loading imports stay in functions, run after main's quiet_tensorflow() (test_import_weight)

FLAGS = flags.FLAGS
REPO = Path(__file__).resolve().parents[1]

# recipe -> defaults of the settings it changes (flags given explicitly win)
RECIPES = {
    "cpu": {"bnet_width": 16, "ngf": 8, "bnet_learning_rate": 1e-3, "fan_learning_rate": 5e-4,
            "drn_learning_rate": 2e-4, "w_sup_bnet": 1.0, "w_sup_fan": 0.005,
            "w_sup_drn": 1.0, "sup_space_bnet": "linear", "sup_space_fan": "linear"},
    "paper": {"bnet_width": 64, "ngf": 16, "bnet_learning_rate": 2e-5, "fan_learning_rate": 2e-5,
              "drn_learning_rate": 2e-5, "w_sup_bnet": 0.0, "w_sup_fan": 0.0,
              "w_sup_drn": 0.0, "sup_space_bnet": "linear", "sup_space_fan": "linear"},
}


def define_flags() -> None:
    flags.DEFINE_string("output_dir", None, "Release work folder (data, training, release).")
    flags.DEFINE_enum("recipe", "cpu", list(RECIPES),
                      "cpu: paper losses + synthetic supervision, CPU-sized; paper: the "
                      "paper's self-supervised objective and learning rate.")
    flags.DEFINE_integer("num_faces", 500, "Synthetic training faces.")
    flags.DEFINE_integer("data_seed", 0, "Seed of the training faces.")
    flags.DEFINE_float("wrinkle_variety", 1.0, "make_dataset --wrinkle_variety of the training "
                       "faces: 1 = wrinkle families present at random, varied sites (v4 on); "
                       "0 = every family at fixed sites (v1-v3).")
    flags.DEFINE_integer("workers", 2, "Worker processes for the data step.")
    # the defaults are the shipped weights' recipe (their MODEL_CARD.md command)
    flags.DEFINE_integer("bnet_steps", 2000, "B-Net steps.")
    flags.DEFINE_integer("fan_steps", 1000, "FAN steps.")
    flags.DEFINE_integer("drn_steps", 4000, "DRN steps.")
    flags.DEFINE_integer("bnet_batch", 8, "B-Net batch size.")
    flags.DEFINE_integer("fan_batch", 4, "FAN batch size.")
    flags.DEFINE_integer("drn_batch", 4, "DRN batch size.")
    flags.DEFINE_integer("bnet_width", None, "B-Net base width (recipe default: cpu 16, paper 64).")
    flags.DEFINE_integer("ngf", None, "FAN/DRN UNet base width (recipe default: cpu 8, "
                         "paper 16).")
    for net in ("fan", "drn"):
        flags.DEFINE_enum(f"upsample_{net}", "transpose", UPSAMPLE_KINDS,
                          f"{net.upper()}'s up levels (train/job_flags.py --upsample; paper: "
                          "transpose).")
    for net in ("bnet", "fan", "drn"):
        flags.DEFINE_float(f"{net}_learning_rate", None, f"{net} Adam learning rate "
                           f"(recipe default).")
        flags.DEFINE_float(f"w_sup_{net}", None, f"{net} synthetic-supervision weight "
                           f"(recipe default; 0 = the paper's objective).")
    for net in ("bnet", "fan"):
        flags.DEFINE_enum(f"sup_space_{net}", None, ["linear", "srgb"],
                          f"Where {net}'s supervised albedo term compares (recipe default; "
                          "train/job_flags.py --sup_space).")
    flags.DEFINE_enum("weights_dtype", "float16", ["float16", "float32"],
                      "dtype of the released weights.")
    # 120: with 36 (6 per group) FAN's and B-Net's errors swapped order between
    # two seeds (v1's MODEL_CARD.md, "Larger held-out benchmark"; in git history)
    flags.DEFINE_integer("bench_faces", 120, "Held-out benchmark faces (20 per tone group).")
    flags.DEFINE_integer("bench_seed", 1000, "Seed of the held-out faces.")
    flags.DEFINE_string("real_photos", "", "Optional folder of photos for the real-photo "
                        "report (eval/real_photos.py) with the release weights.")
    flags.DEFINE_bool("ship", False, "Copy the release into tf_face/weights/<version>/.")
    flags.DEFINE_bool("debug", False, "Show the traceback of an error (with the exception it wraps).")
    flags.DEFINE_bool("verbose", False, VERBOSE_HELP)


def settings_from_flags() -> dict:
    s = {k: getattr(FLAGS, k) for k in (
        "recipe", "num_faces", "data_seed", "wrinkle_variety", "workers", "bnet_steps",
        "fan_steps", "drn_steps", "bnet_batch", "fan_batch", "drn_batch", "bnet_width", "ngf",
        "upsample_fan", "upsample_drn", "weights_dtype", "bench_faces", "bench_seed")}
    for k in ("bnet_width", "ngf", "bnet_learning_rate", "fan_learning_rate", "drn_learning_rate",
              "w_sup_bnet", "w_sup_fan", "w_sup_drn", "sup_space_bnet", "sup_space_fan"):
        v = getattr(FLAGS, k)
        s[k] = RECIPES[FLAGS.recipe][k] if v is None else v
    return s


class Log:
    """``release_log.json``: wall seconds of each step. Resumable steps (data,
    training) are summed over runs; steps a rerun redoes from scratch (release,
    benchmark, real photos) keep their last run's time."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {"seconds": {}}

    def add(self, step: str, seconds: float) -> None:
        resumable = step == "data" or step.startswith("train ")
        prev = self.data["seconds"].get(step, 0.0) if resumable else 0.0
        self.data["seconds"][step] = prev + seconds
        write_json(self.path, self.data)


def run_step(log: Log, title: str, cmd: list) -> None:
    t = time.perf_counter()
    try:
        run_command_step(title, cmd, REPO, what="release step", hint="; rerun to resume")
    finally:
        log.add(title.split(":")[0], time.perf_counter() - t)


def stage_done(train_dir: Path, job: str, steps: int) -> bool:
    path = train_dir / f"{job}_summary.json"
    if not path.is_file():
        return False
    try:
        return int(json.loads(path.read_text())["steps"]) >= steps
    except (ValueError, KeyError):
        return False


def train_commands(s: dict, data: Path, train_dir: Path) -> list:
    common = [f"--data={data}", f"--output_dir={train_dir}", "--checkpoint_every=100",
              "--image_every=200", "--log_every=10", f"--ngf={s['ngf']}"]
    py = sys.executable
    return [
        ("bnet", s["bnet_steps"], [py, "-m", "train.train_bnet", *common,
                                   f"--steps={s['bnet_steps']}", f"--batch_size={s['bnet_batch']}",
                                   f"--bnet_width={s['bnet_width']}",
                                   f"--learning_rate={s['bnet_learning_rate']}",
                                   f"--w_sup={s['w_sup_bnet']}",
                                   f"--sup_space={s['sup_space_bnet']}"]),
        # no perceptual term: no ImageNet VGG weights offline, a random VGG measures nothing
        ("fan", s["fan_steps"], [py, "-m", "train.train_fan", *common,
                                 f"--steps={s['fan_steps']}", f"--batch_size={s['fan_batch']}",
                                 f"--learning_rate={s['fan_learning_rate']}", "--w_percep=0",
                                 f"--disc_learning_rate={s['fan_learning_rate'] / 2}",
                                 f"--upsample={s['upsample_fan']}",
                                 f"--w_sup={s['w_sup_fan']}",
                                 f"--sup_space={s['sup_space_fan']}"]),
        ("drn", s["drn_steps"], [py, "-m", "train.train_drn", *common,
                                 f"--steps={s['drn_steps']}", f"--batch_size={s['drn_batch']}",
                                 f"--learning_rate={s['drn_learning_rate']}",
                                 f"--upsample={s['upsample_drn']}",
                                 f"--w_sup={s['w_sup_drn']}"]),
    ]


def read_scalars(log_dir: Path) -> dict:
    """{tag: [(step, value)]} from a TensorBoard log folder."""
    import tensorflow as tf
    out: dict = {}
    for f in sorted(log_dir.glob("events.out.tfevents.*")):
        try:
            for raw in tf.data.TFRecordDataset(str(f)):
                e = tf.compat.v1.Event.FromString(raw.numpy())
                for v in e.summary.value:
                    if v.HasField("tensor"):
                        arr = np.asarray(tf.make_ndarray(v.tensor))
                        if arr.size != 1 or arr.dtype.kind not in "fiu":
                            continue   # image grids
                        val = float(arr.reshape(-1)[0])
                    else:
                        val = float(v.simple_value)
                    out.setdefault(v.tag, []).append((int(e.step), val))
        except tf.errors.DataLossError:   # a log cut by a kill: keep what was read
            continue
    return {k: sorted(dict(v).items()) for k, v in out.items()}


CURVES = {"bnet": ["loss/total", "loss/pixel", "loss/sup"],
          "fan": ["loss/g_total", "loss/pixel", "loss/sup", "loss/gan_g"],
          "drn": ["loss/total", "loss/grad", "loss/sup", "loss/smooth"]}


def plot_curves(train_dir: Path, path: Path) -> dict:
    """Three panels (log10 loss vs step, smoothed); returns the curves."""
    colours = [(40, 40, 220), (40, 160, 40), (200, 80, 20), (120, 120, 120)]
    panels, curves = [], {}
    for job, tags in CURVES.items():
        sc = read_scalars(train_dir / "logs" / job)
        img = np.full((300, 420, 3), 255, np.uint8)
        cv2.putText(img, f"{job} (log10 loss vs step)", (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 0), 1, cv2.LINE_AA)
        series = {t: np.array(sc[t]) for t in tags if t in sc and len(sc[t]) > 1}
        curves[job] = {t: [[int(a), float(b)] for a, b in v] for t, v in series.items()}
        if series:
            max_step = max(v[-1, 0] for v in series.values())
            logs = {t: np.log10(np.maximum(v[:, 1], 1e-6)) for t, v in series.items()}
            lo = min(x.min() for x in logs.values())
            hi = max(x.max() for x in logs.values())
            for i, (t, v) in enumerate(series.items()):
                y = np.convolve(logs[t], np.ones(5) / 5, mode="valid") if len(v) > 5 else logs[t]
                x = v[: len(y), 0]
                px = 40 + (x / max(max_step, 1)) * 370
                py = 280 - (y - lo) / max(hi - lo, 1e-6) * 240
                pts = np.stack([px, py], 1).astype(np.int32)
                cv2.polylines(img, [pts], False, colours[i % 4], 1, cv2.LINE_AA)
                cv2.putText(img, t.split("/")[-1], (300, 40 + 16 * i), cv2.FONT_HERSHEY_SIMPLEX,
                            0.45, colours[i % 4], 1, cv2.LINE_AA)
            cv2.putText(img, f"{hi:.1f}", (2, 44), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
            cv2.putText(img, f"{lo:.1f}", (2, 280), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
            cv2.putText(img, f"step {int(max_step)}", (340, 296), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (0, 0, 0), 1)
        panels.append(img)
    cv2.imwrite(str(path), np.concatenate(panels, 1)[..., ::-1])
    return curves


def fp16_check(train_dir: Path, release_dir: Path, data: Path) -> dict:
    """Largest |fp32 - released| output difference of each network on training textures."""
    a, b = load_networks(train_dir), load_networks(release_dir)
    batch = next(iter(make_dataset(data, batch_size=4, shuffle=False)))
    x = batch["texture"]
    out = {}
    for n in a:
        ya = np.asarray(a[n](x, training=False))
        yb = np.asarray(b[n](x, training=False))
        out[n] = {"max_abs_diff": float(np.abs(ya - yb).max()),
                  "max_abs_output": float(np.abs(ya).max())}
    return out


def atlas_texels(uv_size: int = 256) -> int:
    return int(get_atlas(load_face_model("default"), size=uv_size).mask.sum())


def real_photo_lines(real: dict, sheets: str) -> list:
    """The real-photo report in a few lines: re-render errors, tone agreement."""
    if not real:
        return ["Not run in this invocation (`--real_photos=DIR`)."]
    summ = real.get("summary", real)
    rows = next((v for v in real.values() if isinstance(v, list) and v
                 and isinstance(v[0], dict) and "ita_fit" in v[0]), [])
    out = [f"`eval/real_photos.py` on {summ.get('photos_evaluated', len(rows))} photos "
           "(evaluation only: research datasets, not used for training and not shipped). "
           "Mean re-render error (sRGB, visible texels): " + ", ".join(
               f"{m} {summ[f'mean_rerender_error_{m}']:.4f}" for m in ("pca", "fan", "pca_fit", "fit")
               if f"mean_rerender_error_{m}" in summ) + "."]
    if rows and "ita_fan" in rows[0]:
        d_fan = np.array([r["ita_fan"] - r["ita_fit"] for r in rows])
        d_pca = np.array([r["ita_pca"] - r["ita_fit"] for r in rows])
        dark = np.array([r["ita_fit"] < 10 for r in rows])
        out.append(f"Skin tone (ITA°, cheeks + forehead) of the networks vs the per-photo fit "
                   f"(which follows the photo): mean |FAN - fit| {np.abs(d_fan).mean():.1f}°, "
                   f"|B-Net - fit| {np.abs(d_pca).mean():.1f}°; on the {int(dark.sum())} photos "
                   f"with fit ITA < 10° (brown and dark skin) FAN is {d_fan[dark].mean():+.1f}° "
                   f"and B-Net {d_pca[dark].mean():+.1f}° off (positive = lighter).")
    if "cross_photo_rate_correlation_drn" in summ:
        out.append("Detail maps alike across people (mean pairwise correlation of the moving-rate "
                   "maps over texels visible in both photos; 1 = one template for everyone): "
                   f"DRN {summ['cross_photo_rate_correlation_drn']:.3f}, the per-photo fit "
                   f"{summ.get('cross_photo_rate_correlation_fit', float('nan')):.3f}.")
    out.append(f"Networks' forward time {summ.get('mean_ms_net_total', float('nan')):.0f} ms per "
               f"photo vs the fit's {summ.get('mean_ms_fit_total', float('nan')):.0f} ms "
               "(means; this machine).")
    out.append(f"Sheets (on the training machine): `{sheets}`" if sheets else "")
    return out


def model_card(s: dict, log: Log, bench: dict, bench_table: str, fp16: dict, curves: dict,
               command: str, real_sheet: str, real: Optional[dict] = None) -> str:
    secs = log.data["seconds"]
    total = sum(secs.values())

    def last(job, tag):
        v = curves.get(job, {}).get(tag)
        return f"{v[0][1]:.4g} -> {v[-1][1]:.4g}" if v else "-"

    def per_texel(job, per):
        v = curves.get(job, {}).get("loss/sup")
        if not v:
            return "-"
        tail = [b for _, b in v[-10:]]
        return f"{sum(tail) / len(tail) / per:.4f}"
    texels = atlas_texels()
    lines = [
        f"# tf_face release weights ({s['recipe']} recipe)", "",
        "B-Net (texture -> albedo PCA coefficients + SH light), FAN (texture -> UV albedo) "
        "and DRN (texture -> displacement rate) of the paper in `../shared/paper`, trained by "
        "`train/release.py`. Inference weights only (no optimiser state, no discriminator), "
        f"stored as {s['weights_dtype']}; `manifest.json` holds every file's sha256.", "",
        "## Command", "", "```", command, "```", "",
        f"Wall time: **{total / 60:.1f} min** on this machine "
        f"({os.cpu_count()} CPU cores), summed over resumed runs:", "",
        "| step | seconds |", "|---|---|",
        *[f"| {k} | {v:.0f} |" for k, v in secs.items()], "",
        "## Data", "",
        f"- {s['num_faces']} synthetic faces (seed {s['data_seed']}) made by "
        "`tf_face.synthetic.make_dataset`: the project's own default face model (built from "
        "scratch by `tf_face/facemodel/build/build_default.py`, no third-party scan data), skin "
        "tones drawn uniformly over the six ITA groups (very light to dark), the generator's "
        "default difficulty (yaw up to 60°, occluders, harsh light, wrinkles, camera noise), "
        f"wrinkle variety {s.get('wrinkle_variety', 0.0)} (1: each wrinkle family present at "
        "random, sites varied; 0: every family at fixed sites, the data of v1-v3). "
        "Licence: generated by this project, same licence as the code.",
        "- Each photo went through the real geometry pipeline (detect -> landmarks -> fit "
        "-> unwrap), so the networks see the pipeline's textures, not the true ones.",
        "- No photos of real people were used for training. `../shared/data/faces` (research "
        "datasets) is for evaluation only.", "",
        "## Settings", "", "| setting | value |", "|---|---|",
        *[f"| {k} | {v} |" for k, v in s.items()], "",
        "Loss weights are the paper's (w_a 1, w_pixel 0.005, w_gan 1, w_grad 0.5, w_const 1, "
        "w_smooth 20) with the L1 norms summed per image. No perceptual term: there are no "
        "ImageNet VGG-16 weights offline and a random VGG measures nothing. `w_sup_*` is not "
        "in the paper (0 with `--recipe=paper`): an L1 term to the synthetic ground truth "
        "(albedo for B-Net's R_a and FAN, displacement for DRN), reduced like E_pixel. "
        "`sup_space_*` says where the albedo term compares: `linear` (the albedos as they "
        "are) or `srgb` (both sRGB-encoded, where a dark albedo's error weighs about as much "
        "as a light one's; a linear L1 weighs it ~3.6x less at albedo 0.05 vs 0.5).", "",
        "## Learning curves", "", "`learning_curves.png` (log10 training losses vs step).", "",
        "First -> last logged value (batch losses, so noisy); the last column is E_sup "
        "(summed over the atlas texels) over the last 10 logs, per atlas texel: the mean "
        "|albedo - truth| per channel (in `sup_space`) for B-Net and FAN, the mean |r_d - truth| "
        "in inter-ocular distances for DRN, on training faces.", "",
        "| network | total | E_sup | E_sup per texel (end) |", "|---|---|---|---|",
        f"| B-Net | {last('bnet', 'loss/total')} | {last('bnet', 'loss/sup')} | "
        f"{per_texel('bnet', 3 * texels)} |",
        f"| FAN | {last('fan', 'loss/g_total')} | {last('fan', 'loss/sup')} | "
        f"{per_texel('fan', 3 * texels)} |",
        f"| DRN | {last('drn', 'loss/total')} | {last('drn', 'loss/sup')} | "
        f"{per_texel('drn', texels / 0.05)} |", "",
        "## Benchmark (held-out synthetic faces)", "",
        f"`eval/synthetic_benchmark.py --weights_dir=release --num_faces={s['bench_faces']} "
        f"--seed={s['bench_seed']} --skin_tone=balanced`; full numbers in `benchmark.json`.", "",
        "```", bench_table, "```", "",
        f"## {s['weights_dtype']} check", "",
        "Largest |fp32 - released| network output on 4 training textures:", "",
        "| network | max abs diff | max abs output |", "|---|---|---|",
        *[f"| {k} | {v['max_abs_diff']:.2e} | {v['max_abs_output']:.3g} |"
          for k, v in fp16.items()], "",
        "## Real photos", "",
        *real_photo_lines(real, real_sheet), "",
        "## Limits", "",
        "- Trained on synthetic faces only: real skin, hair, make-up, occluders and camera "
        "pipelines are outside the training distribution. On real photos the networks alone "
        "(`--appearance=net`) regress towards the middle of the tone range (see the real-photo "
        "numbers above: darker skin comes out lighter) and FAN copies occluders (glasses, "
        "hands) into the albedo. The default `--appearance=net+fit` starts the per-photo fit "
        "at the networks' outputs and follows the person's tone (~1.3 s per photo).",
        "- DRN learned wrinkles from synthetic shading only. On real photos its maps are much "
        "alike from person to person (the real-photo correlation above, against the per-photo "
        "fit's): it draws a faint common pattern (nasolabial folds, under-eye arcs, lip line) "
        "rather than the person's own wrinkles, and misses strong real forehead lines.",
        "- CPU-sized: see the learning curves for how far more steps would go.", ""]
    return "\n".join(lines)


def run_release() -> Path:
    if not FLAGS.output_dir:
        raise TfFaceError("--output_dir is required")
    s = settings_from_flags()
    for k in ("num_faces", "bnet_steps", "fan_steps", "drn_steps", "bench_faces"):
        if s[k] < 1:
            raise TfFaceError(f"--{k} must be >= 1, got {s[k]}")
    out = Path(FLAGS.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    settings_path = out / "release_settings.json"
    if settings_path.is_file():
        old = json.loads(settings_path.read_text())
        # what shapes the data and the training; the rest may change between runs
        free = {"workers", "weights_dtype", "bench_faces", "bench_seed"}
        changed = {k for k in s if k in old and old[k] != s[k] and k not in free}
        if changed:
            raise TfFaceError(f"{out} holds a release run with other settings "
                              f"({', '.join(sorted(changed))}); use a new --output_dir")
    write_json(settings_path, s)
    log = Log(out / "release_log.json")
    py = sys.executable
    data, train_dir, release = out / "data", out / "train", out / "release"
    run_step(log, "data: synthetic faces with ground truth -> real pipeline -> shards",
             [py, "-m", "tf_face.synthetic.make_dataset", f"--output={data}",
              f"--num_faces={s['num_faces']}", f"--seed={s['data_seed']}", "--shard_size=64",
              f"--wrinkle_variety={s['wrinkle_variety']}",
              f"--workers={s['workers']}"])
    for job, steps, cmd in train_commands(s, data / "shards", train_dir):
        if stage_done(train_dir, job, steps):
            print(f"\n=== train {job}: done ({steps} steps), skipped")
            continue
        run_step(log, f"train {job}: {steps} steps", cmd)

    print("\n=== release: inference weights only, "
          f"{s['weights_dtype']}, manifest -> {release}", flush=True)
    t = time.perf_counter()
    write_release(train_dir, release, dtype=s["weights_dtype"])
    fp16 = fp16_check(train_dir, release, data / "shards")
    log.add("release", time.perf_counter() - t)

    bench_json = out / "benchmark.json"
    run_step(log, "benchmark: held-out synthetic faces, every path, per tone group",
             [py, str(REPO / "eval" / "synthetic_benchmark.py"), f"--weights_dir={release}",
              f"--json={bench_json}", f"--num_faces={s['bench_faces']}",
              f"--seed={s['bench_seed']}", "--skin_tone=balanced",
              f"--out_dir={out / 'benchmark'}"])
    real_sheet = ""
    if FLAGS.real_photos:
        run_step(log, "real photos: report with the release weights",
                 [py, str(REPO / "eval" / "real_photos.py"), f"--image_dir={FLAGS.real_photos}",
                  "--recursive",
                  f"--weights_dir={release}", f"--json={out / 'real_photos.json'}",
                  f"--out_dir={out / 'real_photos'}"])
        sheets = sorted((out / "real_photos").glob("*.png"))
        real_sheet = ", ".join(str(p) for p in sheets)

    sys.path.insert(0, str(REPO))
    bench = json.loads(bench_json.read_text())
    curves = plot_curves(train_dir, out / "learning_curves.png")
    write_json(out / "learning_curves.json", curves, indent=None)
    command = "python -m train.release " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    real = (json.loads((out / "real_photos.json").read_text())
            if FLAGS.real_photos and (out / "real_photos.json").is_file() else None)
    card = model_card(s, log, bench, format_table(bench), fp16, curves, command, real_sheet,
                      real)
    add_release_files(release, [bench_json, out / "learning_curves.png"], model_card=card)
    print(f"\n=== done: {release} (model card: {release / 'MODEL_CARD.md'})")
    print(format_table(bench))
    if FLAGS.ship:
        print(f"    shipped to {ship(release)}")
    return release


def ship(release: Path) -> Path:
    """Copy a verified release folder into the package (``tf_face/weights/<version>``)."""
    verify_manifest(release)
    with atomic_output_dir(PACKAGED_WEIGHTS_DIR, overwrite=True) as tmp:
        shutil.copytree(release, tmp, dirs_exist_ok=True)
        verify_manifest(tmp)
    return PACKAGED_WEIGHTS_DIR


def main(argv):
    del argv
    quiet_tensorflow(verbose=FLAGS.verbose)
    return run_single(run_release, FLAGS.debug)


if __name__ == "__main__":
    define_flags()
    app.run(main)
