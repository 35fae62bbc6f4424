"""The training loop shared by the B-Net, FAN and DRN jobs.

What it guarantees:

* **Resumable exactly.** A ``tf.train.Checkpoint`` holds the global step, the
  networks, the optimizers and (single-worker) the input iterator; a
  ``CheckpointManager`` writes it every ``checkpoint_every`` steps and at the
  end. A restarted job restores the latest checkpoint and continues from that
  step with the same optimizer state and the same data order, so a killed and
  resumed run ends with the same weights as an uninterrupted one (ops are
  deterministic: ``tf.config.experimental.enable_op_determinism``).
* **Observable.** TensorBoard scalars for every loss term (every
  ``log_every`` steps) and image grids (every ``image_every``) under
  ``OUTPUT/logs``; a progress bar with the current losses.
* **Non-finite losses** stop the job with a clear message (``nan_policy=
  "stop"``; the bad update is not applied and no checkpoint is written with
  it) or skip the update and go on (``"skip"``, counted in the logs).
* **Distributable.** ``strategy`` = default | mirrored | multi_worker (TF_CONFIG);
  with several workers only the chief writes logs and final models; the other
  workers checkpoint into ``OUTPUT/worker_<i>`` as TF requires.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from tf_face.errors import TfFaceError
from tf_face.models.saving import save_model
from tf_face.outputs import write_json


class TrainingDivergedError(TfFaceError):
    """A loss or gradient became NaN/Inf (nan_policy="stop")."""


STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise TfFaceError("--strategy=multi_worker needs the TF_CONFIG environment "
                              "variable (cluster spec and this worker's task)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise TfFaceError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")


def worker_info(strategy) -> tuple[bool, int]:
    """(is_chief, task index) of this process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True, 0
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0)
    return chief, task_id


def apply_if_finite(optimizer, grads, variables, loss) -> tf.Tensor:
    """Apply the update only when the loss and every gradient are finite.

    Under a distribution strategy the update cannot sit inside a ``tf.cond``
    (it is a cross-replica synchronisation point); there a non-finite step
    applies all-zero gradients instead (the optimizer's moments decay by one
    step) and is reported the same way.
    """
    finite = tf.math.is_finite(loss)
    for g in grads:
        if g is not None:
            finite = tf.logical_and(finite, tf.reduce_all(tf.math.is_finite(g)))
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    if tf.distribute.has_strategy():
        optimizer.apply_gradients(
            [(tf.where(finite, g, tf.zeros_like(g)), v) for g, v in pairs])
        return finite

    def apply():
        optimizer.apply_gradients(pairs)
        return tf.constant(True)

    return tf.cond(finite, apply, lambda: tf.constant(False))


def image_grid(images: dict, max_items: int = 4) -> tf.Tensor:
    """Rows = batch items, columns = the named images; [1, rows*H, cols*W, 3]."""
    cols = []
    for img in images.values():
        img = tf.convert_to_tensor(img)[:max_items]
        if img.shape[-1] == 1:
            img = tf.repeat(img, 3, axis=-1)
        cols.append(tf.clip_by_value(tf.cast(img, tf.float32), 0.0, 1.0))
    rows = tf.concat(cols, axis=2)                     # [n, H, cols*W, 3]
    n = tf.shape(rows)[0]
    return tf.reshape(rows, [1, n * rows.shape[1], rows.shape[2], 3])


@dataclasses.dataclass
class LoopConfig:
    output_dir: str
    steps: int
    checkpoint_every: int = 100
    log_every: int = 10
    image_every: int = 100
    nan_policy: str = "stop"
    keep_checkpoints: int = 3
    progress: bool = True


def _to_float(d: dict) -> dict:
    return {k: float(np.asarray(v)) for k, v in d.items()}


