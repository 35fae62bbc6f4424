"""Which visible texels show the face's own skin, and which show something in
front of it: a fringe or strands of hair, a cap, a hand in shadow, a glasses
frame.

The light/albedo fit and the albedo map fit every visible texel (E_pixel).
Hair over the forehead is then explained as a brown albedo plus a light that
takes what the PCA cannot (a red-brown blotch over the forehead), a cap's
brim as a blue one, and the map prints the strands. The map's outlier test
(``maps.fit_albedo_map``) compares with the PCA albedo, so it misses what the
PCA itself took. This test compares with the face's own skin instead: the
median colour, divided by the fitted light's shading ("delit"), of the visible
texels of the face's centre (``reference``: the nose and the cheeks under the
eyes, ``tf_face.uv.regions`` "centre", which hair and caps leave even when
they cover more of the face than the skin shows; all visible texels outside
the eyes, brows and lips when the centre has fewer than 50). A skin region of a photo varies
little in delit colour (a shading error moves its lightness by tens of
percent), while hair, a cap or a hand in shadow is several times darker or
another hue.

A texel is **not skin** when its delit colour, blurred by ``blur_sigma``
(pores and camera noise), is more than ``log_lightness`` from the median in
log lightness (0.92: 2.5x darker or lighter), or more than ``chroma`` (0.6)
from it in log chromaticity (``log rgb`` minus its mean: hue and saturation,
not the light's level; skin's own redness and the synthetic faces' colour
blotches stay within it, a blue or red cap and black hair do not). Only solid
regions count: the flagged texels are opened by a disc of radius
``open_radius`` (thin glasses frames and strands are the albedo map's stroke
test's, ``maps.thin_strokes``, and flagged here they were mirrored from the
other frame), and connected regions of fewer than ``min_area`` texels stay
skin (moles, freckles, a nostril's shadow); the rest grows by a texel (the
anti-aliased rim). The eyes, brows and lips (``keep``) are not tested: their
colour is the person's; nor, unless ``test_beard``, is the lower face inside
the jaw line and below the nose (``tf_face.uv.regions`` "beard"), where a beard
or stubble is the person's too and hair in front of the face rarely falls
(with it tested, a grey stubble on reddish skin left the albedo of
``deca_teaser/2``). When more than ``max_fraction`` of the tested texels
fail, the median itself is in doubt (the face is mostly covered, or the light
fit is far off) and nothing is flagged.

**Into the brow band** (``brows``, ``brow_reach``): a fringe, a cap's brim
or its shadow that comes down over the top of the brow band printed there
(the band is untested: brow hair and head hair are the same colour), e.g. a
blue-white streak and a brown band over ``015259``'s brows, dark strips
over ``deca_exp/5``'s. The flags above the band now reach down into it, one
row (and a texel sideways) per step, through texels that fail the colour
test too, for at most ``brow_reach`` texels (6 at 256^2, a third of the
band's height): hair that touches the brows takes their upper part with it,
brows with skin between them and the hair stay. 120 held-out faces (seed
1000) with a fringe or a cap each: fit hidden .0416 -> .0408 (PCA fit
.0401), occluded .0455 -> .0436, eyes + brows (registered) .0353 ->
.0355, recall .62 -> .64, precision .90 -> .90; the default faces: eyes +
brows .0297 -> .0299, the rest within 1e-4. On the shared photos
``015259``'s brim streak and ``deca_exp/5``'s strips go; the re-render
error over the skin stays .0221, 56/56 below the PCA fit's.

``AppearanceFitter.align`` leaves these texels out of the mesh refinement
(step 0) too, and ``AppearanceFitter.fit`` fits the light and PCA albedo again
without them (from the same start, so a few flagged texels change little), leaves
them out of E_grad, and the albedo map keeps the PCA albedo there
(``maps.fit_albedo_map``'s ``occluded``: no detail and no mirrored detail --
flagged as hidden, a glasses frame took its mirror image from the other lens).

Measured (``eval/synthetic_benchmark.py``, 120 held-out faces, seed 1000,
fit albedo MAE, test off -> on). With a fringe or a cap on every face
(``--solid_occluder_prob=1``): visible .0428 -> .0364 (the light and PCA no
longer take the hair, so the uncovered skin improves too), hidden .0927 ->
.0466 (occluded .1513 -> .0551, PCA fit .0524), ITA error 11.0 -> 3.66 deg,
bias 9.10 -> 3.33; 12 % of visible texels flagged, 90 % of them occluded,
59 % of the occluded found (what is missed: hair close to the skin's
lightness and hue). Left out of the mesh refinement as well: visible .0355,
hidden .0419, eyes + brows (registered) .0396 -> .0354, misregistration
4.99 -> 4.73 texels, ITA 3.32 deg, bias 2.48; +0.12 s. The default faces (strands, glasses, hands, no solid
occluder): 0.7 % flagged, fit visible .0343 = .0343, hidden .0371 = .0371,
occluded .0430 = .0430. On the 56 shared photos 41 get some texels
flagged (3.6 % on average; ``deca_exp/1``'s long hair 31 %), fringes and
caps no longer print into the albedo, the fit's re-render error over all
visible texels rises from .0252 to .0296 (it no longer copies the hair) and
is .0222 over the skin; fit < PCA fit on 56/56 either way. Tried and not
kept: chroma 0.35 (the synthetic faces' colour blotches, lips outside their
region and stubble flagged), no opening (glasses frames flagged, then
mirrored), the median over the whole face (hair over most of it became the
reference), a warm start for the second fit (different from the first even
with nothing left out).

Not kept (2026-12-05): **a learned occluder segmenter** in place of, or
beside, these rules -- a 5-level UNet (250k parameters) on 13 features per
texel (the delit log colour minus the skin's median and minus the PCA
albedo's, the photo, visibility, normal z, the texel's u and v), trained on
2131 synthetic faces (seed 7000: an occluder on 80 %, a fringe or cap on
25 %) put through the real pipeline and step 0, with the occluders'
coverage at each texel's image point as the target (12 epochs of 128^2
crops, 7 min on 2 cores). On 237 held-out faces of that set it found 91 %
of the occluded texels at 92 % precision (these rules on the 120 default
benchmark faces: 9 % at 30 %), and on the shared photos it outlined
``deca_exp/0``'s whole frame and ``deca_exp/1``'s fringe. But it marked a
median 23 % of every real face's texels (up to 53 %): the lower face's
grain and stubble, the nasolabial folds, lips, eye sockets, wrinkles --
the generator's skin is smooth, so whatever real skin shows that it does
not reads as an occluder. Training with that nuisance added (smooth fields
of delit lightness and chroma, soft light and dark blobs) left it at 23 %;
keeping only flags whose blurred delit colour is also off the skin's
(|log lightness| > 0.5 or chroma > 0.3) still marked a median 11 % (up to
46 %) while the synthetic recall fell to 59 %. A segmenter needs real skin
in its training (labelled occluders, or at least unlabelled real faces as
negatives); on synthetic faces alone it learns the generator.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from tf_face.sh import sh_basis_np


@dataclasses.dataclass
class SkinOptions:
    enabled: bool = True
    log_lightness: float = 0.92   # |log(delit lightness / the face's median)| above: not skin
    chroma: float = 0.6           # log-chromaticity distance to the median above: not skin
    blur_sigma: float = 1.5       # Gaussian sigma of the delit colour, texels at 256^2
    min_area: int = 80            # smaller regions stay skin (texels at 256^2)
    open_radius: float = 2.0      # thinner parts are not regions (texels at 256^2; 0: none)
    max_fraction: float = 0.7     # more than this flagged: the median is in doubt, none flagged
    test_beard: bool = False      # test the lower face too (False: beards stay in the albedo)
    brow_reach: float = 6.0       # flags reach this far down into the brow band (texels at 256^2; 0: not)

    def __post_init__(self):
        if self.log_lightness <= 0 or self.chroma <= 0:
            raise ValueError("log_lightness and chroma must be > 0, got "
                             f"{self.log_lightness} and {self.chroma}")
        if not 0.0 < self.max_fraction <= 1.0:
            raise ValueError(f"max_fraction must be in (0, 1], got {self.max_fraction}")
        if self.brow_reach < 0:
            raise ValueError(f"brow_reach must be >= 0, got {self.brow_reach}")


def masked_blur(x: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Normalised Gaussian blur of x [S,S,C] over mask [S,S] (0 outside)."""
    m = mask.astype(np.float32)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    # (cv2 drops a single channel's axis: put it back)
    num = cv2.GaussianBlur(np.ascontiguousarray(x * m[..., None], np.float32), (0, 0),
                           sigma).reshape(np.shape(x))
    return np.where(mask[..., None], num / np.maximum(den, 1e-6)[..., None], 0.0)


