"""The tf.data input pipeline over UV-sample shards.

``make_dataset(path, batch_size)`` yields dicts of batched tensors::

    texture  [B,H,W,3] float32 in [0,1]      mask      [B,H,W,1] float32 0/1
    normals  [B,H,W,3] float32 (camera frame) position [B,H,W,3] float32 (pixels)
    scale [B], rotation [B,3,3], translation [B,2], landmark_rmse_iod [B],
    image_size [B,2] int32, model / image_id / source_path [B] strings,
    extras   {name: [B,...]} (as listed in the shards' index files)

Stages: shard check (index, size, sha256) -> file shuffle -> parallel
interleave of ``TFRecordDataset`` -> shuffle buffer -> repeat -> parallel
parse + PNG decode -> (skip mode: ``ignore_errors``) -> augment -> batch ->
prefetch, every parallel stage ``AUTOTUNE``.

Damaged data, and what happens to it:

* a ``.tfrecord`` without a valid ``.index.json`` (a killed writer) is ignored
  with a warning in both modes (it is incomplete, not corrupt);
* a shard whose size or sha256 differs from its index (truncation, bit flips)
  is *corrupt*: ``on_corrupt="fail"`` raises ``CorruptShardError`` naming the
  shard before any training step; ``"skip"`` logs the shard name and the
  number of records lost and keeps the records whose CRC32 still matches
  (read into memory and mixed into the stream with ``sample_from_datasets``);
* a record that passes the checks but does not decode (bad PNG bytes written
  by a buggy producer) raises ``InvalidArgumentError`` during iteration in
  fail mode and is dropped by ``tf.data.experimental.ignore_errors`` (with
  TF's warning log) in skip mode.

``verify=False`` skips the sha256 pass (one full read of every shard, about
1 s/GB) and checks only file sizes; bit flips then surface as TFRecord CRC
errors while reading: ``DataLossError`` in fail mode, and in skip mode the
rest of that shard after the damaged record is dropped (TF's reader stops
there; measured with TF 2.21).

Augmentation (``augment=True``) is photometric only, on ``texture``: a random
per-channel gain (white balance, x[0.9, 1.1]), a global brightness gain
(x[0.8, 1.2]) and a gamma in [0.8, 1.25], clipped to [0,1]; the random draws
are stateless, from ``seed`` and the element's position in the stream.
No geometric augmentation: a horizontal flip of the UV maps is a mirror of the
face only if the UV layout is exactly left/right symmetric about u = 0.5 with
mirrored vertices at mirrored u (not guaranteed for the pluggable face models;
BFM/ICT layouts are not), and it would also have to negate the normals' and
positions' x, mirror the pose and flip the sign of the x-odd SH bands of any
ground truth. B-Net and FAN already see mirrored features through FAN's
flip-feature layer, so flips are left out. Augmentation changes the apparent
lighting, so keep it off when comparing with ground-truth extras.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Optional, Union

from tf_face.data.records import parse_example
from tf_face.data.shards import CorruptShardError, check_shard, list_shards, salvage_records
from tf_face.errors import TfFaceError
# TF-loading imports stay in functions: train.train_* imports this at start-up (test_import_weight)

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DatasetReport:
    """What ``make_dataset`` found in the shards."""
    shards: list = dataclasses.field(default_factory=list)          # usable shard paths
    ignored: list = dataclasses.field(default_factory=list)         # (path, reason)
    corrupt: list = dataclasses.field(default_factory=list)         # (path, reason, lost, kept)
    records: int = 0                                                # usable records
    uv_size: int = 0
    extras: dict = dataclasses.field(default_factory=dict)

    @property
    def records_lost(self) -> int:
        return sum(c[2] for c in self.corrupt)

    def summary(self) -> str:
        s = f"{self.records} records in {len(self.shards)} shards"
        if self.corrupt:
            s += f"; {len(self.corrupt)} corrupt shard(s), {self.records_lost} record(s) skipped"
        if self.ignored:
            s += f"; {len(self.ignored)} shard(s) without a valid index ignored"
        return s


def scan_shards(pattern_or_dir, on_corrupt: str = "skip", verify: bool = True):
    """Check every shard; returns (report, ok paths, salvaged payloads).

    Raises ``TfFaceError`` when nothing usable is found, ``CorruptShardError``
    for a damaged shard in fail mode, and when shards disagree on uv size or
    extras.
    """
    if on_corrupt not in ("skip", "fail"):
        raise ValueError(f"on_corrupt must be 'skip' or 'fail', got {on_corrupt!r}")
    paths = list_shards(pattern_or_dir)
    if not paths:
        raise TfFaceError(f"no .tfrecord shards found at {pattern_or_dir}")
    report = DatasetReport()
    ok_paths: list[str] = []
    salvaged: list[bytes] = []
    layout = None
    for p in paths:
        st = check_shard(p, verify=verify)
        if st.status in ("no_index", "bad_index"):
            log.warning("ignoring shard %s: %s", p.name, st.reason)
            report.ignored.append((str(p), st.reason))
            continue
        this = (st.index["uv_size"], st.index["extras"])
        if st.index["count"] > 0:
            if layout is None:
                layout = this
            elif this != layout:
                raise TfFaceError(f"shard {p} has uv size/extras {this}, earlier shards {layout}: "
                                  "shards of different datasets cannot be mixed")
        if st.status == "corrupt":
            if on_corrupt == "fail":
                raise CorruptShardError(f"corrupt shard {p}: {st.reason}")
            good, lost = salvage_records(p, st.index)
            log.warning("corrupt shard %s: %s; skipping %d of %d record(s)", p.name, st.reason,
                        lost, st.count)
            report.corrupt.append((str(p), st.reason, lost, len(good)))
            salvaged.extend(good)
            report.records += len(good)
            continue
        if st.count:
            ok_paths.append(str(p))
        report.shards.append(str(p))
        report.records += st.count
    if layout is None or report.records == 0:
        raise TfFaceError(f"no usable records in the shards at {pattern_or_dir} "
                          f"({len(paths)} shard file(s): {len(report.ignored)} without a valid "
                          f"index, {len(report.corrupt)} corrupt)")
    report.uv_size, report.extras = int(layout[0]), dict(layout[1])
    return report, ok_paths, salvaged


def _augment(element: dict, index, seed: int) -> dict:
    import tensorflow as tf

    s = tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)])
    u = tf.random.stateless_uniform([5], seed=s, dtype=tf.float32)
    channel_gain = 0.9 + 0.2 * u[:3]
    brightness = 0.8 + 0.4 * u[3]
    gamma = tf.exp((u[4] * 2.0 - 1.0) * tf.math.log(1.25))
    tex = tf.pow(tf.maximum(element["texture"], 1e-6), gamma) * channel_gain * brightness
    out = dict(element)
    out["texture"] = tf.clip_by_value(tex, 0.0, 1.0)
    return out


def make_dataset_with_report(pattern_or_dir: Union[str, Path], batch_size: int,
                             shuffle: bool = True, augment: bool = False,
                             on_corrupt: str = "skip", repeat: Union[bool, int] = False,
                             seed: Optional[int] = None, verify: bool = True,
                             shuffle_buffer: int = 256, drop_remainder: bool = False,
                             cycle_length: int = 8, input_context=None):
    """``make_dataset`` that also returns the ``DatasetReport``."""
    import tensorflow as tf

    report, ok_paths, salvaged = scan_shards(pattern_or_dir, on_corrupt, verify)
    autotune = tf.data.AUTOTUNE
    deterministic = (not shuffle) or seed is not None
    parts, weights = [], []
    n_pipes, pipe_id = 1, 0
    if input_context is not None:
        n_pipes = int(input_context.num_input_pipelines)
        pipe_id = int(input_context.input_pipeline_id)
    by_file = n_pipes > 1 and len(ok_paths) >= n_pipes and not salvaged
    if by_file:  # each input pipeline reads its own shards (sorted list, every n-th)
        ok_paths = ok_paths[pipe_id::n_pipes]
    if ok_paths:
        files = tf.data.Dataset.from_tensor_slices(ok_paths)
        if shuffle:
            files = files.shuffle(len(ok_paths), seed=seed, reshuffle_each_iteration=True)
        records = files.interleave(
            lambda f: tf.data.TFRecordDataset(f, buffer_size=1 << 20),
            cycle_length=max(1, min(cycle_length, len(ok_paths))),
            num_parallel_calls=autotune, deterministic=deterministic)
        parts.append(records)
        weights.append(float(report.records - len(salvaged)))
    if salvaged:
        parts.append(tf.data.Dataset.from_tensor_slices(tf.constant(salvaged, tf.string)))
        weights.append(float(len(salvaged)))
    if len(parts) == 1:
        ds = parts[0]
    else:
        total = sum(weights)
        ds = tf.data.Dataset.sample_from_datasets(
            parts, weights=[w / total for w in weights], seed=seed, stop_on_empty_dataset=False)
    if n_pipes > 1 and not by_file:  # too few shards: every n-th record instead
        ds = ds.shard(n_pipes, pipe_id)
    if shuffle:
        ds = ds.shuffle(max(1, min(shuffle_buffer, report.records)), seed=seed,
                        reshuffle_each_iteration=True)
    if repeat is True:
        ds = ds.repeat()
    elif repeat and int(repeat) > 1:
        ds = ds.repeat(int(repeat))
    uv, extras = report.uv_size, report.extras
    ds = ds.map(lambda r: parse_example(r, uv_size=uv, extras=extras),
                num_parallel_calls=autotune, deterministic=deterministic)
    if on_corrupt == "skip":
        ds = ds.ignore_errors(log_warning=True)
    if augment:
        aug_seed = 0 if seed is None else int(seed)
        ds = ds.enumerate().map(lambda i, e: _augment(e, i, aug_seed),
                                num_parallel_calls=autotune, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder,
                  num_parallel_calls=autotune, deterministic=deterministic)
    ds = ds.prefetch(autotune)
    log.info("dataset %s: %s", pattern_or_dir, report.summary())
    return ds, report


def make_dataset(pattern_or_dir: Union[str, Path], batch_size: int, shuffle: bool = True,
                 augment: bool = False, on_corrupt: str = "skip",
                 repeat: Union[bool, int] = False, seed: Optional[int] = None,
                 verify: bool = True, shuffle_buffer: int = 256,
                 drop_remainder: bool = False, cycle_length: int = 8, input_context=None):
    """A batched ``tf.data.Dataset`` of UV samples from the shards at ``pattern_or_dir``.

    ``pattern_or_dir``: a folder (its ``*.tfrecord``) or a glob. ``repeat``:
    False = one pass, True = forever, n = n passes. ``seed`` makes shuffling and
    augmentation reproducible (and element order deterministic). ``on_corrupt``
    and ``verify``: see the module docstring. Element layout: module docstring.
    ``input_context`` (a ``tf.distribute.InputContext``, e.g. from
    ``strategy.distribute_datasets_from_function``): each input pipeline reads
    every n-th shard (every n-th record when there are fewer shards than
    pipelines or salvaged records); ``batch_size`` is then the per-replica
    batch, the caller's choice. ``report.records`` counts all pipelines.
    """
    ds, _ = make_dataset_with_report(pattern_or_dir, batch_size, shuffle=shuffle,
                                     augment=augment, on_corrupt=on_corrupt, repeat=repeat,
                                     seed=seed, verify=verify, shuffle_buffer=shuffle_buffer,
                                     drop_remainder=drop_remainder, cycle_length=cycle_length,
                                     input_context=input_context)
    return ds
