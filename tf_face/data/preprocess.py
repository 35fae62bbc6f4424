"""The preprocessing job: photo collection -> geometry pipeline -> TFRecord shards.

``run_preprocess(input, output, ...)`` (the body of ``python -m train.preprocess``):

* lists the photos (``collection.list_collection``), sorted by image id, and
  splits them into consecutive shards of ``shard_size`` photos
  (``shard-00000.tfrecord``, ...);
* runs ``GeometryPipeline(model).run`` on every photo of the shards still to
  do, in ``workers`` processes (multiprocessing *spawn*; each worker builds
  its pipeline once, on its first photo; ``workers <= 1`` runs in this
  process), with a tqdm progress bar per photo;
* writes each shard atomically as soon as all its photos are done
  (``shards.ShardWriter``); the shard's index stores the planned image ids,
  the model, the uv size and the photos that failed with their one-line
  reasons;
* resumes: a shard is skipped when its index is valid, its file matches the
  index (size + sha256) and it was made from the same image ids, model and
  uv size; anything else (no index after a kill, a damaged file, another
  photo list) is redone. Stale temp files of a killed run are removed;
* extras (ground truth of synthetic faces): a photo ``NAME.ext`` may have a
  sidecar ``NAME.extras.npz`` (numeric/bool/str arrays, read with
  ``allow_pickle=False``) whose arrays are stored as the record's extras
  (kinds inferred by ``records.extras_spec``). The first photo in id order
  decides: if it has a sidecar, every photo must have one with the same keys
  and shapes (else that photo fails with the reason); if it has none,
  sidecars are ignored. ``sidecar_extras=False`` ignores them always;
* ``failures.json`` lists every failed photo (``image`` id, ``path``,
  ``error``, ``type``, ``shard``), rebuilt after every shard from all shard
  indexes, so it merges runs; ``dataset.json`` (model spec, uv size, counts,
  shard list) is written when every shard is complete.

An output folder holding a dataset made with another model, uv size or shard
size is refused unless ``overwrite`` (which deletes the old shards first).
Ctrl-C / kill leaves only complete shards (plus at most one hidden temp file).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing as mp
import signal
import sys
from pathlib import Path
from typing import Callable, Optional

from tf_face.data.collection import list_collection, shard_name, shard_plan
import numpy as np
from tqdm import tqdm

from tf_face.data.records import FORMAT_VERSION, encode_example, extras_spec, fit_params
from tf_face.data.shards import (ShardWriter, check_shard, index_path, remove_stale_temp_files,
                                 write_json_atomic)
from tf_face.errors import TfFaceError, describe_error
from tf_face.image_io import IMAGE_SUFFIXES, load_image
from tf_face.landmarks.tflite_model import set_small_model_threads
from tf_face.pipeline import GeometryPipeline
from tf_face.tf_import import quiet_tensorflow

log = logging.getLogger(__name__)


EXTRAS_SUFFIX = ".extras.npz"


def sidecar_path(photo) -> Path:
    p = Path(photo)
    return p.with_name(p.stem + EXTRAS_SUFFIX)


def load_sidecar_extras(photo) -> Optional[dict]:
    """The arrays of ``NAME.extras.npz`` beside ``photo``, or None without one."""
    p = sidecar_path(photo)
    if not p.is_file():
        return None
    try:
        with np.load(p, allow_pickle=False) as z:
            out = {}
            for k in z.files:
                v = z[k]
                if v.dtype.kind == "U":
                    out[k] = str(v.item()) if v.ndim == 0 else "\n".join(v.ravel().tolist())
                elif v.dtype.kind in "biuf":
                    out[k] = np.array(v)
                else:
                    raise ValueError(f"array {k!r} has unsupported dtype {v.dtype}")
            extras_spec(out)  # validates names and layouts
            return out
    except Exception as e:  # noqa: BLE001 - any problem of the file is the user's
        raise TfFaceError(f"{p}: unreadable extras sidecar ({e})") from e


def default_pipeline_factory(model: str, uv_size: int):
    """Builds the real geometry pipeline (one per worker process)."""
    return GeometryPipeline(model, uv_size=uv_size)


# ----------------------------------------------------------------------------- worker side

_STATE: dict = {}


def _init_worker(model: str, uv_size: int, factory: Callable, ignore_sigint: bool,
                 extras: Optional[dict] = None) -> None:
    if ignore_sigint:  # a pool worker: the parent handles Ctrl-C and terminates the pool
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # the workers split the cores: one TFLite thread each for the landmark models
        set_small_model_threads(1)
    quiet_tensorflow()
    _STATE.clear()
    _STATE.update(model=model, uv_size=uv_size, factory=factory, pipe=None, extras=extras or {})


def _process(task: tuple) -> tuple:
    """(shard k, position, path, image id) -> (k, pos, record | None, error | None, fatal)."""
    k, pos, path, image_id = task
    if _STATE.get("pipe") is None:
        try:
            _STATE["pipe"] = _STATE["factory"](_STATE["model"], _STATE["uv_size"])
        except Exception as e:  # noqa: BLE001 - reported to the parent, which stops the job
            return k, pos, None, (describe_error(e), type(e).__name__), True
    try:
        image = load_image(path)
        extras = None
        if _STATE["extras"]:
            extras = load_sidecar_extras(path)
            if extras is None:
                raise TfFaceError(f"no extras sidecar {sidecar_path(path).name} (the dataset's "
                                  "first photo has one)")
            spec = extras_spec(extras)
            if spec != _STATE["extras"]:
                raise TfFaceError(f"extras {spec} differ from the dataset's {_STATE['extras']}")
        result = _STATE["pipe"].run(image)
        record = encode_example(result.sample, fit_params(result.fitted), image_id, extras,
                                source_path=str(path))
        return k, pos, record, None, False
    except Exception as e:  # noqa: BLE001 - one bad photo never stops the job
        return k, pos, None, (describe_error(e), type(e).__name__), False


# ----------------------------------------------------------------------------- parent side

@dataclasses.dataclass
class PreprocessSummary:
    photos: int = 0
    shards: int = 0
    shards_skipped: int = 0
    shards_written: int = 0
    photos_processed: int = 0
    records: int = 0
    failed: int = 0
    output: str = ""


def _settings(model: str, uv_size: int, shard_size: int) -> dict:
    return {"model": model, "uv_size": int(uv_size), "shard_size": int(shard_size)}


def _shard_is_done(path: Path, ids: list, model: str, uv_size: int, extras: dict) -> bool:
    st = check_shard(path, verify=True)
    if st.status != "ok":
        if path.exists():
            log.warning("redoing %s: %s", path.name, st.reason)
        return False
    meta = st.index.get("meta") or {}
    return (meta.get("image_ids") == ids and meta.get("model") == model
            and st.index.get("uv_size") == uv_size and st.index.get("extras") == extras)


def _collect_failures(output: Path, names: list) -> list:
    failures = []
    for name in names:
        st = check_shard(output / name, verify=False)
        if st.status == "ok":
            failures.extend((st.index.get("meta") or {}).get("failures", []))
    return failures


def _prepare_output(output: Path, settings: dict, overwrite: bool) -> None:
    output.mkdir(parents=True, exist_ok=True)
    ds_json = output / "dataset.json"
    old = None
    if ds_json.is_file():
        try:
            old = json.loads(ds_json.read_text()).get("settings")
        except ValueError:
            old = None
    ours = [p for p in output.iterdir() if p.name.startswith("shard-")
            and (p.name.endswith(".tfrecord") or p.name.endswith(".index.json"))]
    if overwrite:
        for p in ours + [ds_json, output / "failures.json"]:
            p.unlink(missing_ok=True)
    elif old is not None and old != settings:
        raise TfFaceError(f"{output} holds a dataset made with {old}, not {settings}; "
                          "pass --overwrite to replace it")
    remove_stale_temp_files(output)


def run_preprocess(input_path, output, shard_size: int = 256, workers: int = 2,
                   model: str = "default", uv_size: int = 256, overwrite: bool = False,
                   progress: bool = True, sidecar_extras: bool = True,
                   pipeline_factory: Callable = default_pipeline_factory) -> PreprocessSummary:
    """Run the job (see the module docstring). Returns counts of what it did.

    ``pipeline_factory(model, uv_size)`` must return an object with
    ``run(image_rgb_uint8) -> PipelineResult``; with ``workers > 1`` it must be
    a module-level function (it is pickled into spawned processes).
    Raises ``TfFaceError`` for a bad input/output, when the pipeline cannot
    be built (missing assets, bad model spec) -- a folder this run created is
    then removed again when no shard was written -- and when not one photo
    gave a UV sample (``failures.json`` says why for each).
    """
    output = Path(output)
    items = list_collection(input_path, exclude=output)
    if not items:
        raise TfFaceError(f"no images ({', '.join(sorted(_suffixes()))}) found at {input_path}")
    settings = _settings(model, uv_size, shard_size)
    created = not output.exists()
    _prepare_output(output, settings, overwrite)
    try:
        summary = _run(input_path, output, items, settings, shard_size, workers, model,
                       uv_size, progress, sidecar_extras, pipeline_factory)
    except BaseException:
        # a run that made the folder and wrote no shard leaves no empty folder behind
        # (e.g. a bad --model spec is found when the pipeline is built)
        if created and output.is_dir() and not any(output.glob("shard-*")):
            for p in output.iterdir():
                if p.is_file() and (p.name in ("failures.json", "dataset.json")
                                    or p.name.startswith(".")):
                    p.unlink(missing_ok=True)
            try:
                output.rmdir()
            except OSError:
                pass
        raise
    if summary.records == 0:
        # not a dataset: say so (the shard indexes and failures.json stay, so a
        # rerun after fixing the photos or the model redoes only what failed)
        raise TfFaceError(f"no photo of {input_path} gave a UV sample ({summary.failed} of "
                          f"{len(items)} failed); the reasons are in {output / 'failures.json'}")
    return summary


def _run(input_path, output, items, settings, shard_size, workers, model, uv_size, progress,
         sidecar_extras, pipeline_factory) -> PreprocessSummary:
    """The body of ``run_preprocess`` once the output folder is prepared."""
    expected_extras: dict = {}
    if sidecar_extras:
        first = load_sidecar_extras(items[0][1])
        expected_extras = extras_spec(first) if first else {}
    plan = shard_plan(items, shard_size)
    names = [shard_name(k) for k in range(len(plan))]
    planned = set(names)
    for p in output.glob("shard-*.tfrecord"):
        if p.name not in planned:  # left from a larger photo list
            log.warning("removing %s: not part of the current photo list", p.name)
            index_path(p).unlink(missing_ok=True)
            p.unlink(missing_ok=True)
    summary = PreprocessSummary(photos=len(items), shards=len(plan), output=str(output))
    todo = []
    for k, chunk in enumerate(plan):
        if _shard_is_done(output / names[k], [i for i, _ in chunk], model, uv_size,
                          expected_extras):
            summary.shards_skipped += 1
        else:
            todo.append(k)
    tasks = [(k, pos, str(path), image_id) for k in todo
             for pos, (image_id, path) in enumerate(plan[k])]
    pending = {k: len(plan[k]) for k in todo}
    results: dict = {k: [None] * len(plan[k]) for k in todo}
    bar = tqdm(total=len(items), initial=len(items) - len(tasks), desc="preprocess",
               unit="photo", file=sys.stderr, disable=not progress)

    def finish_shard(k: int) -> None:
        chunk, res = plan[k], results.pop(k)
        failures = [{"image": image_id, "path": str(path), "error": err[0], "type": err[1],
                     "shard": names[k]}
                    for (image_id, path), (record, err) in zip(chunk, res) if record is None]
        meta = {"image_ids": [i for i, _ in chunk], "model": model, "failures": failures}
        with ShardWriter(output / names[k], uv_size=uv_size, extras=expected_extras,
                         meta=meta) as w:
            for record, _ in res:
                if record is not None:
                    w.write(record)
        summary.shards_written += 1
        summary.records += w.info.count
        write_json_atomic(output / "failures.json", _collect_failures(output, names))

    def consume(it) -> None:
        for k, pos, record, err, fatal in it:
            if fatal:
                raise TfFaceError(f"could not build the geometry pipeline: {err[0]}")
            results[k][pos] = (record, err)
            summary.photos_processed += 1
            bar.update(1)
            pending[k] -= 1
            if pending[k] == 0:
                finish_shard(k)

    try:
        for k in [k for k in todo if pending[k] == 0]:
            finish_shard(k)
        if tasks and workers <= 1:
            _init_worker(model, uv_size, pipeline_factory, False, expected_extras)
            try:
                consume(map(_process, tasks))
            finally:
                _STATE.clear()
        elif tasks:
            ctx = mp.get_context("spawn")
            with ctx.Pool(min(workers, len(tasks)), initializer=_init_worker,
                          initargs=(model, uv_size, pipeline_factory, True,
                                    expected_extras)) as pool:
                consume(pool.imap_unordered(_process, tasks, chunksize=1))
    finally:
        bar.close()
    failures = _collect_failures(output, names)
    write_json_atomic(output / "failures.json", failures)
    summary.failed = len(failures)
    counts = []
    for name in names:
        st = check_shard(output / name, verify=False)
        counts.append({"name": name, "records": st.count})
    summary.records = sum(c["records"] for c in counts)
    write_json_atomic(output / "dataset.json", {
        "format_version": FORMAT_VERSION, "settings": settings, "input": str(input_path),
        "uv_size": int(uv_size), "model": model, "num_images": len(items),
        "num_records": summary.records, "num_failed": len(failures),
        "num_shards": len(names), "shards": counts, "extras": expected_extras,
    })
    return summary


def _suffixes():
    return IMAGE_SUFFIXES
