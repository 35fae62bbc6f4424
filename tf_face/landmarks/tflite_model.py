"""A thin, lazily loaded wrapper around ``tf.lite.Interpreter``.

The interpreter is created on first use (importing ``tf_face.landmarks`` does
not import TensorFlow), tensors are allocated once, and every call copies one
float32 input in and returns views of the outputs copied out.  One instance is
not thread-safe (TFLite interpreters are not); make one per thread.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from tf_face.assets import asset_path


class TFLiteModel:
    """One TFLite model with a single float32 input tensor.

    Args:
      asset_name: name known to ``tf_face.assets.asset_path``.
      num_threads: TFLite CPU threads (default: 1 — the machines this runs on
        are shared and the models take ~1 ms).
    """

    def __init__(self, asset_name: str, num_threads: int | None = None):
        self.asset_name = asset_name
        self.num_threads = num_threads or 1
        self._interp = None
        self._lock = threading.Lock()

    def _load(self):
        path = asset_path(self.asset_name)   # AssetMissingError with the fix
        from tf_face.tf_import import muted_stderr, quiet_tensorflow
        quiet_tensorflow()
        import tensorflow as tf  # noqa: deferred, heavy
        with warnings.catch_warnings(), muted_stderr():
            warnings.simplefilter("ignore")   # "tf.lite.Interpreter is deprecated"
            interp = tf.lite.Interpreter(model_path=str(path),
                                         num_threads=self.num_threads)
            interp.allocate_tensors()   # prints the XNNPACK-delegate INFO line
        self._input = interp.get_input_details()[0]
        self._outputs = interp.get_output_details()
        self._interp = interp

    @property
    def input_shape(self) -> tuple[int, ...]:
        self.ensure_loaded()
        return tuple(int(s) for s in self._input["shape"])

    def output_shapes(self) -> list[tuple[int, ...]]:
        self.ensure_loaded()
        return [tuple(int(s) for s in o["shape"]) for o in self._outputs]

    def ensure_loaded(self):
        if self._interp is None:
            with self._lock:
                if self._interp is None:
                    self._load()

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """Run on ``x`` (float32, the input's shape); outputs in model order."""
        self.ensure_loaded()
        self._interp.set_tensor(self._input["index"], x)
        self._interp.invoke()
        return [self._interp.get_tensor(o["index"]) for o in self._outputs]
