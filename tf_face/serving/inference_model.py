"""The networks as served: the same function, in faster layers.

``inference_model`` rewrites two kinds of FAN/DRN layer into the same function
(to float rounding) with as many weights (a transposed conv's bias repeats
once per output parity):

* transposed convolutions (4x4, stride 2) become four 2x2 convolutions +
  ``DEPTH_TO_SPACE``;
* instance norms (Keras ``GroupNormalization`` with one channel per group)
  become 4D reductions over height and width. Keras computes them on a 5D
  reshape ([B,H,W,C,1], moments over axes 1, 2, 4) that XNNPACK does not
  speed up: TFLite float32 FAN 66 ms -> 35 ms with the 4D form (v1 weights,
  2-core AMD EPYC with AVX2; dropping the norms altogether, as a bound, gives
  32 ms).

Transposed convolutions, measured on the demo weights (ngf 16, 256², LiteRT
2.3.0, 2 cores): TFLite's builtin int8 hybrid TRANSPOSE_CONV is a slow
reference loop, so without the XNNPACK delegate int8 FAN/DRN took 1.5-1.9 s
against 0.11-0.15 s in float32 (one int8 transposed conv layer: 18-38x its
float32 time); now 53-58 ms. With XNNPACK (LiteRT's default on CPU) the 2x2
form is also faster: float32 FAN ~58 ms (was ~93), int8 39-50 ms. Hybrid
CONV_2D, which the 2x2 form uses, is fast with and without XNNPACK.

Everything that serves the networks uses it: TFLite (every .tflite is
converted from it, ``tf_face.serving.tflite``), the TF backend
(``serving.backends.keras_networks_function``: FAN + DRN 135 -> 108 ms per
call on the same machine, medians of 30 interleaved calls) and the exported
SavedModel's signatures (``serving.savedmodel``). Training and the release
weights keep the Keras layers (the weights' own architecture); the outputs
agree to float rounding (tests/test_tflite.py ties the rewrite to a float64
evaluation; tests/test_export_savedmodel.py the SavedModel to the Keras
networks).
"""

from __future__ import annotations

import numpy as np


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


def _instance_norm_layer_class():
    import keras
    import tensorflow as tf

    class InstanceNorm4D(keras.layers.Layer):
        """Instance norm with learned per-channel scale and offset, reduced
        over height and width of the 4D map (no 5D reshape)."""

        def __init__(self, epsilon: float, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = float(epsilon)

        def get_config(self):
            return {**super().get_config(), "epsilon": self.epsilon}

        def build(self, input_shape):
            self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="ones",
                                         name="gamma")
            self.beta = self.add_weight(shape=(input_shape[-1],), initializer="zeros",
                                        name="beta")

        def call(self, x):
            mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
            centred = x - mean
            var = tf.reduce_mean(tf.square(centred), axis=[1, 2], keepdims=True)
            return centred * (self.gamma * tf.math.rsqrt(var + self.epsilon)) + self.beta

        def compute_output_shape(self, input_shape):
            return input_shape

    return InstanceNorm4D


def _is_convt_4x4_s2(layer) -> bool:
    import keras
    if not isinstance(layer, keras.layers.Conv2DTranspose):
        return False
    c = layer.get_config()
    return (tuple(c["kernel_size"]) == (4, 4) and tuple(c["strides"]) == (2, 2)
            and c["padding"] == "same" and tuple(c["dilation_rate"]) == (1, 1)
            and c.get("output_padding") is None and c["data_format"] == "channels_last"
            and c["activation"] == "linear")


def _is_instance_norm(layer) -> bool:
    """A Keras ``GroupNormalization`` over the last axis of a 4D map with one
    channel per group, scale and offset (``layers.normalization("instance")``)."""
    import keras
    if not isinstance(layer, keras.layers.GroupNormalization):
        return False
    c = layer.get_config()
    try:
        shape = tuple(layer.input.shape)
    except (AttributeError, ValueError):     # not called in a functional model
        return False
    return (len(shape) == 4 and c["axis"] in (-1, 3) and c["groups"] in (-1, shape[-1])
            and c["center"] and c["scale"])


REWRITES = ("transpose", "instance_norm")


def inference_model(model, rewrites=REWRITES):
    """``model`` with two kinds of layer rewritten into the same function (to
    float rounding) and as many weights, for inference (module doc); other
    layers keep their weights. ``model`` itself if it has neither.
    ``rewrites`` (a subset of ``REWRITES``) picks which, so a benchmark can
    measure each alone (eval/bench_reconstruct.py).

    * ``transpose``: every ``Conv2DTranspose`` 4x4/2 "same" becomes four 2x2
      convolutions + ``depth_to_space`` (``subpixel_kernels``);
    * ``instance_norm``: every instance norm (``_is_instance_norm``) becomes
      ``InstanceNorm4D``.

    What each bought: the module doc.
    """
    unknown = set(rewrites) - set(REWRITES)
    if unknown:
        raise ValueError(f"inference_model: unknown rewrite {sorted(unknown)[0]!r} "
                         f"(one of {', '.join(REWRITES)})")
    import keras
    convt = [layer.name for layer in model.layers
             if "transpose" in rewrites and _is_convt_4x4_s2(layer)]
    norms = [layer.name for layer in model.layers
             if "instance_norm" in rewrites and _is_instance_norm(layer)]
    if not convt and not norms:
        return model
    subpixel, instance_norm = _subpixel_layer_class(), _instance_norm_layer_class()

    def clone(layer):
        if layer.name in convt:
            return subpixel(layer.filters, layer.use_bias, name=layer.name)
        if layer.name in norms:
            return instance_norm(layer.epsilon, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        twin = new.get_layer(layer.name)
        if isinstance(twin, subpixel):
            twin.kernel.assign(subpixel_kernels(np.asarray(layer.kernel.numpy())))
            if layer.use_bias:
                twin.bias.assign(np.tile(np.asarray(layer.bias.numpy()), 4))
        elif isinstance(twin, instance_norm):
            twin.gamma.assign(layer.gamma.numpy())
            twin.beta.assign(layer.beta.numpy())
        elif layer.weights:
            twin.set_weights(layer.get_weights())
    return new
