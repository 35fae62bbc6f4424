"""Export trained weights: SavedModel with serving signatures (+ TFLite).

    python -m train.export --output=DIR [--weights_dir=W] [--tflite]
        [--texture_dir=DIR] [--max_photos=8] [--overwrite]
    python -m train.export --weights_dir=W --output=DIR --release [--weights_dtype=float16]

Without ``--weights_dir`` the release weights shipped in the package are
exported. ``--release`` writes a release weights folder instead (inference
weights only, float16 by default, ``manifest.json``; what ``train.release``
ships and ``reconstruct --weights_dir`` reads; see
``tf_face.serving.weights``).

DIR is a SavedModel (``saved_model_cli show --dir DIR --all`` lists the
signatures ``albedo_and_details``, ``bnet``, ``fan``, ``drn``, ``config`` and
``serving_default`` = ``albedo_and_details``; see
``tf_face.serving.savedmodel`` for inputs/outputs and units); it loads with
``tf.saved_model.load`` and with session-based servers (``saved_model_cli run
--dir DIR --tag_set serve --signature_def fan --inputs texture=x.npy``). With
``--tflite`` it also holds ``DIR/tflite/<net>_<precision>.tflite`` for
bnet/fan/drn x float32/float16/int8 (dynamic range; signature input
``texture``, outputs named ``p_a``/``sh``, ``albedo``, ``moving_rate``), and
``DIR/tflite/comparison.json`` + a printed table: size, latency and max/mean
abs difference vs TF on real unwrapped UV textures -- the ``texture.png``
files under ``--texture_dir`` (``tf_face.cli.unwrap`` outputs) or, by
default, the astronaut and the photos of ../shared/data/faces run through the
geometry pipeline (at most ``--max_photos``).

``python -m tf_face.cli.reconstruct --backend=tflite --tflite_dir=DIR/tflite``
uses those files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags, logging

from tf_face.cli.common import quiet_tensorflow, run_single
from tf_face.tf_import import VERBOSE_HELP
from tf_face.errors import TfFaceError
from tf_face.serving.exporting import export
from tf_face.serving.weights import resolve_weights_dir, write_release

FLAGS = flags.FLAGS
flags.DEFINE_string("weights_dir", None, "Weights folder (training: bnet/fan/drn.keras + "
                    "tf_face_weights.json, or a release folder); default: the shipped "
                    "release weights.")
flags.DEFINE_bool("release", False, "Write --output as a release weights folder (fp16 npz + "
                  "manifest) instead of a SavedModel.")
flags.DEFINE_enum("weights_dtype", "float16", ["float16", "float32"],
                  "dtype of a --release folder's weights.")
flags.DEFINE_string("output", None, "SavedModel folder to write.")
flags.DEFINE_bool("tflite", False, "Also convert to TFLite (float32/float16/int8) and compare.")
flags.DEFINE_string("texture_dir", None, "Folder searched for texture.png (unwrap outputs) "
                    "used for the TFLite comparison; default: photos through the pipeline.")
flags.DEFINE_integer("max_photos", 8, "Textures used for the TFLite comparison.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")
flags.DEFINE_bool("debug", False, "Show the traceback of an error (with the exception it wraps).")
flags.DEFINE_bool("verbose", False, VERBOSE_HELP)


def main(argv):
    del argv

    quiet_tensorflow(verbose=FLAGS.verbose)
    logging.set_verbosity(logging.WARNING)  # the TFLite converter logs at INFO
    if not FLAGS.output:
        print("error: --output is required", file=sys.stderr)
        return 2
    if FLAGS.release:
        return run_single(lambda: export_release(FLAGS.weights_dir, Path(FLAGS.output),
                                                 FLAGS.weights_dtype, FLAGS.overwrite),
                          FLAGS.debug)
    return run_single(lambda: export(FLAGS.weights_dir, Path(FLAGS.output), FLAGS.tflite,
                                     FLAGS.texture_dir, FLAGS.max_photos, FLAGS.overwrite),
                      FLAGS.debug)


def export_release(weights_dir, output: Path, dtype: str, overwrite: bool) -> None:
    src = resolve_weights_dir(weights_dir)
    if output.exists() and not overwrite:
        raise TfFaceError(f"{output} exists; pass --overwrite to replace it")
    manifest = write_release(src, output, dtype=dtype)
    size = sum(int(e["bytes"]) for e in manifest["files"].values())
    print(f"wrote release weights {output} ({len(manifest['files'])} files, "
          f"{size / 2 ** 20:.1f} MiB, {dtype})")


if __name__ == "__main__":
    app.run(main)
