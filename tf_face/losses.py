"""Loss terms of B-Net, FAN and DRN (METHOD.md (b)-(f)); pure TF, differentiable.

Conventions:
* images / maps are NHWC float32 ``[B, H, W, C]``; masks are ``[B, H, W, 1]``
  or ``[B, H, W]`` with 1 = visible texel (soft values in [0, 1] act as
  weights); the mask is broadcast over channels.
* every function returns a scalar float32 tensor; a mask that is all zero
  gives 0 (not NaN) in both reductions.
* ``reduction`` says how the image-sized terms (E_pixel, E_grad, E_const,
  E_smooth) are reduced (*ours: the paper writes |I_t - I_syn| without saying):

  - ``"sum"`` (default, the paper's reading): the L1 *norm* of Eq. 4 -- the
    error summed over the visible texels and channels of each image, then
    the mean over the batch. E_smooth is Eq. 9's double sum
    sum_i sum_{j in 1-ring(i)} ||Δd_i - Δd_j||^2 per image (batch mean).
    Only with sums do the paper's weights balance: w_a = 1 next to
    E_a = ||p_a||^2 (a few units) needs an E_pixel of hundreds to thousands
    (a 256^2 texture with ~0.05 error per texel-channel), and w_pixel = 0.005
    next to a GAN term of order 1 likewise. With means, w_a = 1 pins p_a to 0
    (B-Net's albedo equals the prior mean) and w_pixel = 0.005 leaves FAN to
    the discriminator alone. The sums scale with the UV resolution (and the
    number of visible texels); the paper's weights are for 256^2 maps.
  - ``"mean"``: the mean per visible texel-channel pooled over the batch,
    ``sum(m * e) / (C * sum(m))`` (E_smooth: the double sum divided by the
    number of detail-mesh vertices, batch mean). Resolution-independent, but
    the paper's weights do not balance with it: pick your own.

  E_a = ||p_a||^2 (per sample, batch mean), E_percep (Eq. 8) and the GAN
  terms are the same in both.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_face.render import mesh_laplacian_smoothness

GAN_KINDS = ("lsgan", "nonsaturating", "log")
REDUCTIONS = ("sum", "mean")
SUP_SPACES = ("linear", "srgb")


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Loss weights; defaults are the paper's (METHOD.md), which balance with
    ``reduction="sum"`` (the L1 norms of Eqs. 4 and 9; module doc).

    ``near_frontal()`` gives the paper's second FAN setting for near-frontal,
    unoccluded faces. ``w_gan`` (weight of the generator's GAN term) is 1 in
    Eq. 5 and exposed for tuning. ``reduction`` = "sum" | "mean" is how the
    image-sized terms are reduced (module doc).

    ``w_sup`` is not in the paper: the weight of ``supervised_loss``, an L1
    term to the ground truth that synthetic shards carry (``gt_albedo``,
    ``gt_displacement``; ``tf_face.training.stages``). 0, the default, is the
    paper's self-supervised objective. ``sup_space`` says where the albedo
    term compares: ``"linear"`` (the albedos as they are, linear RGB) or
    ``"srgb"`` (both sRGB-encoded first: equal steps are about equally
    visible there, and skin tone (ITA°) is measured in CIELAB, whereas a
    linear L1 weighs an error on a dark albedo (0.05) ~3.6x less than the
    same error on a light one (0.5)).
    """

    w_a: float = 1.0          # B-Net albedo regulariser E_a
    w_pixel: float = 0.005    # FAN pixel loss
    w_percep: float = 0.3     # FAN perceptual loss
    w_gan: float = 1.0        # FAN adversarial term
    w_grad: float = 0.5       # DRN gradient loss
    w_const: float = 1.0      # DRN displacement magnitude
    w_smooth: float = 20.0    # DRN Laplacian smoothness
    reduction: str = "sum"    # "sum" (paper, L1 norms) | "mean" (per texel)
    w_sup: float = 0.0        # synthetic supervision (not in the paper; 0 = off)
    sup_space: str = "linear"  # where the albedo supervision compares: linear | srgb

    def __post_init__(self):
        check_reduction(self.reduction)
        if self.sup_space not in SUP_SPACES:
            raise ValueError(f"unknown sup_space {self.sup_space!r}; use one of {SUP_SPACES}")

    @classmethod
    def near_frontal(cls, **overrides) -> "LossWeights":
        return cls(**{"w_pixel": 0.008, "w_percep": 0.7, **overrides})

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown loss reduction {reduction!r}; use one of {REDUCTIONS}")
    return reduction


def _as_mask(mask, like: tf.Tensor) -> tf.Tensor:
    """[B,H,W] or [B,H,W,1] mask -> [B,H,W,1] in ``like``'s dtype."""
    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank == 3:
        mask = mask[..., None]
    if mask.shape.rank != 4 or (mask.shape[-1] is not None and mask.shape[-1] != 1):
        raise ValueError(f"mask must be [B,H,W] or [B,H,W,1], got shape {mask.shape}")
    if like.shape.rank == 4 and mask.shape[1:3].is_fully_defined() \
            and like.shape[1:3].is_fully_defined() and mask.shape[1:3] != like.shape[1:3]:
        raise ValueError(f"mask spatial shape {mask.shape[1:3]} != image {like.shape[1:3]}")
    return tf.cast(mask, like.dtype)


