"""The three training objectives (METHOD.md (b)-(f)) as functions of a batch.

Each ``*_forward`` takes the networks and a batch of UV samples (the dict of
``tf_face.data.make_dataset``) and returns the scalar loss(es), every loss
term (for TensorBoard) and the images worth looking at. Shading always goes
through ``tf_face.render.sh_shade`` (custom op, or its pure-TF reference), and
E_smooth through ``tf_face.render.mesh_laplacian_smoothness`` on the texel
grid's detail mesh. Losses are masked by the visibility mask of the sample and
reduced as ``ctx.weights.reduction`` says (``tf_face.losses``: "sum", the
paper's L1 norms, by default).

Colour: see ``tf_face.training.colour`` (linear-RGB shading by default).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tf_face import losses as L
from tf_face.errors import TfFaceError
from tf_face.models.bnet import split_bnet_output
from tf_face.render import grid_adjacency, sh_shade
from tf_face.uv.albedo_model import albedo_from_coeffs
from tf_face.training.colour import to_display_space, to_shading_space
from tf_face.detail.tf_ops import (detail_normals, displacement_from_rate, gather_texels,
                                     grid_orientation)


@dataclasses.dataclass
class StageContext:
    """Constants shared by the objectives (built once per job)."""
    albedo_mean: tf.Tensor          # [H, W, 3]
    albedo_basis: tf.Tensor         # [H, W, 3, K]
    atlas_mask: np.ndarray          # [H, W] bool: texels of the detail mesh
    weights: L.LossWeights
    color_space: str = "linear"
    render_backend: str = "auto"
    gan_kind: str = "lsgan"
    drn_max_displacement: float = 0.05   # largest |r_d| (detail units); E_sup's DRN unit

    def __post_init__(self):
        adj = grid_adjacency(self.atlas_mask)
        self.grid_row_ptr = tf.constant(adj.row_ptr, tf.int32)
        self.grid_col_idx = tf.constant(adj.col_idx, tf.int32)
        self.grid_texels = tf.constant(adj.texel_index, tf.int32)
        self.detail_valid = tf.constant(self.atlas_mask[None, ..., None], tf.float32)

    @property
    def num_albedo(self) -> int:
        return int(self.albedo_basis.shape[-1])


def _inputs(batch, ctx: StageContext):
    texture = batch["texture"]
    target = to_shading_space(texture, ctx.color_space)
    return texture, target, batch["mask"], batch["normals"]


def _ground_truth(batch, name: str):
    """``batch["extras"][name]`` as [B,H,W,C] float32, or a clear error."""
    extras = batch.get("extras") or {}
    if name not in extras:
        raise TfFaceError(f"w_sup > 0 needs shards with ground truth ({name!r} in the record "
                          f"extras, as tf_face.synthetic.make_dataset writes them); these "
                          f"have {sorted(extras) or 'none'}. Use --w_sup=0 (the paper's "
                          f"self-supervised objective) for photo shards")
    value = tf.cast(extras[name], tf.float32)
    if value.shape.rank == 3:
        value = value[..., None]
    return value


def supervised_loss(truth, pred, valid, reduction: str) -> tf.Tensor:
    """E_sup = |truth - pred| over ``valid`` texels ([1|B,H,W,1]), reduced like
    E_pixel (not in the paper: synthetic supervision, ``LossWeights.w_sup``)."""
    mask = tf.ones_like(pred[..., :1]) * tf.cast(valid, pred.dtype)
    return L.pixel_loss(truth, pred, mask, reduction)


def albedo_supervision(batch, albedo, ctx: StageContext) -> tf.Tensor:
    """E_sup of an albedo (B-Net's R_a, FAN's A) against ``gt_albedo``, compared
    in ``ctx.weights.sup_space`` ("linear" as they are; "srgb": both encoded
    for display first, ``tf_face.losses.LossWeights``)."""
    truth = _ground_truth(batch, "gt_albedo")
    if ctx.weights.sup_space == "srgb":
        truth = to_display_space(truth, ctx.color_space)
        albedo = to_display_space(albedo, ctx.color_space)
    return supervised_loss(truth, albedo, ctx.detail_valid, ctx.weights.reduction)


def bnet_predict(bnet, texture, ctx: StageContext, training: bool):
    y = bnet(texture, training=training)
    p_a, gamma = split_bnet_output(y, ctx.num_albedo)
    albedo = albedo_from_coeffs(ctx.albedo_mean, ctx.albedo_basis, p_a)
    return p_a, gamma, albedo


def bnet_forward(bnet, batch, ctx: StageContext, training: bool = True):
    """E_B-Net = E_pixel + w_a E_a (Eq. 4)."""
    texture, target, mask, normals = _inputs(batch, ctx)
    p_a, gamma, albedo = bnet_predict(bnet, texture, ctx, training)
    shaded = sh_shade(albedo, normals, gamma, backend=ctx.render_backend)
    e_pixel = L.pixel_loss(target, shaded, mask, ctx.weights.reduction)
    e_a = L.albedo_reg(p_a)
    total = e_pixel + ctx.weights.w_a * e_a
    terms = {"total": total, "pixel": e_pixel, "albedo_reg": e_a}
    if ctx.weights.w_sup > 0:
        terms["sup"] = albedo_supervision(batch, albedo, ctx)
        total = terms["total"] = total + ctx.weights.w_sup * terms["sup"]
    images = {"input_texture": texture,
              "bnet_albedo": to_display_space(albedo, ctx.color_space),
              "shading": to_display_space(shaded / tf.maximum(albedo, 1e-3), ctx.color_space),
              "rerender": to_display_space(shaded, ctx.color_space) * mask}
    return total, terms, images


def fan_forward(fan, disc, bnet, vgg, batch, ctx: StageContext, training: bool = True):
    """Generator and discriminator objectives of FAN (Eqs. 5-8).

    Real samples for the PatchGAN are B-Net albedos R_a of the same textures
    (METHOD.md), fake samples FAN(I_t). Returns (g_total, d_total, terms, images).
    """
    texture, target, mask, normals = _inputs(batch, ctx)
    _, gamma, real_albedo = bnet_predict(bnet, texture, ctx, training=False)
    real_albedo = tf.stop_gradient(real_albedo)
    gamma = tf.stop_gradient(gamma)
    albedo = fan(texture, training=training)
    shaded = sh_shade(albedo, normals, gamma, backend=ctx.render_backend)
    e_pixel = L.pixel_loss(target, shaded, mask, ctx.weights.reduction)
    if vgg is not None and ctx.weights.w_percep > 0:
        shaded_display = to_display_space(shaded, ctx.color_space)
        m = tf.cast(mask, tf.float32)
        e_percep = L.perceptual_loss(vgg, texture * m, shaded_display * m)
    else:
        e_percep = tf.constant(0.0)
    fake_logits = disc(albedo, training=training)
    real_logits = disc(real_albedo, training=training)
    e_gan_g = L.gan_g_loss(fake_logits, ctx.gan_kind)
    # one tape, two variable lists: D's gradient of e_gan_d and G's of g_total
    e_gan_d = L.gan_d_loss(real_logits, fake_logits, ctx.gan_kind)
    w = ctx.weights
    g_total = w.w_gan * e_gan_g + w.w_pixel * e_pixel + w.w_percep * e_percep
    terms = {"g_total": g_total, "d_total": e_gan_d, "gan_g": e_gan_g, "pixel": e_pixel,
             "percep": e_percep}
    if w.w_sup > 0:
        terms["sup"] = albedo_supervision(batch, albedo, ctx)
        g_total = terms["g_total"] = g_total + w.w_sup * terms["sup"]
    images = {"input_texture": texture,
              "bnet_albedo": to_display_space(real_albedo, ctx.color_space),
              "fan_albedo": to_display_space(albedo, ctx.color_space),
              "rerender": to_display_space(shaded, ctx.color_space) * mask}
    return g_total, e_gan_d, terms, images


def drn_forward(drn, fan, bnet, batch, ctx: StageContext, training: bool = True):
    """E_DRN = w_grad E_grad + w_const E_const + w_smooth E_smooth (Eq. 9).

    Shading uses FAN's albedo, B-Net's lighting and the normals of the
    displaced detail mesh (``tf_face.detail.tf_ops``; ``batch["scale"]`` is
    the fit scale times the detail unit, ``jobs.scaled_batch``, so positions
    and Δd are in inter-ocular distances -- conventions in
    ``tf_face.detail.np_ops``).
    """
    texture, target, mask, normals = _inputs(batch, ctx)
    _, gamma, _ = bnet_predict(bnet, texture, ctx, training=False)
    albedo = tf.stop_gradient(fan(texture, training=False))
    gamma = tf.stop_gradient(gamma)
    valid = ctx.detail_valid * tf.cast(tf.reduce_any(normals != 0, -1, keepdims=True),
                                       tf.float32)
    position = batch["position"] / tf.reshape(tf.cast(batch["scale"], tf.float32), [-1, 1, 1, 1])
    rate = drn(texture, training=training)
    delta = displacement_from_rate(rate, normals, valid)
    orient = grid_orientation(position, normals, valid)
    n_detail = detail_normals(position, normals, delta, valid, orient)
    shaded = sh_shade(albedo, n_detail, gamma, backend=ctx.render_backend)
    red = ctx.weights.reduction
    e_grad = L.gradient_loss(target, shaded, mask, red)
    e_const = L.displacement_const(delta, valid, red)
    e_smooth = L.smoothness_loss(gather_texels(delta, ctx.grid_texels), ctx.grid_row_ptr,
                                 ctx.grid_col_idx, red, backend=ctx.render_backend)
    w = ctx.weights
    total = w.w_grad * e_grad + w.w_const * e_const + w.w_smooth * e_smooth
    terms = {"total": total, "grad": e_grad, "const": e_const, "smooth": e_smooth}
    if w.w_sup > 0:
        # r_d and the true displacement (IOD units along the base normal), both
        # in units of the largest |r_d| so the term is O(1) per texel
        unit = 1.0 / ctx.drn_max_displacement
        terms["sup"] = supervised_loss(_ground_truth(batch, "gt_displacement") * unit,
                                       rate * unit, valid, red)
        total = terms["total"] = total + w.w_sup * terms["sup"]
    base_shaded = sh_shade(albedo, normals, gamma, backend=ctx.render_backend)
    images = {"input_texture": texture,
              "fan_albedo": to_display_space(albedo, ctx.color_space),
              "displacement": 0.5 + 10.0 * rate * valid,
              "base_shading": to_display_space(base_shaded, ctx.color_space) * valid,
              "detail_shading": to_display_space(shaded, ctx.color_space) * valid}
    return total, terms, images
