"""Benchmark of the trained networks on held-out synthetic faces with ground truth.

    python eval/synthetic_benchmark.py --weights_dir=DIR --json=PATH \\
        [--num_faces=12 --seed=1000 --out_dir=PICS]

Face i is drawn exactly as ``tf_face.synthetic.make_dataset`` draws it
(``default_rng([seed, i])``, default ``Difficulty``), so a seed not used for
the training set (default 1000) gives a held-out set. Each rendered photo goes
through the **real** geometry pipeline (``GeometryPipeline("default")``:
detect -> landmarks -> fit -> unwrap), then through B-Net, FAN and DRN exactly
as in training (``tf_face.training.stages``: ``bnet_predict``; FAN's output
as albedo; DRN's rate -> ``displacement_from_rate`` -> ``detail_normals``
with positions / (fit scale x detail_unit)). The texture is quantised to
8 bits first, as the TFRecord shards store it.

Metrics (``tf_face.eval_metrics``), per face, then the mean over the faces the
pipeline accepted (each face counts once):

* ``albedo_error_{pca,fan}_{visible,hidden}``: mean |albedo - truth| in linear
  RGB; visible = atlas & pipeline visibility & not occluded (truth), hidden =
  the rest of the atlas. PCA = B-Net's R_a = m_a + U_a p_a;
  ``albedo_error_mean_*``: the prior's mean m_a alone (a no-learning baseline);
  ``albedo_error_oracle_pca_*``: the truth's own prior draw (``prior_albedo``,
  before the procedural detail), i.e. the best a perfect B-Net could do with
  the default model's prior: FAN has to beat this to show detail beyond PCA.
* ``sh_error`` (headline): RMS over the 27 SH coefficients of B-Net's lighting
  vs the truth (camera frame, linear RGB shading). Also
  ``sh_error_scale_invariant`` (prediction rescaled by the least-squares
  factor: albedo x light has a global scale ambiguity) and ``sh_error_relative``.
  Raw RMS is the headline because the albedo errors above are absolute too,
  and the PCA prior pins the albedo's scale.
* ``normal_error_{base,drn}_deg`` over the atlas texels, ``*_wrinkle_deg`` over
  ``wrinkle_mask(truth.displacement)``, ``*_visible_deg`` over visible texels:
  angle between the pipeline's UV normal map (base) / base + DRN detail
  normals and the truth's detail normals (camera frame).
  ``normal_error_truth_base_deg`` is the truth's own base-vs-detail angle
  (what a perfect base mesh would score: the size of the detail signal).
* ``rerender_error``: visible texels, mean |I_t - shade(FAN albedo, detail
  normals, B-Net SH)| in the training shading space (linear RGB unless the
  weights were trained with ``--color_space=srgb``); ``rerender_error_base``
  the same with the base normals.

Writes the JSON (summary keys, per-face values, failures, counts, settings),
prints a table, and with ``--out_dir`` a contact sheet
``synthetic_benchmark_sheet.png`` (one row per face: photo crop | unwrapped
texture | truth albedo | PCA albedo | FAN albedo | base shading | DRN detail
shading | truth detail shading; shading = grey albedo under one fixed light,
so only the normals differ; albedos shown in sRGB over the whole atlas).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The CLI flags (defined only when run as a script, so importing this
    module - e.g. from tests - never clashes with other CLIs' flags)."""
    flags.DEFINE_string("weights_dir", None, "Weights folder of the training jobs (bnet/fan/drn.keras).")
    flags.DEFINE_string("json", None, "Write the results here.")
    flags.DEFINE_integer("num_faces", 12, "Held-out faces to generate.")
    flags.DEFINE_integer("seed", 1000, "Seed of the held-out set (not the training seed).")
    flags.DEFINE_integer("image_size", 512, "Photo size in pixels.")
    flags.DEFINE_string("out_dir", None, "Write the contact sheet PNG here.")
    flags.DEFINE_string("ict_npz", "", "Draw shapes from the ICT model (as make_dataset --ict_npz).")
    flags.DEFINE_bool("progress", True, "Show a progress bar (--noprogress: none).")
    flags.DEFINE_bool("debug", False, "Show tracebacks of internal errors.")


