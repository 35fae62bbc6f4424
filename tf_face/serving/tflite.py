"""TFLite conversion of the three networks and a small interpreter runner.

Files: ``<dir>/<net>_<precision>.tflite`` for net in bnet / fan / drn and
precision in

* ``float32``: plain conversion;
* ``float16``: weights stored as float16 (``supported_types=[tf.float16]``);
  the CPU interpreter dequantizes them to float32 once at load time, so
  latency equals float32 and only the file halves;
* ``int8``: dynamic-range quantization (``Optimize.DEFAULT`` without a
  representative dataset): int8 weights, float activations, hybrid kernels.

Every .tflite is converted from ``inference_model(model)``
(``tf_face.serving.inference_model``): the same function with transposed
convolutions, instance norms, the UNets' last convs and their skip joins'
ReLUs in forms that TFLite's XNNPACK runs fast (that module says what each
bought).

Every model has batch 1 and one signature (``serving_default``) with input
``texture`` float32 [1,S,S,3] (UV texture in [0,1], sRGB) and outputs named
as the SavedModel's ``bnet`` / ``fan`` / ``drn`` signature outputs
(``OUTPUT_NAMES``; read them by name, e.g. LiteRT's
``interpreter.get_signature_runner()(texture=x)["albedo"]``):
bnet: ``p_a`` [1,K], ``sh`` [1,9,3] (the split of B-Net's output incl. the
ambient offset; the albedo PCA basis stays outside the .tflite, it is
S*S*3*K floats, and ``R_a = m_a + U_a p_a`` is one small matmul on the host);
fan: ``albedo`` [1,S,S,3]; drn: ``moving_rate`` [1,S,S,1] (detail units).
Only TFLite builtin ops are allowed (no Flex, no custom op).

The runner is the one TFLite wrapper, ``tf_face.landmarks.tflite_model.TFLiteModel``
(``ai_edge_litert`` when installed, else ``tf.lite.Interpreter``).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from tf_face.landmarks.tflite_model import TFLiteModel, usable_cpus
from tf_face.outputs import write_bytes_atomic
from tf_face.serving.inference_model import REWRITES, inference_model
from tf_face.serving.weights import WeightsError
# TF-loading imports stay in functions: cli.reconstruct imports this at start-up
# (test_import_weight)

NETWORKS = ("bnet", "fan", "drn")
PRECISIONS = ("float32", "float16", "int8")


def tflite_name(net: str, precision: str) -> str:
    if net not in NETWORKS or precision not in PRECISIONS:
        raise ValueError(f"unknown network/precision {net!r}/{precision!r}")
    return f"{net}_{precision}.tflite"


OUTPUT_NAMES = {"bnet": ("p_a", "sh"), "fan": ("albedo",), "drn": ("moving_rate",)}
TFLITE_FORMAT = "v6"  # bumped when the .tflite files change (cache folder names): named
# outputs (v2), transposed convs as 2x2 convs + depth_to_space (v4), 4D instance norms (v5),
# last convs as pointwise + tap shifts and ReLUs split over skip joins (v6)


def _write_serving_saved_model(model, net: str, size: int, num_albedo: int, folder) -> None:
    """A batch-1 SavedModel of ``model`` whose ``serving_default`` signature has
    the input ``texture`` and the outputs ``OUTPUT_NAMES[net]`` (B-Net: the
    p_a/SH split); the converter keeps these names as the .tflite signature's
    (a Keras model's list outputs would become ``output_0``, ``output_1``)."""
    import keras
    import tensorflow as tf

    from tf_face.models.bnet import split_bnet_output

    def serve(texture):
        y = model(texture, training=False)
        outs = split_bnet_output(y, num_albedo) if net == "bnet" else (y,)
        return dict(zip(OUTPUT_NAMES[net], outs))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32,
                                                        name="texture")])
    archive.write_out(str(folder), verbose=False)


def _convert_saved_model(saved_model_dir, precision: str) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert()


