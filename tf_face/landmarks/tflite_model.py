"""The one TFLite interpreter wrapper (MediaPipe's models and our networks).

The interpreter (``ai_edge_litert`` when installed, else ``tf.lite``) is
created on first use (importing ``tf_face.landmarks`` does not import
TensorFlow) and quietly (no deprecation warning, no XNNPACK INFO line);
tensors are allocated once. A call copies one float32 input in and returns
the outputs **by name**: the signature's output names for models that have
one (tf_face's networks: ``serving.tflite.OUTPUT_NAMES``), else the output
tensors' names (MediaPipe's BlazeFace: ``regressors`` / ``classificators``,
``Identity`` / ``Identity_1``; face mesh: ``conv2d_21`` / ``conv2d_31``).
One instance is not thread-safe (TFLite interpreters are not); make one
per thread.

Threads: tf_face's networks use every usable core (``usable_cpus``); the
~1 ms MediaPipe models use ``small_model_threads()``: 2 where the process may
use 2 or more cores (face mesh 1.2 -> 0.65 ms, BlazeFace short range 1.05 ->
0.59 ms, full range 3.3 -> 1.8 ms on a 2-core AMD EPYC, 2026-12-03; more threads buy
little on models this small), 1 in processes that share the cores with
siblings (``set_small_model_threads(1)``: the preprocessing job's workers).
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import numpy as np

from tf_face.assets import asset_path
from tf_face.tf_import import muted_stderr, quiet_tensorflow


SMALL_MODEL_MAX_THREADS = 2
_small_model_threads: int | None = None   # set_small_model_threads' override


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):   # not Linux
        return max(1, os.cpu_count() or 1)


def small_model_threads() -> int:
    """Default TFLite threads of the MediaPipe models (module doc)."""
    if _small_model_threads is not None:
        return _small_model_threads
    return min(SMALL_MODEL_MAX_THREADS, usable_cpus())


def set_small_model_threads(n: int | None) -> None:
    """Threads of MediaPipe models created from now on in this process (None:
    back to the default). Worker processes that split the cores set 1."""
    global _small_model_threads
    if n is not None and int(n) < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    _small_model_threads = None if n is None else int(n)


def interpreter_class():
    """LiteRT's ``Interpreter`` when ``ai_edge_litert`` is installed, else ``tf.lite``'s."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore
        return Interpreter
    except ImportError:   # optional dependency: fall back to TF (lazy: landmarks imports TF-free)
        quiet_tensorflow()
        import tensorflow as tf
        return tf.lite.Interpreter


class TFLiteModel:
    """One TFLite model with a single float32 input tensor.

    Args:
      asset_name: name known to ``tf_face.assets.asset_path`` (MediaPipe's
        models), or
      path: a .tflite file.
      num_threads: TFLite CPU threads (None: the interpreter's default).
    """

    def __init__(self, asset_name: str | None = None, num_threads: int | None = None, *,
                 path=None):
        if (asset_name is None) == (path is None):
            raise ValueError("TFLiteModel: give asset_name or path")
        self.asset_name = asset_name
        self.path = None if path is None else Path(path)
        self.num_threads = num_threads
        self._interp = None
        self._lock = threading.Lock()

    def _load(self):
        path = self.path or asset_path(self.asset_name)   # AssetMissingError with the fix
        cls = interpreter_class()
        with warnings.catch_warnings(), muted_stderr():
            warnings.simplefilter("ignore")   # "tf.lite.Interpreter is deprecated"
            interp = cls(model_path=str(path), num_threads=self.num_threads)
            interp.allocate_tensors()   # prints the XNNPACK-delegate INFO line
        if interp.get_signature_list():
            runner = interp.get_signature_runner()
            inputs = list(runner.get_input_details().items())
            outputs = runner.get_output_details()
        else:
            inputs = [(d["name"], d) for d in interp.get_input_details()]
            outputs = {d["name"]: d for d in interp.get_output_details()}
        if len(inputs) != 1:
            raise ValueError(f"{path}: expected one input tensor, got {len(inputs)}")
        (self.input_name, self._input), = inputs
        self._outputs = {name: d["index"] for name, d in outputs.items()}
        self._shapes = {name: tuple(int(s) for s in d["shape"]) for name, d in outputs.items()}
        self._interp = interp

    def ensure_loaded(self):
        if self._interp is None:
            with self._lock:
                if self._interp is None:
                    self._load()

    @property
    def interpreter(self):
        self.ensure_loaded()
        return self._interp

    @property
    def input_shape(self) -> tuple[int, ...]:
        self.ensure_loaded()
        return tuple(int(s) for s in self._input["shape"])

    @property
    def output_names(self) -> tuple[str, ...]:
        """The outputs' names, sorted."""
        self.ensure_loaded()
        return tuple(sorted(self._outputs))

    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        self.ensure_loaded()
        return dict(self._shapes)

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run on ``x`` (float32, the input's shape); ``{output name: array}`` (copies)."""
        self.ensure_loaded()
        self._interp.set_tensor(self._input["index"], x)
        self._interp.invoke()
        return {name: self._interp.get_tensor(i) for name, i in self._outputs.items()}
