"""The networks as served: the same function, in faster layers.

``inference_model`` rewrites four kinds of FAN/DRN layer into the same
function (to float rounding) with as many learned weights (a transposed
conv's bias repeats once per output parity, the last conv's bias sits in
k*k slots):

* transposed convolutions (4x4, stride 2) become four 2x2 convolutions +
  ``DEPTH_TO_SPACE``;
* instance norms (Keras ``GroupNormalization`` with one channel per group)
  become 4D reductions over height and width. Keras computes them on a 5D
  reshape ([B,H,W,C,1], moments over axes 1, 2, 4) that XNNPACK does not
  speed up: TFLite float32 FAN 66 ms -> 35 ms with the 4D form (v1 weights,
  2-core AMD EPYC with AVX2; dropping the norms altogether, as a bound, gives
  32 ms);
* the last conv (3x3 to 3 channels in FAN, 1 in DRN) becomes a 1x1 conv to
  27 / 9 channels, a depthwise conv whose one-hot kernels shift each channel
  by its tap, and a sum over the taps (``ShiftSumConv``). XNNPACK's conv
  kernels compute 16 output channels per vector, so a 3x3 conv at 256² with
  1, 3 or 16 output channels costs the same (~2.9 ms, measured alone); the
  shifted form fills the vectors. TFLite fp16, v2 weights, 2 cores, medians
  of 30 interleaved calls: FAN 12.7 -> 11.2 ms, DRN 12.6 -> 10.4 ms with this
  alone;
* each ReLU after a skip join ``relu(concat(skip, up))`` becomes
  ``concat(relu(skip), relu(up))`` (``ReluConcat``): ``up`` ends in an
  instance norm's add, into which TFLite fuses the ReLU, so only the skip
  half is rectified by its own pass (full resolution: 4 of 8 MB).
  Both together (another run): FAN 11.6 -> 10.1 ms, DRN 11.7 -> 9.0 ms
  (int8: 10.3 -> 8.6, 10.3 -> 7.5; TF: FAN 16.7 -> 15.8, DRN 17.2 -> 15.0 ms).

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


# A stride-1 k x k conv with filters * k * k <= this many becomes a pointwise conv +
# tap shifts (``_shift_sum_conv_layer_class``): XNNPACK's conv kernels fill 16 output
# channels per vector, so the UNets' last convs (3 or 1 channel) cost as much as a
# 16-channel conv; 27 or 9 channels of a 1x1 conv nearly fill two vectors or one.
SHIFT_SUM_MAX_CHANNELS = 32


def shift_sum_kernels(w: np.ndarray, b) -> tuple:
    """The pointwise kernel [1,1,Cin,Cout*k*k], its bias and the one-hot tap
    kernel [k,k,Cout*k*k,1] of ``ShiftSumConv`` for a conv kernel ``w``
    [k,k,Cin,Cout] and bias ``b`` [Cout] (or None).

    Channel ``c*k*k + t`` of the pointwise conv is ``sum_i w[t // k, t % k, i, c]
    x_i`` (tap t of output c, every pixel); the depthwise one-hot kernel moves it
    by tap t's offset, and summing the k*k taps of output c gives the conv,
    zero padding included (a tap read beyond the border reads the shifted map's
    zero padding, as the conv reads the input's). The bias rides on the centre
    tap, which never moves.
    """
    kh, kw, cin, cout = w.shape
    if kh != kw or kh % 2 == 0:
        raise ValueError(f"shift_sum_kernels: expected an odd square kernel, got {kh}x{kw}")
    kk = kh * kw
    pointwise = np.zeros((1, 1, cin, cout * kk), w.dtype)
    taps = np.zeros((kh, kw, cout * kk, 1), w.dtype)
    bias = np.zeros(cout * kk, w.dtype)
    for c in range(cout):
        for t in range(kk):
            pointwise[0, 0, :, c * kk + t] = w[t // kw, t % kw, :, c]
            taps[t // kw, t % kw, c * kk + t, 0] = 1.0
        if b is not None:
            bias[c * kk + kk // 2] = b[c]
    return pointwise, bias, taps


def _shift_sum_conv_layer_class():
    import keras
    import tensorflow as tf

    class ShiftSumConv(keras.layers.Layer):
        """A stride-1 "same" k x k conv with few output channels as a 1x1 conv
        to Cout*k*k channels, a depthwise conv whose one-hot kernels shift each
        channel by its tap's offset, and a sum over each output's k*k taps
        (``shift_sum_kernels``; the sum reshapes to [B, H*W, Cout, k*k], never 5D)."""

        def __init__(self, filters: int, kernel_size: int, **kwargs):
            super().__init__(**kwargs)
            self.filters, self.kernel_size = int(filters), int(kernel_size)

        def get_config(self):
            return {**super().get_config(), "filters": self.filters,
                    "kernel_size": self.kernel_size}

        def build(self, input_shape):
            k, n = self.kernel_size, self.filters * self.kernel_size ** 2
            self.pointwise = self.add_weight(shape=(1, 1, input_shape[-1], n),
                                             initializer="zeros", name="pointwise")
            self.bias = self.add_weight(shape=(n,), initializer="zeros", name="bias")
            self.taps = self.add_weight(shape=(k, k, n, 1), initializer="zeros",
                                        name="taps", trainable=False)

        def call(self, x):
            kk = self.kernel_size ** 2
            u = tf.nn.bias_add(tf.nn.conv2d(x, self.pointwise, 1, "VALID"), self.bias)
            d = tf.nn.depthwise_conv2d(u, self.taps, [1, 1, 1, 1], "SAME")
            h, w = x.shape[1], x.shape[2]
            if h is None or w is None:
                h, w = tf.shape(x)[1], tf.shape(x)[2]
            if self.filters == 1:
                return tf.reduce_sum(d, axis=-1, keepdims=True)
            y = tf.reduce_sum(tf.reshape(d, [-1, h * w, self.filters, kk]), axis=-1)
            return tf.reshape(y, [-1, h, w, self.filters])

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], self.filters)

    return ShiftSumConv


def _is_small_conv(layer) -> bool:
    """A Keras ``Conv2D``, stride 1, "same", odd square kernel, no activation,
    with ``filters * k * k <= SHIFT_SUM_MAX_CHANNELS`` (and k > 1)."""
    import keras
    if type(layer) is not keras.layers.Conv2D:
        return False
    c = layer.get_config()
    k = tuple(c["kernel_size"])
    return (k[0] == k[1] and k[0] % 2 == 1 and k[0] > 1
            and c["filters"] * k[0] * k[1] <= SHIFT_SUM_MAX_CHANNELS
            and tuple(c["strides"]) == (1, 1) and c["padding"] == "same"
            and tuple(c["dilation_rate"]) == (1, 1) and c.get("groups", 1) == 1
            and c["data_format"] == "channels_last" and c["activation"] == "linear")


def _relu_concat_layer_class():
    import keras
    import tensorflow as tf

    class ReluConcat(keras.layers.Layer):
        """``relu(concat(xs))`` as ``concat(relu(x) for x in xs)``: the ReLU of an
        instance norm's output fuses into the norm's last add (TFLite's fused
        activation), so only the skip half is rectified by its own op."""

        def call(self, xs):
            return tf.concat([tf.nn.relu(x) for x in xs], axis=-1)

        def compute_output_shape(self, input_shapes):
            channels = [s[-1] for s in input_shapes]
            total = None if None in channels else sum(channels)
            return (*input_shapes[0][:-1], total)

    return ReluConcat


def _is_plain_relu(layer) -> bool:
    import keras
    if type(layer) is keras.layers.ReLU:
        c = layer.get_config()
        return c["max_value"] is None and not c["negative_slope"] and not c["threshold"]
    return (type(layer) is keras.layers.Activation
            and layer.get_config()["activation"] == "relu")


def _relu_after_concat(model) -> dict:
    """``{concat layer name: relu layer name}`` for each last-axis ``Concatenate``
    whose output is read by one plain ReLU only (the UNets' skip joins) and is
    not a model output; neither layer may be called more than once (a shared
    ReLU becomes an ``Identity`` everywhere). Reads Keras's functional graph
    (``_inbound_nodes``); an empty dict where that is not available."""
    import keras
    readers: dict = {}
    try:
        for layer in model.layers:
            for node in layer._inbound_nodes:
                for t in node.input_tensors:
                    readers.setdefault(t._keras_history.operation.name, []).append(layer)
        outputs = {t._keras_history.operation.name for t in model.outputs}
    except AttributeError:      # not a functional model of this Keras
        return {}
    pairs = {}
    for layer in model.layers:
        if (type(layer) is keras.layers.Concatenate and layer.get_config()["axis"] in (-1, 3)
                and layer.name not in outputs):
            r = readers.get(layer.name, [])
            if (len(r) == 1 and _is_plain_relu(r[0]) and len(layer._inbound_nodes) == 1
                    and len(r[0]._inbound_nodes) == 1):
                pairs[layer.name] = r[0].name
    return pairs


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


REWRITES = ("transpose", "instance_norm", "small_conv", "relu_concat")


def inference_model(model, rewrites=REWRITES):
    """``model`` with four kinds of layer rewritten into the same function (to
    float rounding), for inference (module doc); other layers keep their
    weights. ``model`` itself if it has none of them.
    ``rewrites`` (a subset of ``REWRITES``) picks which, so a benchmark can
    measure each alone (eval/bench_reconstruct.py).

    * ``transpose``: every ``Conv2DTranspose`` 4x4/2 "same" becomes four 2x2
      convolutions + ``depth_to_space`` (``subpixel_kernels``; the bias repeats
      once per output parity);
    * ``instance_norm``: every instance norm (``_is_instance_norm``) becomes
      ``InstanceNorm4D`` (as many weights);
    * ``small_conv``: every conv with few output channels (``_is_small_conv``:
      the UNets' last convs) becomes ``ShiftSumConv`` (as many kernel weights,
      the bias spread over k*k slots, plus the constant one-hot tap kernel);
    * ``relu_concat``: a ``Concatenate`` read only by a ReLU (the UNets' skip
      joins, ``_relu_after_concat``) becomes ``ReluConcat`` and the ReLU an
      ``Identity`` (no weights).

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
    small = [layer.name for layer in model.layers
             if "small_conv" in rewrites and _is_small_conv(layer)]
    joins = _relu_after_concat(model) if "relu_concat" in rewrites else {}
    if not convt and not norms and not small and not joins:
        return model
    subpixel, instance_norm = _subpixel_layer_class(), _instance_norm_layer_class()
    shift_sum, relu_concat = _shift_sum_conv_layer_class(), _relu_concat_layer_class()
    moved_relus = set(joins.values())

    def clone(layer):
        if layer.name in convt:
            return subpixel(layer.filters, layer.use_bias, name=layer.name)
        if layer.name in norms:
            return instance_norm(layer.epsilon, name=layer.name)
        if layer.name in small:
            return shift_sum(layer.filters, layer.kernel_size[0], name=layer.name)
        if layer.name in joins:
            return relu_concat(name=layer.name)
        if layer.name in moved_relus:
            return keras.layers.Identity(name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if not layer.weights:    # (an unnamed input layer is renamed by clone_model)
            continue
        twin = new.get_layer(layer.name)
        if isinstance(twin, subpixel):
            twin.kernel.assign(subpixel_kernels(np.asarray(layer.kernel.numpy())))
            if layer.use_bias:
                twin.bias.assign(np.tile(np.asarray(layer.bias.numpy()), 4))
        elif isinstance(twin, instance_norm):
            twin.gamma.assign(layer.gamma.numpy())
            twin.beta.assign(layer.beta.numpy())
        elif isinstance(twin, shift_sum):
            bias = np.asarray(layer.bias.numpy()) if layer.use_bias else None
            pointwise, b, taps = shift_sum_kernels(np.asarray(layer.kernel.numpy()), bias)
            twin.pointwise.assign(pointwise)
            twin.bias.assign(b)
            twin.taps.assign(taps)
        else:
            twin.set_weights(layer.get_weights())
    return new