def convert_network(model, net: str, precisions, size: int, num_albedo: int = 0,
                    rewrites=REWRITES) -> dict:
    """``{precision: .tflite flatbuffer}`` of one Keras network, converted from
    ``inference_model(model, rewrites)`` (all rewrites unless a benchmark
    measures fewer).

    The batch-1 signature is exported once with Keras's ``ExportArchive``
    (which tracks the variables the endpoint reads, so the converter's
    session-based load restores them; see ``savedmodel.ServingModule`` for
    what goes wrong otherwise) and converted once per precision.
    """
    if isinstance(precisions, str):
        precisions = (precisions,)
    for prec in precisions:
        tflite_name(net, prec)
    tmp = Path(tempfile.mkdtemp(prefix="tf_face_tflite_"))
    try:
        # transposed convs as 2x2 convs + depth_to_space, 4D instance norms, last convs
        # as pointwise + tap shifts, skip-join ReLUs split (serving.inference_model)
        sub = inference_model(model, rewrites)
        _quiet(lambda: _write_serving_saved_model(sub, net, size, num_albedo, tmp / "sm"))
        return {prec: _convert_saved_model(tmp / "sm", prec) for prec in precisions}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _quiet(fn):
    """Run ``fn`` with stdout silenced (Keras's export prints its endpoints)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


def export_tflite(networks: dict, out_dir, size: int, num_albedo: int,
                  precisions=PRECISIONS, nets=NETWORKS) -> dict:
    """Convert ``networks`` ({name: keras model}) into ``out_dir``; {(net, prec): path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for net in nets:
        for prec, data in convert_network(networks[net], net, precisions, size,
                                          num_albedo).items():
            path = out_dir / tflite_name(net, prec)
            write_bytes_atomic(path, data)
            paths[(net, prec)] = path
    return paths


class TFLiteNetwork:
    """One .tflite network: ``net(texture [1,S,S,3]) -> {name: array}``.

    Runs on the one interpreter wrapper, ``tf_face.landmarks.tflite_model``
    (LiteRT when installed). Outputs are read by their signature names
    (``OUTPUT_NAMES``); a file whose outputs are not named so (``output_0``,
    ... from tf_face before named outputs) is refused with a ``WeightsError``
    saying to re-export it.
    """

    def __init__(self, path, num_threads: int | None = None):
        self.path = Path(path)
        # None: every core this process may use. The interpreter's own default is
        # one thread: FAN/DRN fp16 took 57 ms each on 2 cores, 32-39 ms with 2
        # threads (measured here; the landmark models: small_model_threads())
        self.num_threads = int(num_threads or self.default_threads())
        self.model = TFLiteModel(path=self.path, num_threads=self.num_threads)
        self.model.ensure_loaded()
        self.interpreter = self.model.interpreter
        self.input_name = self.model.input_name
        self.input_shape = self.model.input_shape
        self.output_names = self.model.output_names
        known = {tuple(sorted(v)): k for k, v in OUTPUT_NAMES.items()}
        if self.output_names not in known:
            raise WeightsError(
                f"{self.path}: TFLite outputs {', '.join(self.output_names)} are not "
                f"tf_face's named outputs ({'; '.join(', '.join(v) for v in OUTPUT_NAMES.values())}"
                f"); convert it again (python -m train.export --tflite)")
        self.net = known[self.output_names]

    @staticmethod
    def default_threads() -> int:
        return usable_cpus()

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def __call__(self, texture) -> dict:
        """``{output name: array}``: bnet ``p_a`` [1,K], ``sh`` [1,9,3]; fan
        ``albedo`` [1,S,S,3]; drn ``moving_rate`` [1,S,S,1]."""
        x = np.ascontiguousarray(np.asarray(texture, np.float32).reshape(self.input_shape))
        return self.model(x)


def time_call(fn, arg, repeats: int = 3) -> float:
    """Median wall time of ``fn(arg)`` in milliseconds (after one warm-up call)."""
    fn(arg)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(arg)
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))