SUMMARY_KEYS = (
    "albedo_error_pca_visible", "albedo_error_fan_visible",
    "albedo_error_pca_hidden", "albedo_error_fan_hidden",
    "albedo_error_mean_visible", "albedo_error_mean_hidden",
    "albedo_error_oracle_pca_visible", "albedo_error_oracle_pca_hidden",
    "sh_error", "sh_error_scale_invariant", "sh_error_relative",
    "normal_error_base_deg", "normal_error_drn_deg",
    "normal_error_base_wrinkle_deg", "normal_error_drn_wrinkle_deg",
    "normal_error_base_visible_deg", "normal_error_drn_visible_deg",
    "normal_error_truth_base_deg", "normal_error_truth_base_wrinkle_deg",
    "normal_error_truth_base_visible_deg",
    "rerender_error", "rerender_error_base",
)
COUNT_KEYS = ("texels_visible", "texels_hidden", "texels_atlas", "texels_wrinkle")


class Networks:
    """B-Net (required), FAN and DRN (optional) + the training context."""

    def __init__(self, weights_dir):
        import tensorflow as tf

        from tf_face.errors import TfFaceError
        from tf_face.facemodel import load_face_model
        from tf_face.losses import LossWeights
        from tf_face.training.albedo_model import uv_albedo_model
        from tf_face.training.jobs import CONFIG_FILE, load_stage_model, model_detail_unit
        from tf_face.training.stages import StageContext
        from tf_face.uv import get_atlas

        folder = Path(weights_dir)
        cfg_path = folder / CONFIG_FILE
        if not cfg_path.is_file():
            raise TfFaceError(f"{cfg_path} not found: --weights_dir must be a training weights folder")
        self.config = json.loads(cfg_path.read_text())
        model_name = self.config.get("model", "default")
        self.uv_size = int(self.config.get("uv_size", 256))
        if model_name != "default" or self.uv_size != 256:
            raise TfFaceError("the synthetic truth is in the default model's 256x256 UV space; "
                              f"these weights use model={model_name!r}, uv_size={self.uv_size}")
        self.model = load_face_model("default")
        self.atlas = get_atlas(self.model, size=self.uv_size)
        self.color_space = self.config.get("color_space", "linear")
        self.detail_unit = float(self.config.get("detail_unit") or model_detail_unit(self.model))
        albedo = uv_albedo_model(self.model, self.atlas, self.config.get("num_albedo"))
        self.ctx = StageContext(tf.constant(albedo.mean), tf.constant(albedo.basis),
                                self.atlas.mask, LossWeights(), self.color_space)
        self.bnet = load_stage_model(folder, "bnet")
        self.fan = load_stage_model(folder, "fan") if (folder / "fan.keras").is_file() else None
        self.drn = load_stage_model(folder, "drn") if (folder / "drn.keras").is_file() else None

    def predict(self, sample, fit_scale: float) -> dict:
        """Network outputs for one UV sample, as numpy [H,W,...] (linear albedos)."""
        import tensorflow as tf

        from tf_face.render import sh_shade
        from tf_face.training.colour import srgb_to_linear, to_shading_space
        from tf_face.training.detail import (detail_normals, displacement_from_rate,
                                             fd_orientation)
        from tf_face.training.stages import bnet_predict

        ctx = self.ctx
        texture = tf.constant((np.round(sample.texture * 255.0) / 255.0)[None], tf.float32)
        normals = tf.constant(sample.normals[None], tf.float32)
        _, gamma, pca = bnet_predict(self.bnet, texture, ctx, training=False)
        fan = self.fan(texture, training=False) if self.fan is not None else None
        out = {"sh": gamma[0].numpy(), "pca": pca[0].numpy(), "mean": ctx.albedo_mean.numpy(),
               "fan": None if fan is None else fan[0].numpy(), "drn_normals": None}
        if self.drn is not None:
            valid = ctx.detail_valid * tf.cast(tf.reduce_any(normals != 0, -1, keepdims=True),
                                               tf.float32)
            position = tf.constant(sample.position[None], tf.float32) / (fit_scale * self.detail_unit)
            rate = self.drn(texture, training=False)
            delta = displacement_from_rate(rate, normals, valid)
            orient = fd_orientation(position, normals, valid)
            out["drn_normals"] = detail_normals(position, normals, delta, valid, orient)[0].numpy()
            out["rate"] = rate[0, ..., 0].numpy()
        target = to_shading_space(texture, self.color_space)[0].numpy()
        out["target"] = target
        albedo_for_shading = fan if fan is not None else pca
        out["rerender"] = sh_shade(albedo_for_shading, normals if out["drn_normals"] is None
                                   else out["drn_normals"][None], gamma)[0].numpy()
        out["rerender_base"] = sh_shade(albedo_for_shading, normals, gamma)[0].numpy()
        if self.color_space == "srgb":     # compare albedos with the (linear) truth
            out["pca"] = srgb_to_linear(out["pca"]).numpy()
            out["mean"] = srgb_to_linear(out["mean"]).numpy()
            if out["fan"] is not None:
                out["fan"] = srgb_to_linear(out["fan"]).numpy()
        return out