def _pair(target, pred, what: str):
    target = tf.convert_to_tensor(target, tf.float32)
    pred = tf.convert_to_tensor(pred, tf.float32)
    if target.shape.rank != 4 or pred.shape.rank != 4:
        raise ValueError(f"{what}: expected NHWC rank-4 maps, got {target.shape} and {pred.shape}")
    if target.shape.is_fully_defined() and pred.shape.is_fully_defined() \
            and target.shape != pred.shape:
        raise ValueError(f"{what}: target shape {target.shape} != prediction {pred.shape}")
    return target, pred


def _batch_size(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.shape(x)[0], x.dtype)


def _reduce(err: tf.Tensor, mask: tf.Tensor, reduction: str) -> tf.Tensor:
    """``sum``: sum(mask * err) / B (per-image sum, batch mean);
    ``mean``: sum(mask * err) / (C * sum(mask)). 0 for an empty mask."""
    total = tf.reduce_sum(err * mask)
    if check_reduction(reduction) == "sum":
        return tf.math.divide_no_nan(total, _batch_size(err))
    channels = tf.cast(tf.shape(err)[-1], err.dtype)
    return tf.math.divide_no_nan(total, channels * tf.reduce_sum(mask))


def pixel_loss(target, pred, mask, reduction: str = "sum") -> tf.Tensor:
    """E_pixel = |target - pred| over the visible texels (Eq. 4).

    ``sum``: the L1 norm over each image's visible texels and channels, mean
    over the batch (the paper's; its weights balance with it). ``mean``: mean
    absolute error per visible texel-channel, pooled over the batch.
    """
    target, pred = _pair(target, pred, "pixel_loss")
    return _reduce(tf.abs(target - pred), _as_mask(mask, pred), reduction)


def albedo_reg(p_a) -> tf.Tensor:
    """E_a = ||p_a||^2 per sample ([B, K]), mean over the batch (both reductions)."""
    p_a = tf.convert_to_tensor(p_a, tf.float32)
    if p_a.shape.rank != 2:
        raise ValueError(f"albedo_reg: expected p_a [B, K], got shape {p_a.shape}")
    return tf.reduce_mean(tf.reduce_sum(tf.square(p_a), axis=-1))


def gradient_loss(target, pred, mask, reduction: str = "sum") -> tf.Tensor:
    """E_grad = |∇target - ∇pred| with forward differences, masked.

    ∇_x I = I[:, :, w+1] - I[:, :, w], ∇_y I = I[:, h+1] - I[:, h]; a difference
    counts only if both of its texels are valid (mask product). The l1 errors
    of the x and y differences are pooled: ``sum`` adds them over each image's
    valid pairs and channels (batch mean, the paper's L1 norm); ``mean``
    divides the batch's total by C * (number of valid x pairs + valid y pairs).
    """
    target, pred = _pair(target, pred, "gradient_loss")
    m = _as_mask(mask, pred)
    diff = target - pred  # ∇ is linear: ∇t - ∇p = ∇(t - p)
    dx = diff[:, :, 1:] - diff[:, :, :-1]
    dy = diff[:, 1:] - diff[:, :-1]
    mx = m[:, :, 1:] * m[:, :, :-1]
    my = m[:, 1:] * m[:, :-1]
    num = tf.reduce_sum(tf.abs(dx) * mx) + tf.reduce_sum(tf.abs(dy) * my)
    if check_reduction(reduction) == "sum":
        return tf.math.divide_no_nan(num, _batch_size(diff))
    channels = tf.cast(tf.shape(diff)[-1], diff.dtype)
    return tf.math.divide_no_nan(num, channels * (tf.reduce_sum(mx) + tf.reduce_sum(my)))


def _safe_norm(x: tf.Tensor) -> tf.Tensor:
    """Euclidean norm over the last axis with a zero (not NaN) gradient at 0."""
    sq = tf.reduce_sum(tf.square(x), axis=-1, keepdims=True)
    nonzero = sq > 0
    return tf.where(nonzero, tf.sqrt(tf.where(nonzero, sq, tf.ones_like(sq))), tf.zeros_like(sq))


def displacement_const(delta, mask=None, reduction: str = "sum") -> tf.Tensor:
    """E_const = |Δd|: the Euclidean length of the displacement per texel.

    ``delta`` is [B, H, W, 3] (Δd = r_d n) or [B, H, W, 1] (r_d itself; with
    unit normals ‖r_d n‖ = |r_d|). ``sum``: summed over the valid texels of
    each image (all texels without ``mask``), batch mean; ``mean``: mean
    length per valid texel over the batch.
    """
    delta = tf.convert_to_tensor(delta, tf.float32)
    if delta.shape.rank != 4:
        raise ValueError(f"displacement_const: expected [B,H,W,3|1], got shape {delta.shape}")
    length = _safe_norm(delta)
    mask = tf.ones_like(length) if mask is None else _as_mask(mask, length)
    return _reduce(length, mask, reduction)