def _reach_down(flags: np.ndarray, through: np.ndarray, rows: int) -> np.ndarray:
    """The texels of ``through`` reached from ``flags`` going down (+v) at most
    ``rows`` rows, one row (and one texel sideways) per step."""
    reached = np.zeros_like(flags)
    front = flags
    for _ in range(rows):
        step = np.zeros_like(front)
        step[1:] = front[:-1]
        step = cv2.dilate(step.astype(np.uint8), np.ones((1, 3), np.uint8)) > 0
        front = step & through & ~reached & ~flags
        if not front.any():
            break
        reached |= front
    return reached


def _delit_log_rgb(texture_linear, vis, normals, sh, blur_sigma: float):
    """(ok [S,S] bool: visible texels with an irradiance above 0.05 in every
    channel, log of the delit colour [S,S,3] blurred over them by
    ``blur_sigma`` texels at 256^2)."""
    k = vis.shape[0] / 256.0
    irradiance = np.einsum("hwk,kc->hwc", sh_basis_np(np.asarray(normals, np.float64)),
                           np.asarray(sh, np.float64))
    ok = vis & (irradiance.min(-1) > 0.05) & np.all(np.isfinite(irradiance), -1)
    delit = np.asarray(texture_linear, np.float64) / np.maximum(irradiance, 0.05)
    log_rgb = np.log(np.clip(delit, 1e-3, None))
    return ok, masked_blur(log_rgb, ok, max(blur_sigma * k, 0.5))