def face_metrics(truth, sample, pred) -> dict:
    """All per-face metrics (``tf_face.eval_metrics``) of one face."""
    from tf_face import eval_metrics as M
    from tf_face.synthetic.wrinkles import wrinkle_mask

    atlas = np.asarray(truth.atlas_mask, bool)
    vis, hid = M.visibility_split(sample.mask, truth.occlusion, atlas)
    wr = atlas & wrinkle_mask(truth.displacement)
    r = {"texels_visible": int(vis.sum()), "texels_hidden": int(hid.sum()),
         "texels_atlas": int(atlas.sum()), "texels_wrinkle": int(wr.sum())}
    r["albedo_error_pca_visible"] = M.masked_mae(pred["pca"], truth.albedo, vis)[0]
    r["albedo_error_pca_hidden"] = M.masked_mae(pred["pca"], truth.albedo, hid)[0]
    prior = getattr(truth, "prior_albedo", None)
    if prior is not None:
        r["albedo_error_oracle_pca_visible"] = M.masked_mae(prior, truth.albedo, vis)[0]
        r["albedo_error_oracle_pca_hidden"] = M.masked_mae(prior, truth.albedo, hid)[0]
    if pred.get("mean") is not None:
        r["albedo_error_mean_visible"] = M.masked_mae(pred["mean"], truth.albedo, vis)[0]
        r["albedo_error_mean_hidden"] = M.masked_mae(pred["mean"], truth.albedo, hid)[0]
    if pred["fan"] is not None:
        r["albedo_error_fan_visible"] = M.masked_mae(pred["fan"], truth.albedo, vis)[0]
        r["albedo_error_fan_hidden"] = M.masked_mae(pred["fan"], truth.albedo, hid)[0]
    r["sh_error"] = M.sh_rms(pred["sh"], truth.sh)
    r["sh_error_scale_invariant"] = M.sh_scale_invariant_rms(pred["sh"], truth.sh)
    r["sh_error_relative"] = M.sh_relative_error(pred["sh"], truth.sh)
    regions = {"": atlas, "_wrinkle": wr, "_visible": vis}
    for suffix, m in regions.items():
        r[f"normal_error_base{suffix}_deg"] = M.mean_angular_error(sample.normals, truth.normals, m)[0]
        if pred["drn_normals"] is not None:
            r[f"normal_error_drn{suffix}_deg"] = M.mean_angular_error(
                pred["drn_normals"], truth.normals, m)[0]
        r[f"normal_error_truth_base{suffix}_deg"] = M.mean_angular_error(
            truth.base_normals, truth.normals, m)[0]
    r["rerender_error"] = M.masked_mae(pred["rerender"], pred["target"], vis)[0]
    r["rerender_error_base"] = M.masked_mae(pred["rerender_base"], pred["target"], vis)[0]
    return r


def summarize(per_face: list, failures: list, num_faces: int) -> dict:
    from tf_face.eval_metrics import nanmean
    out = {}
    for k in SUMMARY_KEYS:
        vals = [f.get(k) for f in per_face]
        out[k] = nanmean(vals) if any(v is not None for v in vals) else None
    for k in COUNT_KEYS:
        out[k] = int(sum(f[k] for f in per_face))
    out.update({"faces": num_faces, "faces_evaluated": len(per_face),
                "failures": failures, "num_failures": len(failures)})
    return out


# ---------------------------------------------------------------- pictures
_TILE = 256


def _srgb_tile(linear, mask) -> np.ndarray:
    from tf_face.synthetic.scene import linear_to_srgb_np
    img = (linear_to_srgb_np(linear) * 255).round().astype(np.uint8)
    img[~np.asarray(mask, bool)] = 0
    return img


