"""FAN's and DRN's objectives minimised for one photo, on the maps themselves.

* ``fit_albedo_map``: the albedo map A [S,S,3] (linear RGB) that minimises

      E_pixel(T, A * E(n, gamma))                       (FAN's E_pixel, B-Net's gamma)
    + w_low  * sum_atlas |G_sigma * (A - R_a)|^2        (low-frequency guidance)
    + w_sym  * sum_{hidden, mirror visible} |A - A_0|     (what FAN's flip features do)

  with ``R_a`` the PCA albedo of the light/albedo fit, ``G_sigma`` a Gaussian
  low-pass (normalised convolution over the atlas) and ``A_0`` the start
  below, which on hidden texels is the mirrored detail (``flip``: the UV
  map's left/right mirror; the UV layouts are symmetric in u). The guidance
  keeps the map's low frequencies at the PCA albedo -- so shading and
  shadows, which are low-frequency, do not leak into the albedo -- while the
  pixels give the high frequencies (freckles, moles, brows, lip lines).
  Hidden texels whose mirror is visible take the mirror's skin detail,
  low-passed by ``mirror_sigma`` (3 texels: the lips carry over, the other
  half's moles and freckles do not; hidden MAE on 24 tuning faces, seed
  3000: as is 0.0418, sigma 2 0.0412, sigma 3 0.0412, no mirror 0.0410, the
  PCA fit 0.0407); the others keep R_a. Hidden eyes and brows do not take
  their mirror's detail (``hidden_features`` "mirror" does): the far side's
  mesh is the least accurate one (the landmarker's error grows with yaw),
  and a mirrored brow lands off the true one. With "colour" (the default)
  they keep the prior's eye and brow but in the colour of the seen ones
  (``feature_colour_offsets``: per channel, R_a x the ratio of the delit
  photo's mean to R_a's over the texels of that part E_pixel uses; the parts
  are both eyes and both brows, ``feature_parts``), and the prior's
  grey-blue eye no longer sits beside a brown one (``obama_partial_face2``,
  an eye cut off by the frame; every turned face's far eye); texels known
  to be covered (``occluded``) keep R_a as before -- a cap's brim flags the
  whole brow band, and a band of brow colour is no brow. "pca" keeps R_a.
  48 faces (seed 1000, all tones): hidden MAE "pca" 0.03615, "colour"
  0.03610 (unseen 0.03590 -> 0.03585, the PCA fit's 0.03585; occluded
  0.03313 -> 0.03306). Texels E_pixel leaves out keep their start (``free_unseen``
  False: Adam does not move them). Hidden MAE split into texels the geometry
  hides ("unseen") and texels an occluder covers (24 faces, seed 2000; PCA
  fit 0.0406 / 0.0394): mirrored features 0.0409 / 0.0439, high-passed
  mirrored features 0.0408, features blurred by sigma 6 0.0408, skin only
  0.0406 / 0.0421 (with the stroke test below).
  **Strokes** (``thin_occluders``, ``thin_strokes``): hair strands, glasses
  frames and lines of shading are thin, elongated regions of one-signed
  contrast in the high-pass; they are not skin detail, so they keep R_a and
  E_pixel leaves them out. Freckles and moles are discs and stay; so do
  strokes inside the eyes, brows and lips (``stroke_keep``,
  ``regions.STROKE_KEEP``) unless 30 % of them lies outside; the eyes
  themselves are never taken (``eyes``: crow's feet joined to an eye made a
  stroke that took the whole visible eye, on 2 of the 56 shared photos;
  48 synthetic faces, seed 1000: occluded 0.03306 -> 0.03308, eyes and
  brows registered 0.02754 -> 0.02760). Occluded
  texels, 24 faces, seed 2000: 0.0439 -> 0.0421 (contrast 0.15, half-width
  3) -> 0.0413 (half-width 4) -> 0.0410 (contrast 0.1, the default; PCA fit
  0.0394); the visible and feature errors do not rise (features registered
  0.0348 -> 0.0340); 120 held-out faces (seed 1000): occluded 0.0463 ->
  0.0438, hidden 0.0390 -> 0.0387 (PCA fit 0.0384 / 0.0384). What is left on
  occluded texels is hands (skin-coloured blobs the outlier test only partly
  catches) and strands merged with a brow. Tried and not kept (24 faces,
  seed 2000, an occluder on each, occluded texels 0.0456, PCA fit 0.0403): a
  hue-contrast stroke test for grey frames on tan skin, 0.0455; no detail
  where 30 % of the texels within a sigma-4 window have contrast (bunched
  strands, fingers), 0.0437 -- but on the 56 shared photos it took 18 % of
  the visible texels (nose, mouth, stubble, a moustache: real skin's detail
  is denser than the generator's). Two of the shared photos show glasses,
  and their frames still print faintly (``vd026``'s thin metal rims,
  ``deca_exp/0``'s thick ones): a frame's top rim lies in the brow band (kept),
  and its lower rim joins the face's network of shading lines into one region
  whose widest point fails the half-width test. Tried and not kept
  (2026-12-04): cutting thin parts off thick blobs (the rims then fell in
  pieces, most of them inside the brow or eye band); a ring-and-bridge
  detector around the eyes (delit lightness 1.5x off the skin's in most of
  the directions around each eye and across the bridge), which fired on
  most faces without glasses too (shadows under the brows and eyes); filling
  covered texels from their fitted surroundings instead of R_a (12 faces
  with occluders, seed 1000: occluded 0.03303 -> 0.03324); a closed ring
  of thin dark strokes around each eye (the best circular path, by dynamic
  programming, through the delit luminance's top-hat around the eye, scored
  by the share of its angles darker than 12 %): glasses 0.47-0.82 per eye
  (``vd026``, ``deca_exp/0``), a wrinkled face without glasses 0.50-0.65
  (``deca_teaser/2``: crow's feet, lid creases and under-eye lines close
  the ring), the generator's glasses 0.25-0.44 (rims half hidden) -- no
  threshold separates them.
  Where the hidden error above the PCA fit's comes from (120 held-out faces,
  seed 1000, per-face means; fit .03673, PCA fit .03642): the 84 faces
  without an occluder sum to -0.0004 (the fit at or below the PCA fit),
  the 36 with one to +0.0372, and 35 of those 36 have a higher error than
  the PCA fit on their occluded texels -- the hidden goal waits on finding
  occluders, not on the mirror. Split by kind (excess summed over the
  occluded texels: hands 205, glasses 339, hair 260), half of it lies more
  than 5 texels from any texel the tests caught (occluders missed whole) and
  a third within 3 (their rims). Tried (2026-12-04, same 120 faces): strokes
  grown by 2 texels instead of 1, occluded .04172 -> .04155, hidden
  .03673 -> .03672; no mirrored detail, hidden .03668. A segmenter trained
  on the generator's occluders finds them (recall .91) but marks a quarter
  of real skin (``skin`` module doc, 2026-12-05).
  **Features** (``feature_mask``: eyes and brows, ``tf_face.uv.regions``;
  ``photo_features``): the prior holds a grey eye and a template brow, and
  their colour is low-frequency at sigma 6, so the guidance used to paint
  brown irises grey-blue and the person's brows away (the outlier test
  below removed dark brows outright). There the start is the whole delit
  residual (no high-pass, threshold or outlier test), the guidance acts on
  ``x - x0 * f`` (f: the mask feathered by ``FEATURE_FEATHER``) so it leaves
  the features alone, and the skin's low-pass leaves them out. Measured
  (eval/real_photos.py, 56 shared photos: fit re-render error 0.0388 ->
  0.0345, fit < PCA fit on 56/56; eval/synthetic_benchmark.py, 24 faces,
  seed 1000: eyes + brows against the carried truth 0.0602 -> 0.0362, all
  visible carried 0.0413 -> 0.0393; same-texel visible 0.0438 -> 0.0447,
  which charges the ~6-texel registration twice at every sharp edge). A
  fringe or a glasses frame over the brows prints into the brow band.
  Outliers (below) fade: detail weight 1 where the low-passed residual is
  under half ``outlier_level``, 0 above it (``outlier_fade``), and the
  high-pass is taken again without them (``relowpass``): a hard cut drew
  outlines around every outlier region (eye bags, nostrils, beards) on real
  photos. Re-render error over the 56 shared photos 0.0345 -> 0.0337
  (relowpass) -> 0.0343 (fade: less of the photo is copied); synthetic
  (24 faces, seed 1000) unchanged to 1e-4.
  Start: the closed-form minimiser without the coupling, ``R_a + highpass(T /
  E - R_a)`` on visible texels and its blurred mirror on hidden ones, the high-pass
  soft-thresholded by ``detail_threshold`` (0.03 linear: on synthetic faces
  the texture's weaker high frequencies are mostly camera noise and resampling;
  visible MAE 0.0510 -> 0.0495), and dropped (with E_pixel) where the
  low-passed residual exceeds ``outlier_level`` (0.1): there the PCA albedo
  misses the photo at low frequency -- hands, glasses, hair, cast shadows --
  and the high frequencies are not skin detail either (glasses do not print
  into the albedo); then Adam steps on the whole objective.
  sigma 6 (was 4), measured on 24 synthetic tuning faces (seed 3000) against
  the truth carried into the pipeline's UV map
  (``tf_face.synthetic.registration``; the same-texel error charges every
  sharp feature twice, because the fitted UV map is a median ~5 texels off
  the true one): visible MAE 0.0379 -> 0.0362 (the PCA fit 0.0393;
  same-texel 0.0389 -> 0.0390, PCA fit 0.0386), and on the shared photos
  (``eval/real_photos.py`` sheets) the person's brows and moustache replace
  the prior's template brows. Less guidance scores better still (outlier
  0.2: 0.0355; with sigma 8: 0.0349) but prints glasses, caps, shading and
  highlights into the albedo of real photos.
* ``fit_displacement_map``: DRN's moving rate r_d [S,S] (detail units along
  the base normal) minimising Eq. 9 (its E_grad on low-passed images, below)
  plus one term of ours,
  ``w_grad E_grad + w_const E_const + w_smooth E_smooth + w_incoherent
  E_incoherent``, with the shading of
  the displaced detail mesh (``tf_face.detail.tf_ops``, the one detail-normal
  formula), from 0 (or a network's output) by Adam. The paper's weights
  depend on the unit Δd is measured in, which it does not state: E_const and
  E_smooth here take Δd x ``units_per_iod`` (Δd in inter-ocular distances;
  63 = millimetres, 1 = inter-ocular distances). Measured on 8 synthetic faces
  (relative detail-normal error over the wrinkle mask, "no detail" 6.92 deg):
  63 (mm) 6.97, and the map stays flat on real photos too; 1 (IOD) 7.85, and
  noise; the default 4 (units of ~16 mm) 7.16, and on real photos
  (``deca_teaser/1``, ``obama``) forehead lines, crow's feet and smile folds
  appear without noise. The synthetic metric cannot credit folds placed 1-3
  texels off (the registration of the fitted UV map; the true displacement
  itself scores 1.6 deg, shifted by 2 texels 6.0 deg), so the default
  follows what the photos show.
  On default synthetic faces the photo barely shows the wrinkles at all
  (``eval/detail_signal.py``, 12 faces, seed 3000): E_grad at the true
  displacement carried into the pipeline's map is 0.99-1.00 of E_grad at
  none (0.3-0.6x the truth; 1.00-1.02 at 1x) -- the skin texture's grain,
  pores and freckles carry more shading-like contrast -- while on clean
  renders (no skin texture or camera noise, harsh light) it is 0.87-0.97 and
  the fit beats no detail (5.25 vs 5.78 deg over the registered wrinkles).
  **E_incoherent** (``w_incoherent``, 2026-12-04): the squared slope of
  r_d x ``units_per_iod`` between each texel and its left and upper
  neighbour, weighted by 1 - the photo's orientation coherence there
  (``texture_coherence``: the structure tensor of the luminance high-pass,
  ~1 along a line, ~0 on dots and grain). Wrinkles and folds are lines; the
  skin's pores, freckles and a camera's noise have no direction, and E_grad
  explains them as geometry just as well. So the slope is cheap along lines
  and dear on grain, and Eq. 9's own regularisers can be weaker
  (``w_const`` 1 -> 0.1, ``w_smooth`` 20 -> 5, 40 Adam steps of 5e-3 instead
  of 25 of 3e-3). Registered wrinkle error (``dab``-style A/B through the
  fitter, seed 3000; same-texel in brackets), clean renders (10 faces, the
  knobs above) / default knobs (12 faces): no detail 6.18 (6.44) / 5.67
  (5.89); the old weights 5.48 (6.10) / 5.73 (6.11); the new 4.75 (5.63) /
  5.50 (6.09). The weaker regularisers alone (100 steps) 4.28 / 6.80 --
  grain turned into noise; with E_incoherent (w 100) 4.38 / 5.61. Neighbours
  tried: w_incoherent 400 4.90 / 5.48 (5.99), 300 with w_const 0 4.73 / 5.43
  (6.02), w_smooth 10 4.79 / 5.49, window sigma 5 4.79 / 5.50; on the shared
  photos 400 draws fewer folds (``obama``'s crow's feet fade). The cost: a
  glasses frame is a line too, and ``deca_exp/0``'s lower rims print as
  grooves a little deeper than before (``vd026``'s thin rims about as
  before). Which of the default knobs keeps the fit from the clean renders'
  score (12 faces, seed 3000, registered, fit / no detail; the default
  knobs 5.50 / 5.67): ``albedo_detail`` 0 5.04 / 5.47, ``camera_noise`` 0
  5.44 / 5.64, both 0 4.53 / 5.48, ``light_harshness`` 1 5.11 / 5.74 --
  the skin's grain first, then the camera's noise.
  **E_grad low-passed** (``grad_sigma``, 2026-12-04, ours): E_grad compares
  the photo and the render each blurred by a Gaussian of sigma 2 texels
  (at 256^2), normalised over the visible texels (``masked_lowpass``; the
  photo's side once per fit). Pores, grain and camera noise live at 1-2
  texels, folds and wrinkles are wider, so the blur takes the first out of
  the comparison and leaves most of the second; as the blurred residual is
  smaller, E_grad's weight doubles (``w_grad`` 0.5 -> 1; "paper" keeps 0.5
  and no blur). Registered wrinkle error, seed 3000, default knobs (12
  faces) / clean renders (10): E_incoherent alone 5.50 / 4.76; sigma 0.7
  5.30, 1 5.20, 1.5 5.14, 2 5.19, 3 5.41 (w_grad 0.5); sigma 2 with w_grad
  1: 4.93 / 4.18, 1.5: 4.82 / 3.97, 2: 4.80, 4: 5.00 (no detail 5.67 /
  6.18). 1.5 draws more grain on smooth young faces and glasses frames
  deeper on the shared photos, so 1. Held out (120 faces, seed 1000):
  wrinkles same-texel 5.74 -> 5.45 deg (none 5.60), registered 5.17 -> 4.63
  (none 5.32, DRN 4.90), all texels 2.22 -> 2.13 (none 1.82); albedo
  unchanged (visible .0341, hidden .0367); the fit's median time 1.57 ->
  1.66 s. 56 shared photos: re-render error .0313 -> .0292 (skin texels
  .0221 -> .0199), 56/56 below the PCA fit, cross-photo correlation of the
  maps .059 -> .094 (DRN's .976); older faces' smile lines, crow's feet
  and forehead lines show more, young faces stay about smooth.
  A ground-truth
  test (``test_incoherent_term_keeps_grain_out_of_the_displacement``: folds
  under 2% albedo grain) shows the mechanism: without the term the map is
  further from the truth than no detail, with it closer. Weighting E_grad
  itself by the coherence (an earlier try) only moved the fit towards "no
  detail": it threw away the signal, where this prices the explanation.
  Leaving chromatic or high-contrast texels out of E_grad was not kept
  either. The eyes and brows (``feature_mask``, and 2
  texels around them at 256^2) are left out of E_grad (``skip_features``): their
  edges are colour, and the fitted maps outlined every eye and brow on real
  photos; on 24 synthetic faces (seed 1000) the relative detail error fell
  from 2.30 to 2.24 deg over the atlas, 2.53 -> 2.46 at the bare template
  sites, wrinkles unchanged (5.79). Texels 2.5x darker or lighter than the
  skin once delit are left out of E_grad too (``skip_unshadeable``,
  ``skin.unshadeable_texels``): no fold shades skin that far, and the thick
  black glasses frames of ``deca_exp/0`` printed as grooves around the eyes
  and along the temple arms; thin metal rims (``vd026``) are not that dark
  and still print faintly. On 24 synthetic faces (seed 1000) 1.8 % of
  E_grad's texels go and the wrinkle errors stay (4.919 -> 4.918 deg
  registered, 5.624 same-texel). ``displacement_terms`` evaluates the
  objective's terms at a given rate.

Shading goes through ``tf_face.render.sh_shade`` and E_smooth through
``tf_face.render.mesh_laplacian_smoothness`` (custom ops, or their pure-TF
reference: ``backend``). The custom ops cannot be XLA-compiled; the pure-TF
parts of a step between them are, as three clusters (``DisplacementOptions.jit``):
the rate to Δd and the detail normals; the render's low-pass and E_grad;
E_const, E_incoherent and the texels E_smooth's op takes. One Adam step
(forward and gradient, 256^2, 2 cores, the astronaut photo, one
run): un-compiled 35 ms, the normals alone compiled 23 ms, all three 17 ms
(the reference backend 46 / - / 27 ms); the displacement stage of the fit
0.97 -> 0.68 s. Compiled and un-compiled give the same objective and
gradient to float rounding (``test_xla_compiled_step_equals_the_plain_one``);
over 40 Adam steps the maps differ by < 1e-4 detail units (the largest move
per step is 5e-3), and op and reference still give the same fit. Loss terms
are ``tf_face.losses`` with ``reduction="sum"`` (the L1 norms of the paper,
so its weights apply).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import cv2
import numpy as np
import tensorflow as tf

from tf_face import losses as L
from tf_face.appearance.skin import masked_blur
from tf_face.render import grid_adjacency, sh_shade
from tf_face.skin_tone import RGB_TO_XYZ
from tf_face.detail.tf_ops import (detail_normals, displacement_from_rate, fd_orientation,
                                     gather_texels, grid_vertex_normals)


#: the feature mask's feather, Gaussian sigma in texels at 256^2
FEATURE_FEATHER = 1.5
#: ``texture_coherence``'s floor on the structure tensor's trace (squared
#: high-pass steps per texel, linear luminance; 1e-4 per texel): flat texture has no direction
COHERENCE_FLOOR = 1e-8
#: ``DisplacementOptions.for_prior``: "lines" = the defaults (E_incoherent with
#: weaker Eq. 9 regularisers), "paper" = Eq. 9 alone, with the weights and
#: steps it had before E_incoherent (module doc)
DETAIL_PRIORS = {
    "lines": {},
    "paper": {"w_grad": 0.5, "w_const": 1.0, "w_smooth": 20.0, "w_incoherent": 0.0,
              "grad_sigma": 0.0, "steps": 25, "learning_rate": 3e-3},
}
#: ``AlbedoMapOptions.hidden_features``
HIDDEN_FEATURES = ("colour", "pca", "mirror")
#: a feature part's colour needs this many used texels (at 256^2, scaled with S^2)
MIN_FEATURE_TEXELS = 12
#: ... and its colour is at most this many times the prior's (per channel)
MAX_FEATURE_RATIO = 10.0


@dataclasses.dataclass
class AlbedoMapOptions:
    w_low: float = 100.0        # low-frequency guidance towards the PCA albedo
    w_sym: float = 0.5          # hidden texels towards their visible mirror
    sigma: float = 6.0          # low-pass Gaussian sigma, texels at 256^2 (scaled with S)
    mirror_hidden: bool = True  # hidden texels take their visible mirror's detail
    mirror_sigma: float = 3.0   # ... low-passed by this Gaussian sigma (texels at 256^2; 0: as is)
    outlier_level: float = 0.1  # > 0: no detail where |lowpass(delit - PCA)| exceeds it
    detail_threshold: float = 0.03  # start: soft-threshold |high-pass residual| by this (linear RGB)
    relowpass: bool = True      # the high-pass after the outlier test, without the outliers
    outlier_fade: bool = True   # detail fades from outlier_level / 2 to outlier_level
    photo_features: bool = True  # eyes and brows (``feature_mask``) coloured by the photo
    thin_occluders: bool = True  # no detail on thin, elongated strokes (``thin_strokes``)
    stroke_contrast: float = 0.1   # ... |high-pass| / PCA albedo above this (luminance)
    stroke_half_width: float = 4.0  # ... at most this half-width, texels at 256^2
    stroke_elongation: float = 24.0  # ... area / half-width^2 at least this (4 x length / width)
    stroke_min_area: int = 12   # ... and at least this many texels (at 256^2)
    steps: int = 15             # Adam steps after the closed-form start (0: start only)
    free_unseen: bool = False   # Adam moves texels E_pixel leaves out (False: they keep the start)
    # texels of the eyes and brows that E_pixel leaves out (hidden, occluded):
    # "colour" the PCA albedo times the ratio of the delit photo's mean to its
    # own over the same part's texels that it uses (``feature_parts``), "pca"
    # the PCA albedo's, "mirror" their mirror's (module doc)
    hidden_features: str = "colour"
    learning_rate: float = 3e-3

    def __post_init__(self):
        if self.hidden_features not in HIDDEN_FEATURES:
            raise ValueError(f"hidden_features must be one of {HIDDEN_FEATURES}, "
                             f"got {self.hidden_features!r}")


@dataclasses.dataclass
class DisplacementOptions:
    w_grad: float = 1.0         # the paper's DRN weight 0.5 (sum reductions) x 2 with grad_sigma
    w_const: float = 0.1        # (the paper's 1 and 20 without E_incoherent; module doc)
    w_smooth: float = 5.0
    units_per_iod: float = 4.0   # E_const, E_smooth take Δd x this (63: mm; module doc)
    steps: int = 40
    learning_rate: float = 5e-3  # largest move per step, detail units (inter-ocular distances)
    max_rate: float = 0.05       # |r_d| bound, detail units (as DRN's output layer)
    skip_features: bool = True   # E_grad leaves the eyes and brows out (colour edges, not folds)
    # E_grad leaves out texels 2.5x darker or lighter than the skin once delit
    # (``skin.unshadeable_texels``: frames, nostrils, cast shadows; no fold shades that far)
    skip_unshadeable: bool = True
    jit: bool = True             # a step's pure-TF parts XLA-compiled (module doc)
    # E_incoherent (ours): a slope penalty weighted by 1 - the photo's orientation
    # coherence (``texture_coherence``): pores, freckles and noise are dots with
    # no orientation, wrinkles and folds are lines (module doc)
    w_incoherent: float = 200.0
    coherence_sigma: float = 3.0  # the structure tensor's window, texels at 256^2
    # > 0: E_grad compares the photo and the render low-passed by a Gaussian of
    # this sigma (texels at 256^2; normalised over the visible texels): skin
    # grain and camera noise are finer than folds (module doc)
    grad_sigma: float = 2.0

    @classmethod
    def for_prior(cls, prior: str, **kwargs) -> "DisplacementOptions":
        """The options of one of ``DETAIL_PRIORS`` ("lines", "paper"), with
        ``kwargs`` on top."""
        if prior not in DETAIL_PRIORS:
            raise ValueError(f"detail prior must be one of {tuple(DETAIL_PRIORS)}, got {prior!r}")
        return cls(**{**DETAIL_PRIORS[prior], **kwargs})


def _gaussian_kernel(sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def blur_matrix(kernel: np.ndarray, size: int) -> np.ndarray:
    """[size, size] banded matrix B with ``(B @ v)[i] = sum_j kernel[j - i + r] v[j]``:
    the 1D convolution of a length-``size`` signal with ``kernel`` (odd length
    2r + 1), zero padding ("SAME")."""
    r = len(kernel) // 2
    i = np.arange(size)[:, None]
    j = np.arange(size)[None, :]
    off = j - i + r
    inside = (off >= 0) & (off < len(kernel))
    return np.where(inside, np.asarray(kernel, np.float32)[np.clip(off, 0, len(kernel) - 1)],
                    0.0).astype(np.float32)


def _blur(x: tf.Tensor, matrix: tf.Tensor) -> tf.Tensor:
    """Separable Gaussian blur of square [B,S,S,C] maps with zero padding, as two
    products with the banded ``blur_matrix`` [S,S]. A depthwise convolution
    gives the same numbers, but its gradient is slow on CPU: forward + backward
    of one 256^2 x 3 blur (sigma 6, 37 taps) took 57 ms that way and 6 ms as
    matrix products, 2 cores."""
    y = tf.einsum("hk,bkwc->bhwc", matrix, x)
    return tf.einsum("wk,bhkc->bhwc", matrix, y)


def masked_lowpass(x, mask, matrix, den=None) -> tf.Tensor:
    """Normalised convolution: blur(x m) / blur(m) (0 where blur(m) ~ 0);
    ``den`` = blur(m) when the caller has it (a constant mask)."""
    num = _blur(x * mask, matrix)
    den = _blur(mask, matrix) if den is None else den
    return tf.math.divide_no_nan(num, den) * tf.cast(den > 1e-3, x.dtype)


def _adam(objective, x0: tf.Tensor, args: tuple, consts: tuple, steps: int, lr: float,
          bound: float = 0.0):
    """``steps`` Adam steps on ``objective(x, args, consts)`` with ONE
    second-moment scale for the whole map (the running mean of the largest
    squared gradient entry) instead of one per entry; returns (x, history).

    Per-entry Adam moves every texel by about ``lr`` per step whatever the size
    of its gradient, so texels whose optimum is 0 (most of a displacement map)
    dither by +-lr and the map fills with noise; one shared scale keeps the
    gradient's relative sizes (a texel with a 100x smaller gradient moves 100x
    less; the largest moves about ``lr``) while keeping Adam's invariance to the
    objective's scale.

    ``objective`` is a module-level function, ``args`` tensors and ``consts``
    Python numbers, so the compiled step is traced once per map size and
    reused for every photo (a closure per photo would retrace: ~1 s each).
    ``bound`` > 0 clips x to [-bound, bound].
    """
    x = tf.convert_to_tensor(x0)
    m = tf.zeros_like(x)
    v = tf.zeros([], x.dtype)
    history = []
    for t in range(1, int(steps) + 1):
        x, m, v, loss = _adam_step(objective, x, m, v, tf.constant(float(t)), args, consts,
                                   float(lr), float(bound))
        history.append(float(loss))
    if steps > 0:
        history.append(float(_objective_value(objective, x, args, consts)))
    return x, history


@tf.function(reduce_retracing=True)
def _objective_value(objective, x, args, consts):
    return objective(x, args, consts)


@tf.function(reduce_retracing=True)
def _adam_step(objective, x, m, v, t, args, consts, lr, bound):
    b1, b2, eps = 0.9, 0.999, 1e-12
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = objective(x, args, consts)
    g = tape.gradient(loss, x)
    g = tf.where(tf.math.is_finite(g), g, tf.zeros_like(g))
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * tf.reduce_max(tf.square(g))
    new = x - lr * (m / (1 - b1 ** t)) / (tf.sqrt(v / (1 - b2 ** t)) + eps)
    if bound > 0:
        new = tf.clip_by_value(new, -bound, bound)
    return new, m, v, loss


def mirror_u(x):
    """The UV map's left/right mirror (u -> 1 - u): flip the width axis."""
    return tf.reverse(x, axis=[2])


