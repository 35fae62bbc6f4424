"""Benchmark of the custom render ops against their pure-TF reference.

    python eval/bench_ops.py [--quick] [--json=PATH]

Forward + backward (one tf.function per backend, gradients w.r.t. every float
input), batch 8, 256x256 UV maps:

* ``sh_shade``: SH shading of [8, 256, 256, 3] albedo and normal maps (the
  photometric term of the fit and of training).
* ``laplacian``: mesh_laplacian_smoothness of [8, 65536, 3] values on the
  full 256x256 texel-grid detail mesh (6-neighbour 1-ring).

Times are medians of warm runs in one process; speedup = reference / op wall
time from the same run (absolute times drift on shared machines). The process
CPU time (all threads) is printed too: on a loaded machine it is the steadier
measure of work done. Writes
``{"sh_shade_speedup": ..., "laplacian_speedup": ..., "cases": {...}}``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tf_face.eval_metrics import write_result_json  # noqa: E402
# TF-loading imports stay in functions, run after main's quiet_tensorflow() (test_import_weight)
if __name__ == "__main__":   # a script: TensorFlow without its start-up noise
    from tf_face.tf_import import quiet_tensorflow
    quiet_tensorflow()

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the results here.")
flags.DEFINE_bool("quick", False, "Fewer repeats and cases (< 40 s).")
flags.DEFINE_integer("batch", 8, "Batch size.")
flags.DEFINE_integer("size", 256, "UV map height = width.")


def _time(fn, repeats: int) -> tuple[float, float]:
    """(median wall ms, median process CPU ms) of warm calls."""
    fn()  # trace + warm up
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        _ = [o.numpy() for o in out]
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall)) * 1e3, float(np.median(cpu)) * 1e3


def _sh_shade_case(tf, render, size, batch, backend):
    rng = np.random.default_rng(0)
    albedo = tf.constant(rng.uniform(0.2, 0.9, size=(batch, size, size, 3)).astype(np.float32))
    sh = tf.constant(render.ambient_sh(batch) + rng.normal(scale=0.1, size=(batch, 9, 3)).astype(np.float32))
    normal_map = tf.constant(rng.normal(size=(batch, size, size, 3)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(batch, size, size, 3)).astype(np.float32))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch([albedo, normal_map, sh])
            out = render.sh_shade(albedo, normal_map, sh, backend=backend)
            loss = tf.reduce_sum(out * upstream)
        return [loss] + tape.gradient(loss, [albedo, normal_map, sh])

    return step


def _laplacian_case(tf, render, adj, batch, backend):
    v = len(adj.row_ptr) - 1
    values = tf.constant(np.random.default_rng(1).normal(size=(batch, v, 3)).astype(np.float32))
    row_ptr, col_idx = tf.constant(adj.row_ptr), tf.constant(adj.col_idx)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(values)
            energy = render.mesh_laplacian_smoothness(values, row_ptr, col_idx, backend=backend)
            loss = tf.reduce_sum(energy)
        return [loss, tape.gradient(loss, values)]

    return step


def main(argv):
    del argv
    import tensorflow as tf

    from tf_face import render

    if not render.ops_available():
        print("custom-op library not built: run `make ops` first", file=sys.stderr)
        return 1
    batch, size = FLAGS.batch, FLAGS.size
    repeats = 2 if FLAGS.quick else 10
    t0 = time.perf_counter()
    grid = render.grid_adjacency(np.ones((size, size), bool))
    cases = [("sh_shade", size * size), ("laplacian", len(grid.row_ptr) - 1)]
    results = {}
    print(f"batch {batch}, {size}x{size}, forward+backward, median of {repeats} warm runs, "
          f"TF intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()}")
    print(f"{'case':<16}{'texels':>8}{'reference ms':>15}{'op ms':>10}{'speedup':>10}"
          f"{'ref cpu-ms':>12}{'op cpu-ms':>11}{'cpu ratio':>10}")
    for what, v in cases:
        ms, cpu = {}, {}
        for backend in ("reference", "op"):
            if what == "laplacian":
                fn = _laplacian_case(tf, render, grid, batch, backend)
            else:
                fn = _sh_shade_case(tf, render, size, batch, backend)
            ms[backend], cpu[backend] = _time(fn, repeats)
        speedup = ms["reference"] / ms["op"]
        cpu_ratio = cpu["reference"] / max(cpu["op"], 1e-9)
        results[f"{what}_v{v}"] = {"reference_ms": ms["reference"], "op_ms": ms["op"], "speedup": speedup,
                                   "reference_cpu_ms": cpu["reference"], "op_cpu_ms": cpu["op"],
                                   "cpu_time_ratio": cpu_ratio}
        print(f"{what:<16}{v:>8}{ms['reference']:>15.1f}{ms['op']:>10.1f}{speedup:>9.1f}x"
              f"{cpu['reference']:>12.1f}{cpu['op']:>11.1f}{cpu_ratio:>9.1f}x")
    summary = {
        "sh_shade_speedup": results[f"sh_shade_v{size * size}"]["speedup"],
        "laplacian_speedup": results[f"laplacian_v{len(grid.row_ptr) - 1}"]["speedup"],
        "batch": batch, "size": size, "repeats": repeats, "quick": FLAGS.quick,
        "cpu_count": os.cpu_count(), "cases": results,
        "total_seconds": time.perf_counter() - t0,
    }
    print(f"total {summary['total_seconds']:.1f} s")
    if FLAGS.json:
        write_result_json(FLAGS.json, summary)
    return 0


if __name__ == "__main__":
    app.run(main)
