"""absl flags shared by train.train_bnet / train_fan / train_drn.

Every field of ``tf_face.training.jobs.JobConfig`` is a flag of the same name;
defaults are the paper's where it gives them (METHOD.md).
"""

from __future__ import annotations

import dataclasses

from absl import flags

from tf_face.cli.common import print_error, quiet_tensorflow
from tf_face.tf_import import VERBOSE_HELP
from tf_face.errors import TfFaceError
from tf_face.training.jobs import JobConfig

FLAGS = flags.FLAGS

_HELP = {
    "data": "Shard folder or glob written by train.preprocess.",
    "output_dir": "Weights folder (shared by the three jobs; holds checkpoints and logs).",
    "steps": "Total training steps (a resumed job stops at the same total).",
    "batch_size": "Batch size per replica.",
    "learning_rate": "Adam learning rate (paper: 2e-5).",
    "seed": "Seed of weights init, data order and augmentation.",
    "strategy": "default | mirrored | multi_worker (TF_CONFIG).",
    "model": "Face model spec; its albedo model is B-Net's R_a = m_a + U_a p_a.",
    "num_albedo": "Use only the first K albedo components.",
    "uv_size": "UV map size of the shards (256 in the paper).",
    "color_space": "linear (shade in linear RGB; textures are sRGB-decoded) | srgb.",
    "render_backend": "auto | op | reference (custom ops or their pure-TF reference).",
    "w_a": "B-Net albedo regulariser weight.",
    "w_pixel": "FAN pixel-loss weight (paper 0.005; 0.008 for near-frontal data).",
    "w_percep": "FAN perceptual-loss weight (paper 0.3; 0.7 near-frontal); 0 switches VGG off.",
    "w_gan": "FAN adversarial-term weight.",
    "w_grad": "DRN gradient-loss weight.",
    "w_const": "DRN |displacement| weight.",
    "w_smooth": "DRN Laplacian-smoothness weight.",
    "loss_reduction": ("sum | mean: E_pixel, E_grad, E_const and E_smooth summed over each "
                       "image's texels (the paper's L1 norms; its weights balance only with "
                       "these) or averaged per texel (today's resolution-independent form; "
                       "choose your own weights)."),
    "w_sup": ("Synthetic supervision weight (NOT in the paper): an L1 term to the shards' "
              "ground truth (gt_albedo for B-Net's R_a and FAN's albedo; gt_displacement for "
              "DRN's r_d, in units of --drn_max_displacement), reduced like E_pixel. Needs "
              "shards from tf_face.synthetic.make_dataset. 0 = the paper's objective."),
    "sup_space": ("linear | srgb: where --w_sup's albedo term compares (the albedos in "
                  "linear RGB, or both sRGB-encoded: a linear L1 weighs errors on dark skin "
                  "~3.6x less: albedo 0.05 vs 0.5). Not in the paper."),
    "gan_kind": "lsgan | nonsaturating | log.",
    "disc_learning_rate": "PatchGAN learning rate (default: --learning_rate).",
    "bnet_width": ("B-Net ResNet base width (64 = paper; smaller for CPU runs). Widths 4 and 6 "
                   "at 256x256 abort inside TF 2.21's oneDNN CPU kernels in training (heap "
                   "corruption; TF_ENABLE_ONEDNN_OPTS=0 avoids it); 8 and up run."),
    "ngf": "FAN/DRN UNet base width (paper 16).",
    "upsample": ("FAN/DRN up levels: transpose (the paper's 4x4/2 transposed conv) | "
                 "resize_conv (nearest x2, conv 3x3) | conv_resize (conv 3x3, bilinear x2: "
                 "no checkerboard; FAN ~13% faster in TF, not in TFLite; measured in README, "
                 "tf_face/models/unet.py)."),
    "vgg_weights": "Keras VGG16 notop .h5 file; 'imagenet' downloads; unset = random (warns).",
    "vgg_resolution": "Compute E_percep at this resolution (e.g. 128 on CPU).",
    "drn_max_displacement": "Largest |r_d|, in inter-ocular distances.",
    "checkpoint_every": "Steps between checkpoints.",
    "log_every": "Steps between TensorBoard scalars.",
    "image_every": "Steps between TensorBoard image grids.",
    "nan_policy": "stop (clear error) | skip (drop the update) on NaN/Inf.",
    "augment": "Photometric augmentation of the textures.",
    "on_corrupt": "skip | fail on corrupted records.",
    "bnet_dir": "Folder with bnet.keras (default: --output_dir).",
    "fan_dir": "Folder with fan.keras (default: --output_dir).",
    "deterministic": "Deterministic TF ops (exact resume).",
    "progress": "Show a progress bar.",
}


#: tf_face.models.unet.UPSAMPLE_KINDS, spelled out so --help does not import Keras
#: (tests/test_models.py checks they agree)
UPSAMPLE_KINDS = ["transpose", "resize_conv", "conv_resize"]
_ENUMS = {"loss_reduction": ["sum", "mean"], "sup_space": ["linear", "srgb"],
          "upsample": UPSAMPLE_KINDS}


def define_flags() -> None:
    for f in dataclasses.fields(JobConfig):
        default = f.default if f.default is not dataclasses.MISSING else None
        help_ = _HELP.get(f.name, f.name)
        typ = f.type if isinstance(f.type, str) else f.type.__name__
        if f.name in ("data", "output_dir"):
            flags.DEFINE_string(f.name, None, help_)
        elif f.name in _ENUMS:
            flags.DEFINE_enum(f.name, default, _ENUMS[f.name], help_)
        elif "bool" in typ:
            flags.DEFINE_bool(f.name, default, help_)
        elif typ.startswith("int") or "Optional[int]" in typ:
            flags.DEFINE_integer(f.name, default, help_)
        elif typ.startswith("float") or "Optional[float]" in typ:
            flags.DEFINE_float(f.name, default, help_)
        else:
            flags.DEFINE_string(f.name, default, help_)
    flags.DEFINE_bool("debug", False, "Show the traceback of an error (with the exception it "
                      "wraps) before its one line.")
    flags.DEFINE_bool("verbose", False, VERBOSE_HELP)


def config_from_flags() -> JobConfig:
    missing = [n for n in ("data", "output_dir") if not getattr(FLAGS, n)]
    if missing:
        raise SystemExit(f"error: --{' and --'.join(missing)} required")
    return JobConfig(**{f.name: getattr(FLAGS, f.name) for f in dataclasses.fields(JobConfig)})


def run_job(fn) -> int:
    quiet_tensorflow(verbose=FLAGS.verbose)
    try:
        summary = fn(config_from_flags())
    except TfFaceError as e:   # one line (--debug: with the traceback and its cause)
        return print_error(e, FLAGS.debug)
    print(f"{summary['job']}: step {summary['steps']} "
          f"({summary['steps_run']} run, {summary['seconds_per_step']:.3f} s/step), "
          f"final losses: " + ", ".join(f"{k}={v:.4f}" for k, v in summary["final_losses"].items()))
    return 0
