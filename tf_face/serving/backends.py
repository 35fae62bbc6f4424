"""The three networks behind one call, on TensorFlow or on TFLite.

``backend(texture [S,S,3]) -> NetworkOutputs`` for both backends:

* ``TFBackend``: the Keras networks as ``serving.inference_model`` (the same
  function in faster layers), in one ``tf.function`` with a fixed batch-1
  signature (graph mode, traced once; ``fused=False``: one per network).
* ``TFLiteBackend``: the ``<net>_<precision>.tflite`` files of
  ``tf_face.serving.tflite`` run with the TFLite interpreter; no TensorFlow
  graph executes for the networks. Missing files are converted on the fly
  into a cache folder keyed by the weights' content
  (``<tf_face cache>/tflite/<digest>-<format>/``), or read from ``tflite_dir``
  (``python -m train.export --tflite`` output, its ``tflite/`` folder).

Both compose B-Net's albedo ``R_a = m_a + U_a p_a`` on the host (numpy) from
p_a, so the backends differ only in how the networks run. ``run_raw`` (the
networks) and ``compose`` (the host step) are also callable apart: serving
computes the detail maps from ``raw_moving_rate`` on a second thread while
``compose`` runs (``serving.reconstruct``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

import numpy as np

from tf_face.assets import cache_dir
from tf_face.serving.tflite import (OUTPUT_NAMES, PRECISIONS, TFLITE_FORMAT, TFLiteNetwork,
                                    export_tflite, tflite_name)
from tf_face.serving.weights import (CONFIG_FILE, MANIFEST, NETWORKS, WeightsError,
                                     is_release_folder, load_networks)
# TF-loading imports stay in functions: cli.reconstruct imports this at start-up
# (test_import_weight)

BACKENDS = ("tf", "tflite")


@dataclasses.dataclass
class NetworkOutputs:
    p_a: np.ndarray          # [K]
    sh: np.ndarray           # [9, 3] (ambient offset included)
    albedo_pca: np.ndarray   # [S, S, 3] B-Net's R_a (weights' colour space)
    albedo: np.ndarray       # [S, S, 3] FAN (weights' colour space)
    moving_rate: np.ndarray  # [S, S] DRN's r_d, detail units
    timings_ms: dict


def raw_moving_rate(raw: dict) -> np.ndarray:
    """DRN's r_d [S, S] float32 from the networks' raw outputs."""
    return np.asarray(raw["moving_rate"], np.float32)[0, ..., 0]


def _compose(raw: dict, albedo_model, timings: dict) -> NetworkOutputs:
    t = time.perf_counter()
    pca = albedo_model.albedo_np(raw["p_a"])[0]
    timings["albedo_pca"] = (time.perf_counter() - t) * 1e3
    return NetworkOutputs(p_a=np.asarray(raw["p_a"], np.float32).reshape(-1),
                          sh=np.asarray(raw["sh"], np.float32).reshape(9, 3),
                          albedo_pca=pca,
                          albedo=np.asarray(raw["albedo"], np.float32)[0],
                          moving_rate=raw_moving_rate(raw),
                          timings_ms=timings)


class _Backend:
    """Runs B-Net, FAN and DRN on one texture (subclasses: ``run_network``).

    ``timings_ms`` has ``networks`` (the three together) and, when they run as
    separate calls, ``bnet``, ``fan`` and ``drn``."""

    def run_network(self, name: str, x: np.ndarray) -> dict:
        raise NotImplementedError

    def run_all(self, x: np.ndarray, timings: dict) -> dict:
        raw = {}
        for name in NETWORKS:
            t = time.perf_counter()
            raw.update(self.run_network(name, x))
            timings[name] = (time.perf_counter() - t) * 1e3
        return raw

    def run_raw(self, texture) -> tuple:
        """The networks only: ``({output name: array}, timings_ms)``."""
        x = np.asarray(texture, np.float32)[None]
        timings = {}
        t = time.perf_counter()
        raw = self.run_all(x, timings)
        timings["networks"] = (time.perf_counter() - t) * 1e3
        return raw, timings

    def compose(self, raw: dict, timings: dict) -> NetworkOutputs:
        """``NetworkOutputs`` of ``run_raw``'s result (B-Net's R_a on the host)."""
        return _compose(raw, self.albedo_model, timings)

    def __call__(self, texture) -> NetworkOutputs:
        return self.compose(*self.run_raw(texture))


def keras_networks_function(models: dict, uv_size: int, num_albedo: int = 0):
    """The serving call of some of B-Net, FAN and DRN on TF, in one ``tf.function``
    (traced on the first call): ``fn(x [1,S,S,3] float32) -> {output name: array}``
    with the TFLite signature's names (``OUTPUT_NAMES``): bnet ``p_a`` [1,K] and
    ``sh`` [1,9,3]; fan ``albedo`` [1,S,S,3]; drn ``moving_rate`` [1,S,S,1]
    (detail units). ``models``: {network name: Keras model}, run as
    ``inference_model(model)`` (transposed convs, instance norms, last convs and
    skip-join ReLUs in faster layers, the same function to float rounding).

    With all three, one graph instead of three calls: TF schedules them together
    (no per-call dispatch and host round trip in between); eval/bench_reconstruct.py
    measures it against the separate calls (``tf_separate``)."""
    import tensorflow as tf

    from tf_face.serving.inference_model import inference_model
    from tf_face.models.bnet import split_bnet_output

    unknown = sorted(set(models) - set(OUTPUT_NAMES))
    if unknown:
        raise ValueError(f"unknown network {unknown[0]!r} (one of {NETWORKS})")
    names = [n for n in NETWORKS if n in models]
    # the same function in faster layers (serving.inference_model)
    models = {n: inference_model(models[n]) for n in names}
    spec = [tf.TensorSpec([1, uv_size, uv_size, 3], tf.float32)]

    @tf.function(input_signature=spec)
    def fn(x):
        outs = []
        for n in names:
            y = models[n](x, training=False)
            outs += list(split_bnet_output(y, num_albedo)) if n == "bnet" else [y]
        return tuple(outs)

    out_names = [k for n in names for k in OUTPUT_NAMES[n]]

    def run(x) -> dict:
        outs = fn(np.asarray(x, np.float32))
        return {k: v.numpy() for k, v in zip(out_names, outs)}
    return run


def keras_network_function(name: str, model, uv_size: int, num_albedo: int = 0):
    """``keras_networks_function`` of one network (used by ``TFBackend`` and the
    synthetic benchmark)."""
    return keras_networks_function({name: model}, uv_size, num_albedo)


class TFBackend(_Backend):
    """The Keras networks on TF. ``fused`` (default): the three in one
    ``tf.function`` call (``keras_networks_function``); ``fused=False``: one
    call per network (per-network timings, ``run_network``)."""
    name = "tf"

    def __init__(self, weights_dir, cfg, albedo_model, networks=None, fused: bool = True):
        self.cfg, self.albedo_model, self.fused = cfg, albedo_model, fused
        from tf_face.serving.inference_model import inference_model

        nets = networks if networks is not None else load_networks(weights_dir)
        # rewritten once here (keras_networks_function leaves a rewritten model as it is)
        nets = {n: inference_model(nets[n]) for n in NETWORKS}
        self._fns = {n: keras_network_function(n, nets[n], cfg.uv_size, cfg.num_albedo)
                     for n in NETWORKS}
        self._all = keras_networks_function(nets, cfg.uv_size, cfg.num_albedo) if fused else None

    def run_network(self, name: str, x: np.ndarray) -> dict:
        return self._fns[name](x)

    def run_all(self, x: np.ndarray, timings: dict) -> dict:
        if self._all is None:
            return super().run_all(x, timings)
        return self._all(x)


def weights_digest(weights_dir) -> str:
    """Content hash of the network files and the config (cache key)."""
    h = hashlib.sha256()
    names = ([MANIFEST] if is_release_folder(weights_dir)   # holds every file's sha256
             else [f"{n}.keras" for n in NETWORKS] + [CONFIG_FILE])
    for name in names:
        p = Path(weights_dir) / name
        h.update(name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def tflite_cache_root() -> Path:
    """Where on-the-fly conversions go: ``<tf_face cache>/tflite``."""
    return cache_dir() / "tflite"


def ensure_tflite(weights_dir, cfg, precision: str = "float32", tflite_dir=None,
                  log=print) -> Path:
    """The folder holding ``<net>_<precision>.tflite`` for the three networks.

    With ``tflite_dir`` the files must be there (``train.export --tflite``);
    otherwise they are converted once into the cache folder for these weights.
    """
    if precision not in PRECISIONS:
        raise WeightsError(f"--tflite_precision must be one of {', '.join(PRECISIONS)}, "
                           f"got {precision!r}")
    names = [tflite_name(n, precision) for n in NETWORKS]
    if tflite_dir:
        folder = Path(tflite_dir)
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise WeightsError(f"--tflite_dir {folder} lacks {', '.join(missing)}; make them "
                               f"with python -m train.export --weights_dir={weights_dir} "
                               f"--output=DIR --tflite (they land in DIR/tflite)")
        return folder
    # the format tag keeps files of an older conversion (unnamed outputs) out of use
    folder = tflite_cache_root() / f"{weights_digest(weights_dir)}-{TFLITE_FORMAT}"
    if not all((folder / n).is_file() for n in names):
        log(f"converting the networks to TFLite ({precision}) into {folder} (once)")
        export_tflite(load_networks(weights_dir), folder, cfg.uv_size, cfg.num_albedo,
                      precisions=(precision,))
    return folder


class TFLiteBackend(_Backend):
    name = "tflite"

    def __init__(self, weights_dir, cfg, albedo_model, precision: str = "float32",
                 tflite_dir=None, num_threads=None, log=print):
        self.cfg, self.albedo_model, self.precision = cfg, albedo_model, precision
        self.folder = ensure_tflite(weights_dir, cfg, precision, tflite_dir, log)
        self.nets = {n: TFLiteNetwork(self.folder / tflite_name(n, precision), num_threads)
                     for n in NETWORKS}
        shape = self.nets["fan"].input_shape
        if shape[1] != cfg.uv_size:
            raise WeightsError(f"{self.folder}: TFLite input {shape} does not match "
                               f"uv_size {cfg.uv_size} of the weights")

    def run_network(self, name: str, x: np.ndarray) -> dict:
        return self.nets[name](x)


def make_backend(kind: str, weights_dir, cfg, albedo_model, **kwargs):
    if kind == "tf":
        return TFBackend(weights_dir, cfg, albedo_model, **kwargs)
    if kind == "tflite":
        return TFLiteBackend(weights_dir, cfg, albedo_model, **kwargs)
    raise WeightsError(f"--backend must be tf or tflite, got {kind!r}")
