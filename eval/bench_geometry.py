"""Benchmark of the geometry pipeline: detect + landmarks + fit + unwrap.

    python eval/bench_geometry.py [--model=default] [--repeats=3] --json=PATH

Runs on every photo in ../shared/data/faces (when present; else the astronaut
from scikit-image), after one warm-up pass, and reports warm milliseconds per
stage (median over photos x repeats) and photos per second. Image decoding
and writing files are excluded (they depend on the file format and disk).
Prints a table and writes ``{"photos_per_second": ..., "ms_per_stage": {...}}``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import skimage.data
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tf_face.cli.common import IMAGE_SUFFIXES  # noqa: E402
from tf_face.errors import TfFaceError  # noqa: E402
from tf_face.image_io import load_image  # noqa: E402
from tf_face.pipeline import GeometryPipeline  # noqa: E402
from tf_face.eval_metrics import write_result_json  # noqa: E402
if __name__ == "__main__":   # a script: TensorFlow without its start-up noise
    from tf_face.tf_import import quiet_tensorflow
    quiet_tensorflow()

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the results here.")
flags.DEFINE_string("model", "default", "Face model spec.")
flags.DEFINE_integer("repeats", 3, "Timed passes over the photo set.")
flags.DEFINE_string("faces_dir", str(REPO.parent / "shared" / "data" / "faces"),
                    "Photo folder (searched recursively).")


def load_photos(faces_dir: Path) -> list:
    photos = []
    if faces_dir.is_dir():
        for p in sorted(faces_dir.rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                photos.append((str(p.relative_to(faces_dir)), load_image(p)))
    if not photos:
        photos = [("astronaut", skimage.data.astronaut())]
    return photos


def main(argv):
    del argv

    photos = load_photos(Path(FLAGS.faces_dir))
    pipe = GeometryPipeline(FLAGS.model)
    usable = []
    for name, img in photos:  # warm-up pass, and drop photos the pipeline rejects
        try:
            pipe.run(img)
            usable.append((name, img))
        except TfFaceError as e:
            print(f"skipped {name}: {e}")
    stages: dict[str, list] = {}
    wall = 0.0
    for _ in range(FLAGS.repeats):
        for _, img in usable:
            t = time.perf_counter()
            res = pipe.run(img)
            wall += time.perf_counter() - t
            for k, v in res.timings_ms.items():
                stages.setdefault(k, []).append(v)
    n = FLAGS.repeats * len(usable)
    ms = {k: float(np.median(v)) for k, v in stages.items()}
    result = {
        "photos": len(usable),
        "photos_skipped": len(photos) - len(usable),
        "runs": n,
        "model": FLAGS.model,
        "photos_per_second": n / wall if wall else 0.0,
        "ms_per_stage": ms,
        "ms_per_stage_mean": {k: float(np.mean(v)) for k, v in stages.items()},
        "mean_image_pixels": float(np.mean([i.shape[0] * i.shape[1] for _, i in usable])),
    }
    print(f"{'stage':<12}{'median ms':>12}{'mean ms':>12}")
    for k in ms:
        print(f"{k:<12}{ms[k]:>12.2f}{result['ms_per_stage_mean'][k]:>12.2f}")
    print(f"{len(usable)} photos x {FLAGS.repeats} passes: "
          f"{result['photos_per_second']:.1f} photos/s (goal >= 20)")
    if FLAGS.json:
        write_result_json(FLAGS.json, result)


if __name__ == "__main__":
    app.run(main)
