"""68-landmark fit accuracy on real photos: reprojection error of the fitted model.

    python eval/landmark_accuracy.py --model=ict_npz:../shared/data/ict_face_model.npz \
        --json=/tmp/lm_ict.json [--compare=/tmp/lm_ict_before.json]

Runs the geometry pipeline (BlazeFace -> MediaPipe 468 -> fit; the largest
face of each photo) on ``--faces_dir/*/*.{jpg,png}`` (the 56 shared photos;
sub-folders such as ``deep3d_examples/detections`` are not searched) and
reports per photo:

* ``rmse_iod``: ``FittedFace.landmark_rmse_iod`` (what ``fit.json`` says);
* ``groups``: RMS reprojection error / IOD per iBUG-68 group (jaw 0-16,
  brows 17-26, nose 27-35, eyes 36-47, mouth 48-67);
* ``per_landmark``: the 68 errors / IOD.

IOD = distance between the observed eye centres (means of iBUG 36-41 and
42-47). For 68-point fits the prediction of landmark k is the fitted mesh's
vertex ``landmark_vertices[k]`` (the sliding-contour choice for the jaw),
projected. For the default model (all 468 points observed, a similarity fit)
``rmse_iod`` is, as in ``fit.json``, the 468-point distance of the *posed
mean shape* from the observations; the groups are that distance on its 68
iBUG vertices.

``--compare=OLD.json`` prints photo | rmse_iod before | after and the group
medians of both; ``--nocontour_along_jaw`` fits without the final
along-the-jaw pass (``FitOptions.contour_along_jaw``). Results for the ICT
model: ``tf_face/fitting/README.md``. JSON keys: ``model``, ``photos`` (list of
``{photo, rmse_iod, groups, per_landmark}`` or ``{photo, error}``),
``median_rmse_iod``, ``mean_rmse_iod``, ``median_groups``, ``astronaut_rmse_iod``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from absl import app, flags
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tf_face.errors import TfFaceError  # noqa: E402
from tf_face.ibug import inter_ocular_distance  # noqa: E402
from tf_face.image_io import load_image  # noqa: E402
from tf_face.pipeline import GeometryPipeline  # noqa: E402
from tf_face.types import model_to_image  # noqa: E402
from tf_face.eval_metrics import write_result_json  # noqa: E402
if __name__ == "__main__":   # a script: TensorFlow without its start-up noise
    from tf_face.tf_import import quiet_tensorflow
    quiet_tensorflow()

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "default", "Face model spec (e.g. ict_npz:PATH).")
flags.DEFINE_string("json", None, "Write the results here.")
flags.DEFINE_string("compare", None, "A JSON written by an earlier run: print before | after.")
flags.DEFINE_string("faces_dir", str(REPO.parent / "shared" / "data" / "faces"),
                    "Photo folder: its */*.jpg and */*.png are used.")
flags.DEFINE_boolean("progress", True, "Show a progress bar.")
flags.DEFINE_boolean("landmark_flip", True,
                     "Average the landmarker's last pass with its mirrored crop's "
                     "(GeometryPipeline(landmark_flip=...)); --nolandmark_flip: one crop.")
flags.DEFINE_boolean("contour_along_jaw", True,
                     "FitOptions.contour_along_jaw (jaw landmarks may slide along the jaw).")

GROUPS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
          "eyes": range(36, 48), "mouth": range(48, 68)}


def list_photos(faces_dir: Path) -> list:
    return sorted(p for p in faces_dir.glob("*/*")
                  if p.is_file() and p.suffix.lower() in (".jpg", ".png"))


def landmark_errors(result, model) -> tuple[np.ndarray, np.ndarray]:
    """(observed [68,2], predicted [68,2]) image px for one PipelineResult."""
    f = result.fitted
    obs = np.asarray(f.landmarks_observed, np.float64)
    if model.observed_shape and obs.shape[0] == model.num_vertices:
        lm = np.asarray(model.landmarks68)
        posed = model_to_image(np.asarray(model.mean_shape, np.float64), f.scale,
                               f.rotation, f.translation)
        return obs[lm], posed[lm, :2]
    pred = np.asarray(f.vertices_image, np.float64)[np.asarray(f.landmark_vertices)][:, :2]
    return obs[:, :2], pred


def summarise(obs: np.ndarray, pred: np.ndarray) -> dict:
    iod = inter_ocular_distance(obs)
    e = np.linalg.norm(obs - pred, axis=1) / iod
    return {"groups": {g: float(np.sqrt(np.mean(e[list(r)] ** 2))) for g, r in GROUPS.items()},
            "per_landmark": [round(float(x), 5) for x in e]}


def run(model_spec: str, faces_dir: Path, progress: bool = True, fit_options=None,
        landmark_flip: bool = True) -> dict:
    photos = list_photos(faces_dir)
    pipe = GeometryPipeline(model_spec, fit_options=fit_options, landmark_flip=landmark_flip)
    it = photos
    if progress:
        it = tqdm(photos, desc="photos", unit="photo", file=sys.stderr)
    rows = []
    for p in it:
        name = str(p.relative_to(faces_dir))
        try:
            res = pipe.run(load_image(p))
        except TfFaceError as e:
            rows.append({"photo": name, "error": str(e)})
            continue
        row = {"photo": name, "rmse_iod": float(res.fitted.landmark_rmse_iod)}
        row.update(summarise(*landmark_errors(res, pipe.model)))
        rows.append(row)
    ok = [r for r in rows if "rmse_iod" in r]
    out = {"model": model_spec, "faces_dir": str(faces_dir), "photos": rows,
           "photos_fitted": len(ok), "photos_failed": len(rows) - len(ok)}
    if ok:
        out["median_rmse_iod"] = float(np.median([r["rmse_iod"] for r in ok]))
        out["mean_rmse_iod"] = float(np.mean([r["rmse_iod"] for r in ok]))
        out["median_groups"] = {g: float(np.median([r["groups"][g] for r in ok])) for g in GROUPS}
    ast = [r for r in ok if Path(r["photo"]).stem == "astronaut"]
    if ast:
        out["astronaut_rmse_iod"] = ast[0]["rmse_iod"]
    return out


def table(new: dict, old: dict | None) -> str:
    before = {r["photo"]: r for r in (old or {}).get("photos", [])}
    g = list(GROUPS)
    head = "| photo | " + ("rmse_iod before | " if old else "") + "rmse_iod | " + \
        " | ".join(g) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def fmt(r, k=None):
        if r is None or "rmse_iod" not in r:
            return "—" if r is None else "fail"
        return f"{(r['rmse_iod'] if k is None else r['groups'][k]):.3f}"

    for r in new["photos"]:
        cells = [r["photo"]]
        if old:
            cells.append(fmt(before.get(r["photo"])))
        cells.append(fmt(r) if "rmse_iod" in r else f"fail: {r['error']}")
        cells += [fmt(r, k) if "rmse_iod" in r else "" for k in g]
        lines.append("| " + " | ".join(cells) + " |")
    for label, d in (("**median (before)**", old), ("**median**", new)):
        if d and "median_rmse_iod" in d:
            cells = [label] + ([""] if old else []) + [f"{d['median_rmse_iod']:.3f}"]
            cells += [f"{d['median_groups'][k]:.3f}" for k in g]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    del argv
    faces = Path(FLAGS.faces_dir)
    if not list_photos(faces):
        sys.exit(f"no photos in {faces}/*/ (is ../shared checked out?)")
    # lazy: tf_face.fitting loads scipy.linalg (~150 ms), not needed for --help
    from tf_face.fitting import FitOptions
    out = run(FLAGS.model, faces, FLAGS.progress,
              FitOptions(contour_along_jaw=FLAGS.contour_along_jaw), FLAGS.landmark_flip)
    out["contour_along_jaw"] = FLAGS.contour_along_jaw
    out["landmark_flip"] = FLAGS.landmark_flip
    old = json.loads(Path(FLAGS.compare).read_text()) if FLAGS.compare else None
    print(table(out, old))
    nan = float("nan")
    print(f"model {FLAGS.model}: {out['photos_fitted']} photos fitted, "
          f"{out['photos_failed']} failed; median rmse_iod {out.get('median_rmse_iod', nan):.4f}, "
          f"astronaut {out.get('astronaut_rmse_iod', nan):.4f}")
    if FLAGS.json:
        write_result_json(FLAGS.json, out)


if __name__ == "__main__":
    app.run(main)