def fit_albedo_map(texture_linear, visible, normals, sh, albedo_pca, atlas_mask,
                   opts: AlbedoMapOptions | None = None, backend: str = "auto",
                   feature_mask=None, stroke_keep=None, occluded=None, feature_parts=None,
                   eyes=None):
    """(albedo [S,S,3] float32 linear, objective history); see the module doc.

    ``occluded`` [S,S] bool: texels known to show something in front of the
    face (``tf_face.appearance.skin.non_skin_texels``: hair, a cap): like the
    outlier test's, they are left out of E_pixel and keep the PCA albedo --
    no detail, and no mirrored detail either (a glasses frame's mirror is the
    other frame). None: none.

    ``feature_mask`` [S,S] bool (``tf_face.uv.regions``: eyes, brows; used when
    ``opts.photo_features``): texels whose colour is the delit photo's --
    no low-frequency guidance, detail threshold or outlier test there.
    ``stroke_keep`` [S,S] bool: where thin strokes are the person's
    (``thin_strokes``' ``keep``); None: nowhere.
    ``feature_parts``: [S,S] bool masks that split ``feature_mask`` into
    parts of one colour (both eyes; both brows), for ``hidden_features``
    "colour"; None: the feature mask is one part.
    ``eyes`` [S,S] bool: texels the stroke test never takes (``thin_strokes``'
    ``protect``); None: none."""
    opts = opts or AlbedoMapOptions()
    size = int(np.shape(atlas_mask)[0])
    blur = tf.constant(blur_matrix(_gaussian_kernel(opts.sigma * size / 256.0), size))
    t = tf.constant(np.asarray(texture_linear, np.float32)[None])
    n = tf.constant(np.asarray(normals, np.float32)[None])
    g = tf.constant(np.asarray(sh, np.float32).reshape(1, 9, 3))
    atlas = tf.constant(np.asarray(atlas_mask, np.float32)[None, ..., None])
    # feat_w: how much of each texel is eye or brow (the feathered feature mask)
    feat_w = np.zeros(np.shape(atlas_mask), np.float32)
    if feature_mask is not None and opts.photo_features:
        # feathered, so the features meet the skin without a step
        feat_w = cv2.GaussianBlur(np.asarray(feature_mask, np.float32), (0, 0),
                                  FEATURE_FEATHER * size / 256.0)
    feat_w = tf.constant(feat_w[None, ..., None]) * atlas
    vis = tf.constant(np.asarray(visible, np.float32)[None, ..., None]) * atlas
    # 1 where nothing is known to cover the face (``occluded``), else 0
    uncovered = 1.0 if occluded is None else tf.constant(
        1.0 - np.asarray(occluded, np.float32)[None, ..., None])
    vis = vis * uncovered
    pca = tf.constant(np.asarray(albedo_pca, np.float32)[None]) * atlas
    irradiance = sh_shade(tf.ones_like(n), n, g, backend=backend)
    # closed-form start: delighted residual, high-passed, mirrored into hidden texels
    ok = vis * tf.cast(tf.reduce_min(irradiance, -1, keepdims=True) > 0.05, tf.float32)
    delit = tf.math.divide_no_nan(t, tf.maximum(irradiance, 0.05)) * ok
    resid = (delit - pca) * ok

    def split(ok):
        """(low, high) of the residual on ``ok``: the skin's low-pass, not the features'."""
        low = masked_lowpass(resid, ok * (1.0 - feat_w), blur)
        return low, (resid - low) * ok
    low, high = split(ok)
    if opts.outlier_level > 0:
        # where the PCA albedo misses the photo at low frequency (hands, glasses,
        # hair, cast shadows), the high frequencies are not skin detail either
        level = tf.reduce_max(tf.abs(low), -1, keepdims=True) / opts.outlier_level
        trusted = tf.cast(level < 1.0, tf.float32)
        trusted = 1.0 - tf.nn.max_pool2d(1.0 - trusted, 5, 1, "SAME")   # and their edges
        if opts.outlier_fade:
            # detail fades out from half the level to the level (a hard cut
            # drew outlines around every outlier region)
            trusted = trusted * tf.clip_by_value(2.0 * (1.0 - level), 0.0, 1.0)
        trusted = tf.maximum(trusted, feat_w)         # the features are not outliers
        ok = ok * trusted
        vis = vis * trusted            # and E_pixel leaves them out too
        if opts.relowpass:
            # the trusted texels' low-pass without the outliers, whose residual
            # would otherwise ring around them in the high-pass
            low, high = split(ok)
        else:
            high = high * trusted
    if opts.thin_occluders:
        # strokes (hair strands, glasses frames, shading lines) are not skin
        # detail: they keep the PCA albedo, and E_pixel leaves them out
        strokes = thin_strokes(high[0].numpy(), pca[0].numpy(), ok[0, ..., 0].numpy() > 0,
                               keep=stroke_keep, opts=opts, protect=eyes)
        clear = tf.constant(1.0 - strokes.astype(np.float32))[None, ..., None]
        ok, vis = ok * clear, vis * clear
        low, high = split(ok)
    if opts.detail_threshold > 0:
        high = tf.sign(high) * tf.nn.relu(tf.abs(high) - opts.detail_threshold)
    high = (1.0 - feat_w) * high + feat_w * resid * ok    # the features: the photo, delit
    mirror_ok = mirror_u(ok) * atlas * (1 - ok) * (1.0 if opts.mirror_hidden else 0.0)
    mirror_ok = mirror_ok * uncovered      # occluded texels keep the PCA albedo
    # hidden eyes and brows do not take their mirror's detail unless "mirror":
    # the far side's mesh is the least accurate, and the mirrored features land off
    mirrored = mirror_u(high if opts.hidden_features == "mirror" else (1.0 - feat_w) * high)
    if opts.mirror_sigma > 0:
        # the other half's fine detail is not this half's (a mole is not
        # mirrored; the fitted UV map is ~5 texels off): keep its brows and
        # lips, blur its freckles
        mirror_blur = tf.constant(blur_matrix(_gaussian_kernel(opts.mirror_sigma * size / 256.0),
                                              size))
        mirrored = masked_lowpass(mirrored, mirror_u(ok), mirror_blur)
    x0 = high + mirrored * mirror_ok
    if opts.hidden_features == "colour" and feature_mask is not None and opts.photo_features:
        parts = [feature_mask] if feature_parts is None else feature_parts
        # the texels E_pixel leaves out take their part's colour, where it is
        # seen; not those known to be covered (a cap's brim over the brows
        # flags the whole brow band, and a band of brow colour is no brow)
        x0 = x0 + feat_w * (1.0 - ok) * uncovered * tf.constant(
            feature_colour_offsets(resid[0].numpy(), pca[0].numpy(),
                                   (ok * feat_w)[0, ..., 0].numpy(), parts)[None])
    features = x0 * feat_w       # what the guidance leaves alone

    free = atlas if opts.free_unseen else vis     # the texels Adam moves
    args = (t, n, g, atlas, vis, pca, mirror_ok, x0, features, blur, _blur(atlas, blur), free)
    x, history = _adam(_albedo_objective, x0, args, (opts.w_low, opts.w_sym, backend),
                       opts.steps, opts.learning_rate)
    albedo = tf.clip_by_value(pca + x * atlas, 0.0, 1.0) * atlas
    return albedo[0].numpy(), history