def run_training(name: str, strategy, config: LoopConfig, networks: dict, optimizers: dict,
                 dataset, step_fn: Callable, image_fn: Callable | None = None,
                 final_models: dict | None = None) -> dict:
    """Run ``step_fn(batch) -> (terms dict, ok bool)`` until ``config.steps``.

    ``networks`` / ``optimizers`` are checkpointed (created inside
    ``strategy.scope()``). ``image_fn(batch) -> dict of images`` feeds the
    TensorBoard grids. ``final_models`` (name -> keras.Model) are saved at the
    end as ``OUTPUT/<name>.keras`` and ``OUTPUT/<name>.weights.h5``.
    Returns a summary dict (also written to OUTPUT/<job>_summary.json) with
    the per-step loss history of this run.
    """
    if config.nan_policy not in ("stop", "skip"):
        raise TfFaceError(f"nan_policy must be 'stop' or 'skip', got {config.nan_policy!r}")
    out = Path(config.output_dir)
    chief, task = worker_info(strategy)
    ckpt_dir = (out / "checkpoints" / name if chief
                else out / f"worker_{task}" / "checkpoints" / name)
    single = strategy.num_replicas_in_sync == 1 and not isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy)
    with strategy.scope():
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    if single:
        iterator = iter(dataset)
        dist_step = tf.function(step_fn)
    else:
        iterator = iter(strategy.experimental_distribute_dataset(dataset))

        @tf.function
        def dist_step(batch):
            terms, ok = strategy.run(step_fn, args=(batch,))
            terms = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                     for k, v in terms.items()}
            ok = strategy.reduce(tf.distribute.ReduceOp.MEAN, tf.cast(ok, tf.float32),
                                 axis=None)
            return terms, ok > 0.999   # every replica's step was finite
    items = dict(step=step, **networks, **{f"optimizer_{k}": v for k, v in optimizers.items()})
    if single:
        items["iterator"] = iterator
    ckpt = tf.train.Checkpoint(**items)
    manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=config.keep_checkpoints)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        print(f"[{name}] resumed from {manager.latest_checkpoint} at step {int(step.numpy())}",
              file=sys.stderr)
    writer = tf.summary.create_file_writer(str(out / "logs" / name)) if chief else \
        tf.summary.create_noop_writer()
    start = int(step.numpy())
    skipped = 0
    last_terms: dict = {}
    history: dict = {}
    bar = None
    if config.progress and chief:
        bar = tqdm(total=config.steps, initial=start, desc=name, unit="step", file=sys.stderr)
    t0 = time.perf_counter()
    try:
        while int(step.numpy()) < config.steps:
            batch = next(iterator)
            terms, ok = dist_step(batch)
            cur = int(step.numpy())
            if not bool(ok):
                vals = _to_float(terms)
                if config.nan_policy == "stop":
                    raise TrainingDivergedError(
                        f"{name}: non-finite loss or gradient at step {cur} "
                        f"({', '.join(f'{k}={v:.4g}' for k, v in vals.items())}); the update was "
                        f"not applied; the last checkpoint is {manager.latest_checkpoint}. "
                        "Lower the learning rate, "
                        "check the data, or rerun with --nan_policy=skip")
                skipped += 1
                with writer.as_default(step=cur):
                    tf.summary.scalar("skipped_steps", skipped)
            step.assign_add(1)
            cur += 1
            last_terms = terms
            for k, v in _to_float(terms).items():
                history.setdefault(k, []).append(v)
            if cur % config.log_every == 0 or cur == config.steps:
                with writer.as_default(step=cur):
                    for k, v in terms.items():
                        tf.summary.scalar(f"loss/{k}", v)
            if image_fn is not None and (cur % config.image_every == 0 or cur == config.steps):
                with writer.as_default(step=cur):
                    local = batch if single else strategy.experimental_local_results(batch)[0]
                    tf.summary.image("grid", image_grid(image_fn(local)), max_outputs=1)
            if cur % config.checkpoint_every == 0:
                manager.save(checkpoint_number=cur)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{float(v):.4f}" for k, v in list(terms.items())[:3]})
        if int(step.numpy()) > start or not manager.latest_checkpoint:
            manager.save(checkpoint_number=int(step.numpy()))
    finally:
        if bar is not None:
            bar.close()
        writer.flush()
    seconds = time.perf_counter() - t0
    summary = {"job": name, "steps": int(step.numpy()), "resumed_from": start,
               "steps_run": int(step.numpy()) - start, "skipped_steps": skipped,
               "seconds": seconds,
               "seconds_per_step": seconds / max(1, int(step.numpy()) - start),
               "final_losses": _to_float(last_terms) if last_terms else {},
               "loss_history": history}
    # the chief writes the models; other workers write theirs beside their
    # checkpoints (so multi-worker runs can be checked for identical weights)
    final_dir = out if chief else out / f"worker_{task}"
    final_dir.mkdir(parents=True, exist_ok=True)
    for mname, model in (final_models or {}).items():
        save_model(model, final_dir / mname)
    write_json(final_dir / f"{name}_summary.json", summary)
    return summary
