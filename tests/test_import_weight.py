"""What must import without TensorFlow.

Entry points define their absl flags at import time and call
``quiet_tensorflow()`` in ``main``; if importing one of them (or the library
modules they import at top level) pulled in TensorFlow, every job would print
TF's start-up lines again and ``--help`` would take seconds instead of a
fraction of one. The imports left inside functions in these modules are what
keeps them light; this test fails when one of them moves to the top.

Each module is imported in a fresh interpreter (``sys.modules`` of this test
process has TensorFlow already).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

TF_FREE = [
    # entry points
    "tf_face.cli.unwrap",
    "tf_face.cli.reconstruct",
    "tf_face.cli.demo",
    "tf_face.assets",
    "tf_face.synthetic.make_dataset",
    "tf_face.fitting.weight_sweep",
    "tf_face.facemodel.build.build_default",
    "train.train_bnet",
    "train.train_fan",
    "train.train_drn",
    "train.preprocess",
    "train.release",
    "train.export",
    "eval.synthetic_benchmark",
    "eval.real_photos",
    "eval.landmark_accuracy",
    "eval.loss_terms",
    "eval.bench_geometry",
    "eval.bench_input",
    "eval.bench_ops",
    "eval.bench_reconstruct",
    # library modules the entry points import at top level
    "tf_face.pipeline",
    "tf_face.landmarks",
    "tf_face.data.records",
    "tf_face.data",
    "tf_face.srgb",
    "tf_face.sh",
    "tf_face.viz.image_renderer",
    "tf_face.synthetic.sampling",
    "tf_face.serving.reconstruct",
    "tf_face.serving.exporting",
    "tf_face.training.jobs",
    "tf_face.testing.random_weights",
]

PROBE = ("import importlib, sys\n"
         "bad = []\n"
         "for m in sys.argv[1:]:\n"
         "    importlib.import_module(m)\n"
         "    if 'tensorflow' in sys.modules:\n"
         "        bad.append(m)\n"
         "        break\n"
         "print(' '.join(bad))\n")


def tf_loaded_by(modules) -> str:
    """Import ``modules`` in order in a fresh interpreter; the first one after
    which TensorFlow is in ``sys.modules`` ('' when none)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2")
    res = subprocess.run([sys.executable, "-c", PROBE, *modules], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout.strip()


@pytest.mark.parametrize("module", TF_FREE)
def test_module_imports_without_tensorflow(module):
    assert tf_loaded_by([module]) == "", f"importing {module} imports TensorFlow"


def test_the_probe_sees_tensorflow():
    """The check can fail: a module that imports TF at import time is caught."""
    assert tf_loaded_by(["tf_face.srgb", "tf_face.models.layers"]) == "tf_face.models.layers"
