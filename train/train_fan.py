"""Train FAN (METHOD.md (c)-(d)): texture -> high-fidelity albedo, guided by B-Net.

    python -m train.train_fan --data=SHARDS --output_dir=WEIGHTS [--steps=N ...]

See tf_face/training/jobs.py for the weights-folder layout and
train/job_flags.py (or --helpfull) for every flag.
"""

from absl import app

from tf_face.training.jobs import train_fan
from train.job_flags import define_flags, run_job

define_flags()


def main(argv):
    del argv
    return run_job(train_fan)


if __name__ == "__main__":
    app.run(main)