def _grey_shading(normals, mask) -> np.ndarray:
    """Grey albedo under one fixed light (front-upper-left), sRGB uint8."""
    from tf_face.render import ambient_sh, sh_shade
    sh = ambient_sh(1, 0.35)
    sh[0, 2, :] += 0.45   # z (towards the camera)
    sh[0, 1, :] += 0.25   # y (up)
    sh[0, 3, :] -= 0.30   # x (from the left of the image)
    n = np.asarray(normals, np.float32)[None]
    lin = sh_shade(np.full_like(n, 0.7), n, sh.astype(np.float32))[0].numpy()
    return _srgb_tile(lin, np.asarray(mask, bool) & (np.linalg.norm(normals, axis=-1) > 0.5))


def _photo_crop(image, truth) -> np.ndarray:
    import cv2
    v = truth.vertices_image[:, :2]
    lo, hi = v.min(0), v.max(0)
    c, half = 0.5 * (lo + hi), 0.6 * float(np.max(hi - lo))
    h, w = image.shape[:2]
    x0, y0 = int(max(c[0] - half, 0)), int(max(c[1] - half, 0))
    x1, y1 = int(min(c[0] + half, w)), int(min(c[1] + half, h))
    crop = image[y0:y1, x0:x1] if (x1 > x0 + 4 and y1 > y0 + 4) else image
    return cv2.resize(crop, (_TILE, _TILE), interpolation=cv2.INTER_AREA)


def sheet_row(image, truth, sample, pred) -> np.ndarray:
    import cv2
    atlas = np.asarray(truth.atlas_mask, bool)
    tex = (np.clip(sample.texture, 0, 1) * 255).round().astype(np.uint8)
    tex[~np.asarray(sample.mask, bool)] = (20, 20, 60)
    blank = np.zeros((_TILE, _TILE, 3), np.uint8)
    tiles = [_photo_crop(image, truth), tex, _srgb_tile(truth.albedo, atlas),
             _srgb_tile(pred["pca"], atlas),
             _srgb_tile(pred["fan"], atlas) if pred["fan"] is not None else blank,
             _grey_shading(sample.normals, atlas),
             _grey_shading(pred["drn_normals"], atlas) if pred["drn_normals"] is not None else blank,
             _grey_shading(truth.normals, atlas)]
    tiles = [t if t.shape[:2] == (_TILE, _TILE) else
             cv2.resize(t, (_TILE, _TILE), interpolation=cv2.INTER_AREA) for t in tiles]
    return np.concatenate(tiles, axis=1)


SHEET_COLUMNS = ("photo", "texture", "truth albedo", "PCA albedo", "FAN albedo",
                 "base shading", "DRN shading", "truth shading")


