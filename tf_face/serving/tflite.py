"""TFLite conversion of the three networks and a small interpreter runner.

Files: ``<dir>/<net>_<precision>.tflite`` for net in bnet / fan / drn and
precision in

* ``float32``: plain conversion;
* ``float16``: weights stored as float16 (``supported_types=[tf.float16]``);
  the CPU interpreter dequantizes them to float32 once at load time, so
  latency equals float32 and only the file halves;
* ``int8``: dynamic-range quantization (``Optimize.DEFAULT`` without a
  representative dataset): int8 weights, float activations, hybrid kernels.

FAN/DRN's transposed convolutions are written as four 2x2 convolutions +
``DEPTH_TO_SPACE`` (``subpixel_model``: the same function, to float rounding,
and as many weights). Measured on the demo weights (ngf 16, 256², LiteRT
2.3.0, 2 cores): TFLite's builtin int8 hybrid TRANSPOSE_CONV is a slow
reference loop, so without the XNNPACK delegate int8 FAN/DRN took 1.5-1.9 s
against 0.11-0.15 s in float32 (one int8 transposed conv layer: 18-38x its
float32 time); now 53-58 ms. With XNNPACK (LiteRT's default on CPU) the 2x2
form is also faster: float32 FAN ~58 ms (was ~93), int8 39-50 ms.

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
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from tf_face.landmarks.tflite_model import TFLiteModel
from tf_face.outputs import write_bytes_atomic
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
TFLITE_FORMAT = "v4"  # bumped when the .tflite files change (cache folder names): named
# outputs (v2), transposed convs as 2x2 convs + depth_to_space (v4)


def subpixel_kernels(w: np.ndarray) -> np.ndarray:
    """Kernels ``k[a, b]`` [2,2,Cin,Cout] such that Keras's
    ``Conv2DTranspose(Cout, 4, strides=2, padding="same")`` with kernel ``w``
    [4,4,Cout,Cin] gives output pixel (2i+a, 2j+b) =
    ``conv2d(pad(x, rows (1-a, a), cols (1-b, b)), k[a, b], VALID)[i, j]``
    (exactly: the same products, summed in another order).

    Output row 2i+a reads input rows i-1, i (a=0: taps 3, 1) or i, i+1
    (a=1: taps 2, 0); the same for columns. Returns [2,2,2,2,Cin,Cout].
    """
    kh, kw, cout, cin = w.shape
    if (kh, kw) != (4, 4):
        raise ValueError(f"subpixel_kernels: expected a 4x4 kernel, got {kh}x{kw}")
    rows = {0: (3, 1), 1: (2, 0)}  # parity -> 4x4 taps read by the 2x2 taps 0, 1
    k = np.zeros((2, 2, 2, 2, cin, cout), w.dtype)
    for a in (0, 1):
        for b in (0, 1):
            for u in (0, 1):
                for v in (0, 1):
                    k[a, b, u, v] = w[rows[a][u], rows[b][v]].T
    return k


def _subpixel_layer_class():
    import keras
    import tensorflow as tf

    class SubPixelConvTranspose(keras.layers.Layer):
        """Four 2x2 convs (one per output parity, ``subpixel_kernels``),
        concatenated and interleaved with ``depth_to_space(2)``."""

        def __init__(self, filters: int, use_bias: bool, **kwargs):
            super().__init__(**kwargs)
            self.filters, self.use_bias = filters, use_bias

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(2, 2, 2, 2, input_shape[-1], self.filters),
                                          initializer="zeros", name="kernel")
            self.bias = (self.add_weight(shape=(4 * self.filters,), initializer="zeros",
                                         name="bias") if self.use_bias else None)

        def call(self, x):
            ys = [tf.nn.conv2d(tf.pad(x, [[0, 0], [1 - a, a], [1 - b, b], [0, 0]]),
                               self.kernel[a, b], 1, "VALID") for a in (0, 1) for b in (0, 1)]
            y = tf.concat(ys, axis=-1)
            if self.bias is not None:
                y = tf.nn.bias_add(y, self.bias)
            return tf.nn.depth_to_space(y, 2)

        def compute_output_shape(self, input_shape):
            b, h, w, _ = input_shape
            return (b, None if h is None else 2 * h, None if w is None else 2 * w, self.filters)

    return SubPixelConvTranspose


def _is_convt_4x4_s2(layer) -> bool:
    import keras
    if not isinstance(layer, keras.layers.Conv2DTranspose):
        return False
    c = layer.get_config()
    return (tuple(c["kernel_size"]) == (4, 4) and tuple(c["strides"]) == (2, 2)
            and c["padding"] == "same" and tuple(c["dilation_rate"]) == (1, 1)
            and c.get("output_padding") is None and c["data_format"] == "channels_last"
            and c["activation"] == "linear")


def subpixel_model(model):
    """``model`` with every ``Conv2DTranspose`` 4x4/2 "same" replaced by the
    equal four 2x2 convolutions + ``depth_to_space`` (``subpixel_kernels``;
    as many weights, so the file does not grow); other layers keep their
    weights. ``model`` itself if it has none.

    Used for every .tflite: TFLite's builtin dynamic-range (hybrid) kernel
    for TRANSPOSE_CONV is a slow reference loop -- without the XNNPACK
    delegate an int8 transposed conv took 18-38x its float32 time (one
    layer 1.95 s vs 51 ms), which made int8 FAN/DRN 1.5-1.9 s against
    0.13 s in float32 -- while hybrid CONV_2D is fast with and without
    XNNPACK; and with XNNPACK the float32 FAN runs ~1.6x faster this way.
    """
    import keras
    if not any(_is_convt_4x4_s2(layer) for layer in model.layers):
        return model
    cls = _subpixel_layer_class()

    def clone(layer):
        if _is_convt_4x4_s2(layer):
            return cls(layer.filters, layer.use_bias, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        twin = new.get_layer(layer.name)
        if isinstance(twin, cls):
            twin.kernel.assign(subpixel_kernels(np.asarray(layer.kernel.numpy())))
            if layer.use_bias:
                twin.bias.assign(np.tile(np.asarray(layer.bias.numpy()), 4))
        elif layer.weights:
            twin.set_weights(layer.get_weights())
    return new


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


def convert_network(model, net: str, precisions, size: int, num_albedo: int = 0) -> dict:
    """``{precision: .tflite flatbuffer}`` of one Keras network.

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
        # transposed convs as 2x2 convs + depth_to_space (see subpixel_model)
        sub = subpixel_model(model)
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


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):   # not Linux
        return max(1, os.cpu_count() or 1)


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
        # threads (measured here; the landmark models, ~1 ms, keep 1 thread)
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
