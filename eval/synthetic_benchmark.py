"""Benchmark of every appearance path on held-out synthetic faces with ground truth.

    python eval/synthetic_benchmark.py [--weights_dir=DIR] --json=PATH \\
        [--num_faces=12 --seed=1000 --out_dir=PICS] [--appearance=fit,pca_fit,...] \\
        [--skin_tone=all --max_yaw=60 --occlusion_prob=0.3 ...]

Face i is drawn exactly as ``tf_face.synthetic.make_dataset`` draws it
(``default_rng([seed, i])``, ``Difficulty`` from the knob flags, default
knobs = the generator's defaults), so a seed not used for the training set
(default 1000) gives a held-out set. Each rendered photo goes through the
**real** geometry pipeline (``GeometryPipeline("default")``: detect ->
landmarks -> fit -> unwrap); the texture is quantised to 8 bits, as the
TFRecord shards store it. Then every appearance path runs on the same UV
sample, side by side.

Paths (``--appearance``, a comma list; default: every path that can run -- the
network paths only with ``--weights_dir``):

==========================  ====================================================
``mean``                    the albedo prior's mean m_a (no-learning baseline)
``pca``                     B-Net: R_a = m_a + U_a p_a and its SH (weights)
``pca_fit``                 the per-photo PCA fit: (p_a, SH) of
                            ``tf_face.appearance.light_albedo`` (no weights)
``oracle_pca``              the truth's own prior draw (``prior_albedo``, before
                            the procedural detail): the best any PCA albedo can do
``delight``                 texture (linear) / shading of the *fit's* SH on the
                            pipeline's normals, on visible texels; hidden texels
                            from the UV mirror (flip along the width) where that
                            is visible, else the PCA fit; clipped to [0, 1]
``delight_oracle_light``    the same with the **true** SH: the best any light
                            estimate can do with our geometry and photo resolution
``fan``                     FAN's albedo map (weights)
``fit``                     the per-photo appearance fit
                            (``tf_face.appearance.fit.AppearanceFitter``): its
                            albedo map and its displacement (detail normals)
``net_fit``                 reconstruct's default (``--appearance=net+fit``): the
                            same fit started from the networks' outputs (B-Net's
                            p_a and SH, FAN's map, DRN's rate; weights in linear
                            RGB); asking for it runs and scores pca, fan, drn too
``none``                    detail baseline: detail normals = base normals
``drn``                     DRN's displacement -> detail normals (weights)
==========================  ====================================================

``pca_fit``, ``delight`` and ``delight_oracle_light`` need the light/albedo
fit; when ``fit`` runs they reuse its first stage (``res.albedo_pca``,
``res.sh``), otherwise the benchmark runs that stage alone. A photo the fit
rejects (``AppearanceFitError``) is listed in ``appearance_failures`` and
leaves those paths out for that face only. Detail normals of DRN and of the
fit come from ``tf_face.serving.reconstruct.detail_maps`` (the one
detail-normal formula, ``tf_face.detail.np_ops``).

Metrics (``tf_face.eval_metrics``), per face, then the mean over the faces
that have them (each face counts once). **A path that was not run is absent
from the JSON, never 0 or null.**

* ``albedo_error_<m>_{visible,hidden}`` for m in mean, pca, pca_fit,
  oracle_pca, delight, delight_oracle_light, fan, fit, net_fit: mean |albedo - truth|
  in linear RGB; visible = atlas & pipeline visibility & not occluded
  (truth), hidden = the rest of the atlas, split into ``_hidden_unseen``
  (not visible to the pipeline's geometry) and ``_hidden_occluded`` (visible
  to it, covered by an occluder), each absent for a face without such texels.
  ``albedo_error_<m>_visible_gain_invariant``:
  the same after the least-squares global gain (``eval_metrics.gain_invariant_mae``):
  exposure, which one photo cannot fix (the generator draws the face's mean
  irradiance from 0.8-1.1), left out; the oracle-light references know it.
* skin tone: ``ita_<m>`` per face = ITA° (``tf_face.skin_tone.skin_ita``) of
  the albedo's mean colour over cheeks + forehead (``face_skin_mask``),
  ``ita_truth`` the same of the true albedo, ``skin_group`` the face's tone
  group (the group the generator drew, ``SyntheticFace.skin_group``; else the
  group of ``ita_truth``). Summary: ``ita_error_<m>`` = mean |ita_<m> -
  ita_truth| over the faces; ``ita_error_by_group`` = {m: {group: mean error}}
  (groups with faces only), ``faces_by_group``; ``ita_bias_<m>`` = largest
  minus smallest group mean error (the FAIR-style gap; present when at least
  two groups have faces).
* detail, relative to base (``eval_metrics.relative_detail_error``: predicted
  detail normals relative to the pipeline's base normals vs the true detail
  normals relative to the true base normals, so the base mesh's misalignment
  drops out): ``detail_error_<d>_deg`` over the atlas,
  ``detail_error_<d>_wrinkle_deg`` over ``wrinkle_mask(truth.displacement)``,
  ``detail_error_<d>_visible_deg`` over visible texels, for d in none, drn,
  fit, net_fit (``none`` = the size of the true detail signal);
  ``detail_error_<d>_bare_deg`` over the template's wrinkle sites where this
  face has none (``wrinkles.wrinkle_sites`` minus the face's wrinkle mask
  dilated by 2 texels; ``texels_bare``): a method that draws the template's
  wrinkles on every face scores worse than "none" there. Faces with every
  family present have few bare texels; with ``--wrinkle_variety=0`` (the v1-v3
  template) almost none.
* registered (``tf_face.synthetic.registration``): the pipeline's texel
  (r, c) looks at an image point whose true UV is not (r, c) -- on default
  faces a median of ~5 texels away (``registration_shift_texels``, per face
  the median over visible texels). The keys above compare at the same texel,
  so they score the geometry's registration as well as the appearance; the
  ``*_registered`` keys compare with the truth carried into the pipeline's
  map, over visible texels that carry: ``albedo_error_<m>_visible_registered``
  (m as above but oracle_pca, which lives in the truth's map),
  ``detail_error_<d>_registered_deg`` and
  ``detail_error_<d>_wrinkle_registered_deg`` (over the carried wrinkle
  mask); ``albedo_error_<m>_features_registered``: the same over the eyes
  and brows of the pipeline's map (``tf_face.uv.regions.feature_mask``:
  iris colour, sclera, brow hair -- what the prior's low frequencies cannot
  hold); ``texels_registered``, ``texels_features_registered``. The true displacement carried into the
  pipeline's map scores ~2.1 deg there against "no detail" ~5.3 (6 faces,
  seed 2000): a method that recovers what the photo shows can pass.
* carried (the ceiling, ``_carried_ceiling``): the truth carried into the
  pipeline's map and scored at the same texel, as the other methods are --
  what a method that recovers exactly what each texel's pixel shows would
  score, given the pipeline's geometry: ``albedo_error_carried_visible``
  (texels that carry nothing take the PCA fit), ``..._gain_invariant``,
  ``albedo_error_carried_exposed_visible`` (scaled per channel by the PCA
  fit's mean over the truth's: the light fit's exposure and colour, which
  one photo cannot fix), ``detail_error_carried{,_wrinkle,_wrinkle_visible}_deg``
  (no detail where nothing carries); each where a path it compares with ran
  (the PCA fit; a detail path). The ``carried_blurred`` keys
  (``albedo_error_carried_blurred_visible_gain_invariant``,
  ``detail_error_carried_blurred{,_wrinkle,_wrinkle_visible}_deg``) blur the
  carried truth by ``CARRIED_BLUR`` (1 texel) first: exact recovery is not
  the best same-texel score under a misregistration, a hedge is (40 faces,
  seed 1000, sigma 0/1/2/3/4/6 texels: gain-invariant albedo .0183 / .0165 /
  .0167 / .0178 / .0192 / .0217 over the texels that carry, wrinkles 4.61 /
  4.38 / 4.40 / 4.59 / 4.81 / 5.17 deg; none 5.73). A same-texel goal
  below these is out of reach of recovering the photo exactly, hedged by a
  blur or not, on this geometry (a method with a better prior of where
  things are could hedge better still; none here does). The
  ``_wrinkle_visible`` keys (every detail method) score the wrinkles the
  photo shows; ``_wrinkle`` includes hidden ones, where a photo-based
  method can only mirror or guess.
* absolute normals: ``normal_error_{base,drn,fit}{,_wrinkle,_visible,_bare}_deg``
  (the pipeline's base normals / base + detail vs the truth's detail
  normals, camera frame); ``normal_error_truth_base*_deg`` the truth's own
  base-vs-detail angle.
* light: ``sh_error`` (B-Net, RMS over the 27 coefficients, raw),
  ``sh_error_scale_invariant``, ``sh_error_relative``; the same for the
  per-photo light fit as ``sh_error_fit{,_scale_invariant,_relative}``;
  ``exposure_error`` / ``exposure_error_fit``: |mean front irradiance of
  the SH / of the true SH - 1| (``eval_metrics.exposure_error``): the
  overall brightness, which one photo cannot separate from the skin's
  lightness (the light prior guesses 0.95; the generator draws 0.8-1.1).
* re-render, visible texels, mean |I_t - shade(albedo, detail normals, SH)|:
  ``rerender_error`` / ``rerender_error_base`` for the networks (FAN or PCA
  albedo, DRN or base normals, B-Net SH; in the weights' shading space) and
  ``rerender_error_fit`` (fit albedo, fit detail normals, fit SH; linear).
* the fit's skin test (``tf_face.appearance.skin``): ``non_skin_fraction`` of
  the visible texels it left out as not skin, ``non_skin_precision`` (the
  share of those an occluder covers; absent when none was flagged) and
  ``non_skin_recall`` (the share of occluded visible texels it found; absent
  without occluders). The generator's occluders are thin strands, glasses
  frames and skin-coloured hands, which the test leaves to the stroke test
  or cannot tell from skin; it exists for fringes, caps and long hair.
* time: ``ms_per_photo_<stage>`` = the **median** over the faces (the first
  face pays tf.function tracing) for geometry, pca (B-Net as serving runs it:
  its tf.function and R_a in numpy), fan, drn (with the detail maps) -- the
  three with BLAS on one thread, as serving runs them (``tf_face.blas``: the
  fit's spinning OpenBLAS workers otherwise take a core from TF),
  pca_fit (the light/albedo fit), delight (the division + mirror), fit (the
  whole appearance fit, its pose refinement included) and
  fit_{align,light_albedo,displacement,albedo_map}.
* mesh refinement (``--fit_align``, ``warp`` by default;
  ``AppearanceFitter.align``): when the fit runs, the geometry is refined
  against the photo right after the pipeline, and *every* path (networks,
  PCA fit, delighting, fit) is scored on the refined mesh;
  ``--fit_align=off`` scores the landmark fit's mesh.
* per face only: ``truth_displacement_rms`` (IOD units), ``fit_rate_rms`` /
  ``drn_rate_rms`` (detail units: the mean shape's IOD) over the atlas -- is
  there any displacement at all; ``ita_truth``, ``ita_drawn`` (the
  generator's ITA of the prior draw), ``ita_<m>``, ``skin_group``.

Writes the JSON (summary keys, ``per_face``, failures, counts, settings),
prints a table (rows = methods, columns = metrics) and a per-tone-group
table, and with ``--out_dir`` a contact sheet ``synthetic_benchmark_sheet.png``,
one row per face: photo | truth albedo | PCA | FAN | fit | truth detail
shading | DRN | fit detail (the PCA tile is B-Net's when it ran, else the
per-photo PCA fit's, as its header says; blank tiles for paths not run;
albedos in sRGB over the whole atlas; shading = grey albedo under one fixed
light, so only the normals differ).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from absl import app, flags
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tf_face import eval_metrics as M  # noqa: E402
from tf_face.cli.common import run_single  # noqa: E402
from tf_face.cli.fit_flags import define_fit_flags, fit_options_from_flags  # noqa: E402
from tf_face.detail import model_detail_unit  # noqa: E402
from tf_face.errors import TfFaceError  # noqa: E402
from tf_face.eval_metrics import json_safe  # noqa: E402,F401 - tests use it from here
from tf_face.eval_metrics import group_bias, group_means, nanmean, write_result_json  # noqa: E402
from tf_face.facemodel import load_face_model  # noqa: E402
from tf_face.pipeline import GeometryPipeline  # noqa: E402
from tf_face.blas import single_blas_thread  # noqa: E402
from tf_face.serving.backends import NetworkOutputs, keras_network_function  # noqa: E402
from tf_face.serving.reconstruct import detail_maps  # noqa: E402
from tf_face.serving.weights import CONFIG_FILE, is_release_folder, load_networks  # noqa: E402
from tf_face.skin_tone import GROUP_NAMES, face_skin_mask, skin_ita, tone_group  # noqa: E402
from tf_face.srgb import linear_to_srgb, srgb_to_linear  # noqa: E402
from tf_face.synthetic.ict_shapes import IctShapes  # noqa: E402
from tf_face.synthetic.wrinkles import wrinkle_mask, wrinkle_sites  # noqa: E402
from tf_face.uv import get_atlas  # noqa: E402
from tf_face.uv.regions import model_feature_mask  # noqa: E402
# TF-loading imports stay in functions, run after main's quiet_tensorflow() (test_import_weight)
if __name__ == "__main__":   # a script: TensorFlow without its start-up noise
    from tf_face.tf_import import quiet_tensorflow
    quiet_tensorflow()

FLAGS = flags.FLAGS

ALBEDO_METHODS = ("mean", "pca", "pca_fit", "oracle_pca", "delight", "delight_oracle_light",
                  "fan", "fit", "net_fit")
DETAIL_METHODS = ("none", "drn", "fit", "net_fit")
PATHS = ALBEDO_METHODS + ("none", "drn")          # the names --appearance takes
NETWORK_PATHS = {"pca": "bnet", "fan": "fan", "drn": "drn"}
#: paths that need the per-photo light/albedo fit (the first stage of ``fit``)
LIGHT_FIT_PATHS = ("pca_fit", "delight", "delight_oracle_light", "fit")
KNOBS = ("max_yaw", "max_pitch", "max_roll", "occlusion_prob", "light_harshness",
         "shape_strength", "wrinkle_strength", "wrinkle_variety", "albedo_detail", "camera_noise",
         "solid_occluder_prob")
#: shading below this (any channel) makes a texel unusable for delighting
#: (as ``tf_face.appearance.maps.fit_albedo_map``'s closed-form start)
MIN_SHADING = 0.05


def define_flags() -> None:
    """The CLI flags (defined only when run as a script, so importing this
    module - e.g. from tests - never clashes with other CLIs' flags)."""
    flags.DEFINE_string("weights_dir", None, "Weights folder of the training jobs "
                        "(bnet/fan/drn.keras); without it the network paths are absent.")
    flags.DEFINE_string("appearance", "", "Comma list of paths to score, of: "
                        + ", ".join(PATHS) + " (default: all that can run).")
    flags.DEFINE_string("json", None, "Write the results here.")
    flags.DEFINE_integer("num_faces", 12, "Held-out faces to generate.")
    flags.DEFINE_integer("seed", 1000, "Seed of the held-out set (not the training seed).")
    flags.DEFINE_integer("image_size", 512, "Photo size in pixels.")
    flags.DEFINE_string("out_dir", None, "Write the contact sheet PNG here.")
    flags.DEFINE_string("ict_npz", "", "Draw shapes from the ICT model (as make_dataset --ict_npz).")
    flags.DEFINE_string("skin_tone", "", "Skin tones of the faces: 'all' (uniform over the "
                        "six ITA groups), 'balanced' (face i gets group i mod 6: equal "
                        "group sizes for the per-group errors and the bias), one group "
                        "(very_light, light, intermediate, tan, brown, dark), or empty for "
                        "the generator's default (all).")
    define_knob_flags()
    define_fit_flags()


def define_knob_flags() -> None:
    """The generator knobs (``--max_yaw`` ...), ``--progress`` and ``--debug``
    (shared with ``eval/detail_signal.py``)."""
    from tf_face.synthetic.sampling import Difficulty
    d = Difficulty()
    for k in KNOBS:
        flags.DEFINE_float(k, float(getattr(d, k)), f"Generator knob Difficulty.{k}.")
    flags.DEFINE_bool("landmark_flip", True, "Average the landmarker's last pass with its "
                      "mirrored crop's (GeometryPipeline(landmark_flip=...)); "
                      "--nolandmark_flip: one crop.")
    flags.DEFINE_bool("progress", True, "Show a progress bar (--noprogress: none).")
    flags.DEFINE_bool("debug", False, "Show tracebacks of internal errors.")


def run_and_report(run, table, json_path, debug: bool = False) -> int:
    """Run ``run()`` (-> the result dict) under the CLI's error handling, print
    ``table(result)``, write the JSON; returns the exit code."""
    box = {}

    def job():
        box["r"] = run()

    code = run_single(job, debug=debug)
    r = box.get("r")
    if r is None:
        return code
    print(table(r))
    if json_path:
        write_result_json(json_path, r)
    return code


COUNT_KEYS = ("texels_visible", "texels_hidden", "texels_atlas", "texels_wrinkle",
              "texels_bare", "texels_registered", "texels_features_registered")
#: per-face keys averaged into the summary (when present in any face)
SUMMARY_PREFIXES = ("albedo_error_", "ita_error_", "detail_error_", "normal_error_",
                    "sh_error", "exposure_error", "rerender_error", "registration_",
                    "non_skin_")
TIME_PREFIX = "ms_per_photo_"


def resolve_paths(requested, has_weights: bool, has_fan: bool = False,
                  has_drn: bool = False) -> tuple:
    """The paths to run, in ``PATHS`` order. ``requested``: comma string /
    iterable / None (= every path that can run). Asking for a network path
    that has no weights is an error, not a silent omission."""
    available = {p: True for p in PATHS}
    available.update({"pca": has_weights, "fan": has_weights and has_fan,
                      "drn": has_weights and has_drn,
                      "net_fit": has_weights and has_fan and has_drn})
    if isinstance(requested, str):
        requested = [s.strip() for s in requested.split(",") if s.strip()]
    if not requested:
        return tuple(p for p in PATHS if available[p])
    unknown = [p for p in requested if p not in PATHS]
    if unknown:
        raise TfFaceError(f"unknown --appearance path(s) {', '.join(unknown)}; "
                          f"known: {', '.join(PATHS)}")
    if "net_fit" in requested:   # it starts from the networks' outputs: they run (and score) too
        requested = list(requested) + ["pca", "fan", "drn"]
    missing = [p for p in requested if not available[p]]
    if missing:
        why = ("need --weights_dir" if not has_weights else
               "have no network in --weights_dir (fan.keras / drn.keras)")
        raise TfFaceError(f"--appearance path(s) {', '.join(missing)} {why}")
    return tuple(p for p in PATHS if p in requested)


def served_detail_normals(sample, atlas_mask, rate, fit_scale, detail_unit) -> np.ndarray:
    """Serving's detail normals of a moving rate (``serving.reconstruct.detail_maps``),
    the base normals where the detail mesh has none."""
    _, _, _, dn = detail_maps(sample, atlas_mask, rate, fit_scale, detail_unit)
    return np.where(np.any(dn != 0, -1, keepdims=True), dn, sample.normals)


class Networks:
    """B-Net (required), FAN and DRN (optional), run as serving runs them."""

    def __init__(self, weights_dir, model=None, atlas=None):
        from tf_face.uv.albedo_model import uv_albedo_model
        from tf_face.models.saving import load_stage_model

        folder = Path(weights_dir)
        cfg_path = folder / CONFIG_FILE
        if not cfg_path.is_file():
            raise TfFaceError(f"{cfg_path} not found: --weights_dir must be a training or release weights folder")
        self.config = json.loads(cfg_path.read_text())
        model_name = self.config.get("model", "default")
        self.uv_size = int(self.config.get("uv_size", 256))
        if model_name != "default" or self.uv_size != 256:
            raise TfFaceError("the synthetic truth is in the default model's 256x256 UV space; "
                              f"these weights use model={model_name!r}, uv_size={self.uv_size}")
        self.model = model if model is not None else load_face_model("default")
        self.atlas = atlas if atlas is not None else get_atlas(self.model, size=self.uv_size)
        self.color_space = self.config.get("color_space", "linear")
        self.detail_unit = float(self.config.get("detail_unit") or model_detail_unit(self.model))
        albedo = uv_albedo_model(self.model, self.atlas, self.config.get("num_albedo"))
        self.albedo_model = albedo
        if is_release_folder(folder):   # all three, checked against the manifest
            nets = load_networks(folder)
            self.bnet, self.fan, self.drn = nets["bnet"], nets["fan"], nets["drn"]
        else:   # a training folder, possibly mid-way (FAN, DRN optional)
            self.bnet = load_stage_model(folder, "bnet")
            self.fan = (load_stage_model(folder, "fan") if (folder / "fan.keras").is_file()
                        else None)
            self.drn = (load_stage_model(folder, "drn") if (folder / "drn.keras").is_file()
                        else None)
        # the three networks run as in serving (tf_face.serving.backends.TFBackend)
        self.serve = {name: keras_network_function(name, net, self.uv_size,
                                                   albedo.num_components)
                      for name, net in (("bnet", self.bnet), ("fan", self.fan),
                                        ("drn", self.drn)) if net is not None}

    def predict(self, sample, fit_scale: float, paths=PATHS) -> dict:
        """Network outputs for one (8-bit) UV sample, numpy [H,W,...], linear
        albedos; ``ms_*`` per network."""
        import tensorflow as tf

        from tf_face.render import sh_shade
        from tf_face.training.colour import to_shading_space

        texture = tf.constant(np.asarray(sample.texture, np.float32)[None])
        normals = tf.constant(sample.normals[None], tf.float32)
        t = time.perf_counter()     # as serving runs it: B-Net's tf.function + R_a in numpy
        raw = self.serve["bnet"](texture)
        pca_np = self.albedo_model.albedo_np(raw["p_a"])
        out = {"sh": raw["sh"][0], "p_a": raw["p_a"][0], "pca": pca_np[0], "fan": None,
               "drn_normals": None,
               "ms_pca": (time.perf_counter() - t) * 1e3}
        gamma, pca = tf.constant(raw["sh"]), tf.constant(pca_np)
        fan = None
        if self.fan is not None and "fan" in paths:
            t = time.perf_counter()
            fan = self.serve["fan"](texture)["albedo"]
            out["fan"] = fan[0]
            out["ms_fan"] = (time.perf_counter() - t) * 1e3
        if self.drn is not None and "drn" in paths:
            t = time.perf_counter()   # serving's DRN call and detail maps
            rate = self.serve["drn"](texture)["moving_rate"][0, ..., 0]
            out["drn_normals"] = served_detail_normals(sample, self.atlas.mask, rate, fit_scale,
                                                       self.detail_unit)
            out["rate"] = rate
            out["ms_drn"] = (time.perf_counter() - t) * 1e3
        target = to_shading_space(texture, self.color_space)[0].numpy()
        albedo_for_shading = tf.constant(fan) if fan is not None else pca
        detail = normals if out["drn_normals"] is None else \
            tf.constant(out["drn_normals"][None], tf.float32)
        out["rerender"] = (sh_shade(albedo_for_shading, detail, gamma)[0].numpy(), target)
        out["rerender_base"] = (sh_shade(albedo_for_shading, normals, gamma)[0].numpy(), target)
        if self.color_space == "srgb":     # compare albedos with the (linear) truth
            out["pca"] = srgb_to_linear(out["pca"]).astype(np.float32)
            if out["fan"] is not None:
                out["fan"] = srgb_to_linear(out["fan"]).astype(np.float32)
        return out


# ------------------------------------------------------------ delighting
def shading_map(normals, sh) -> np.ndarray:
    """Irradiance [S,S,3] of SH ``sh`` [9,3] on ``normals`` [S,S,3] (white albedo)."""
    from tf_face.render import sh_shade
    n = np.asarray(normals, np.float32)[None]
    return sh_shade(np.ones_like(n), n, np.asarray(sh, np.float32).reshape(1, 9, 3))[0].numpy()


def delight(texture_linear, visible, normals, sh, fallback, atlas_mask,
            min_shading: float = MIN_SHADING) -> np.ndarray:
    """Delighted albedo [S,S,3] (linear): ``texture / shading(sh, normals)``
    on visible texels whose shading is >= ``min_shading`` in every channel,
    clipped to [0, 1]; other atlas texels take their UV mirror (flip along
    the width: u -> 1 - u) where that is delighted, else ``fallback``; 0 off
    the atlas."""
    atlas = np.asarray(atlas_mask, bool)
    n = np.asarray(normals, np.float32)
    shading = shading_map(n, sh)
    ok = (np.asarray(visible, bool) & atlas & np.any(n != 0, -1)
          & (shading.min(-1) >= min_shading))
    delit = np.clip(np.asarray(texture_linear, np.float64) / np.maximum(shading, min_shading),
                    0.0, 1.0)
    mirror_ok = ok[:, ::-1]
    fill = np.where(mirror_ok[..., None], delit[:, ::-1], np.asarray(fallback, np.float64))
    out = np.where(ok[..., None], delit, fill)
    return np.where(atlas[..., None], out, 0.0).astype(np.float32)


# ---------------------------------------------------------------- metrics
@functools.lru_cache(maxsize=2)
def default_feature_mask(size: int) -> np.ndarray:
    """Eyes + brows of the default model's UV map (``tf_face.uv.regions``), read-only."""
    from tf_face.facemodel.default import load_default_geometry
    m = model_feature_mask(load_default_geometry(), size)
    m.setflags(write=False)
    return m


def face_metrics(truth, sample, pred, skin_group=None, skin_mask=None,
                 registration=None, sites=None, features=None) -> dict:
    """All per-face metrics (``tf_face.eval_metrics``) of one face.

    ``pred``: ``albedo`` {method: [S,S,3] linear} (methods of ``ALBEDO_METHODS``
    that ran), ``detail`` {d: detail normals [S,S,3]} (``DETAIL_METHODS``),
    ``sh`` {"pca"|"fit": [9,3]}, ``rerender`` {suffix: (render, target)} ->
    ``rerender_error<suffix>``; missing entries give missing keys.
    ``skin_group``: the face's tone group (default: that of its true ITA);
    ``skin_mask``: cheeks + forehead (default ``face_skin_mask(S)``).
    ``registration``: (coords, valid) of
    ``tf_face.synthetic.registration.truth_uv_in_pipeline`` -> the
    ``*_registered`` keys (None: left out). ``sites``: the template's wrinkle
    sites [S,S] bool for the ``_bare`` keys (default ``wrinkle_sites(S)``);
    ``features``: eyes + brows [S,S] bool of the pipeline's map for the
    ``_features_registered`` keys (default ``default_feature_mask(S)``).
    """
    atlas = np.asarray(truth.atlas_mask, bool)
    vis, hid = M.visibility_split(sample.mask, truth.occlusion, atlas)
    unseen = atlas & ~np.asarray(sample.mask, bool)     # hidden by the geometry
    occluded = hid & ~unseen                             # ... by an occluder
    wr = atlas & wrinkle_mask(truth.displacement)
    # the template's wrinkle sites where this face has no wrinkle (2 texels clear of one)
    near = cv2.dilate(wr.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    sites = wrinkle_sites(atlas.shape[0]) if sites is None else np.asarray(sites, bool)
    bare = atlas & sites & ~near
    r = {"texels_visible": int(vis.sum()), "texels_hidden": int(hid.sum()),
         "texels_atlas": int(atlas.sum()), "texels_wrinkle": int(wr.sum()),
         "texels_bare": int(bare.sum())}
    if skin_mask is None:
        skin_mask = face_skin_mask(atlas.shape[0])
    ita_truth = skin_ita(truth.albedo, skin_mask)
    r["ita_truth"] = ita_truth
    r["skin_group"] = skin_group or (tone_group(ita_truth) if np.isfinite(ita_truth) else None)
    albedos = pred.get("albedo", {})
    for m in ALBEDO_METHODS:
        a = albedos.get(m)
        if a is None:
            continue
        r[f"albedo_error_{m}_visible"] = M.masked_mae(a, truth.albedo, vis)[0]
        r[f"albedo_error_{m}_hidden"] = M.masked_mae(a, truth.albedo, hid)[0]
        for part, mask in (("unseen", unseen), ("occluded", occluded)):
            if mask.any():
                r[f"albedo_error_{m}_hidden_{part}"] = M.masked_mae(a, truth.albedo, mask)[0]
        r[f"albedo_error_{m}_visible_gain_invariant"] = M.gain_invariant_mae(
            a, truth.albedo, vis)[0]
        r[f"ita_{m}"] = skin_ita(a, skin_mask)
        r[f"ita_error_{m}"] = abs(r[f"ita_{m}"] - ita_truth)
    for src, suffix in (("pca", ""), ("fit", "_fit")):
        sh = pred.get("sh", {}).get(src)
        if sh is None:
            continue
        r[f"sh_error{suffix}"] = M.sh_rms(sh, truth.sh)
        r[f"sh_error{suffix}_scale_invariant"] = M.sh_scale_invariant_rms(sh, truth.sh)
        r[f"sh_error{suffix}_relative"] = M.sh_relative_error(sh, truth.sh)
        r[f"exposure_error{suffix}"] = M.exposure_error(sh, truth.sh)
    regions = {"": atlas, "_wrinkle": wr, "_visible": vis, "_bare": bare,
               "_wrinkle_visible": wr & vis}
    details = pred.get("detail", {})
    for suffix, m in regions.items():
        r[f"normal_error_base{suffix}_deg"] = M.mean_angular_error(sample.normals, truth.normals, m)[0]
        r[f"normal_error_truth_base{suffix}_deg"] = M.mean_angular_error(
            truth.base_normals, truth.normals, m)[0]
        for d in DETAIL_METHODS:
            dn = details.get(d)
            if dn is None:
                continue
            if d != "none":
                r[f"normal_error_{d}{suffix}_deg"] = M.mean_angular_error(dn, truth.normals, m)[0]
            r[f"detail_error_{d}{suffix}_deg"] = M.relative_detail_error(
                dn, sample.normals, truth.normals, truth.base_normals, m)[0]
    for suffix, (render, target) in pred.get("rerender", {}).items():
        r[f"rerender_error{suffix}"] = M.masked_mae(render, target, vis)[0]
    if registration is not None:
        if features is None:
            features = default_feature_mask(atlas.shape[0])
        r.update(_registered_metrics(truth, sample, pred, vis, *registration,
                                     features=features))
    return r


def _registered_metrics(truth, sample, pred, vis, coords, valid, features) -> dict:
    """The truth carried into the pipeline's UV map (module doc, "registered")."""
    from tf_face.synthetic.registration import warp_to_pipeline
    ok = vis & valid
    size_h, size_w = ok.shape
    gy, gx = np.mgrid[0:size_h, 0:size_w]
    shift = np.hypot(coords[..., 0] - gx, coords[..., 1] - gy)[valid]
    feats = ok & np.asarray(features, bool)
    r = {"texels_registered": int(ok.sum()), "texels_features_registered": int(feats.sum()),
         "registration_shift_texels": float(np.median(shift)) if shift.size else float("nan")}
    albedo = warp_to_pipeline(truth.albedo, coords, valid)
    for m, a in pred.get("albedo", {}).items():
        if m in ALBEDO_METHODS and m != "oracle_pca":    # the prior draw lives in the truth's UV
            r[f"albedo_error_{m}_visible_registered"] = M.masked_mae(a, albedo, ok)[0]
            r[f"albedo_error_{m}_features_registered"] = M.masked_mae(a, albedo, feats)[0]
    normals = warp_to_pipeline(truth.normals, coords, valid)
    base = warp_to_pipeline(truth.base_normals, coords, valid)
    wrinkles = ok & wrinkle_mask(warp_to_pipeline(truth.displacement, coords, valid))
    for d, dn in pred.get("detail", {}).items():
        if d not in DETAIL_METHODS:
            continue
        r[f"detail_error_{d}_registered_deg"] = M.relative_detail_error(
            dn, sample.normals, normals, base, ok)[0]
        r[f"detail_error_{d}_wrinkle_registered_deg"] = M.relative_detail_error(
            dn, sample.normals, normals, base, wrinkles)[0]
    r.update(_carried_ceiling(truth, pred, vis, ok, albedo, normals, base))
    return r


#: the carried truth's hedged variant: blurred by this Gaussian sigma (texels
#: at 256^2) over the texels that carry (module doc, "carried")
CARRIED_BLUR = 1.0


def _carried_ceiling(truth, pred, vis, ok, albedo, normals, base) -> dict:
    """The same-texel scores of the truth carried into the pipeline's map
    (module doc, "carried"): what a method that recovers exactly what each
    texel's pixel shows would score, given the pipeline's geometry; and the
    same blurred by ``CARRIED_BLUR`` (``_blurred`` keys: a hedge against the
    registration that scores better at the same texel)."""
    from tf_face.appearance.skin import masked_blur
    atlas = np.asarray(truth.atlas_mask, bool)
    sigma = CARRIED_BLUR * atlas.shape[0] / 256.0
    fallback = pred.get("albedo", {}).get("pca_fit")
    r = {}
    if fallback is not None:
        fallback = np.asarray(fallback, np.float32)
        carried = np.where(ok[..., None], albedo, fallback)
        r["albedo_error_carried_visible"] = M.masked_mae(carried, truth.albedo, vis)[0]
        r["albedo_error_carried_visible_gain_invariant"] = M.gain_invariant_mae(
            carried, truth.albedo, vis)[0]
        hedged = np.where(ok[..., None], masked_blur(albedo, ok, sigma), fallback)
        r["albedo_error_carried_blurred_visible_gain_invariant"] = M.gain_invariant_mae(
            hedged, truth.albedo, vis)[0]
        # ... at the per-photo light fit's exposure: scaled per channel by the
        # PCA fit's mean over the true one's (the gain one photo cannot fix)
        gain = M.channel_gain(fallback, truth.albedo, ok)
        r["albedo_error_carried_exposed_visible"] = M.masked_mae(
            np.where(ok[..., None], albedo * gain, fallback), truth.albedo, vis)[0]
    if not pred.get("detail"):
        return r
    true_rel = M.relative_to_base(truth.normals, truth.base_normals)
    rel = M.relative_to_base(normals, base)
    hedged = masked_blur(rel, ok, sigma)
    hedged /= np.maximum(np.linalg.norm(hedged, axis=-1, keepdims=True), 1e-9)
    wr = atlas & wrinkle_mask(truth.displacement)
    for name, n in (("carried", rel), ("carried_blurred", hedged)):
        n[~ok] = (0.0, 0.0, 1.0)                      # nothing carried: no detail
        for suffix, m in (("", atlas), ("_wrinkle", wr), ("_wrinkle_visible", wr & vis)):
            r[f"detail_error_{name}{suffix}_deg"] = M.mean_angular_error(n, true_rel, m)[0]
    return r


def _is_summary_key(k: str) -> bool:
    return k.startswith(SUMMARY_PREFIXES) or k.startswith(TIME_PREFIX)


def summarize(per_face: list, failures: list, num_faces: int, paths=None) -> dict:
    """Means over the faces (medians for ``ms_per_photo_*``) of every metric
    present in some face, the tone-group breakdown and the counts. Keys of
    paths that did not run are absent."""
    out = {}
    keys = []
    for f in per_face:
        keys += [k for k in f if _is_summary_key(k) and k not in keys]
    for k in keys:
        vals = [f.get(k) for f in per_face if f.get(k) is not None]
        if k.startswith(TIME_PREFIX):
            v = np.asarray(vals, np.float64)
            v = v[np.isfinite(v)]
            out[k] = float(np.median(v)) if v.size else float("nan")
        else:
            out[k] = nanmean(vals)
    # tone groups
    groups = [f.get("skin_group") for f in per_face]
    by_group, faces_by_group = {}, {}
    for g in groups:
        if g is not None:
            faces_by_group[g] = faces_by_group.get(g, 0) + 1
    for m in ALBEDO_METHODS:
        key = f"ita_error_{m}"
        if key not in out:
            continue
        means = group_means([f.get(key) for f in per_face], groups, order=GROUP_NAMES)
        by_group[m] = means
        bias = group_bias(means)
        if bias is not None:
            out[f"ita_bias_{m}"] = bias
    if by_group:
        out["ita_error_by_group"] = by_group
        out["faces_by_group"] = _ordered_groups(faces_by_group)
    for k in COUNT_KEYS:
        if any(k in f for f in per_face):
            out[k] = int(sum(f.get(k, 0) for f in per_face))
    out.update({"faces": num_faces, "faces_evaluated": len(per_face),
                "failures": failures, "num_failures": len(failures)})
    if paths is not None:
        out["paths"] = list(paths)
    return out


def _ordered_groups(d: dict) -> dict:
    return {g: d[g] for g in GROUP_NAMES if g in d} | {g: v for g, v in d.items()
                                                       if g not in GROUP_NAMES}


# ---------------------------------------------------------------- pictures
_TILE = 256


def _srgb_tile(linear, mask) -> np.ndarray:
    img = (linear_to_srgb(linear) * 255).round().astype(np.uint8)
    img[~np.asarray(mask, bool)] = 0
    return img


def _grey_shading(normals, mask) -> np.ndarray:
    """Grey albedo under one fixed light (front-upper-left), sRGB uint8."""
    from tf_face.render import ambient_sh, sh_shade
    sh = ambient_sh(1, 0.35)
    sh[0, 2, :] += 0.45   # z (towards the camera)
    sh[0, 1, :] += 0.25   # y (up)
    sh[0, 3, :] -= 0.30   # x (from the left of the image)
    n = np.asarray(normals, np.float32)[None]
    lin = sh_shade(np.full_like(n, 0.7), n, sh.astype(np.float32))[0].numpy()
    return _srgb_tile(lin, np.asarray(mask, bool) & (np.linalg.norm(normals, axis=-1) > 0.5))


def _photo_crop(image, truth) -> np.ndarray:
    v = truth.vertices_image[:, :2]
    lo, hi = v.min(0), v.max(0)
    c, half = 0.5 * (lo + hi), 0.6 * float(np.max(hi - lo))
    h, w = image.shape[:2]
    x0, y0 = int(max(c[0] - half, 0)), int(max(c[1] - half, 0))
    x1, y1 = int(min(c[0] + half, w)), int(min(c[1] + half, h))
    crop = image[y0:y1, x0:x1] if (x1 > x0 + 4 and y1 > y0 + 4) else image
    return cv2.resize(crop, (_TILE, _TILE), interpolation=cv2.INTER_AREA)


def pca_column(paths) -> str:
    """The albedo the sheet's PCA column shows: B-Net's, else the per-photo fit's."""
    return "pca" if "pca" in paths else ("pca_fit" if "pca_fit" in paths else "pca")


def sheet_columns(paths) -> tuple:
    col = {"pca": "B-Net PCA", "pca_fit": "PCA fit"}[pca_column(paths)]
    return ("photo", "truth albedo", col, "FAN albedo", "fit albedo",
            "truth detail", "DRN detail", "fit detail")


def sheet_row(image, truth, sample, pred, paths=PATHS, label: str = "") -> np.ndarray:
    atlas = np.asarray(truth.atlas_mask, bool)
    blank = np.zeros((_TILE, _TILE, 3), np.uint8)
    albedos, details = pred.get("albedo", {}), pred.get("detail", {})

    def alb(m):
        return _srgb_tile(albedos[m], atlas) if albedos.get(m) is not None else blank

    def det(d):
        return _grey_shading(details[d], atlas) if details.get(d) is not None else blank

    photo = _photo_crop(image, truth).copy()
    if label:
        cv2.putText(photo, label, (4, _TILE - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
    tiles = [photo, _srgb_tile(truth.albedo, atlas), alb(pca_column(paths)), alb("fan"),
             alb("fit"), _grey_shading(truth.normals, atlas), det("drn"), det("fit")]
    tiles = [t if t.shape[:2] == (_TILE, _TILE) else
             cv2.resize(t, (_TILE, _TILE), interpolation=cv2.INTER_AREA) for t in tiles]
    return np.concatenate(tiles, axis=1)


def save_sheet(rows, path, columns) -> None:
    header = np.full((28, rows[0].shape[1], 3), 255, np.uint8)
    for i, name in enumerate(columns):
        cv2.putText(header, name, (i * _TILE + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                    (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.concatenate([header] + list(rows), axis=0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


# ---------------------------------------------------------------- the run
def make_difficulty(**knobs):
    """``Difficulty`` with the given knobs (the others at their defaults), validated."""
    from tf_face.synthetic.sampling import Difficulty
    unknown = set(knobs) - set(KNOBS)
    if unknown:
        raise ValueError(f"unknown generator knob(s): {', '.join(sorted(unknown))}")
    return Difficulty(**{k: float(v) for k, v in knobs.items()}).validate()


def _draw(rng, model, difficulty, ict, skin_tone, index: int = 0):
    """``sample_face``, with ``skin_tone`` only when one is asked for (None:
    the generator's default, every tone group; "balanced": group ``index`` mod 6)."""
    from tf_face.synthetic import sample_face
    if skin_tone == "balanced":
        skin_tone = GROUP_NAMES[index % len(GROUP_NAMES)]
    if not skin_tone:
        return sample_face(rng, model, difficulty, ict=ict)
    return sample_face(rng, model, difficulty, ict=ict, skin_tone=skin_tone)


class _LightFit:
    """The per-photo light/albedo fit alone (``fit``'s first stage)."""

    def __init__(self, fitter):
        self.fitter = fitter

    def __call__(self, sample):
        """(PCA albedo, SH) of ``AppearanceFitter.light_albedo``: the same stage 1
        as the whole fit's (its tone columns, mirror prior and skin test)."""
        stage1 = self.fitter.light_albedo(sample)
        return stage1.albedo_pca, stage1.fit.sh


def run_face(i, face, image, truth, res, paths, ctx, stage1=None) -> tuple:
    """(per-face metrics, pred, appearance failures) for one pipeline result;
    ``stage1``: the fit's stage 1 from the mesh refinement
    (``AlignResult.light_albedo``; ``AppearanceFitter.fit``)."""
    from tf_face.appearance.fit import AppearanceFitError, srgb_to_linear_np
    from tf_face.render import sh_shade

    sample = dataclasses.replace(
        res.sample, texture=(np.round(np.clip(res.sample.texture, 0, 1) * 255.0) / 255.0)
        .astype(np.float32))
    scale = float(res.fitted.scale)
    atlas = ctx["atlas"].mask
    pred = {"albedo": {}, "detail": {}, "sh": {}, "rerender": {}}
    times, fails = {}, []
    if "mean" in paths:
        pred["albedo"]["mean"] = ctx["albedo_model"].mean
    if "oracle_pca" in paths:
        pred["albedo"]["oracle_pca"] = truth.prior_albedo
    if "none" in paths:
        pred["detail"]["none"] = sample.normals
    nets = ctx.get("nets")
    if nets is not None:
        with single_blas_thread():   # as serving runs the networks (tf_face.blas)
            out = nets.predict(sample, scale, paths)
        if "pca" in paths:
            pred["albedo"]["pca"] = out["pca"]
            pred["sh"]["pca"] = out["sh"]
        if out["fan"] is not None:
            pred["albedo"]["fan"] = out["fan"]
        if out["drn_normals"] is not None:
            pred["detail"]["drn"] = out["drn_normals"]
            pred["rate_drn"] = out["rate"]
        pred["rerender"][""] = out["rerender"]
        pred["rerender"]["_base"] = out["rerender_base"]
        times.update({f"ms_per_photo_{k[3:]}": v for k, v in out.items() if k.startswith("ms_")})
        if "net_fit" in paths:   # reconstruct's default: the networks' outputs start the fit
            init = NetworkOutputs(p_a=out["p_a"], sh=out["sh"], albedo_pca=out["pca"],
                                  albedo=out["fan"], moving_rate=out["rate"], timings_ms={})
            try:
                t = time.perf_counter()
                fr = ctx["fitter"].fit(sample, scale, init=init, stage1=stage1)
                times["ms_per_photo_net_fit"] = (time.perf_counter() - t) * 1e3
                pred["albedo"]["net_fit"] = fr.albedo
                pred["detail"]["net_fit"] = served_detail_normals(
                    sample, atlas, fr.moving_rate, scale, ctx["detail_unit"])
                pred["rate_net_fit"] = fr.moving_rate
            except AppearanceFitError as e:
                fails.append({"face": i, "path": "net_fit", "error": str(e)})
    pca_fit = sh_fit = None
    if any(p in paths for p in LIGHT_FIT_PATHS):
        tex_lin = srgb_to_linear_np(sample.texture)
        try:
            t = time.perf_counter()
            if "fit" in paths:
                fr = ctx["fitter"].fit(sample, scale, stage1=stage1)
                times["ms_per_photo_fit"] = (time.perf_counter() - t) * 1e3
                times.update({f"ms_per_photo_fit_{k[4:] if k.startswith('fit_') else k}": v
                              for k, v in fr.timings_ms.items()})
                times["ms_per_photo_pca_fit"] = fr.timings_ms.get("fit_light_albedo", float("nan"))
                pca_fit, sh_fit = fr.albedo_pca, fr.sh
                dn = served_detail_normals(sample, atlas, fr.moving_rate, scale,
                                           ctx["detail_unit"])
                pred["albedo"]["fit"] = fr.albedo
                pred["detail"]["fit"] = dn
                pred["rerender"]["_fit"] = (
                    sh_shade(fr.albedo[None], dn[None].astype(np.float32),
                             np.asarray(fr.sh, np.float32)[None])[0].numpy(), tex_lin)
                pred["rate_fit"] = fr.moving_rate
                pred["non_skin_fit"] = fr.non_skin
            else:
                pca_fit, sh_fit = ctx["light_fit"](sample)
                times["ms_per_photo_pca_fit"] = (time.perf_counter() - t) * 1e3
        except AppearanceFitError as e:
            fails.append({"face": i, "path": "fit" if "fit" in paths else "pca_fit",
                          "error": str(e)})
        if pca_fit is not None:
            pred["sh"]["fit"] = sh_fit
            if "pca_fit" in paths:
                pred["albedo"]["pca_fit"] = pca_fit
            t = time.perf_counter()
            if "delight" in paths:
                pred["albedo"]["delight"] = delight(tex_lin, sample.mask, sample.normals, sh_fit,
                                                    pca_fit, atlas)
                times["ms_per_photo_delight"] = (time.perf_counter() - t) * 1e3
            if "delight_oracle_light" in paths:
                pred["albedo"]["delight_oracle_light"] = delight(
                    tex_lin, sample.mask, sample.normals, truth.sh, pca_fit, atlas)
    from tf_face.synthetic.registration import truth_uv_in_pipeline
    registration = truth_uv_in_pipeline(truth, res.fitted, ctx["model"], ctx["atlas"],
                                        sample.mask)
    m = face_metrics(truth, sample, pred, skin_group=getattr(face, "skin_group", None),
                     skin_mask=ctx["skin_mask"], registration=registration)
    m.update(times)
    if pred.get("non_skin_fit") is not None:      # the fit's skin test against the occluders
        seen = np.asarray(sample.mask, bool) & np.asarray(atlas, bool)
        flagged = np.asarray(pred["non_skin_fit"], bool) & seen
        occluded = np.asarray(truth.occlusion, bool) & seen
        m["non_skin_fraction"] = float(flagged.sum() / max(int(seen.sum()), 1))
        if flagged.any():
            m["non_skin_precision"] = float((flagged & occluded).sum() / flagged.sum())
        if occluded.any():
            m["non_skin_recall"] = float((flagged & occluded).sum() / occluded.sum())
    # size of the detail signal vs what the fit / DRN put there (atlas RMS; the
    # truth in IOD units, the rates in detail units = the mean shape's IOD)
    m["truth_displacement_rms"] = float(np.sqrt(np.mean(np.square(truth.displacement[atlas]))))
    for name, rate in (("fit", pred.get("rate_fit")), ("drn", pred.get("rate_drn")),
                       ("net_fit", pred.get("rate_net_fit"))):
        if rate is not None:
            m[f"{name}_rate_rms"] = float(np.sqrt(np.mean(np.square(np.asarray(rate)[atlas]))))
    return m, pred, fails


def run_benchmark(weights_dir=None, num_faces: int = 12, seed: int = 1000,
                  image_size: int = 512, out_dir=None, ict_npz=None, progress: bool = True,
                  appearance=None, difficulty=None, skin_tone=None, fit_options=None,
                  landmark_flip: bool = True) -> dict:
    """Run the benchmark (module doc); returns the result dict (the JSON).

    ``appearance``: paths (comma string or list; None = all that can run);
    ``difficulty``: a ``Difficulty`` (None = defaults); ``skin_tone``: None /
    "all" / "balanced" (face i: group i mod 6) / a group, for ``sample_face``; ``fit_options``: the
    ``AppearanceOptions`` of the fit (None = its defaults); ``landmark_flip``:
    ``GeometryPipeline``'s (the landmarker's flip average).
    """
    from tf_face.synthetic import render_face
    from tf_face.uv.albedo_model import uv_albedo_model

    if skin_tone and skin_tone not in ("all", "balanced") + tuple(GROUP_NAMES):
        raise TfFaceError(f"unknown --skin_tone {skin_tone!r}; one of all, balanced, "
                          + ", ".join(GROUP_NAMES))
    t0 = time.perf_counter()
    model = load_face_model("default")
    atlas = get_atlas(model, size=256)
    nets = Networks(weights_dir, model, atlas) if weights_dir else None
    paths = resolve_paths(appearance, nets is not None,
                          nets is not None and nets.fan is not None,
                          nets is not None and nets.drn is not None)
    ctx = {"atlas": atlas, "model": model, "nets": nets, "skin_mask": face_skin_mask(256),
           "albedo_model": uv_albedo_model(model, atlas),
           "detail_unit": nets.detail_unit if nets is not None else model_detail_unit(model)}
    if "net_fit" in paths and nets.color_space != "linear":
        raise TfFaceError(f"--appearance=net_fit needs weights trained in linear RGB; "
                          f"{weights_dir} uses {nets.color_space}")
    if any(p in paths for p in LIGHT_FIT_PATHS + ("net_fit",)):
        from tf_face.appearance.fit import AppearanceFitter
        ctx["fitter"] = AppearanceFitter.for_model(ctx["albedo_model"], model, atlas,
                                                   ctx["detail_unit"], fit_options)
        ctx["fitter"].warm_up()   # the first face's ms_per_photo_fit warm like the others
        ctx["light_fit"] = _LightFit(ctx["fitter"])
    pipe = GeometryPipeline("default", uv_size=256, landmark_flip=landmark_flip)
    ict = None
    if ict_npz:
        ict = IctShapes.load(ict_npz, model)
    difficulty = (difficulty or make_difficulty()).validate()
    per_face, failures, app_failures, rows = [], [], [], []
    for i in tqdm(range(num_faces), desc="benchmark", unit="face", file=sys.stderr,
                  disable=not progress):
        face = _draw(np.random.default_rng([int(seed), i]), model, difficulty, ict, skin_tone, i)
        image, truth = render_face(face, image_size, model=model, atlas=atlas)
        t = time.perf_counter()
        try:
            res = pipe.run(image)
        except TfFaceError as e:
            failures.append({"face": i, "error": str(e)})
            continue
        ms_geometry = (time.perf_counter() - t) * 1e3
        ms_align = al = None
        if "fitter" in ctx:   # the fit's pose refinement: every path sees its geometry
            res, al = ctx["fitter"].align(image, res, ctx["model"], ctx["atlas"], pipe.min_cos)
            ms_align = res.timings_ms.get("align") if al is not None else None
        m, pred, fails = run_face(i, face, image, truth, res, paths, ctx,
                                  stage1=getattr(al, "light_albedo", None))
        if ms_align is not None:   # part of the fit's cost
            m["ms_per_photo_fit_align"] = ms_align
            for k in ("ms_per_photo_fit", "ms_per_photo_net_fit"):
                if k in m:
                    m[k] += ms_align
        app_failures += fails
        m.update({"face": i, "yaw": float(truth.yaw), "ms_per_photo_geometry": ms_geometry,
                  "occluded_texels": int(np.asarray(truth.occlusion).sum()),
                  "landmark_rmse_iod": float(res.fitted.landmark_rmse_iod)})
        drawn = getattr(face, "ita_deg", None)
        if drawn is not None and np.isfinite(drawn):
            m["ita_drawn"] = float(drawn)      # the generator's ITA of the prior draw
        per_face.append(m)
        if out_dir:
            label = f"#{i} {m['skin_group'] or ''} ITA {m['ita_truth']:+.0f}"
            rows.append(sheet_row(image, truth, res.sample, pred, paths, label))
    result = summarize(per_face, failures, num_faces, paths)
    stages = nets.config.get("stages", {}) if nets is not None else {}
    result.update({
        "appearance_failures": app_failures, "num_appearance_failures": len(app_failures),
        "per_face": per_face,
        "sh_headline": "sh_error = RMS over the 27 coefficients (raw, no rescaling)",
        "albedo_space": "linear RGB",
        "settings": {"weights_dir": str(weights_dir) if weights_dir else None,
                     "seed": int(seed), "num_faces": int(num_faces),
                     "image_size": int(image_size), "ict": bool(ict_npz),
                     "appearance": list(paths), "skin_tone": skin_tone or None,
                     "difficulty": dataclasses.asdict(difficulty),
                     "detail_unit": ctx["detail_unit"], "landmark_flip": bool(landmark_flip)},
        "seconds": time.perf_counter() - t0,
    })
    if "fitter" in ctx:
        result["settings"]["fit_options"] = dataclasses.asdict(ctx["fitter"].options)
    if nets is not None:
        result["rerender_space"] = nets.color_space
        result["settings"].update({
            "color_space": nets.color_space, "has_fan": nets.fan is not None,
            "has_drn": nets.drn is not None,
            "training_steps": {k: v.get("steps") for k, v in stages.items()},
            "training_data": {k: v.get("data") for k, v in stages.items()}})
    if out_dir and rows:
        path = Path(out_dir) / "synthetic_benchmark_sheet.png"
        save_sheet(rows, path, sheet_columns(paths))
        result["sheet"] = str(path)
    return result




# ---------------------------------------------------------------- tables
def _f(v, width=9, digits=4) -> str:
    if v is None or not np.isfinite(v):
        return f"{'-':>{width}}"
    return f"{v:>{width}.{digits}f}"


_ALBEDO_NAMES = {"mean": "prior mean", "pca": "B-Net PCA", "pca_fit": "PCA fit",
                 "oracle_pca": "oracle PCA", "delight": "delight",
                 "delight_oracle_light": "delight (true SH)", "fan": "FAN", "fit": "fit",
                 "net_fit": "net+fit"}
_MS_KEY = {"pca": "pca", "fan": "fan", "pca_fit": "pca_fit", "delight": "delight",
           "fit": "fit", "drn": "drn", "net_fit": "net_fit"}


def format_table(result: dict) -> str:
    """Rows = methods, columns = metrics (``-``: not measured), then the
    per-tone-group ITA errors."""
    r = result
    lines = [f"{r['faces_evaluated']}/{r['faces']} faces evaluated "
             f"({r['num_failures']} rejected by the pipeline"
             + (f", {r['num_appearance_failures']} appearance-fit failures"
                if r.get("num_appearance_failures") else "") + ")"]
    head = (f"{'albedo':<20}{'vis MAE':>9}{'vis gain':>9}{'vis reg':>9}{'feat reg':>9}"
            f"{'hid MAE':>9}"
            f"{'ITA err':>9}{'ITA bias':>9}{'SH RMS':>9}{'rerender':>9}{'ms/photo':>10}")
    lines.append(head)
    for m in ALBEDO_METHODS:
        if f"albedo_error_{m}_visible" not in r:
            continue
        sh = {"pca": r.get("sh_error"), "pca_fit": r.get("sh_error_fit"),
              "fit": r.get("sh_error_fit"), "delight": r.get("sh_error_fit")}.get(m)
        rr = {"fit": r.get("rerender_error_fit"),
              "fan": r.get("rerender_error"),
              "pca": None if "albedo_error_fan_visible" in r else r.get("rerender_error")}.get(m)
        ms = r.get(f"ms_per_photo_{_MS_KEY[m]}") if m in _MS_KEY else None
        lines.append(f"{_ALBEDO_NAMES[m]:<20}{_f(r[f'albedo_error_{m}_visible'])}"
                     f"{_f(r.get(f'albedo_error_{m}_visible_gain_invariant'))}"
                     f"{_f(r.get(f'albedo_error_{m}_visible_registered'))}"
                     f"{_f(r.get(f'albedo_error_{m}_features_registered'))}"
                     f"{_f(r[f'albedo_error_{m}_hidden'])}{_f(r.get(f'ita_error_{m}'), 9, 2)}"
                     f"{_f(r.get(f'ita_bias_{m}'), 9, 2)}{_f(sh)}{_f(rr)}{_f(ms, 10, 0)}")
    if r.get("albedo_error_carried_visible") is not None:
        lines.append(f"{'carried truth':<20}{_f(r['albedo_error_carried_visible'])}"
                     f"{_f(r.get('albedo_error_carried_visible_gain_invariant'))}"
                     f"   (at the light fit's exposure: "
                     f"{_f(r.get('albedo_error_carried_exposed_visible'), 0)}; "
                     f"blurred, gain-invariant: "
                     f"{_f(r.get('albedo_error_carried_blurred_visible_gain_invariant'), 0)})")
    lines.append(f"{'detail (deg)':<20}{'rel all':>9}{'rel wrnk':>9}{'rel vis':>9}"
                 f"{'rel bare':>9}{'reg all':>9}{'reg wrnk':>9}"
                 f"{'abs all':>9}{'abs wrnk':>9}{'abs vis':>9}{'ms/photo':>10}")
    for d in DETAIL_METHODS:
        if f"detail_error_{d}_deg" not in r:
            continue
        a = "base" if d == "none" else d
        ms = r.get("ms_per_photo_fit_displacement") if d == "fit" else r.get(f"ms_per_photo_{d}")
        label = "net+fit" if d == "net_fit" else d
        lines.append(f"{label:<20}{_f(r[f'detail_error_{d}_deg'], 9, 2)}"
                     f"{_f(r.get(f'detail_error_{d}_wrinkle_deg'), 9, 2)}"
                     f"{_f(r.get(f'detail_error_{d}_visible_deg'), 9, 2)}"
                     f"{_f(r.get(f'detail_error_{d}_bare_deg'), 9, 2)}"
                     f"{_f(r.get(f'detail_error_{d}_registered_deg'), 9, 2)}"
                     f"{_f(r.get(f'detail_error_{d}_wrinkle_registered_deg'), 9, 2)}"
                     f"{_f(r.get(f'normal_error_{a}_deg'), 9, 2)}"
                     f"{_f(r.get(f'normal_error_{a}_wrinkle_deg'), 9, 2)}"
                     f"{_f(r.get(f'normal_error_{a}_visible_deg'), 9, 2)}{_f(ms, 10, 0)}")
    for c, label in (("carried", "carried truth"), ("carried_blurred", "  blurred (hedge)")):
        if r.get(f"detail_error_{c}_wrinkle_deg") is not None:
            lines.append(f"{label:<20}{_f(r.get(f'detail_error_{c}_deg'), 9, 2)}"
                         f"{_f(r[f'detail_error_{c}_wrinkle_deg'], 9, 2)}")
    wv = [f"{'net+fit' if d == 'net_fit' else d} {r[f'detail_error_{d}_wrinkle_visible_deg']:.2f}"
          for d in DETAIL_METHODS + ("carried", "carried_blurred")
          if r.get(f"detail_error_{d}_wrinkle_visible_deg") is not None]
    if wv:
        lines.append("rel wrnk over visible texels only: " + ", ".join(wv))
    rms = {k: [f[k] for f in r.get("per_face", []) if k in f]
           for k in ("truth_displacement_rms", "fit_rate_rms", "drn_rate_rms")}
    if rms["fit_rate_rms"] or rms["drn_rate_rms"]:
        lines.append("displacement RMS over the atlas (IOD / detail units): truth "
                     + ", ".join(f"{name} {np.mean(v):.2e}" for name, v in
                                 zip(("", "fit", "DRN"), rms.values()) if v).strip())
    exposure = [f"{name} {r[k]:.3f}" for name, k in (("B-Net", "exposure_error"),
                                                      ("light fit", "exposure_error_fit"))
                if r.get(k) is not None]
    if exposure:
        lines.append("exposure error |mean front irradiance / truth - 1|: " + ", ".join(exposure))
    if r.get("registration_shift_texels") is not None:
        lines.append("registered (\"reg\"): the truth carried into the pipeline's UV map "
                     "(visible texels); median shift "
                     f"{r['registration_shift_texels']:.1f} texels")
    times = [f"{k[len(TIME_PREFIX):]} {v:.0f}" for k, v in r.items()
             if k.startswith(TIME_PREFIX) and v is not None and np.isfinite(v)]
    if times:
        lines.append("ms per photo (median): " + ", ".join(times))
    by_group = r.get("ita_error_by_group")
    if by_group:
        groups = list(r.get("faces_by_group", {}))
        lines.append("")
        lines.append(f"{'|ITA error| (deg)':<20}" + "".join(f"{g[:10]:>11}" for g in groups)
                     + f"{'bias':>8}")
        lines.append(f"{'  faces':<20}" + "".join(f"{r['faces_by_group'][g]:>11d}" for g in groups))
        for m in ALBEDO_METHODS:
            if m not in by_group:
                continue
            lines.append(f"{_ALBEDO_NAMES[m]:<20}"
                         + "".join(_f(by_group[m].get(g), 11, 2) for g in groups)
                         + _f(r.get(f"ita_bias_{m}"), 8, 2))
    return "\n".join(lines)


def main(argv):
    del argv

    if FLAGS.num_faces < 1:
        print("error: --num_faces must be >= 1", file=sys.stderr)
        return 2
    try:
        difficulty = make_difficulty(**{k: getattr(FLAGS, k) for k in KNOBS})
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    def run():
        return run_benchmark(FLAGS.weights_dir or None, FLAGS.num_faces, FLAGS.seed,
                             FLAGS.image_size, FLAGS.out_dir, FLAGS.ict_npz or None,
                             progress=FLAGS.progress, appearance=FLAGS.appearance or None,
                             difficulty=difficulty, skin_tone=FLAGS.skin_tone or None,
                             fit_options=fit_options_from_flags(),
                             landmark_flip=FLAGS.landmark_flip)

    def table(r):
        return format_table(r) + (f"\ncontact sheet: {r['sheet']}" if r.get("sheet") else "")

    return run_and_report(run, table, FLAGS.json, FLAGS.debug)


if __name__ == "__main__":
    define_flags()
    app.run(main)
