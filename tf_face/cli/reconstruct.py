"""Photo -> textured, detailed 3D face, relit and seen from new views.

Usage::

    python -m tf_face.cli.reconstruct --image=PHOTO --out_dir=OUT
        [--weights_dir=W] [--backend=tf|tflite] [--tflite_precision=float32|float16|int8]
        [--tflite_dir=DIR] [--model=SPEC] [--landmarks=FILE] [--face_index=N] [--overwrite]
    python -m tf_face.cli.reconstruct --image_dir=PHOTOS --out_dir=OUT   # OUT/<photo stem>/

Per photo: mesh.obj + mesh.mtl + albedo.png (FAN albedo, sRGB), albedo_pca.png,
lighting.json (SH + displacement scale), displacement.png (+ displacement.json),
detail_normals.png, mesh_detailed.obj/.mtl, mesh.glb, mesh_detailed.glb,
renders/ (overlay on the photo, relit x4, yaw -30/+30; each with a _base twin
without details), report.html (open it in a browser; works offline), plus the
unwrap outputs (texture.png, mask.png, normals.*, position.npy, overlay.png,
fit.json). See ``tf_face.serving.write`` for the conventions.

Weights: ``--weights_dir`` or, without it, ``DEFAULT_WEIGHTS_DIR``
(``<repo>/demo_out/weights``, what ``make demo`` trains). ``--backend=tflite``
runs the three networks with the TFLite interpreter from ``--tflite_dir``
(``python -m train.export --tflite`` output, DIR/tflite) or, without it, from
a cache converted once per weights (``~/.cache/tf_face/tflite/<digest>/``).

The flags shared with ``tf_face.cli.unwrap`` (image, image_dir, out_dir, model,
landmarks, face_index, min_cos, w_shape, w_expr, overwrite, debug) are that
module's flags, and photos go through the same loading / detection code, so
every bad input gives the same one-line error. Batch mode shows a progress bar
and writes OUT/failures.json; outputs are written atomically.
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags

from tf_face.cli import unwrap as _unwrap  # noqa: F401 - defines the shared flags
from tf_face.cli.common import (list_images, output_names, quiet_tensorflow, run_batch,
                                run_single)
from tf_face.serving.reconstruct import read_inputs, reconstruct_one
from tf_face.serving.weights import DEFAULT_WEIGHTS_DIR

FLAGS = flags.FLAGS
flags.DEFINE_string("weights_dir", None,
                    f"Trained weights folder (default: {DEFAULT_WEIGHTS_DIR}, made by "
                    "`make demo`).")
flags.DEFINE_enum("backend", "tf", ["tf", "tflite"],
                  "Run the networks with TensorFlow or with the TFLite interpreter.")
flags.DEFINE_enum("tflite_precision", "float32", ["float32", "float16", "int8"],
                  "Which .tflite files --backend=tflite uses.")
flags.DEFINE_string("tflite_dir", None,
                    "Folder with <net>_<precision>.tflite (train.export --tflite writes "
                    "DIR/tflite); default: convert once into the tf_face cache.")
flags.DEFINE_bool("renders", True, "Write renders/ (and show them in report.html).")


def make_reconstructor(log=print):
    from tf_face.errors import TfFaceError
    from tf_face.fitting import FitOptions
    from tf_face.serving.reconstruct import Reconstructor

    opts = FitOptions()
    if FLAGS.w_shape is not None:
        opts.w_shape = FLAGS.w_shape
    if FLAGS.w_expr is not None:
        opts.w_expr = FLAGS.w_expr
    recon = Reconstructor(FLAGS.weights_dir, backend=FLAGS.backend,
                          model=FLAGS.model if FLAGS["model"].present else None,
                          tflite_precision=FLAGS.tflite_precision, tflite_dir=FLAGS.tflite_dir,
                          min_cos=FLAGS.min_cos, fit_options=opts, log=log)
    if FLAGS["uv_size"].present and FLAGS.uv_size != recon.cfg.uv_size:
        raise TfFaceError(f"--uv_size={FLAGS.uv_size} but the weights in {recon.weights_dir} "
                          f"work at {recon.cfg.uv_size}; omit --uv_size")
    return recon


def main(argv):
    del argv
    quiet_tensorflow()
    from absl import logging
    logging.set_verbosity(logging.WARNING)  # the TFLite converter logs at INFO
    if bool(FLAGS.image) == bool(FLAGS.image_dir):
        print("error: give exactly one of --image or --image_dir", file=sys.stderr)
        return 2
    if not FLAGS.out_dir:
        print("error: --out_dir is required", file=sys.stderr)
        return 2
    if FLAGS.image_dir and FLAGS.landmarks:
        print("error: --landmarks works with --image only", file=sys.stderr)
        return 2
    out = Path(FLAGS.out_dir)
    holder = {}
    if FLAGS.image:
        # as in unwrap: bad photos, landmark files and an occupied --out_dir
        # fail before any model (or weights) is loaded
        def check():
            from tf_face.outputs import check_output_free
            check_output_free(out, FLAGS.overwrite)
            holder["inputs"] = read_inputs(FLAGS.image, FLAGS.landmarks)
        rc = run_single(check, FLAGS.debug)
        if rc:
            return rc

    def setup():
        holder["recon"] = make_reconstructor(log=lambda m: print(m, file=sys.stderr))
    rc = run_single(setup, FLAGS.debug)
    if rc:
        return rc
    recon = holder["recon"]
    if FLAGS.image:
        def one():
            info = reconstruct_one(recon, FLAGS.image, out, FLAGS.landmarks, FLAGS.face_index,
                                   FLAGS.overwrite, FLAGS.renders, inputs=holder["inputs"])
            t = info["timings_ms"]
            net = sum(t.get(k, 0.0) for k in ("bnet", "fan", "drn"))
            print(f"wrote {out}/ ({len(info['files'])} entries); networks {net:.0f} ms "
                  f"({recon.backend.name}); open {out / 'report.html'}")
        return run_single(one, FLAGS.debug)

    def listing():
        holder["paths"] = list_images(FLAGS.image_dir)
    rc = run_single(listing, FLAGS.debug)
    if rc:
        return rc
    names = output_names(holder["paths"])
    summary = run_batch(
        holder["paths"],
        lambda p: reconstruct_one(recon, p, out / names[p], None, FLAGS.face_index,
                                  FLAGS.overwrite, FLAGS.renders),
        out)
    if summary["succeeded"]:
        print(f"reports: {out}/<photo>/report.html")
    return 0 if summary["succeeded"] else 1


if __name__ == "__main__":
    app.run(main)
