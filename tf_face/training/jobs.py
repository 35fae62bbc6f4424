"""The three training jobs (B-Net -> FAN -> DRN) as functions of a config.

``train/train_bnet.py`` etc. are thin absl wrappers around these, so tests can
run a job in-process. All three jobs share one output folder (the *weights
folder*): it ends up holding

    bnet.keras / bnet.weights.h5          B-Net (texture -> p_a, SH)
    fan.keras / fan.weights.h5            FAN (texture -> albedo)
    discriminator.keras                   FAN's PatchGAN
    drn.keras / drn.weights.h5            DRN (texture -> moving rate r_d)
    tf_face_weights.json                  face model spec, K, UV size, colour space,
                                          detail unit, loss weights and loss
                                          reduction (sum | mean) of each stage
    checkpoints/<job>/                    resumable state of each job
    logs/<job>/                           TensorBoard scalars and image grids

FAN training loads B-Net from the same folder (or ``--bnet_dir``), DRN loads
B-Net and FAN.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Optional

import numpy as np

from tf_face.data import make_dataset
from tf_face.detail import model_detail_unit  # noqa: F401 - part of this module's API
from tf_face.errors import TfFaceError
from tf_face.facemodel import load_face_model
from tf_face.outputs import write_json
from tf_face.uv import get_atlas
# TF-loading imports stay in functions: train.train_* imports this at start-up (test_import_weight)

CONFIG_FILE = "tf_face_weights.json"


@dataclasses.dataclass
class JobConfig:
    data: str                          # shard folder or glob (train.preprocess output)
    output_dir: str                    # the weights folder
    steps: int = 1000
    batch_size: int = 8
    learning_rate: float = 2e-5        # the paper's Adam learning rate
    seed: int = 0
    strategy: str = "default"
    model: str = "default"             # face model spec (or a FaceModel, in tests)
    num_albedo: Optional[int] = None   # use the first K albedo components (None: all)
    uv_size: int = 256                 # must match the shards (train.preprocess --uv_size)
    color_space: str = "linear"
    render_backend: str = "auto"
    w_a: float = 1.0
    w_pixel: float = 0.005
    w_percep: float = 0.3
    w_gan: float = 1.0
    w_grad: float = 0.5
    w_const: float = 1.0
    w_smooth: float = 20.0
    loss_reduction: str = "sum"        # "sum" (paper: L1 norms per image) | "mean" (per texel)
    w_sup: float = 0.0                 # synthetic supervision (not in the paper; 0 = off)
    sup_space: str = "linear"          # where the albedo supervision compares: linear | srgb
    gan_kind: str = "lsgan"
    disc_learning_rate: Optional[float] = None
    bnet_width: int = 64               # ResNet base width (64 = the paper's 1024 features)
    ngf: int = 16
    upsample: str = "transpose"        # FAN/DRN up levels (tf_face.models.unet; paper: transpose)
    vgg_weights: Optional[str] = None  # Keras VGG16 notop .h5; None = random (warns)
    vgg_resolution: Optional[int] = None  # compute E_percep at this size (CPU smoke runs)
    drn_max_displacement: float = 0.05  # in detail units (inter-ocular distances)
    checkpoint_every: int = 100
    log_every: int = 10
    image_every: int = 100
    nan_policy: str = "stop"
    augment: bool = False
    on_corrupt: str = "skip"
    bnet_dir: Optional[str] = None     # where bnet.keras is (default: output_dir)
    fan_dir: Optional[str] = None      # where fan.keras is (default: output_dir)
    deterministic: bool = True
    progress: bool = True

    def __post_init__(self):
        if self.loss_reduction not in ("sum", "mean"):
            raise TfFaceError(f"loss_reduction must be 'sum' or 'mean', "
                              f"got {self.loss_reduction!r}")
        from tf_face.models.unet import check_upsample
        try:
            check_upsample(self.upsample, "JobConfig")
        except ValueError as e:
            raise TfFaceError(str(e)) from None

    def loss_weights(self):
        from tf_face.losses import LossWeights
        return LossWeights(w_a=self.w_a, w_pixel=self.w_pixel, w_percep=self.w_percep,
                           w_gan=self.w_gan, w_grad=self.w_grad, w_const=self.w_const,
                           w_smooth=self.w_smooth, reduction=self.loss_reduction,
                           w_sup=self.w_sup, sup_space=self.sup_space)


def seed_everything(seed: int, deterministic: bool) -> None:
    import tensorflow as tf
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    import keras
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _context(cfg: JobConfig):
    """Face model -> UV albedo model + StageContext + the weights-folder config."""
    import tensorflow as tf

    from tf_face.uv.albedo_model import uv_albedo_model
    from tf_face.training.stages import StageContext

    model = cfg.model if not isinstance(cfg.model, str) else load_face_model(cfg.model)
    atlas = get_atlas(model, size=cfg.uv_size)
    albedo = uv_albedo_model(model, atlas, cfg.num_albedo)
    ctx = StageContext(tf.constant(albedo.mean), tf.constant(albedo.basis), atlas.mask,
                       cfg.loss_weights(), cfg.color_space, cfg.render_backend, cfg.gan_kind,
                       cfg.drn_max_displacement)
    ctx.detail_unit = model_detail_unit(model)
    return model, atlas, ctx


def _dataset(cfg: JobConfig, strategy):
    workers = strategy.num_replicas_in_sync
    return make_dataset(cfg.data, batch_size=cfg.batch_size * max(1, workers), shuffle=True,
                        augment=cfg.augment, on_corrupt=cfg.on_corrupt, repeat=True,
                        seed=cfg.seed, drop_remainder=True)


def _write_weights_config(cfg: JobConfig, stage: str, ctx, atlas) -> None:
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / CONFIG_FILE
    data = json.loads(path.read_text()) if path.exists() else {}
    # architecture keys come from the stage that builds that network (a FAN job's
    # --bnet_width default must not overwrite the trained B-Net's width)
    arch = ({"bnet_width": cfg.bnet_width} if stage == "bnet"
            else {"ngf": cfg.ngf, "upsample": cfg.upsample})
    data.update({"model": cfg.model if isinstance(cfg.model, str) else cfg.model.name,
                 "num_albedo": ctx.num_albedo, "uv_size": int(atlas.size),
                 "color_space": cfg.color_space, "detail_unit": ctx.detail_unit,
                 "drn_max_displacement": cfg.drn_max_displacement})
    data.update({k: v for k, v in arch.items() if k != "upsample"})
    data.pop("upsample", None)      # per network (FAN's and DRN's may differ): in stages
    data.setdefault("stages", {})[stage] = {
        **arch, "steps": cfg.steps, "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate,
        "seed": cfg.seed, "loss_weights": cfg.loss_weights().as_dict(),
        "loss_reduction": cfg.loss_reduction, "data": cfg.data}
    write_json(path, data)


def _loop_config(cfg: JobConfig):
    from tf_face.training.loop import LoopConfig
    return LoopConfig(output_dir=cfg.output_dir, steps=cfg.steps,
                      checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every,
                      image_every=cfg.image_every, nan_policy=cfg.nan_policy,
                      progress=cfg.progress)


def scaled_batch(batch, ctx):
    """Positions in detail units: camera pixels / (fit scale * model IOD)."""
    import tensorflow as tf
    out = dict(batch)
    out["scale"] = tf.cast(batch["scale"], tf.float32) * ctx.detail_unit
    return out


def _start(cfg: JobConfig, stage: str):
    """Seeds, strategy, face-model context and the weights-folder config of a job."""
    from tf_face.training.loop import make_strategy

    seed_everything(cfg.seed, cfg.deterministic)
    strategy = make_strategy(cfg.strategy)
    _, atlas, ctx = _context(cfg)
    _write_weights_config(cfg, stage, ctx, atlas)
    return strategy, atlas, ctx


def _one_network_step(net, optimizer, forward, replicas: int):
    """``step_fn`` of a job that trains one network: ``forward(batch, training)
    -> (total, terms, images)``; the update is skipped when not finite."""
    import tensorflow as tf

    from tf_face.training.loop import apply_if_finite

    def step_fn(batch):
        with tf.GradientTape() as tape:
            total, terms, _ = forward(batch, True)
            scaled = total / replicas
        grads = tape.gradient(scaled, net.trainable_variables)
        return terms, apply_if_finite(optimizer, grads, net.trainable_variables, total)

    return step_fn


def train_bnet(cfg: JobConfig) -> dict:
    import keras

    from tf_face.models import build_bnet
    from tf_face.training.loop import run_training
    from tf_face.training.stages import bnet_forward

    strategy, atlas, ctx = _start(cfg, "bnet")
    with strategy.scope():
        bnet = build_bnet(ctx.num_albedo, input_size=atlas.size, width=cfg.bnet_width,
                          sync_batchnorm=strategy.num_replicas_in_sync > 1)
        opt = keras.optimizers.Adam(cfg.learning_rate)
        opt.build(bnet.trainable_variables)

    def forward(batch, training):
        return bnet_forward(bnet, batch, ctx, training=training)

    step_fn = _one_network_step(bnet, opt, forward, strategy.num_replicas_in_sync)
    return run_training("bnet", strategy, _loop_config(cfg), {"bnet": bnet}, {"bnet": opt},
                        _dataset(cfg, strategy), step_fn, lambda b: forward(b, False)[2],
                        {"bnet": bnet})


def train_fan(cfg: JobConfig) -> dict:
    import keras
    import tensorflow as tf

    from tf_face.models.saving import load_stage_model

    from tf_face.models import VGGPerceptual, build_fan, build_patchgan
    from tf_face.training.loop import apply_if_finite, run_training
    from tf_face.training.stages import fan_forward

    strategy, atlas, ctx = _start(cfg, "fan")
    # Grappler's remapper fails on this step's graph (the PatchGAN's conv ->
    # LeakyReLU under the tape: "E0000 ... remapper failed ... LeakyReluGrad ...
    # missing node conv0/BiasAdd" at every trace) and then keeps the graph as it
    # was; switching it off for the FAN job drops that error line and nothing else
    tf.config.optimizer.set_experimental_options({"remapping": False})
    with strategy.scope():
        bnet = load_stage_model(cfg.bnet_dir or cfg.output_dir, "bnet")
        bnet.trainable = False
        fan = build_fan(input_size=atlas.size, ngf=cfg.ngf, upsample=cfg.upsample)
        disc = build_patchgan(input_size=atlas.size)
        vgg = (VGGPerceptual(weights=cfg.vgg_weights, resize_to=cfg.vgg_resolution)
               if cfg.w_percep > 0 else None)
        g_opt = keras.optimizers.Adam(cfg.learning_rate, beta_1=0.5)
        d_opt = keras.optimizers.Adam(cfg.disc_learning_rate or cfg.learning_rate, beta_1=0.5)
        g_opt.build(fan.trainable_variables)
        d_opt.build(disc.trainable_variables)
    replicas = strategy.num_replicas_in_sync

    def step_fn(batch):
        with tf.GradientTape(persistent=True) as tape:
            g_total, d_total, terms, _ = fan_forward(fan, disc, bnet, vgg, batch, ctx, True)
            g_scaled, d_scaled = g_total / replicas, d_total / replicas
        g_grads = tape.gradient(g_scaled, fan.trainable_variables)
        d_grads = tape.gradient(d_scaled, disc.trainable_variables)
        del tape
        ok_g = apply_if_finite(g_opt, g_grads, fan.trainable_variables, g_total)
        ok_d = apply_if_finite(d_opt, d_grads, disc.trainable_variables, d_total)
        return terms, tf.logical_and(ok_g, ok_d)

    def image_fn(batch):
        return fan_forward(fan, disc, bnet, vgg, batch, ctx, False)[3]

    return run_training("fan", strategy, _loop_config(cfg), {"fan": fan, "discriminator": disc},
                        {"fan": g_opt, "discriminator": d_opt}, _dataset(cfg, strategy),
                        step_fn, image_fn, {"fan": fan, "discriminator": disc})


def train_drn(cfg: JobConfig) -> dict:
    import keras

    from tf_face.models.saving import load_stage_model

    from tf_face.models import build_drn
    from tf_face.training.loop import run_training
    from tf_face.training.stages import drn_forward

    strategy, atlas, ctx = _start(cfg, "drn")
    with strategy.scope():
        bnet = load_stage_model(cfg.bnet_dir or cfg.output_dir, "bnet")
        fan = load_stage_model(cfg.fan_dir or cfg.output_dir, "fan")
        bnet.trainable = False
        fan.trainable = False
        drn = build_drn(input_size=atlas.size, ngf=cfg.ngf, upsample=cfg.upsample,
                        max_displacement=cfg.drn_max_displacement)
        opt = keras.optimizers.Adam(cfg.learning_rate)
        opt.build(drn.trainable_variables)

    def forward(batch, training):
        return drn_forward(drn, fan, bnet, scaled_batch(batch, ctx), ctx, training=training)

    step_fn = _one_network_step(drn, opt, forward, strategy.num_replicas_in_sync)
    return run_training("drn", strategy, _loop_config(cfg), {"drn": drn}, {"drn": opt},
                        _dataset(cfg, strategy), step_fn, lambda b: forward(b, False)[2],
                        {"drn": drn})