def save_sheet(rows, path) -> None:
    import cv2
    header = np.full((28, rows[0].shape[1], 3), 255, np.uint8)
    for i, name in enumerate(SHEET_COLUMNS):
        cv2.putText(header, name, (i * _TILE + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                    (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.concatenate([header] + list(rows), axis=0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


# ---------------------------------------------------------------- the run
def run_benchmark(weights_dir, num_faces: int, seed: int, image_size: int = 512,
                  out_dir=None, ict_npz=None, progress: bool = True) -> dict:
    from tqdm import tqdm

    from tf_face.errors import TfFaceError
    from tf_face.pipeline import GeometryPipeline
    from tf_face.synthetic import render_face, sample_face
    from tf_face.synthetic.sampling import Difficulty

    nets = Networks(weights_dir)
    pipe = GeometryPipeline("default", uv_size=nets.uv_size)
    ict = None
    if ict_npz:
        from tf_face.synthetic.ict_shapes import IctShapes
        ict = IctShapes.load(ict_npz, nets.model)
    difficulty = Difficulty().validate()
    per_face, failures, rows = [], [], []
    t0 = time.perf_counter()
    for i in tqdm(range(num_faces), desc="benchmark", unit="face", file=sys.stderr,
                  disable=not progress):
        face = sample_face(np.random.default_rng([int(seed), i]), nets.model, difficulty, ict=ict)
        image, truth = render_face(face, image_size, model=nets.model, atlas=nets.atlas)
        try:
            res = pipe.run(image)
        except TfFaceError as e:
            failures.append({"face": i, "error": str(e)})
            continue
        pred = nets.predict(res.sample, float(res.fitted.scale))
        m = face_metrics(truth, res.sample, pred)
        m.update({"face": i, "yaw": float(truth.yaw),
                  "occluded_texels": int(np.asarray(truth.occlusion).sum()),
                  "landmark_rmse_iod": float(res.fitted.landmark_rmse_iod)})
        per_face.append(m)
        if out_dir:
            rows.append(sheet_row(image, truth, res.sample, pred))
    result = summarize(per_face, failures, num_faces)
    stages = nets.config.get("stages", {})
    result.update({
        "per_face": per_face,
        "sh_headline": "sh_error = RMS over the 27 coefficients (raw, no rescaling)",
        "albedo_space": "linear RGB", "rerender_space": nets.color_space,
        "settings": {"weights_dir": str(weights_dir), "seed": int(seed),
                     "num_faces": int(num_faces), "image_size": int(image_size),
                     "ict": bool(ict_npz), "color_space": nets.color_space,
                     "detail_unit": nets.detail_unit, "has_fan": nets.fan is not None,
                     "has_drn": nets.drn is not None,
                     "training_steps": {k: v.get("steps") for k, v in stages.items()},
                     "training_data": {k: v.get("data") for k, v in stages.items()}},
        "seconds": time.perf_counter() - t0,
    })
    if out_dir and rows:
        path = Path(out_dir) / "synthetic_benchmark_sheet.png"
        save_sheet(rows, path)
        result["sheet"] = str(path)
    return result


def json_safe(x):
    """NaN/Inf -> None (strict JSON), recursively."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def format_table(result: dict) -> str:
    def f(v):
        return "   n/a" if v is None or not np.isfinite(v) else f"{v:8.4f}"
    lines = [f"{result['faces_evaluated']}/{result['faces']} faces evaluated "
             f"({result['num_failures']} rejected by the pipeline)",
             f"{'albedo MAE (linear)':<26}{'PCA':>10}{'FAN':>10}{'mean m_a':>11}"
             f"{'oracle PCA':>11}"]
    for part in ("visible", "hidden"):
        lines.append(f"  {part:<24}{f(result[f'albedo_error_pca_{part}']):>10}"
                     f"{f(result[f'albedo_error_fan_{part}']):>10}"
                     f"{f(result[f'albedo_error_mean_{part}']):>11}"
                     f"{f(result[f'albedo_error_oracle_pca_{part}']):>11}")
    lines.append(f"{'normal error (deg)':<26}{'base':>10}{'base+DRN':>10}{'truth base':>11}")
    for suffix, name in (("", "atlas"), ("_wrinkle", "wrinkles"), ("_visible", "visible")):
        tb = result.get(f"normal_error_truth_base{suffix}_deg")
        lines.append(f"  {name:<24}{f(result[f'normal_error_base{suffix}_deg']):>10}"
                     f"{f(result[f'normal_error_drn{suffix}_deg']):>10}{f(tb):>11}")
    lines.append(f"{'SH RMS (headline)':<26}{f(result['sh_error']):>10}")
    lines.append(f"{'SH RMS scale-invariant':<26}{f(result['sh_error_scale_invariant']):>10}")
    lines.append(f"{'SH relative':<26}{f(result['sh_error_relative']):>10}")
    lines.append(f"{'re-render MAE (visible)':<26}{f(result['rerender_error']):>10}"
                 f"   (base normals {f(result['rerender_error_base']).strip()})")
    return "\n".join(lines)


def main(argv):
    del argv
    from tf_face.cli.common import run_single

    if not FLAGS.weights_dir:
        print("error: --weights_dir is required", file=sys.stderr)
        return 2
    if FLAGS.num_faces < 1:
        print("error: --num_faces must be >= 1", file=sys.stderr)
        return 2
    box = {}

    def job():
        box["r"] = run_benchmark(FLAGS.weights_dir, FLAGS.num_faces, FLAGS.seed,
                                 FLAGS.image_size, FLAGS.out_dir, FLAGS.ict_npz or None,
                                 progress=FLAGS.progress)

    code = run_single(job, debug=FLAGS.debug)
    r = box.get("r")
    if r is None:
        return code
    print(format_table(r))
    if r.get("sheet"):
        print(f"contact sheet: {r['sheet']}")
    if FLAGS.json:
        Path(FLAGS.json).parent.mkdir(parents=True, exist_ok=True)
        Path(FLAGS.json).write_text(json.dumps(json_safe(r), indent=2, allow_nan=False))
        print(f"wrote {FLAGS.json}")
    return code


if __name__ == "__main__":
    define_flags()
    app.run(main)
