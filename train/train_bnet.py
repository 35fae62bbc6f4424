"""Train B-Net (METHOD.md (b)): texture -> albedo PCA coefficients + SH lighting.

    python -m train.train_bnet --data=SHARDS --output_dir=WEIGHTS [--steps=N ...]

See tf_face/training/jobs.py for the weights-folder layout and
train/job_flags.py (or --helpfull) for every flag.
"""

from absl import app

from tf_face.training.jobs import train_bnet
from train.job_flags import define_flags, run_job

define_flags()


def main(argv):
    del argv
    return run_job(train_bnet)


if __name__ == "__main__":
    app.run(main)
