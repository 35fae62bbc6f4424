"""Photo -> textured, detailed 3D face, relit and seen from new views.

Usage::

    python -m tf_face.cli.reconstruct --image=PHOTO --out_dir=OUT
        [--appearance=fit|net|net+fit] [--weights_dir=W] [--backend=tf|tflite] [--tflite_precision=float32|float16|int8]
        [--tflite_dir=DIR] [--model=SPEC] [--landmarks=FILE] [--face_index=N] [--overwrite]
    python -m tf_face.cli.reconstruct --image_dir=PHOTOS --out_dir=OUT   # OUT/<photo stem>/

Per photo: mesh.obj + mesh.mtl + albedo.png (FAN albedo, sRGB), albedo_pca.png,
lighting.json (SH + displacement scale), displacement.png (+ displacement.json),
detail_normals.png, mesh_detailed.obj/.mtl, mesh.glb, mesh_detailed.glb,
renders/ (``--renders=all``, the default: overlay on the photo, relit x4, yaw
-30/+30, each with a _base twin; ``basic``: overlay + rerender; ``none``
without details), report.html (open it in a browser; works offline), plus the
unwrap outputs (texture.png, mask.png, normals.*, position.npy, overlay.png,
fit.json). See ``tf_face.serving.write`` for the conventions.

Appearance (``--appearance``): ``fit`` minimises the paper's B-Net, FAN and
DRN objectives for this photo (``tf_face.appearance``; no weights, about a
second on 2 CPU cores); ``net`` runs the trained networks (a few hundred ms);
``net+fit`` (default) starts the fit at the networks' outputs.

Weights (``net``, ``net+fit``): ``--weights_dir`` or, without it, the release
weights shipped in the package (``tf_face/weights/v4``, made by
``python -m train.release``; see its ``MODEL_CARD.md``). ``--backend=tflite``
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

from absl import app, flags, logging

from tf_face.cli import unwrap as _unwrap  # noqa: F401 - defines the shared flags
from tf_face.cli.common import quiet_tensorflow, run_photo_cli
from tf_face.cli.fit_flags import define_fit_flags, fit_options_from_flags
from tf_face.errors import TfFaceError
from tf_face.serving.reconstruct import (APPEARANCE_MODES, DEFAULT_APPEARANCE, Reconstructor,
                                         reconstruct_one)
from tf_face.serving.weights import DEFAULT_WEIGHTS_DIR

FLAGS = flags.FLAGS
flags.DEFINE_enum("appearance", DEFAULT_APPEARANCE, list(APPEARANCE_MODES),
                  "Where albedo, light and details come from: 'fit' = per-photo "
                  "analysis-by-synthesis of the paper's objectives (no weights needed), "
                  "'net' = the trained B-Net/FAN/DRN, 'net+fit' = the networks start the fit "
                  "(the default while the package ships weights).")
flags.DEFINE_string("weights_dir", None,
                    f"Trained weights folder for --appearance=net|net+fit (default: "
                    f"the release weights shipped in {DEFAULT_WEIGHTS_DIR}).")
flags.DEFINE_enum("backend", "tf", ["tf", "tflite"],
                  "Run the networks with TensorFlow or with the TFLite interpreter.")
flags.DEFINE_enum("tflite_precision", "float32", ["float32", "float16", "int8"],
                  "Which .tflite files --backend=tflite uses.")
flags.DEFINE_string("tflite_dir", None,
                    "Folder with <net>_<precision>.tflite (train.export --tflite writes "
                    "DIR/tflite); default: convert once into the tf_face cache.")
flags.DEFINE_enum("net_fit_displacement", "refine", ["keep", "refine"],
                  "--appearance=net+fit: refine DRN's displacement with the per-photo Eq. 9 "
                  "fit (the person's wrinkles) or keep it as it is (~0.6 s faster; the "
                  "shipped DRN's map is nearly the same on every photo).")
define_fit_flags()
flags.DEFINE_enum("renders", "all", ["none", "basic", "all"],
                  "renders/ (shown in report.html): none; basic = the re-render over the "
                  "photo and alone (~0.2 s); all = also relit x4 and yaw -30/+30, each with a "
                  "twin without details (~2 s).")


def make_reconstructor(log=print):
    # lazy: tf_face.fitting loads scipy.linalg (~150 ms), not needed for --help
    from tf_face.fitting import FitOptions

    opts = FitOptions()
    if FLAGS.w_shape is not None:
        opts.w_shape = FLAGS.w_shape
    if FLAGS.w_expr is not None:
        opts.w_expr = FLAGS.w_expr
    appearance_options = fit_options_from_flags(init_displacement=FLAGS.net_fit_displacement)
    recon = Reconstructor(FLAGS.weights_dir, backend=FLAGS.backend,
                          model=FLAGS.model if FLAGS["model"].present else None,
                          tflite_precision=FLAGS.tflite_precision, tflite_dir=FLAGS.tflite_dir,
                          min_cos=FLAGS.min_cos, fit_options=opts, log=log,
                          appearance=FLAGS.appearance, uv_size=FLAGS.uv_size,
                          appearance_options=appearance_options)
    if FLAGS["uv_size"].present and FLAGS.uv_size != recon.cfg.uv_size:
        raise TfFaceError(f"--uv_size={FLAGS.uv_size} but the weights in {recon.weights_dir} "
                          f"work at {recon.cfg.uv_size}; omit --uv_size")
    return recon


def main(argv):
    del argv
    quiet_tensorflow(verbose=FLAGS.verbose)
    logging.set_verbosity(logging.WARNING)  # the TFLite converter logs at INFO

    def process(recon, image_path, out_dir, landmarks_path, inputs):
        info = reconstruct_one(recon, image_path, out_dir, landmarks_path, FLAGS.face_index,
                               FLAGS.overwrite, FLAGS.renders, inputs=inputs)
        t = info["timings_ms"]
        net = t.get("networks", 0.0)   # B-Net + FAN + DRN
        fit = sum(v for k, v in t.items() if k.startswith("fit_"))
        parts = []
        if recon.appearance != "fit":
            parts.append(f"networks {net:.0f} ms ({recon.backend.name})")
        if recon.appearance != "net":
            parts.append(f"appearance fit {fit:.0f} ms")
        return (f"wrote {out_dir}/ ({len(info['files'])} entries); {', '.join(parts)}; "
                f"open {Path(out_dir) / 'report.html'}")

    return run_photo_cli(FLAGS, lambda: make_reconstructor(
        log=lambda m: print(m, file=sys.stderr)), process)


if __name__ == "__main__":
    app.run(main)
