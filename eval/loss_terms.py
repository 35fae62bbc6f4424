"""Each weighted loss term of B-Net, FAN and DRN at initialisation and after
training, on held-out synthetic faces, and the size of B-Net's p_a.

    python eval/loss_terms.py [--weights_dir=tf_face/weights/v4] [--num_faces=16]
        [--seed=1000] [--data=SHARDS] [--json=PATH]

"After training" is the weights folder's networks; "at initialisation" is the
same architectures with fresh weights (``keras.models.clone_model``, seeded by
``--init_seed``). Every term is computed by the training objectives
themselves (``tf_face.training.stages``) with the loss weights, reduction and
colour space each stage was trained with (the folder's
``tf_face_weights.json``), over the same batches; the table has the mean over
the batches of each term times its weight (the L1 norms summed per image,
mean over the batch, when the reduction is "sum"). DRN's objective shades
with FAN's albedo and B-Net's light: at initialisation those are the trained
ones too, so only DRN's own weights change (likewise B-Net's light in FAN's
E_pixel). Not measured: FAN's E_gan after training (a release folder holds
no discriminator) and E_percep (the release trained without it: no ImageNet
VGG weights offline).

Without ``--data`` the faces are made here: ``--num_faces`` synthetic faces
(``--seed``; the release's data has seed 0) run through the real geometry
pipeline into shards in a temporary folder.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tf_face.errors import TfFaceError  # noqa: E402
from tf_face.eval_metrics import write_result_json  # noqa: E402

#: the terms of each stage (``stages.*_forward``'s ``terms`` keys) and the
#: ``LossWeights`` field that weighs each (None: weight 1)
STAGE_TERMS = {
    "bnet": (("pixel", None), ("albedo_reg", "w_a"), ("sup", "w_sup")),
    "fan": (("pixel", "w_pixel"), ("gan_g", "w_gan"), ("sup", "w_sup")),
    "drn": (("grad", "w_grad"), ("const", "w_const"), ("smooth", "w_smooth"), ("sup", "w_sup")),
}
TERM_NAMES = {"pixel": "E_pixel", "albedo_reg": "E_a", "sup": "E_sup", "gan_g": "E_gan",
              "grad": "E_grad", "const": "E_const", "smooth": "E_smooth"}


def _fresh(net, seed: int):
    """The same architecture with fresh (seeded) weights."""
    import keras
    keras.utils.set_random_seed(seed)
    return keras.models.clone_model(net)


def _stage_context(weights_cfg: dict, stage: str, face_model, atlas, albedo):
    import tensorflow as tf

    from tf_face.detail import model_detail_unit
    from tf_face.losses import LossWeights
    from tf_face.training.stages import StageContext

    lw = dict(weights_cfg["stages"][stage]["loss_weights"])
    ctx = StageContext(tf.constant(albedo.mean), tf.constant(albedo.basis), atlas.mask,
                       LossWeights(**lw), weights_cfg.get("color_space", "linear"),
                       drn_max_displacement=float(weights_cfg.get("drn_max_displacement", 0.05)))
    ctx.detail_unit = model_detail_unit(face_model)
    return ctx


def measure(weights_dir, data, init_seed: int = 0, batch_size: int = 4,
            progress: bool = True) -> dict:
    """{"terms": [{stage, term, weight, init, trained}], "p_a_norm": {...}, ...}."""
    import tensorflow as tf
    from tqdm import tqdm

    from tf_face.data import make_dataset
    from tf_face.facemodel import load_face_model
    from tf_face.models import build_patchgan
    from tf_face.serving.weights import load_networks
    from tf_face.training.jobs import scaled_batch
    from tf_face.training.stages import bnet_forward, bnet_predict, drn_forward, fan_forward
    from tf_face.uv import get_atlas
    from tf_face.uv.albedo_model import uv_albedo_model

    cfg = json.loads((Path(weights_dir) / "tf_face_weights.json").read_text())
    if "stages" not in cfg or any(s not in cfg["stages"] for s in STAGE_TERMS):
        raise TfFaceError(f"{weights_dir}: tf_face_weights.json lacks the stages' loss "
                          "weights (a weights folder written by the training jobs)")
    face_model = load_face_model(cfg.get("model", "default"))
    atlas = get_atlas(face_model, size=int(cfg.get("uv_size", 256)))
    albedo = uv_albedo_model(face_model, atlas, cfg.get("num_albedo"))
    trained = load_networks(weights_dir)
    fresh = {name: _fresh(net, init_seed + k) for k, (name, net) in enumerate(trained.items())}
    disc = build_patchgan(input_size=atlas.size)       # untrained: E_gan at initialisation
    ctxs = {s: _stage_context(cfg, s, face_model, atlas, albedo) for s in STAGE_TERMS}
    sums = {(w, s, t): [] for w in ("init", "trained") for s in STAGE_TERMS
            for t, _ in STAGE_TERMS[s]}
    p_a_norms = {"init": [], "trained": []}
    batches = list(make_dataset(data, batch_size=batch_size, shuffle=False))
    if not batches:
        raise TfFaceError(f"no UV samples in {data}")
    faces = 0
    for batch in tqdm(batches, desc="loss terms", unit="batch", disable=not progress):
        faces += int(batch["texture"].shape[0])
        for which, nets in (("init", fresh), ("trained", trained)):
            _, terms, _ = bnet_forward(nets["bnet"], batch, ctxs["bnet"], training=False)
            _record(sums, which, "bnet", terms)
            p_a, _, _ = bnet_predict(nets["bnet"], batch["texture"], ctxs["bnet"], False)
            p_a_norms[which] += [float(v) for v in tf.norm(p_a, axis=-1).numpy()]
            # FAN and DRN use the trained B-Net (and FAN) as training did
            _, _, terms, _ = fan_forward(nets["fan"], disc, trained["bnet"], None, batch,
                                         ctxs["fan"], training=False)
            if which == "trained":
                terms = {k: v for k, v in terms.items() if k != "gan_g"}
            _record(sums, which, "fan", terms)
            _, terms, _ = drn_forward(nets["drn"], trained["fan"], trained["bnet"],
                                      scaled_batch(batch, ctxs["drn"]), ctxs["drn"],
                                      training=False)
            _record(sums, which, "drn", terms)
    rows = []
    for stage, terms in STAGE_TERMS.items():
        lw = cfg["stages"][stage]["loss_weights"]
        for term, wname in terms:
            w = 1.0 if wname is None else float(lw[wname])
            if w == 0.0:
                continue
            row = {"stage": stage, "term": TERM_NAMES[term], "weight_name": wname or "1",
                   "weight": w}
            for which in ("init", "trained"):
                v = sums[(which, stage, term)]
                row[which] = float(w * np.mean(v)) if v else None
            rows.append(row)
    return {"weights_dir": str(weights_dir), "faces": faces, "batch_size": batch_size,
            "reduction": {s: cfg["stages"][s]["loss_weights"]["reduction"] for s in STAGE_TERMS},
            "terms": rows,
            "p_a_norm": {k: {"mean": float(np.mean(v)), "min": float(np.min(v)),
                             "max": float(np.max(v))} for k, v in p_a_norms.items()},
            "not_measured": ["fan E_gan after training (no discriminator in a weights "
                             "folder)", "E_percep (trained with w_percep 0: no VGG weights)"]}


def _record(sums, which, stage, terms):
    for term, _ in STAGE_TERMS[stage]:
        if term in terms:
            sums[(which, stage, term)].append(float(terms[term].numpy()))


def format_table(r: dict) -> str:
    def num(v):
        return "-" if v is None else f"{v:.4g}"
    lines = [f"{r['faces']} held-out faces, reduction {r['reduction']}",
             f"{'stage':<6}{'weighted term':<22}{'at init':>12}{'trained':>12}"]
    for row in r["terms"]:
        label = (row["term"] if row["weight_name"] == "1"
                 else f"{row['weight_name']} {row['term']} ({row['weight']:g})")
        lines.append(f"{row['stage']:<6}{label:<22}{num(row['init']):>12}{num(row['trained']):>12}")
    p = r["p_a_norm"]
    def spread(q):
        return f"{q['mean']:.3f} ({q['min']:.3f}-{q['max']:.3f})"
    lines.append(f"B-Net |p_a| mean (min-max): at init {spread(p['init'])}, "
                 f"trained {spread(p['trained'])}")
    lines.append("not measured: " + "; ".join(r["not_measured"]))
    return "\n".join(lines)


def define_flags():
    flags.DEFINE_string("weights_dir", None, "Weights folder (default: the shipped release).")
    flags.DEFINE_string("data", None, "Shards to measure on (default: synthetic faces made "
                        "here, see --num_faces/--seed).")
    flags.DEFINE_integer("num_faces", 16, "Synthetic faces to make when --data is not given.")
    flags.DEFINE_integer("seed", 1000, "Their seed (the release's training data has seed 0).")
    flags.DEFINE_integer("batch_size", 4, "Faces per batch.")
    flags.DEFINE_integer("init_seed", 0, "Seed of the fresh weights.")
    flags.DEFINE_string("json", None, "Write the result here.")
    flags.DEFINE_bool("progress", True, "Progress bars.")
    flags.DEFINE_bool("debug", False, "Show the traceback of an error.")


def main(argv):
    del argv
    f = flags.FLAGS
    from tf_face.cli.common import run_single
    from tf_face.serving.weights import DEFAULT_WEIGHTS_DIR

    def job():
        if f.num_faces < 1 or f.batch_size < 1:
            raise TfFaceError("--num_faces and --batch_size must be >= 1")
        weights = f.weights_dir or str(DEFAULT_WEIGHTS_DIR)
        with tempfile.TemporaryDirectory(prefix="tf_face_loss_terms_") as tmp:
            data = f.data
            if data is None:
                from tf_face.synthetic.make_dataset import make_dataset as make_synthetic
                make_synthetic(tmp, f.num_faces, f.seed, progress=f.progress)
                data = str(Path(tmp) / "shards")
            r = measure(weights, data, f.init_seed, f.batch_size, f.progress)
        r["settings"] = {"num_faces": f.num_faces if f.data is None else None,
                         "seed": f.seed if f.data is None else None, "data": f.data,
                         "init_seed": f.init_seed}
        print(format_table(r))
        if f.json:
            write_result_json(f.json, r)
        return 0
    return run_single(job, debug=f.debug)


if __name__ == "__main__":
    define_flags()
    app.run(main)
