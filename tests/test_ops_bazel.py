"""The Bazel BUILD builds, and the library it builds computes what the reference does.

Runs when ``bazel`` is on PATH (Debian: ``apt-get install bazel-bootstrap``,
Bazel 4.2.3, offline): builds ``//:tf_face_ops`` in a copy of BUILD, WORKSPACE
and ops/ (the WORKSPACE's ``@tf_pip`` points at this interpreter's TensorFlow),
then, in a subprocess, loads that ``.so`` through ``TF_FACE_OPS_LIBRARY`` and
compares ``sh_shade`` and ``mesh_laplacian_smoothness`` (forward and gradient,
float64) with the pure-TF reference.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BAZEL = shutil.which("bazel")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BAZEL is None, reason="bazel not on PATH (Debian: apt-get install bazel-bootstrap)"),
]

CHECK = r"""
import numpy as np
import tensorflow as tf
from tf_face import render
assert render.ops_available(), render._library.load_error()
rng = np.random.default_rng(0)
albedo, normals = rng.uniform(0.1, 1, (2, 5, 4, 3)), rng.normal(size=(2, 5, 4, 3))
sh = rng.normal(scale=0.5, size=(2, 9, 3))
adj = render.mesh_adjacency(np.array([[0, 1, 2], [2, 1, 3], [3, 4, 2]]), 5)
x = tf.constant(rng.normal(size=(2, 5, 3)))
out = {}
for backend in ("op", "reference"):
    a, n, s = (tf.constant(v) for v in (albedo, normals, sh))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([a, n, s, x])
        img = render.sh_shade(a, n, s, backend=backend)
        energy = render.mesh_laplacian_smoothness(x, adj.row_ptr, adj.col_idx, backend=backend)
    out[backend] = [img, energy] + tape.gradient(img, [a, n, s]) + [tape.gradient(energy, x)]
err = max(float(np.max(np.abs(p.numpy() - q.numpy()))) for p, q in zip(out["op"], out["reference"]))
assert err < 1e-10, err
print("OK max abs err", err)
"""


def test_bazel_builds_the_op_library_and_it_matches_the_reference(tmp_path):
    tf_dir = importlib.util.find_spec("tensorflow").submodule_search_locations[0]
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("BUILD", "WORKSPACE"):
        shutil.copy(REPO / name, ws / name)
    shutil.copytree(REPO / "ops", ws / "ops")
    site = ws / ".venv" / "lib" / "python3.11" / "site-packages"  # the path WORKSPACE names
    site.mkdir(parents=True)
    (site / "tensorflow").symlink_to(tf_dir)
    build = subprocess.run([BAZEL, "--batch", f"--output_user_root={tmp_path / 'bazel_root'}", "build",
                            "//:tf_face_ops"], cwd=ws, capture_output=True, text=True, timeout=1500)
    assert build.returncode == 0, build.stderr[-4000:]
    library = ws / "bazel-bin" / "ops" / "_tf_face_ops.so"
    assert library.is_file()
    env = dict(os.environ, TF_FACE_OPS_LIBRARY=str(library), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_FACE_OPS", None)
    check = subprocess.run([sys.executable, "-c", CHECK], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=600)
    assert check.returncode == 0 and "OK" in check.stdout, check.stdout + check.stderr[-4000:]
