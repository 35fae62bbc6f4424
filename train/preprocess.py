"""Photo collection -> TFRecord shards of UV samples (the training data).

    python -m train.preprocess --input=DIR_OR_GLOB --output=DIR [--shard_size=256]
        [--workers=N] [--model=default] [--uv_size=256] [--overwrite]

Any folder of images works, searched recursively (CelebA-HQ ``CelebA-HQ-img/*.jpg``
and FFHQ ``00000/00000.png`` layouts as they are), or a glob (quote it).
Writes ``DIR/shard-NNNNN.tfrecord`` + ``.index.json`` (atomically),
``DIR/failures.json`` (every photo that failed, with its reason) and
``DIR/dataset.json``. Re-running resumes: finished shards are skipped.
Ctrl-C or a kill (SIGTERM; SIGKILL too, but it may leave a hidden temp file
that the next run removes) leaves only complete shards. Exit codes: 0 done (even with
failed photos), 1 bad input/setup, 130 interrupted. See
``tf_face.data.preprocess`` for the details.
"""

from __future__ import annotations

import os
import signal
import sys

from absl import app, flags

from tf_face.cli.common import quiet_tensorflow, run_single
from tf_face.tf_import import VERBOSE_HELP
from tf_face.data.preprocess import run_preprocess

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Folder of photos (recursive) or a glob pattern.")
flags.DEFINE_string("output", None, "Output folder for the shards.")
flags.DEFINE_integer("shard_size", 256, "Photos per shard.")
flags.DEFINE_integer("workers", max(1, (os.cpu_count() or 2) - 1),
                     "Worker processes running the geometry pipeline (<=1: in this process).")
flags.DEFINE_string("model", "default",
                    "Face model: default | bfm2009:PATH | bfm2017:PATH | deep3d:PATH | "
                    "ict:PATH | ict_npz:PATH.")
flags.DEFINE_integer("uv_size", 256, "UV map size.")
flags.DEFINE_bool("overwrite", False,
                  "Delete an existing dataset in --output (made with other settings) and redo it.")
flags.DEFINE_bool("debug", False, "Show the traceback of an error (with the exception it wraps).")
flags.DEFINE_bool("verbose", False, VERBOSE_HELP)


def main(argv):
    del argv
    quiet_tensorflow(verbose=FLAGS.verbose)

    if not FLAGS.input or not FLAGS.output:
        print("error: --input and --output are required", file=sys.stderr)
        return 2
    summary = {}

    def job():
        summary["s"] = run_preprocess(FLAGS.input, FLAGS.output, shard_size=FLAGS.shard_size,
                                      workers=FLAGS.workers, model=FLAGS.model,
                                      uv_size=FLAGS.uv_size, overwrite=FLAGS.overwrite)

    def on_term(signum, frame):  # a kill (SIGTERM) stops like Ctrl-C: pool ended, temp removed
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        code = run_single(job, debug=FLAGS.debug)
    except KeyboardInterrupt:
        print("\ninterrupted: complete shards are kept; rerun the same command to resume",
              file=sys.stderr)
        return 130
    s = summary.get("s")
    if s is not None:
        print(f"{s.records} UV samples from {s.photos} photos in {s.shards} shards "
              f"({s.shards_skipped} already done, {s.shards_written} written); "
              f"{s.failed} failed (see {os.path.join(FLAGS.output, 'failures.json')})",
              file=sys.stderr)
    return code


if __name__ == "__main__":
    app.run(main)
