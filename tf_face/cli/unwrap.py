"""Photo -> landmarks -> fitted 3D face -> UV texture map.

Usage::

    python -m tf_face.cli.unwrap --image=PHOTO --out_dir=DIR
        [--model=default|bfm2009:PATH|bfm2017:PATH|deep3d:PATH|ict:PATH|ict_npz:PATH]
        [--landmarks=FILE] [--face_index=N] [--overwrite]
    python -m tf_face.cli.unwrap --image_dir=PHOTOS --out_dir=DIR   # DIR/<photo stem>/...

Writes texture.png (256x256 UV texture I_t(UV)), mask.png (visible texels),
normals.png / normals.npy (camera-frame normal map), position.npy (camera-frame
position map, pixels), overlay.png (mesh + landmarks on the photo) and fit.json
(pose s, R, t; coefficients; landmark_rmse_iod; timings per stage).
Batch mode shows a progress bar and writes DIR/failures.json; it skips photos
whose output folder exists (without --overwrite), so rerunning an interrupted
batch resumes it. SIGINT / SIGTERM end a run with one line and exit code
130 / 143 (see ``tf_face.cli.common``).
"""

from __future__ import annotations


from absl import app, flags

from tf_face.cli.common import quiet_tensorflow, run_photo_cli
from tf_face.tf_import import VERBOSE_HELP
from tf_face.outputs import atomic_output_dir, check_output_free, write_unwrap_outputs
from tf_face.pipeline import GeometryPipeline, read_inputs

FLAGS = flags.FLAGS
flags.DEFINE_string("image", None, "Input photo.")
flags.DEFINE_string("image_dir", None, "A folder of photos (batch mode).")
flags.DEFINE_string("out_dir", None, "Output folder.")
flags.DEFINE_string("model", "default",
                    "Face model: default | bfm2009:PATH | bfm2017:PATH | deep3d:PATH | "
                    "ict:PATH | ict_npz:PATH.")
flags.DEFINE_string("landmarks", None,
                    "Landmark file (68-point iBUG or 5-point) used instead of detection "
                    "(single-photo mode only).")
flags.DEFINE_integer("face_index", 0, "Which face when several are found (largest first).")
flags.DEFINE_integer("uv_size", 256, "UV texture size.")
flags.DEFINE_float("min_cos", 0.2,
                   "Texels seen at a viewing-angle cosine below this are masked invisible.")
flags.DEFINE_float("w_shape", None, "Eq. 1 shape regulariser w_s (default: FitOptions).")
flags.DEFINE_float("w_expr", None, "Eq. 1 expression regulariser w_e (default: FitOptions).")
flags.DEFINE_bool("overwrite", False, "Replace an existing output folder.")
flags.DEFINE_bool("debug", False, "Show the traceback of an error (with the exception it wraps).")
flags.DEFINE_bool("verbose", False, VERBOSE_HELP)


def make_pipeline():
    # lazy: tf_face.fitting loads scipy.linalg (~150 ms), not needed for --help
    from tf_face.fitting import FitOptions

    opts = FitOptions()
    if FLAGS.w_shape is not None:
        opts.w_shape = FLAGS.w_shape
    if FLAGS.w_expr is not None:
        opts.w_expr = FLAGS.w_expr
    return GeometryPipeline(FLAGS.model, uv_size=FLAGS.uv_size, min_cos=FLAGS.min_cos,
                            fit_options=opts)


def unwrap_one(pipe, image_path, out_dir, landmarks_path=None, face_index=0,
               overwrite=False, inputs=None) -> list:
    """Unwrap one photo into ``out_dir`` (atomically). Returns the files written."""
    check_output_free(out_dir, overwrite)
    image, landmarks = inputs if inputs is not None else read_inputs(image_path, landmarks_path)
    result = pipe.run(image, landmarks=landmarks, face_index=face_index)
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        return write_unwrap_outputs(tmp, image, result, pipe.model)


def main(argv):
    del argv
    quiet_tensorflow(verbose=FLAGS.verbose)

    def process(pipe, image_path, out_dir, landmarks_path, inputs):
        files = unwrap_one(pipe, image_path, out_dir, landmarks_path, FLAGS.face_index,
                           FLAGS.overwrite, inputs=inputs)
        return f"wrote {out_dir}/: {', '.join(files)}"

    return run_photo_cli(FLAGS, make_pipeline, process)


if __name__ == "__main__":
    app.run(main)