def _reference_median(values, tested, reference):
    """The median of ``values`` over ``reference`` & ``tested`` (over ``tested``
    when they share fewer than 50 texels)."""
    ref = tested
    if reference is not None and (tested & np.asarray(reference, bool)).sum() >= 50:
        ref = tested & np.asarray(reference, bool)
    return np.median(values[ref], axis=0)


def unshadeable_texels(texture_linear, visible, normals, sh, reference=None,
                       opts: SkinOptions | None = None) -> np.ndarray:
    """[S,S] bool: visible texels whose delit lightness is more than
    ``opts.log_lightness`` (2.5x) darker or lighter than the skin's median over
    ``reference`` (the skin test's lightness half, not opened: thin frames
    count), grown by a texel. No detail normal shades skin that far: on 20
    synthetic faces (seed 3000) the true wrinkles change the irradiance by
    |log| 0.005 (median), 0.082 (99.9th percentile), 0.143 at most. So they
    are a glasses frame, a dark strand, a nostril, black stubble, a cast
    shadow or a highlight, and ``AppearanceFitter.fit`` leaves them out of
    the displacement fit's E_grad (``DisplacementOptions.skip_unshadeable``):
    the thick black frames of ``deca_exp/0`` printed as grooves around the
    eyes. Nothing when ``opts.enabled`` is False or fewer than 50 texels can
    be tested."""
    opts = opts or SkinOptions()
    vis = np.asarray(visible, bool)
    if not opts.enabled:
        return np.zeros_like(vis)
    ok, log_rgb = _delit_log_rgb(texture_linear, vis, normals, sh, opts.blur_sigma)
    if ok.sum() < 50:
        return np.zeros_like(vis)
    lightness = log_rgb.mean(-1)
    ref_l = float(_reference_median(lightness, ok, reference))
    off = ok & (np.abs(lightness - ref_l) > opts.log_lightness)
    return (cv2.dilate(off.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & vis


def non_skin_texels(texture_linear, visible, normals, sh, keep=None, reference=None,
                    opts: SkinOptions | None = None, brows=None) -> np.ndarray:
    """[S,S] bool: the visible texels that are not the face's skin (module doc).

    ``texture_linear`` [S,S,3] linear RGB, ``visible`` [S,S] bool, ``normals``
    [S,S,3] (camera frame), ``sh`` [9,3] the fitted light; ``keep`` [S,S]
    bool: the eyes, brows and lips, never flagged (None: nothing kept);
    ``reference`` [S,S] bool: where the skin colour is taken from (None:
    every tested texel); ``brows`` [S,S] bool: the brow band (in ``keep``),
    which the flags above it reach down into by ``opts.brow_reach`` texels
    through texels that are not skin either (None: not at all).
    """
    opts = opts or SkinOptions()
    vis = np.asarray(visible, bool)
    out = np.zeros_like(vis)
    if not opts.enabled:
        return out
    k = vis.shape[0] / 256.0
    ok, log_rgb = _delit_log_rgb(texture_linear, vis, normals, sh, opts.blur_sigma)
    keep = np.zeros_like(vis) if keep is None else np.asarray(keep, bool)
    tested = ok & ~keep
    if tested.sum() < 50:
        return out
    lightness = log_rgb.mean(-1)
    chromaticity = log_rgb - lightness[..., None]
    ref_l = float(_reference_median(lightness, tested, reference))
    ref_c = _reference_median(chromaticity, tested, reference)
    unlike = ok & ((np.abs(lightness - ref_l) > opts.log_lightness)
                   | (np.linalg.norm(chromaticity - ref_c, axis=-1) > opts.chroma))
    bad = tested & unlike
    r = int(round(opts.open_radius * k))
    if r > 0:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        bad = cv2.morphologyEx(bad.astype(np.uint8), cv2.MORPH_OPEN, disc) > 0
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bad.astype(np.uint8), connectivity=8)
    big = np.zeros(n, bool)
    big[1:] = stats[1:, cv2.CC_STAT_AREA] >= max(opts.min_area * k * k, 1.0)
    bad = big[labels]
    if bad.sum() > opts.max_fraction * tested.sum():
        return out
    into_brows = np.zeros_like(bad)
    rows = int(round(opts.brow_reach * k))
    if brows is not None and rows > 0 and bad.any():
        # a fringe or a cap's brim (or its shadow) over the top of the brow band
        into_brows = _reach_down(bad, unlike & np.asarray(brows, bool), rows)
    bad = cv2.dilate(bad.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return (bad & ok & ~keep) | into_brows
