"""Per-photo analysis-by-synthesis: B-Net's, FAN's and DRN's objectives
minimised for one photo (``--appearance=fit``), no trained weights needed.

``AppearanceFitter(albedo_model, atlas_mask, detail_unit)`` (or ``.for_model``) is built once per
face model. ``align(image, pipeline_result, model, atlas)`` refines the
landmark fit's mesh against the photo first (``align.py``; callers run it
right after the geometry pipeline, so the networks see the same unwrap);
``fit(sample, fit_scale, init=None)`` then runs, in order:

1. light + PCA albedo: (p_a, gamma) by alternating IRLS on E_pixel + w_a E_a
   (+ the light prior) -- ``light_albedo``; then the texels that are not the
   face's skin (hair, a cap, a hand in shadow: ``skin.non_skin_texels``) are
   left out, and the light and PCA albedo fitted again without them; steps 2
   and 3 leave them out too (the map keeps the PCA albedo there), and so does
   ``align``'s mesh refinement. ``align`` runs this stage on the photo before
   it refines the mesh; ``fit(stage1=AlignResult.light_albedo)`` reuses it:
   as it is when the mesh was not changed, else the skin test runs with its
   light and one fit starts from it for ``warm_iterations`` (6) steps instead
   of two fits of 10 from scratch. 16 shared photos (every 4th): stage 1
   270 -> 132 ms; the refit's PCA albedo is 0.002-0.009 (linear, mean) from
   the fit from scratch's, with an objective 0.98-1.02x of it; 24 synthetic
   faces (seed 2000): albedo errors within 2e-4;
2. displacement: DRN's Eq. 9 (its E_grad on the photo and render low-passed by 2 texels, +
   our E_incoherent) on the moving-rate map, shading the PCA albedo
   (smooth, so the shading's high frequencies are left to geometry) --
   ``maps.fit_displacement_map``;
3. albedo map: FAN's E_pixel with the low-frequency guidance towards the PCA
   albedo and mirror symmetry for hidden texels, shaded with the detail
   normals of step 2 (so wrinkle shading is not painted into the albedo) --
   ``maps.fit_albedo_map``.

Order (ours): the paper trains FAN before DRN; for one photo the displacement
goes first, because an albedo map fitted first explains every shading
wrinkle as colour and leaves DRN nothing to see, while the smooth PCA albedo
leaves the high-frequency shading to the geometry.

``init`` (a ``NetworkOutputs``-like object with p_a, sh, moving_rate) starts
the fit at a network's prediction (``--appearance=net+fit``). Its displacement
starts at DRN's and step 2 refines it with Eq. 9
(``AppearanceOptions.init_displacement="refine"``, the default) or keeps it as
it is ("keep": step 2 only computes its detail normals). Measured
(2026-12-04, shipped v4 weights): on the 56 shared photos DRN's map is
nearly the same on every face and nearly flat (the mean correlation of two
photos' maps 0.970; refined 0.098), so "keep" gave every person the same
featureless detail while "refine" shows each one's forehead lines, crow's
feet and folds (``Reconstructor(appearance="net+fit")`` on each photo, both
settings); on 24 held-out synthetic
faces (seed 1000) the wrinkle error against the truth carried into the
pipeline's UV map is 4.91 deg kept, 4.79 refined ("no detail" 5.29), and
same-texel 5.02 kept, 5.53 refined ("no detail" 5.64): DRN's template folds
sit where the generator's template sites are, whoever the face is. Refining
costs ~0.6 s (net+fit 0.66 -> 1.28 s per face). Until then "keep" was the
default (12 faces, v2 weights: 4.28 vs 5.98 deg same-texel, before the
detail fit had E_incoherent and the low-passed E_grad).

Everything is in linear RGB. Failures a photo can cause (no visible texel
with a normal, a black or saturated face, a non-finite solution) raise
``AppearanceFitError`` with one line; callers fall back to the networks or
the PCA albedo and say so.
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple, Optional

import cv2
import numpy as np

from tf_face.appearance.align import AlignOptions, align as align_mesh
from tf_face.appearance.light_albedo import (LightAlbedoFit, LightAlbedoOptions,
                                             fit_light_albedo, mirror_gram)
from tf_face.appearance.maps import (AlbedoMapOptions, DetailGrid, DisplacementOptions,
                                     fit_albedo_map, fit_displacement_map)
from tf_face.appearance.skin import SkinOptions, non_skin_texels, unshadeable_texels
from tf_face.errors import TfFaceError
from tf_face.srgb import srgb_to_linear
from tf_face.types import UVSample
from tf_face.uv.unwrap import DEFAULT_MIN_COS, unwrap

#: a face whose visible texels (sRGB) are darker / brighter than this on average
#: carries no usable shading
MIN_MEAN_SRGB, MAX_MEAN_SRGB = 0.02, 0.98
MIN_VISIBLE_TEXELS = 200
INIT_DISPLACEMENT = ("keep", "refine")


class AppearanceFitError(TfFaceError):
    """The per-photo fit cannot work on this photo (one-line reason)."""


class LightAlbedoStage(NamedTuple):
    """Stage 1 on one unwrap (``AppearanceFitter.light_albedo``)."""
    fit: LightAlbedoFit       # p_a, gamma
    albedo_pca: np.ndarray    # [S, S, 3] float32 linear RGB
    non_skin: np.ndarray      # [S, S] bool: visible texels left out as not skin
    sample: object            # the ``UVSample`` it was fitted on


def _same_unwrap(a, b) -> bool:
    """Whether two UV samples hold the same texture, mask and normals."""
    return a is b or all(np.array_equal(np.asarray(getattr(a, k)), np.asarray(getattr(b, k)))
                         for k in ("mask", "normals", "texture"))


@dataclasses.dataclass
class AppearanceOptions:
    light_albedo: LightAlbedoOptions = dataclasses.field(default_factory=LightAlbedoOptions)
    albedo_map: AlbedoMapOptions = dataclasses.field(default_factory=AlbedoMapOptions)
    displacement: DisplacementOptions = dataclasses.field(default_factory=DisplacementOptions)
    align: AlignOptions = dataclasses.field(default_factory=AlignOptions)  # ``align``'s
    skin: SkinOptions = dataclasses.field(default_factory=SkinOptions)  # what is not skin
    backend: str = "auto"       # render ops: auto | op | reference
    # with ``init`` (net+fit): "refine" the networks' moving rate (DRN's) with
    # Eq. 9 like the fit without weights, or "keep" it as the displacement (module doc)
    init_displacement: str = "refine"

    def __post_init__(self):
        if self.init_displacement not in INIT_DISPLACEMENT:
            raise ValueError(f"init_displacement must be one of {INIT_DISPLACEMENT}, "
                             f"got {self.init_displacement!r}")


@dataclasses.dataclass
class AppearanceResult:
    """Same fields as ``tf_face.serving.backends.NetworkOutputs`` (linear RGB)."""
    p_a: np.ndarray           # [K]
    sh: np.ndarray            # [9, 3]
    albedo_pca: np.ndarray    # [S, S, 3]
    albedo: np.ndarray        # [S, S, 3]
    moving_rate: np.ndarray   # [S, S] detail units
    timings_ms: dict
    objectives: dict          # stage -> objective history
    fallback: str = ""        # why the maps fell back to the PCA fit ("" if they did not)
    # [S, S] bool: visible texels left out as not the face's skin (``skin.non_skin_texels``)
    non_skin: Optional[np.ndarray] = None


def srgb_to_linear_np(x) -> np.ndarray:
    """float32 linear RGB of an sRGB map (``tf_face.srgb.srgb_to_linear``), clipped to [0, 1]."""
    return srgb_to_linear(x).astype(np.float32)


class AppearanceFitter:
    def __init__(self, albedo_model, atlas_mask, detail_unit: float,
                 options: Optional[AppearanceOptions] = None, feature_mask=None,
                 stroke_keep=None, tone_columns=None, skin_reference=None, beard=None,
                 brows=None):
        """``feature_mask`` [S,S] bool (``tf_face.uv.regions.model_feature_mask``:
        eyes and brows), whose colour the albedo map takes from the photo
        rather than from the prior (``maps.fit_albedo_map``); None: none.
        ``stroke_keep`` [S,S] bool: where thin strokes are the person's and
        stay in the albedo (``maps.thin_strokes``; ``model_feature_mask(model,
        S, regions.STROKE_KEEP)``: eyes, brows, lips); None: the feature
        mask grown by 2 texels (at 256^2). ``tone_columns``: the albedo
        basis's skin-tone columns (``light_albedo.prior_weights``); None: the
        albedo model's own (``UVAlbedoModel.tone_columns``, from
        ``FaceModel.albedo_tone_columns``; empty where the model names none).
        ``skin_reference`` [S,S] bool: where the face's skin colour is taken
        from to find what is not skin (``skin.non_skin_texels``; the model's
        "centre" region); None: every visible texel outside ``stroke_keep``.
        ``beard`` [S,S] bool: the lower face, which the skin test leaves alone
        unless ``SkinOptions.test_beard`` (the model's "beard" region); None: none.
        ``brows`` [S,S] bool: the brow band, which the skin test's flags above
        it reach into (``SkinOptions.brow_reach``; the model's "brows"
        region); None: they do not."""
        if tone_columns is None:
            tone_columns = getattr(albedo_model, "tone_columns", ())
        self.tone_columns = np.asarray(tone_columns, np.int64).reshape(-1)
        if self.tone_columns.size and (self.tone_columns.min() < 0 or
                                       self.tone_columns.max() >= albedo_model.num_components):
            raise ValueError(f"tone_columns {self.tone_columns.tolist()} outside the albedo "
                             f"basis's {albedo_model.num_components} columns")
        self.feature_mask = None if feature_mask is None else np.asarray(feature_mask, bool)
        self.skin_reference = None if skin_reference is None else np.asarray(skin_reference, bool)
        self.beard = None if beard is None else np.asarray(beard, bool)
        self.brows = None if brows is None else np.asarray(brows, bool)
        for name, m in (("skin_reference", self.skin_reference), ("beard", self.beard),
                        ("brows", self.brows)):
            if m is not None and m.shape != np.shape(atlas_mask):
                raise ValueError(f"{name} {m.shape} and atlas_mask {np.shape(atlas_mask)} "
                                 "differ in size")
        if self.feature_mask is not None and self.feature_mask.shape != np.shape(atlas_mask):
            raise ValueError(f"feature_mask {self.feature_mask.shape} and atlas_mask "
                             f"{np.shape(atlas_mask)} differ in size")
        # E_grad's mask: the features and 2 texels (at 256^2) around them out
        self.grad_skip = None
        if self.feature_mask is not None:
            r = max(1, int(round(2 * self.feature_mask.shape[0] / 256)))
            self.grad_skip = cv2.dilate(self.feature_mask.astype(np.uint8),
                                        np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
        # the parts of one colour each: the eyes, the brows (``brows`` is the brow band)
        self.feature_parts = self.eyes = None
        if self.feature_mask is not None and self.brows is not None:
            self.eyes = self.feature_mask & ~self.brows
            self.feature_parts = [self.eyes, self.feature_mask & self.brows]
        self.stroke_keep = self.grad_skip if stroke_keep is None else np.asarray(stroke_keep, bool)
        if self.stroke_keep is not None and self.stroke_keep.shape != np.shape(atlas_mask):
            raise ValueError(f"stroke_keep {self.stroke_keep.shape} and atlas_mask "
                             f"{np.shape(atlas_mask)} differ in size")
        self.mean = np.asarray(albedo_model.mean, np.float32)
        self.basis = np.asarray(albedo_model.basis, np.float32)
        self.atlas_mask = np.asarray(atlas_mask, bool)
        self.detail_unit = float(detail_unit)
        self.options = options or AppearanceOptions()
        self.grid = DetailGrid(self.atlas_mask)
        self.mirror = mirror_gram(self.basis, self.atlas_mask)

    @classmethod
    def for_model(cls, albedo_model, model, atlas, detail_unit: float,
                  options: Optional[AppearanceOptions] = None) -> "AppearanceFitter":
        """The fitter of a face model on its atlas, with the model's eye and brow
        mask, its stroke-keep mask (eyes, brows, lips), its centre (the skin
        test's reference), its lower face and its brow band
        (``tf_face.uv.regions``); the albedo basis's
        tone columns come with ``albedo_model``."""
        from tf_face.uv.regions import STROKE_KEEP, model_feature_mask
        return cls(albedo_model, atlas.mask, detail_unit, options,
                   feature_mask=model_feature_mask(model, atlas.size),
                   stroke_keep=model_feature_mask(model, atlas.size, STROKE_KEEP),
                   skin_reference=model_feature_mask(model, atlas.size, ("centre",)),
                   beard=model_feature_mask(model, atlas.size, ("beard",)),
                   brows=model_feature_mask(model, atlas.size, ("brows",)))

    def warm_up(self) -> None:
        """Trace the map steps once (a grey frontal face, one step each), so the
        first photo's timings are warm like the others (a trace costs ~1-3 s)."""
        m = self.atlas_mask
        normals = np.zeros(m.shape + (3,), np.float32)
        normals[m, 2] = 1.0
        yy, xx = np.mgrid[0:m.shape[0], 0:m.shape[1]].astype(np.float32)
        pos = np.stack([xx, -yy, np.zeros_like(xx)], -1) * m[..., None]
        sample = UVSample(np.repeat(np.where(m[..., None], 0.5, 0.0), 3, -1).astype(np.float32),
                          m.copy(), normals,
                          pos.astype(np.float32))
        o = self.options
        quick = dataclasses.replace(
            o, light_albedo=dataclasses.replace(o.light_albedo, iterations=1),
            albedo_map=dataclasses.replace(o.albedo_map, steps=1),
            displacement=dataclasses.replace(o.displacement, steps=1))
        self.options = quick
        try:
            self.fit(sample, 1.0)
        finally:
            self.options = o

    def check_sample(self, sample) -> np.ndarray:
        """The visible mask used, or ``AppearanceFitError`` (bad-input cases).

        Texels with a non-finite normal or texture value are dropped (their
        normal is zeroed in ``fit``), not propagated as NaN.
        """
        finite = np.all(np.isfinite(sample.normals), -1) & np.all(np.isfinite(sample.texture), -1)
        vis = (np.asarray(sample.mask, bool) & self.atlas_mask & finite
               & np.any(np.nan_to_num(sample.normals) != 0, -1))
        n = int(vis.sum())
        if n < MIN_VISIBLE_TEXELS:
            raise AppearanceFitError(f"only {n} visible texels: the face is hidden, nothing "
                                     "to fit the appearance to")
        m = float(np.asarray(sample.texture, np.float32)[vis].mean())
        if m < MIN_MEAN_SRGB:
            raise AppearanceFitError(f"the face is black (mean {m:.3f}): no shading to fit")
        if m > MAX_MEAN_SRGB:
            raise AppearanceFitError(f"the face is saturated (mean {m:.3f}): no shading to fit")
        return vis

    def light_albedo(self, sample, init=None) -> LightAlbedoStage:
        """Stage 1 alone, its skin test included: ``LightAlbedoStage`` (fit, PCA
        albedo [S,S,3] float32 linear, non-skin mask [S,S] bool, ``sample``)."""
        vis = self.check_sample(sample)
        la, pca, non_skin = self._light_albedo_on_skin(
            srgb_to_linear_np(np.nan_to_num(sample.texture)), vis,
            np.nan_to_num(sample.normals), init)
        return LightAlbedoStage(la, pca, non_skin, sample)

    def _light_albedo_on_skin(self, tex, vis, normals, init, stage1=None):
        """(fit, PCA albedo, non-skin mask): the light/albedo fit, then the texels
        that are not the face's skin (``skin.non_skin_texels``) found with its
        light, and the fit again without them.

        ``stage1``: a ``LightAlbedoStage`` of the same photo before ``align``
        refined its mesh. On the same unwrap it is the answer; on the new one
        the skin test runs with its light and the fit starts from it, for
        ``LightAlbedoOptions.warm_iterations`` steps (module doc)."""
        o = self.options
        untested = self.stroke_keep
        if self.beard is not None and not o.skin.test_beard:
            untested = self.beard if untested is None else untested | self.beard
        if stage1 is None:
            la, pca = self._light_albedo(tex, vis, normals, init)
            start, iterations = init, None      # the refit: the same start (below)
        else:
            la, pca = stage1.fit, None          # the refit always runs (a new unwrap)
            start, iterations = stage1.fit, o.light_albedo.warm_iterations
        non_skin = non_skin_texels(tex, vis, normals, la.sh, untested, self.skin_reference,
                                   o.skin, brows=self.brows)
        if not non_skin.any() or int((vis & ~non_skin).sum()) < MIN_VISIBLE_TEXELS:
            non_skin = np.zeros_like(vis)
            if pca is not None:
                return la, pca, non_skin
        # hair, a cap, a hand in shadow: the light and the PCA albedo again without
        # them, from the same start (so a few texels change little) or from stage 1's
        la, pca = self._light_albedo(tex, vis & ~non_skin, normals, start, iterations)
        return la, pca, non_skin

    def _light_albedo(self, tex, vis, normals, init, iterations=None):
        opts = self.options.light_albedo
        if iterations is not None:
            opts = dataclasses.replace(opts, iterations=int(iterations))
        try:
            la = fit_light_albedo(tex, vis, normals, self.mean, self.basis, opts,
                                  p_init=None if init is None else init.p_a,
                                  sh_init=None if init is None else init.sh, mirror=self.mirror,
                                  tone_columns=self.tone_columns)
        except (ValueError, np.linalg.LinAlgError) as e:
            raise AppearanceFitError(f"light/albedo fit failed: {e}") from e
        if not (np.all(np.isfinite(la.sh)) and np.all(np.isfinite(la.p_a))):
            raise AppearanceFitError("the light/albedo fit gave non-finite values")
        pca = self.mean + np.einsum("hwck,k->hwc", self.basis, la.p_a)
        return la, np.where(self.atlas_mask[..., None], pca, 0.0).astype(np.float32)

    def align(self, image, result, model, atlas, min_cos: float = DEFAULT_MIN_COS):
        """(pipeline result, ``AlignResult`` or None): ``result`` (a
        ``tf_face.pipeline.PipelineResult`` of ``image``) with its mesh refined
        against the photo (``tf_face.appearance.align``) and the photo unwrapped
        again, its ``timings_ms["align"]`` set; the texels stage 1's skin test
        finds are left out (``light_albedo``). Unchanged (and None) when
        ``options.align.enabled`` is off; unchanged when the photo's light/albedo
        fit fails (``fit`` will say why) or the refinement does not lower E_pixel.
        The ``AlignResult``'s ``light_albedo`` is that stage 1, for ``fit``'s
        ``stage1``."""
        if not self.options.align.enabled:
            return result, None
        t = time.perf_counter()
        try:
            stage1 = self.light_albedo(result.sample)
        except AppearanceFitError:
            return result, None
        la, pca, non_skin, _ = stage1
        # what is not skin (hair, a cap) is not lined up with the shaded PCA albedo either
        on_skin = dataclasses.replace(result.sample, mask=np.asarray(result.sample.mask, bool)
                                      & ~non_skin)
        al = align_mesh(image, result.fitted, model, atlas, on_skin, pca, la.sh,
                        self.options.align, min_cos=min_cos)
        al = dataclasses.replace(al, light_albedo=stage1)
        timings = dict(result.timings_ms)
        if al.kept:
            sample = unwrap(image, al.fitted, model, atlas, min_cos=min_cos)
            result = dataclasses.replace(result, fitted=al.fitted, sample=sample,
                                         timings_ms=timings)
        else:
            result = dataclasses.replace(result, timings_ms=timings)
        timings["align"] = (time.perf_counter() - t) * 1e3
        return result, al

    def fit(self, sample, fit_scale: float, init=None,
            stage1: Optional[LightAlbedoStage] = None) -> AppearanceResult:
        """Steps 1-3 (module doc) on ``sample``, the unwrap of a mesh whose
        scale is ``fit_scale``. ``init``: the networks' outputs to start from
        (net+fit). ``stage1``: ``align``'s stage 1 on this photo
        (``AlignResult.light_albedo``), reused as it is when ``sample`` is the
        unwrap it ran on, else as the start of stage 1 (before ``init``)."""
        o = self.options
        vis = self.check_sample(sample)
        if not (np.all(np.isfinite(sample.normals)) and np.all(np.isfinite(sample.texture))):
            sample = dataclasses.replace(sample, normals=np.nan_to_num(sample.normals).astype(np.float32),
                                 texture=np.nan_to_num(sample.texture).astype(np.float32))
        timings = {}
        tex = srgb_to_linear_np(sample.texture)
        t = time.perf_counter()
        if stage1 is not None and _same_unwrap(stage1.sample, sample):
            la, pca, non_skin = stage1.fit, stage1.albedo_pca, stage1.non_skin
        else:
            la, pca, non_skin = self._light_albedo_on_skin(tex, vis, sample.normals, init,
                                                           stage1)
        timings["fit_light_albedo"] = (time.perf_counter() - t) * 1e3

        t = time.perf_counter()
        pos = np.asarray(sample.position, np.float32) / (float(fit_scale) * self.detail_unit)
        disp_opts = o.displacement
        if init is not None and o.init_displacement == "keep":   # DRN's rate as it is
            disp_opts = dataclasses.replace(disp_opts, steps=0)
        vis_grad = vis & ~non_skin
        if self.grad_skip is not None and disp_opts.skip_features:
            vis_grad = vis_grad & ~self.grad_skip
        if disp_opts.skip_unshadeable and disp_opts.steps > 0:
            vis_grad = vis_grad & ~unshadeable_texels(tex, vis, sample.normals, la.sh,
                                                      self.skin_reference, o.skin)
        rate, detail_normals, hist_d = fit_displacement_map(
            tex, vis_grad, sample.normals, pos, la.sh, pca, self.grid, disp_opts,
            rate_init=None if init is None else init.moving_rate, backend=o.backend)
        timings["fit_displacement"] = (time.perf_counter() - t) * 1e3
        if not np.all(np.isfinite(rate)):
            rate = np.full_like(rate, np.nan)     # reported as a fallback below

        t = time.perf_counter()
        normals = detail_normals if np.all(np.isfinite(detail_normals)) else sample.normals
        albedo, hist_a = fit_albedo_map(tex, vis, normals, la.sh, pca, self.atlas_mask,
                                        o.albedo_map, backend=o.backend,
                                        feature_mask=self.feature_mask,
                                        stroke_keep=self.stroke_keep, occluded=non_skin,
                                        feature_parts=self.feature_parts,
                                        eyes=self.eyes)
        timings["fit_albedo_map"] = (time.perf_counter() - t) * 1e3
        fallback = ""
        if not (np.all(np.isfinite(albedo)) and np.all(np.isfinite(rate))):
            fallback = "the albedo/displacement map fit gave non-finite values; using the PCA fit"
            albedo, rate = pca.copy(), np.zeros_like(pca[..., 0])
        return AppearanceResult(la.p_a, la.sh, pca, albedo, rate.astype(np.float32), timings,
                                {"light_albedo": la.objective, "displacement": hist_d,
                                 "albedo_map": hist_a}, fallback, non_skin)