def feature_colour_offsets(residual, base, weight, parts) -> np.ndarray:
    """[S,S,3] float32: what to add to ``base`` [S,S,3] (the PCA albedo) so
    that each part's texels take the part's colour: ``base x (ratio - 1)``
    with ``ratio`` (per channel) the ``weight``-ed mean of ``base +
    residual`` (the delit photo) over the mean of ``base``, over that part.
    A ratio, not a difference: a dark brow's difference, added to the prior's
    lighter template texels, went negative in red and left them blue. 0 on a
    part with fewer than ``MIN_FEATURE_TEXELS`` texels of weight > 0.5
    (scaled with S^2) and outside every part. ``weight`` [S,S]: how much each
    texel's residual is the feature's (used by E_pixel x feathered feature
    mask)."""
    residual = np.asarray(residual, np.float32)
    base = np.asarray(base, np.float32)
    weight = np.asarray(weight, np.float32)
    size = residual.shape[0]
    min_texels = max(3, int(round(MIN_FEATURE_TEXELS * (size / 256.0) ** 2)))
    out = np.zeros_like(residual)
    for part in parts:
        part = np.asarray(part, bool)
        w = np.where(part, weight, 0.0)[..., None]
        if int((w > 0.5).sum()) < min_texels:
            continue
        seen = np.maximum(((base + residual) * w).sum((0, 1)), 0.0)
        prior = np.maximum((base * w).sum((0, 1)), 1e-6)
        out[part] = base[part] * (np.minimum(seen / prior, MAX_FEATURE_RATIO) - 1.0)
    return out


