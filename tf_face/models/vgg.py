"""VGG-16 perceptual features and loss (METHOD.md (c), Eq. 8).

``VGGPerceptual(layers, weights, resize_to)`` wraps
``keras.applications.VGG16(include_top=False, weights=None)`` and returns the
feature maps of the chosen layers. Keras's VGG convs carry their ReLU, so
``block1_conv2`` is relu1_2, ``block2_conv2`` relu2_2, ``block3_conv3`` relu3_3
and ``block4_conv3`` relu4_3 (the default set, *ours: the paper does not
name its layers).

Weights: ``weights=PATH`` loads the standard Keras notop file
(``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``, read by h5py, no
pickle); ``weights="imagenet"`` lets Keras download it (connected machines
only); ``weights=None`` keeps random weights and logs a loud warning once per
process (fine for tests and smoke runs, meaningless as a perceptual loss).

Input: RGB in [0, 1], [B, H, W, 3] float32. Inside: optional bilinear
(antialiased) resize to ``resize_to`` x ``resize_to`` (CPU smoke runs: the
loss at 256^2, batch 4 costs seconds on a laptop CPU), then Keras's "caffe"
VGG preprocessing: x * 255, RGB -> BGR, minus the ImageNet BGR mean
(103.939, 116.779, 123.68).

The loss is ``tf_face.losses.perceptual_loss(vgg, target, pred)``: the
``perceptual_distance`` of the two feature lists:
mean over layers j of ||F_j(a) - F_j(b)||_2 / (H_j W_j C_j), per sample, then
the batch mean. The frozen network is not trainable.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras

from tf_face.errors import AssetMissingError, TfFaceError

DEFAULT_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3")
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_log = logging.getLogger(__name__)
_warned_random = False


def _warn_random_once() -> None:
    global _warned_random
    if not _warned_random:
        _warned_random = True
        _log.warning("!!! VGGPerceptual has RANDOM weights (weights=None): the perceptual loss "
                     "is NOT an ImageNet VGG-16 loss. Pass the Keras notop .h5 file "
                     "(--vgg_weights=PATH) or weights='imagenet' on a connected machine. !!!")


@keras.saving.register_keras_serializable(package="tf_face")
class VGGPerceptual(keras.layers.Layer):
    """Frozen VGG-16 feature extractor: [B, H, W, 3] in [0, 1] -> list of maps.

    Args:
      layers: names of VGG16 layers whose outputs are the features F_j.
      weights: None (random, warns once), "imagenet" (Keras download) or a path
        to the Keras VGG16 notop ``.h5`` weights file.
      resize_to: if set, inputs are resized to ``resize_to`` squared first.
    """

    def __init__(self, layers=DEFAULT_LAYERS, weights: str | None = None,
                 resize_to: int | None = None, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.layer_names = tuple(layers)
        if not self.layer_names:
            raise ValueError("VGGPerceptual: layers must name at least one VGG16 layer")
        if resize_to is not None and (not isinstance(resize_to, int) or resize_to < 32):
            raise ValueError(f"VGGPerceptual: resize_to must be None or an int >= 32, "
                             f"got {resize_to!r}")
        self.weights_source = None if weights is None else str(weights)
        self.resize_to = resize_to
        vgg = keras.applications.VGG16(include_top=False, weights=None,
                                       input_shape=(None, None, 3))
        known = [layer.name for layer in vgg.layers]
        unknown = [n for n in self.layer_names if n not in known]
        if unknown:
            raise ValueError(f"VGGPerceptual: unknown VGG16 layer(s) {unknown}; known: {known}")
        self._load(vgg)
        self.extractor = keras.Model(vgg.input, [vgg.get_layer(n).output for n in self.layer_names],
                                     name="vgg16_features")
        self.extractor.trainable = False

    def _load(self, vgg: keras.Model) -> None:
        src = self.weights_source
        if src is None:
            _warn_random_once()
        elif src == "imagenet":
            ref = keras.applications.VGG16(include_top=False, weights="imagenet",
                                           input_shape=(None, None, 3))
            vgg.set_weights(ref.get_weights())
        else:
            path = Path(src)
            if not path.is_file():
                raise AssetMissingError(f"VGG16 weights file not found: {src}")
            if path.suffix != ".h5":
                raise TfFaceError(f"VGG16 weights must be the Keras notop .h5 file, got {src}")
            try:
                vgg.load_weights(str(path))
            except Exception as err:  # noqa: BLE001 - any reader error is a bad file
                raise TfFaceError(f"cannot load VGG16 weights from {src}: "
                                  f"{type(err).__name__}: {err}".splitlines()[0]) from err

    def _preprocess(self, x):
        if len(x.shape) != 4 or x.shape[-1] != 3:
            raise ValueError(f"VGGPerceptual expects RGB NHWC [B, H, W, 3], got shape {x.shape}")
        x = keras.ops.cast(x, "float32")
        if self.resize_to is not None:
            x = keras.ops.image.resize(x, (self.resize_to, self.resize_to),
                                       interpolation="bilinear", antialias=True)
        x = keras.ops.flip(x * 255.0, axis=-1)  # RGB -> BGR
        return x - keras.ops.convert_to_tensor(CAFFE_BGR_MEAN, dtype="float32")

    def call(self, inputs):
        return self.extractor(self._preprocess(inputs), training=False)

    def get_config(self):
        config = super().get_config()
        config.update(layers=list(self.layer_names), weights=self.weights_source,
                      resize_to=self.resize_to)
        return config
