"""Benchmark of the tf.data input pipeline (``tf_face.data.make_dataset``) alone.

    python eval/bench_input.py [--data=SHARD_DIR] [--batch_size=8] [--batches=30]
        [--step_ms=MS] [--measure_bnet_step] --json=PATH

Without ``--data`` it first writes ``--records`` synthetic UV samples (smooth
face-like textures with pore noise, a disc-shaped visibility mask, sphere
normals and positions: PNG sizes close to real unwrapped photos) into two
temporary shards. It then times, after ``--warmup`` batches:

* ``read``: raw TFRecord bytes (interleave only), records/s;
* ``parse+decode``: ``parse_example`` (4 PNG decodes) per record;
* ``pipeline``: the full ``make_dataset(batch_size, shuffle, repeat)``, batches/s
  and ms/batch (what a training loop would wait for if nothing overlapped).

The input share of a training step is ``pipeline ms/batch / step ms``, with the
step time from ``--step_ms`` (the training issue measures the real B-Net step)
or, with ``--measure_bnet_step``, a B-Net forward + backward + Adam update on
random targets at the same batch size (a lower bound on the real step, so the
share is an upper bound). With prefetching the input overlaps the step; the
share is what it costs when it does not (CPU cores shared with the step).
Prints a table; ``--json`` writes the numbers.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tf_face.data import (encode_example, make_dataset_with_report,  # noqa: E402
                          parse_example, write_shard)
from tf_face.data.dataset import scan_shards  # noqa: E402
from tf_face.types import UVSample  # noqa: E402
from tf_face.eval_metrics import write_result_json  # noqa: E402
# TF-loading imports stay in functions, run after main's quiet_tensorflow() (test_import_weight)
if __name__ == "__main__":   # a script: TensorFlow without its start-up noise
    from tf_face.tf_import import quiet_tensorflow
    quiet_tensorflow()

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Shard folder or glob (default: synthetic shards).")
flags.DEFINE_string("json", None, "Write the results here.")
flags.DEFINE_integer("batch_size", 8, "Batch size.")
flags.DEFINE_integer("batches", 30, "Timed batches.")
flags.DEFINE_integer("warmup", 5, "Untimed batches first.")
flags.DEFINE_integer("records", 64, "Synthetic records to write (without --data).")
flags.DEFINE_integer("uv_size", 256, "UV size of the synthetic records.")
flags.DEFINE_float("step_ms", None, "Training step time (ms) to compare with.")
flags.DEFINE_bool("measure_bnet_step", False,
                  "Time a B-Net forward+backward+Adam step at --batch_size (K=199).")
flags.DEFINE_bool("augment", False, "Time with augmentation on.")


def synthetic_sample(rng, size):
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    r2 = xx ** 2 + yy ** 2
    mask = (r2 < 0.8) & (rng.random() * 0.6 - 0.3 < xx + 0.9)
    base = np.stack([0.75 + 0.1 * yy, 0.55 + 0.05 * xx, 0.45 + 0.05 * yy], -1)
    tex = np.clip(base + rng.normal(0, 0.03, (size, size, 3)), 0, 1) * (0.7 + 0.3 * rng.random())
    z = np.sqrt(np.clip(1 - r2, 0, 1))
    n = np.stack([xx, -yy, z], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True) + 1e-12
    n[~mask] = 0
    pos = np.stack([xx, -yy, z], -1) * 150.0 + [320.0, -240.0, 0.0]
    pos[~mask] = 0
    return UVSample(tex.astype(np.float32), mask, n.astype(np.float32), pos.astype(np.float32))


def write_synthetic(directory: Path, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    fit = {"model": "default", "scale": 1.0, "rotation": np.eye(3), "translation": [0, 0],
           "landmark_rmse_iod": 0.02, "image_size": [512, 512]}
    recs = [encode_example(synthetic_sample(rng, size), fit, f"synthetic/{i:05d}")
            for i in range(n)]
    half = len(recs) // 2
    write_shard(recs[:half], directory / "shard-00000.tfrecord", uv_size=size)
    write_shard(recs[half:], directory / "shard-00001.tfrecord", uv_size=size)


def time_iter(it, warmup: int, n: int) -> float:
    for _ in range(warmup):
        next(it)
    t = time.perf_counter()
    for _ in range(n):
        next(it)
    return time.perf_counter() - t


def bnet_step_ms(batch: int, size: int, steps: int = 5) -> float:
    import keras
    import tensorflow as tf

    from tf_face.models.bnet import build_bnet

    model = build_bnet(199, input_size=size)
    opt = keras.optimizers.Adam(2e-5)
    x = tf.random.uniform([batch, size, size, 3])
    y = tf.random.normal([batch, 199 + 27])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step()
    step()
    t = time.perf_counter()
    for _ in range(steps):
        step().numpy()
    return (time.perf_counter() - t) / steps * 1e3


def main(argv):
    del argv
    import tensorflow as tf

    tmp = None
    data = FLAGS.data
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_input-")
        t = time.perf_counter()
        write_synthetic(Path(tmp.name), FLAGS.records, FLAGS.uv_size)
        print(f"wrote {FLAGS.records} synthetic records in {time.perf_counter() - t:.1f} s")
        data = tmp.name
    report, ok_paths, _ = scan_shards(data)
    shard_bytes = sum(Path(p).stat().st_size for p in ok_paths)
    n_rec = FLAGS.batches * FLAGS.batch_size
    raw = tf.data.Dataset.from_tensor_slices(ok_paths).interleave(
        tf.data.TFRecordDataset, num_parallel_calls=tf.data.AUTOTUNE).repeat()
    t_read = time_iter(iter(raw), FLAGS.batch_size, n_rec)
    one = next(iter(raw))
    parse = tf.function(lambda r: parse_example(r, uv_size=report.uv_size, extras=report.extras))
    parse(one)
    t = time.perf_counter()
    reps = min(n_rec, 40)
    for _ in range(reps):
        parse(one)["texture"].numpy()
    parse_ms = (time.perf_counter() - t) / reps * 1e3
    ds, _ = make_dataset_with_report(data, FLAGS.batch_size, shuffle=True, repeat=True, seed=0,
                                     augment=FLAGS.augment)
    t_pipe = time_iter(iter(ds), FLAGS.warmup, FLAGS.batches)
    ms_batch = t_pipe / FLAGS.batches * 1e3
    step_ms = FLAGS.step_ms
    step_src = "--step_ms" if step_ms else None
    if FLAGS.measure_bnet_step:
        step_ms = bnet_step_ms(FLAGS.batch_size, report.uv_size)
        step_src = "B-Net fwd+bwd+Adam (measured here)"
    result = {
        "records_in_data": report.records,
        "bytes_per_record": shard_bytes / max(1, report.records),
        "uv_size": report.uv_size,
        "batch_size": FLAGS.batch_size,
        "read_records_per_s": n_rec / t_read,
        "parse_decode_ms_per_record_1thread": parse_ms,
        "pipeline_batches_per_s": FLAGS.batches / t_pipe,
        "pipeline_ms_per_batch": ms_batch,
        "cpu_count": os.cpu_count(),
        "augment": FLAGS.augment,
        "step_ms": step_ms,
        "step_source": step_src,
        "input_share_of_step": (ms_batch / step_ms) if step_ms else None,
    }
    rows = [
        ("record size (KiB)", f"{result['bytes_per_record'] / 1024:.0f}"),
        ("read raw (records/s)", f"{result['read_records_per_s']:.0f}"),
        ("parse+decode (ms/record, 1 call)", f"{parse_ms:.2f}"),
        (f"pipeline batch {FLAGS.batch_size} (batches/s)",
         f"{result['pipeline_batches_per_s']:.2f}"),
        (f"pipeline batch {FLAGS.batch_size} (ms/batch)", f"{ms_batch:.1f}"),
        ("training step (ms)",
         f"{step_ms:.0f} ({step_src})" if step_ms else "n/a (give --step_ms)"),
        ("input share of a step", f"{100 * result['input_share_of_step']:.1f} %"
         if step_ms else "n/a"),
    ]
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    if FLAGS.json:
        write_result_json(FLAGS.json, result)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    app.run(main)