def smoothness_loss(values, row_ptr, col_idx, reduction: str = "sum",
                    backend: str = "auto") -> tf.Tensor:
    """E_smooth (Eq. 9) = sum_i sum_{j in N(i)} ||x_i - x_j||^2, batch mean.

    ``values`` [B, V, C] (Δd at the detail-mesh vertices), (row_ptr, col_idx)
    the symmetric 1-ring CSR (``tf_face.render.grid_adjacency``: each edge
    counted from both ends, as the double sum does). ``sum``: the double sum
    itself; ``mean``: divided by the number of vertices V. Goes through
    ``tf_face.render.mesh_laplacian_smoothness`` (custom op or reference).
    """
    values = tf.convert_to_tensor(values, tf.float32)
    per_image = mesh_laplacian_smoothness(values, row_ptr, col_idx, backend=backend)
    if check_reduction(reduction) == "sum":
        return tf.reduce_mean(per_image)
    num_vertices = tf.cast(tf.shape(values)[1], tf.float32)
    return tf.math.divide_no_nan(tf.reduce_mean(per_image), num_vertices)


def perceptual_distance(features_a, features_b) -> tf.Tensor:
    """E_percep (Eq. 8): mean_j ||F_j(a) - F_j(b)||_2 / (H_j W_j C_j), batch mean.

    The norm is the plain (not squared) Frobenius norm of each sample's
    feature difference, as written in the paper.
    """
    if len(features_a) != len(features_b) or not features_a:
        raise ValueError("perceptual_distance: need two equally long, non-empty feature lists")
    terms = []
    for fa, fb in zip(features_a, features_b):
        fa = tf.convert_to_tensor(fa, tf.float32)
        fb = tf.convert_to_tensor(fb, tf.float32)
        diff = tf.reshape(fa - fb, [tf.shape(fa)[0], -1])
        size = tf.cast(tf.shape(diff)[1], tf.float32)
        terms.append(tf.reduce_mean(_safe_norm(diff)) / size)
    return tf.add_n(terms) / float(len(terms))


def perceptual_loss(vgg, target, pred) -> tf.Tensor:
    """E_percep(target, pred) for [B, H, W, 3] images in [0, 1] through ``vgg``
    (``tf_face.models.VGGPerceptual``, called -> its feature list): scalar,
    batch mean.

    ``target`` (I_t, data) is a constant: no gradient flows into it, and
    VGG's backward pass runs over ``pred``'s batch only (two forward calls
    instead of one concatenated batch; the backward of a concatenated call
    would cost the full 2B batch).
    """
    feats_t = vgg(tf.stop_gradient(target))
    return perceptual_distance([tf.stop_gradient(f) for f in feats_t], vgg(pred))


def _check_kind(kind: str) -> None:
    if kind not in GAN_KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; use one of {GAN_KINDS}")


def gan_d_loss(real_logits, fake_logits, kind: str = "lsgan") -> tf.Tensor:
    """Discriminator loss on raw logits (means over patches and batch).

    lsgan: mean((D(x) - 1)^2) + mean(D(G(z))^2)  (least squares, D's raw output).
    log / nonsaturating: -mean(log σ(D(x))) - mean(log(1 - σ(D(G(z))))), i.e.
    D maximises Eq. 6; both kinds train D the same way.
    Not halved (pix2pix halves D's loss; scale the D learning rate instead).
    """
    _check_kind(kind)
    real = tf.convert_to_tensor(real_logits, tf.float32)
    fake = tf.convert_to_tensor(fake_logits, tf.float32)
    if kind == "lsgan":
        return tf.reduce_mean(tf.square(real - 1.0)) + tf.reduce_mean(tf.square(fake))
    return tf.reduce_mean(tf.nn.softplus(-real)) + tf.reduce_mean(tf.nn.softplus(fake))


def gan_g_loss(fake_logits, kind: str = "lsgan") -> tf.Tensor:
    """Generator loss on D's logits of fakes.

    lsgan: mean((D(G(z)) - 1)^2); nonsaturating: -mean(log σ(D(G(z))));
    log: mean(log(1 - σ(D(G(z))))), the literal minimax term of Eq. 6
    (saturates early in training; kept for fidelity to the paper).
    """
    _check_kind(kind)
    fake = tf.convert_to_tensor(fake_logits, tf.float32)
    if kind == "lsgan":
        return tf.reduce_mean(tf.square(fake - 1.0))
    if kind == "nonsaturating":
        return tf.reduce_mean(tf.nn.softplus(-fake))
    return -tf.reduce_mean(tf.nn.softplus(fake))