def thin_strokes(detail, base, valid, keep=None, opts: AlbedoMapOptions | None = None,
                 protect=None):
    """[S,S] bool: the texels of thin, elongated strokes in a detail map.

    ``detail`` [S,S,3]: the albedo's high-pass (linear); ``base`` [S,S,3] the
    albedo it is added to; ``valid`` [S,S] bool; ``keep`` [S,S] bool: the
    eyes, brows and lips, whose edges are the person's.
    A stroke is a connected region (8-neighbours) of texels whose luminance
    contrast ``detail / base`` exceeds ``stroke_contrast`` with one sign, with
    at least ``stroke_min_area`` texels and 30 % of its area outside ``keep``
    (a hair strand or a glasses frame across a brow goes, the brow stays),
    whose half-width (the largest distance to its outside) is at most
    ``stroke_half_width`` and whose area over half-width squared (4 x length
    / width for a band; pi for a disc) is at least ``stroke_elongation``;
    grown by one texel for its anti-aliased rim.
    Freckles and moles are discs and stay; hair strands, glasses frames and
    lines of shading are bands and go (sizes scale with S / 256; at least
    one texel of half-width and three of area).
    ``protect`` [S,S] bool: texels never returned, whatever stroke they are
    part of -- the eyes: crow's feet joined to an eye made one thin, elongated
    region that took the whole visible eye with it (``obama_partial_face``,
    ``deca_exp/4``: 44% and 25% of the visible eye texels, the photo's eye
    replaced by the prior's grey-blue one)."""
    opts = opts or AlbedoMapOptions()
    size = int(np.shape(valid)[0])
    k = size / 256.0
    luminance = RGB_TO_XYZ[1].astype(np.float32)       # Y of linear sRGB
    lum = np.asarray(detail, np.float32) @ luminance
    ref = np.maximum(np.asarray(base, np.float32) @ luminance, 0.02)
    contrast = lum / ref
    allowed = np.asarray(valid, bool)
    keep = np.zeros_like(allowed) if keep is None else np.asarray(keep, bool)
    out = np.zeros((size, size), bool)
    for sign in (-1.0, 1.0):
        region = ((sign * contrast > opts.stroke_contrast) & allowed).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8)
        if n <= 1:
            continue
        dist = cv2.distanceTransform(region, cv2.DIST_L2, 3)
        half = np.zeros(n, np.float32)
        np.maximum.at(half, labels[region > 0], dist[region > 0])
        area = stats[:, cv2.CC_STAT_AREA].astype(np.float32)
        outside = np.bincount(labels[(region > 0) & ~keep], minlength=n).astype(np.float32)
        stroke = ((outside >= np.maximum(max(opts.stroke_min_area * k * k, 3.0), 0.3 * area))
                  & (half <= max(opts.stroke_half_width * k, 1.0))
                  & (area >= opts.stroke_elongation * np.maximum(half, 1.0) ** 2))
        stroke[0] = False
        out |= stroke[labels]
    if out.any():
        out = cv2.dilate(out.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        out &= np.asarray(valid, bool)
    if protect is not None:
        out &= ~np.asarray(protect, bool)
    return out


def _albedo_objective(x, args, consts):
    t, n, g, atlas, vis, pca, sym_mask, x0, features, blur, atlas_blurred, free = args
    w_low, w_sym, backend = consts
    x = x0 + (x - x0) * free          # the others keep their start: no gradient reaches them
    albedo = pca + x * atlas
    shaded = sh_shade(albedo, n, g, backend=backend)
    e_pix = L.pixel_loss(t, shaded, vis, reduction="sum")
    low = masked_lowpass(x - features, atlas, blur, atlas_blurred) * atlas
    e_low = tf.reduce_sum(tf.square(low))
    e_sym = tf.reduce_sum(tf.abs(x - x0) * sym_mask)      # hidden: the mirrored start
    return e_pix + w_low * e_low + w_sym * e_sym


class DetailGrid:
    """The texel-grid detail mesh of an atlas mask (adjacency as tensors), built once."""

    def __init__(self, atlas_mask):
        adj = grid_adjacency(np.asarray(atlas_mask, bool))
        self.row_ptr = tf.constant(adj.row_ptr, tf.int32)
        self.col_idx = tf.constant(adj.col_idx, tf.int32)
        self.texels = tf.constant(adj.texel_index, tf.int32)
        self.valid = tf.constant(np.asarray(atlas_mask, np.float32)[None, ..., None])


def _displaced_normals(delta, n, pos, valid, orient, base):
    """Detail normals of the displacement ``delta`` (``tf_face.detail.tf_ops``)."""
    return detail_normals(pos, n, delta, valid, orient, base_grid_normals=base)


def _rate_normals(rate, n, pos, valid, orient, base):
    """(Δd, detail normals) of the moving rate ``rate`` [1,S,S,1]."""
    delta = displacement_from_rate(rate, n, valid)
    return delta, _displaced_normals(delta, n, pos, valid, orient, base)


def _image_term(t, shaded, vis, grad_blur, grad_den, blurred):
    """E_grad between the photo ``t`` (low-passed already when ``blurred``) and
    the render ``shaded``, low-passed here when ``blurred``."""
    if blurred:
        shaded = masked_lowpass(shaded, vis, grad_blur, grad_den)
    return L.gradient_loss(t, shaded, vis, reduction="sum")


def _map_terms(rate, delta, valid, incoherence, texels, units_per_iod, incoherent):
    """(E_const, E_incoherent, the texels of Δd x units for E_smooth's op).

    E_incoherent: the squared differences of r_d x units between each texel
    and its left and upper neighbour, weighted by the texel's incoherence
    (not computed when ``incoherent`` is False: "paper")."""
    delta_u = delta * units_per_iod
    e_const = L.displacement_const(delta_u, valid, reduction="sum")
    e_incoherent = tf.zeros([], rate.dtype)
    if incoherent:
        r = rate * valid * units_per_iod
        e_incoherent = (
            tf.reduce_sum(tf.square(r[:, :, 1:] - r[:, :, :-1]) * incoherence[:, :, 1:])
            + tf.reduce_sum(tf.square(r[:, 1:] - r[:, :-1]) * incoherence[:, 1:]))
    return e_const, e_incoherent, gather_texels(delta_u, texels)


def _xla(fn):
    return tf.function(fn, jit_compile=True, reduce_retracing=True)


# the pure-TF parts of a displacement step, XLA-compiled (``DisplacementOptions.jit``)
_PURE_TF_XLA = {f: _xla(f) for f in (_displaced_normals, _rate_normals, _image_term, _map_terms)}


def _compiled(fn, jit: bool):
    """``fn`` (one of ``_PURE_TF_XLA``'s), XLA-compiled when ``jit``."""
    return _PURE_TF_XLA[fn] if jit else fn


def _normals_fn(jit: bool):
    """``_displaced_normals``, XLA-compiled when ``jit`` (``DisplacementOptions.jit``)."""
    return _compiled(_displaced_normals, jit)


class _DisplacementArgs(NamedTuple):
    """The per-photo tensors of the displacement objective (``_displacement_problem``)."""
    t: tf.Tensor
    n: tf.Tensor
    pos: tf.Tensor
    g: tf.Tensor
    a: tf.Tensor
    valid: tf.Tensor
    vis: tf.Tensor
    orient: tf.Tensor
    base: tf.Tensor
    texels: tf.Tensor
    row_ptr: tf.Tensor
    col_idx: tf.Tensor
    incoherence: tf.Tensor       # [1,S,S,1] 1 - texture_coherence of the texels E_grad uses
    grad_blur: tf.Tensor         # [S,S] blur_matrix of grad_sigma ([1,1] unused when 0)
    grad_den: tf.Tensor          # [1,S,S,1] its blur of vis


def texture_coherence(texture_linear, mask, sigma: float = 3.0) -> np.ndarray:
    """[S,S] float32 in [0, 1]: how much the photo's fine detail around each
    texel runs in one direction -- the coherence ``((l1 - l2) / (l1 + l2))^2``
    of the structure tensor (the luminance high-pass's gradient outer
    products, Gaussian window ``sigma`` texels at 256^2) of ``texture_linear``
    [S,S,3] over ``mask`` [S,S]. About 1 along lines (wrinkles, folds,
    stripes), about 0 on dots, grain and noise (no direction), 0 outside
    ``mask`` and where the texture is flat. The high-pass (luminance minus
    its masked sigma-4 Gaussian, then a sigma-1 blur against pixel noise) is
    what the shading of a detail map can change; the mask's border is not an
    edge (normalised convolution)."""
    lum = np.asarray(texture_linear, np.float32).mean(-1, keepdims=True)
    m = np.asarray(mask, bool)
    k = lum.shape[0] / 256.0
    hp = cv2.GaussianBlur((lum - masked_blur(lum, m, 4 * k))[..., 0] * m, (0, 0), k)
    gx = cv2.Sobel(hp, cv2.CV_32F, 1, 0) / 8.0
    gy = cv2.Sobel(hp, cv2.CV_32F, 0, 1) / 8.0
    w = float(sigma) * k
    jxx = cv2.GaussianBlur(gx * gx, (0, 0), w)
    jyy = cv2.GaussianBlur(gy * gy, (0, 0), w)
    jxy = cv2.GaussianBlur(gx * gy, (0, 0), w)
    spread = np.sqrt(np.square(jxx - jyy) + 4.0 * np.square(jxy))
    # + COHERENCE_FLOOR: flat texture has no direction
    coherence = (spread / (jxx + jyy + COHERENCE_FLOOR)) ** 2
    return (np.clip(coherence, 0.0, 1.0) * m).astype(np.float32)


def _displacement_terms(rate, args, consts):
    """(E_grad, E_const, E_smooth, E_incoherent) at the moving rate ``rate``
    [1,S,S,1]: Eq. 9's terms and ours (``DisplacementOptions.w_incoherent``).
    Between the custom ops (``sh_shade``, E_smooth's Laplacian), the pure-TF
    parts run as three XLA clusters when ``jit`` (module doc)."""
    (t, n, pos, g, a, valid, vis, orient, base, texels, row_ptr, col_idx, incoherence,
     grad_blur, grad_den) = args
    units_per_iod, backend, jit, blurred = consts[4:]
    delta, nd = _compiled(_rate_normals, jit)(rate, n, pos, valid, orient, base)
    shaded = sh_shade(a, nd, g, backend=backend)
    # the photo's side is low-passed once, in _displacement_problem
    e_grad = _compiled(_image_term, jit)(t, shaded, vis, grad_blur, grad_den, blurred)
    e_const, e_incoherent, delta_texels = _compiled(_map_terms, jit)(
        rate, delta, valid, incoherence, texels, units_per_iod, consts[3] > 0)
    e_smooth = L.smoothness_loss(delta_texels, row_ptr, col_idx, reduction="sum",
                                 backend=backend)
    return e_grad, e_const, e_smooth, e_incoherent


def _weighted(terms, consts):
    """Eq. 9 and ours: w_grad E_grad + w_const E_const + w_smooth E_smooth
    + w_incoherent E_incoherent."""
    return sum(w * e for w, e in zip(consts[:4], terms))


def _displacement_objective(rate, args, consts):
    return _weighted(_displacement_terms(rate, args, consts), consts)


def _displacement_problem(texture_linear, visible, normals, position_units, sh, albedo,
                          grid: DetailGrid, opts: DisplacementOptions, backend: str):
    """(args, consts, valid) of the displacement objective for one photo."""
    t = tf.constant(np.asarray(texture_linear, np.float32)[None])
    n = tf.constant(np.asarray(normals, np.float32)[None])
    pos = tf.constant(np.asarray(position_units, np.float32)[None])
    g = tf.constant(np.asarray(sh, np.float32).reshape(1, 9, 3))
    a = tf.constant(np.asarray(albedo, np.float32)[None])
    valid = grid.valid * tf.cast(tf.reduce_any(n != 0, -1, keepdims=True), tf.float32)
    vis = tf.constant(np.asarray(visible, np.float32)[None, ..., None]) * valid
    orient = fd_orientation(pos, n, valid)
    base = grid_vertex_normals(pos, valid)       # the same every step
    incoherence = np.zeros(valid.shape[1:3], np.float32)
    if opts.w_incoherent > 0:
        incoherence = 1.0 - texture_coherence(texture_linear, visible, opts.coherence_sigma)
    size = int(valid.shape[1])
    blurred = opts.grad_sigma > 0
    grad_blur = tf.constant(blur_matrix(_gaussian_kernel(opts.grad_sigma * size / 256.0), size)
                            if blurred else np.zeros((1, 1), np.float32))
    grad_den = _blur(vis, grad_blur) if blurred else tf.zeros([1, 1, 1, 1])
    if blurred:
        t = masked_lowpass(t, vis, grad_blur, grad_den)
    args = _DisplacementArgs(t, n, pos, g, a, valid, vis, orient, base, grid.texels,
                             grid.row_ptr, grid.col_idx, tf.constant(incoherence[None, ..., None]),
                             grad_blur, grad_den)
    consts = (opts.w_grad, opts.w_const, opts.w_smooth, opts.w_incoherent, opts.units_per_iod,
              backend, bool(opts.jit), blurred)
    return args, consts, valid


def displacement_terms(texture_linear, visible, normals, position_units, sh, albedo,
                       grid: DetailGrid, rate, opts: DisplacementOptions | None = None,
                       backend: str = "auto") -> dict:
    """Eq. 9's terms (unweighted, ``reduction="sum"``) at a given moving rate
    [S,S] (detail units), with the inputs of ``fit_displacement_map``:
    ``{"e_grad", "e_const", "e_smooth", "e_incoherent", "objective"}`` (the weighted sum it
    minimises). For diagnostics, e.g. how much a known displacement lowers
    E_grad (``eval/detail_signal.py``)."""
    opts = opts or DisplacementOptions()
    args, consts, valid = _displacement_problem(texture_linear, visible, normals, position_units,
                                                sh, albedo, grid, opts, backend)
    rate = tf.constant(np.asarray(rate, np.float32).reshape(valid.shape)) * valid
    e = [float(v) for v in _displacement_terms(rate, args, consts)]
    return {"e_grad": e[0], "e_const": e[1], "e_smooth": e[2], "e_incoherent": e[3],
            "objective": _weighted(e, consts)}


def fit_displacement_map(texture_linear, visible, normals, position_units, sh, albedo,
                         grid: DetailGrid, opts: DisplacementOptions | None = None,
                         rate_init=None, backend: str = "auto"):
    """(moving rate r_d [S,S] float32 in detail units, detail normals [S,S,3]
    (the base normals where the detail mesh has none), objective history).

    ``position_units``: the position map divided by (fit scale x detail unit),
    so r_d is in the same units as DRN's output.
    """
    opts = opts or DisplacementOptions()
    args, consts, valid = _displacement_problem(texture_linear, visible, normals, position_units,
                                                sh, albedo, grid, opts, backend)
    x0 = tf.zeros_like(valid) if rate_init is None else \
        tf.constant(np.asarray(rate_init, np.float32).reshape(valid.shape))
    x, history = _adam(_displacement_objective, x0 * valid, args, consts, opts.steps,
                       opts.learning_rate, bound=float(opts.max_rate))
    x = x * valid
    n = args.n
    # the steps' own compiled cluster (no second compilation of the same normals)
    normals_detail = _compiled(_rate_normals, opts.jit)(x, n, args.pos, valid, args.orient,
                                                        args.base)[1]
    normals_detail = tf.where(tf.reduce_any(normals_detail != 0, -1, keepdims=True),
                              normals_detail, n)
    return x[0, ..., 0].numpy(), normals_detail[0].numpy(), history
