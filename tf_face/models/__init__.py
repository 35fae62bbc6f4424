"""The tf_face networks (Keras 3, NHWC float32, TFLite-friendly layers).

* ``build_bnet`` / ``split_bnet_output``: B-Net, texture -> albedo coeffs + SH.
* ``build_fan`` / ``build_drn``: the flip-feature UNet-8 generators.
* ``build_patchgan``: the 70x70 PatchGAN discriminator.
* ``VGGPerceptual``: frozen VGG-16 features for E_percep.
"""

from tf_face.models.bnet import (bnet_stage_widths, build_bnet, merge_bnet_output,
                                 split_bnet_output)
from tf_face.models.layers import FlipConcat
from tf_face.models.patchgan import build_patchgan, patchgan_receptive_field
from tf_face.models.unet import build_drn, build_fan, unet_channels
from tf_face.models.vgg import DEFAULT_LAYERS, VGGPerceptual

__all__ = ["build_bnet", "bnet_stage_widths", "split_bnet_output", "merge_bnet_output", "FlipConcat",
           "build_patchgan", "patchgan_receptive_field", "build_fan", "build_drn",
           "unet_channels", "VGGPerceptual", "DEFAULT_LAYERS"]
