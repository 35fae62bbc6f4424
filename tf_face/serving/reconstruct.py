"""Photo -> reconstruction: geometry pipeline, appearance (per-photo fit and/or
the three networks), detail maps.

``Reconstructor(weights_dir, backend)`` loads once (face model, UV atlas,
MediaPipe TFLite models, B-Net/FAN/DRN on TF or TFLite, the albedo PCA model)
and ``run(image)`` returns a ``Reconstruction``:

* the ``PipelineResult`` (detection, landmarks, fit, UV sample),
* ``NetworkOutputs`` (p_a, SH, albedo_pca, FAN albedo, DRN moving rate),
* the detail maps: ``valid`` [S,S] (atlas texels with a base normal),
  ``displacement_px`` [S,S] (Δd along the base normal, position-map pixels:
  r_d * detail_unit * fit scale), the displaced position map and the detail
  normal map (``tf_face.detail.np_ops``: the one detail-normal formula, also
  used by DRN training in TF and by the export -- base normals plus the
  change the displacement makes, camera frame; its module doc states the
  training vs serving displacement conventions),
* ``timings_ms`` per stage.

``write_reconstruction`` (``tf_face.serving.write``) turns it into files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

from tf_face.detail import model_detail_unit
from tf_face.detail.np_ops import displaced_detail_normals_np
from tf_face.outputs import atomic_output_dir, check_output_free
from tf_face.pipeline import GeometryPipeline, read_inputs
from tf_face.blas import single_blas_thread
from tf_face.serving.backends import NetworkOutputs, make_backend, raw_moving_rate
from tf_face.serving.weights import (DEFAULT_WEIGHTS_DIR, WeightsConfig, WeightsError,
                                     is_release_folder, load_albedo_model, read_weights_config,
                                     resolve_weights_dir)
# TF-loading imports stay in functions: cli.reconstruct imports this at start-up
# (test_import_weight)


@dataclasses.dataclass
class Reconstruction:
    result: object                 # tf_face.pipeline.PipelineResult
    nets: NetworkOutputs
    valid: np.ndarray              # [S, S] bool
    displacement_px: np.ndarray    # [S, S] float32
    displaced_position: np.ndarray  # [S, S, 3] camera frame, pixels
    detail_normals: np.ndarray     # [S, S, 3] camera frame, unit (0 outside valid)
    timings_ms: dict
    appearance_note: str = ""      # a fallback the appearance step took ("" if none)
    mesh_refinement: Optional[dict] = None  # the fit's step 0 (``refinement_json``), if it ran
    # [S, S] bool: texels the fit left out as not the face's skin (hair, a cap), if it ran
    non_skin: Optional[np.ndarray] = None
    # the photo has no colour (a greyscale photo: ``tf_face.skin_tone.is_monochrome``):
    # the albedo is grey and says nothing of the person's skin tone
    photo_monochrome: bool = False


def model_kind(spec: str) -> str:
    return str(spec).split(":", 1)[0]


def detail_maps(sample, atlas_mask, moving_rate, scale: float, detail_unit: float):
    """``(valid, displacement_px, displaced_position, detail_normals)`` (module doc)."""
    n = sample.normals   # texels with a base normal (any component != 0; 3x faster than np.any)
    valid = np.asarray(atlas_mask, bool) & ((n[..., 0] != 0) | (n[..., 1] != 0) | (n[..., 2] != 0))
    disp = (np.asarray(moving_rate, np.float64) * float(scale) * float(detail_unit)
            * valid).astype(np.float32)
    moved, normals = displaced_detail_normals_np(sample.position, sample.normals, disp, valid)
    return valid, disp, moved, normals


APPEARANCE_MODES = ("fit", "net", "net+fit")


def default_appearance() -> str:
    """``net+fit`` where the package ships its release weights (it does: the
    networks start the per-photo fit, the best-measuring path within 2 s per
    photo), else ``fit`` (no weights needed)."""
    return "net+fit" if is_release_folder(DEFAULT_WEIGHTS_DIR) else "fit"


DEFAULT_APPEARANCE = default_appearance()


def fit_only_config(face_model, model_spec: str, uv_size: int, max_rate: float):
    """The ``WeightsConfig`` of a run without weights (``--appearance=fit``)."""
    return WeightsConfig(folder=None, model=str(model_spec), num_albedo=-1, uv_size=int(uv_size),
                         color_space="linear", detail_unit=model_detail_unit(face_model),
                         drn_max_displacement=float(max_rate), raw={})


class _NoNetworks:
    """Stands in for a network backend when ``appearance="fit"``."""
    name = "none (per-photo fit)"


class Reconstructor:
    """Everything loaded once; ``run`` per photo (see the module doc).

    ``appearance``: ``"fit"`` (the per-photo analysis-by-synthesis of
    ``tf_face.appearance``, no weights needed), ``"net"`` (B-Net/FAN/DRN from
    ``weights_dir``, default: the shipped release weights) or ``"net+fit"``
    (the networks' outputs start the fit); default ``DEFAULT_APPEARANCE``
    (``default_appearance()``).

    ``fuse_networks`` (TF backend): B-Net, FAN and DRN in one ``tf.function``
    call (default) or one call each (per-network timings).
    ``limit_blas_threads`` (default on): geometry, networks and detail maps
    run with BLAS on one thread (``tf_face.blas``); off only to measure it.
    ``parallel_host_stages`` (default on; ``appearance="net"``): the detail
    maps run on a second thread while B-Net's albedo is composed (two
    memory-bound numpy steps, 2.4 + 4 ms alone, ~4.6 ms together on 2 cores);
    the stage timings ``albedo_pca`` and ``detail_maps`` then overlap. Off:
    one after the other (to measure it).
    """

    def __init__(self, weights_dir=None, backend: str = "tf", model: Optional[str] = None,
                 tflite_precision: str = "float32", tflite_dir=None, num_threads=None,
                 min_cos: float = 0.2, fit_options=None, log=print,
                 appearance: str = DEFAULT_APPEARANCE, appearance_options=None,
                 uv_size: int = 256, fuse_networks: bool = True,
                 limit_blas_threads: bool = True, parallel_host_stages: bool = True):
        if appearance not in APPEARANCE_MODES:
            raise ValueError(f"appearance must be one of {APPEARANCE_MODES}, got {appearance!r}")
        t0 = time.perf_counter()
        self.appearance, self.log = appearance, log
        self._blas = single_blas_thread if limit_blas_threads else contextlib.nullcontext
        self.parallel_host_stages = bool(parallel_host_stages)
        self._helper = None   # the detail maps' thread (parallel_host_stages), made on first use
        uses_nets = appearance != "fit"
        if uses_nets:
            self.weights_dir = resolve_weights_dir(weights_dir)
            self.cfg = read_weights_config(self.weights_dir)
            if model is not None and model_kind(model) != model_kind(self.cfg.model):
                raise WeightsError(
                    f"the weights in {self.weights_dir} were trained with --model={self.cfg.model}; "
                    f"--model={model} has another UV layout/albedo model (omit --model or pass "
                    "one of the same kind)")
            if appearance == "net+fit" and self.cfg.color_space != "linear":
                raise WeightsError(f"--appearance=net+fit needs weights trained in linear RGB; "
                                   f"{self.weights_dir} uses {self.cfg.color_space}")
            spec, size = model or self.cfg.model, self.cfg.uv_size
        else:
            self.weights_dir = None
            spec, size = model or "default", int(uv_size)
        self.pipeline = GeometryPipeline(spec, uv_size=size, min_cos=min_cos,
                                         fit_options=fit_options)
        self.model, self.atlas = self.pipeline.model, self.pipeline.atlas
        self.fitter = None
        if uses_nets:
            self.albedo_model = load_albedo_model(self.cfg, self.model)
            kwargs = {"fused": fuse_networks} if backend == "tf" else {}
            if backend == "tflite":
                kwargs = {"precision": tflite_precision, "tflite_dir": tflite_dir,
                          "num_threads": num_threads, "log": log}
            self.backend = make_backend(backend, self.weights_dir, self.cfg, self.albedo_model,
                                        **kwargs)
            # trace the tf.functions / allocate the interpreters now, so that the
            # first photo's timings are warm like the others
            self.backend(np.zeros((self.cfg.uv_size, self.cfg.uv_size, 3), np.float32))
        else:
            from tf_face.uv.albedo_model import uv_albedo_model
            self.albedo_model = uv_albedo_model(self.model, self.atlas)
            self.backend = _NoNetworks()
        if appearance != "net":
            from tf_face.appearance import AppearanceFitter, AppearanceOptions
            opts = appearance_options or AppearanceOptions()
            if not uses_nets:
                self.cfg = fit_only_config(self.model, spec, size, opts.displacement.max_rate)
            self.fitter = AppearanceFitter.for_model(self.albedo_model, self.model, self.atlas,
                                                     self.cfg.detail_unit, opts)
            self.fitter.warm_up()
        self.load_ms = (time.perf_counter() - t0) * 1e3

    @property
    def color_space(self) -> str:
        return self.cfg.color_space

    def _detail_maps_timed(self, result, moving_rate) -> tuple:
        t = time.perf_counter()
        maps = detail_maps(result.sample, self.atlas.mask, moving_rate, result.fitted.scale,
                           self.cfg.detail_unit)
        return maps, (time.perf_counter() - t) * 1e3

    def _run_networks_only(self, result) -> tuple:
        """``appearance="net"``: the networks, then B-Net's albedo on this thread
        and the detail maps on the helper thread (``parallel_host_stages``)."""
        with self._blas():
            raw, timings = self.backend.run_raw(result.sample.texture)
            rate = raw_moving_rate(raw)
            if not self.parallel_host_stages:
                nets = self.backend.compose(raw, timings)
                maps, detail_ms = self._detail_maps_timed(result, rate)
                return nets, maps, detail_ms, ""
            if self._helper is None:
                self._helper = ThreadPoolExecutor(1, thread_name_prefix="tf_face-detail-maps")
            job = self._helper.submit(self._detail_maps_timed, result, rate)
            try:
                nets = self.backend.compose(raw, timings)
            finally:
                maps, detail_ms = job.result()
        return nets, maps, detail_ms, ""

    def run_networks(self, result, stage1=None) -> tuple:
        """(appearance outputs, detail maps, detail-map ms, note, non-skin mask or
        None): networks and/or fit. ``stage1``: the fit's stage 1 from the mesh
        refinement (``AlignResult.light_albedo``; ``AppearanceFitter.fit``)."""
        from tf_face.appearance import AppearanceFitError

        if self.appearance == "net":
            return self._run_networks_only(result) + (None,)
        # the networks with BLAS on one thread: spinning OpenBLAS workers left by the
        # geometry stages would take a core from TF (tf_face.blas)
        with self._blas():
            nets = self.backend(result.sample.texture) if self.appearance == "net+fit" else None
        note, non_skin = "", None
        if self.fitter is not None:
            try:
                fit = self.fitter.fit(result.sample, result.fitted.scale, init=nets,
                                       stage1=stage1)
            except AppearanceFitError as e:
                if nets is None:
                    raise
                note = f"appearance fit failed ({e}); using the networks' outputs"
                self.log(f"warning: {note}")
            else:
                note, non_skin = fit.fallback, fit.non_skin
                if note:
                    self.log(f"warning: {note}")
                timings = dict(nets.timings_ms) if nets is not None else {}
                timings.update(fit.timings_ms)
                nets = NetworkOutputs(p_a=fit.p_a, sh=fit.sh, albedo_pca=fit.albedo_pca,
                                      albedo=fit.albedo, moving_rate=fit.moving_rate,
                                      timings_ms=timings)
        with self._blas():
            maps, detail_ms = self._detail_maps_timed(result, nets.moving_rate)
        return nets, maps, detail_ms, note, non_skin

    def run(self, image: np.ndarray, landmarks=None, face_index: int = 0) -> Reconstruction:
        """One photo. The geometry, the networks and the detail maps run with BLAS
        on one thread (small products; tf_face.blas says why), the appearance fit
        with the library's threads."""
        with self._blas():
            result = self.pipeline.run(image, landmarks=landmarks, face_index=face_index)
        refinement = al = None
        if self.fitter is not None:   # the mesh refined against the photo (--fit_align)
            result, al = self.fitter.align(image, result, self.model, self.atlas,
                                           self.pipeline.min_cos)
            refinement = refinement_json(al)
        nets, (valid, disp, moved, normals), detail_ms, note, non_skin = self.run_networks(
            result, stage1=getattr(al, "light_albedo", None))
        timings = {k: v for k, v in result.timings_ms.items() if k != "total"}
        timings.update(nets.timings_ms)
        timings["detail_maps"] = detail_ms
        monochrome = photo_is_monochrome(result.sample)
        if monochrome:
            self.log(f"warning: {MONOCHROME_WARNING}")
        return Reconstruction(result, nets, valid, disp, moved, normals, timings, note,
                              refinement, non_skin, monochrome)


MONOCHROME_WARNING = ("the photo has no colour (greyscale): the albedo is grey and "
                      "says nothing of the person's skin tone")


def photo_is_monochrome(sample) -> bool:
    """Whether the unwrapped face (``sample.texture``, sRGB, on its visible
    texels ``sample.mask``) has no colour (``tf_face.skin_tone.is_monochrome``)."""
    from tf_face.skin_tone import is_monochrome
    from tf_face.srgb import srgb_to_linear

    tex = np.clip(np.asarray(sample.texture, np.float64), 0.0, 1.0)
    return is_monochrome(srgb_to_linear(tex), np.asarray(sample.mask, bool))


def refinement_json(al) -> Optional[dict]:
    """What the mesh refinement did (``tf_face.appearance.align.AlignResult``;
    None when it did not run): its stages, whether the new mesh was kept,
    E_pixel before/after (mean L1 per texel, linear RGB), the rigid change
    and the median/largest vertex move of the warp (px)."""
    if al is None:
        return None
    move = (np.linalg.norm(np.asarray(al.delta, np.float64), axis=1)
            if al.delta is not None else np.zeros(1))
    fin = lambda v: float(v) if np.isfinite(v) else None  # noqa: E731
    return {"stages": list(al.stages), "kept": bool(al.kept),
            "energy_before": fin(al.energy_before), "energy_after": fin(al.energy_after),
            "rotation_rad": [float(v) for v in al.theta[:3]], "log_scale": float(al.theta[3]),
            "translation_px": [float(v) for v in al.theta[4:6]],
            "vertex_move_px_median": float(np.median(move)),
            "vertex_move_px_max": float(np.max(move))}


def reconstruct_one(recon, image_path, out_dir, landmarks_path=None, face_index=0,
                    overwrite=False, renders="all", inputs=None) -> dict:
    """Reconstruct one photo into ``out_dir`` (atomically); returns write info.

    An occupied ``out_dir`` (without ``overwrite``) fails before any work.
    ``inputs``: ``tf_face.pipeline.read_inputs``' result when the caller
    checked them already.
    """
    from tf_face.serving.write import write_reconstruction

    check_output_free(out_dir, overwrite)
    image, landmarks = inputs if inputs is not None else read_inputs(image_path,
                                                                     landmarks_path)
    rec = recon.run(image, landmarks=landmarks, face_index=face_index)
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        return write_reconstruction(tmp, image, rec, recon, title=Path(image_path).name,
                                    renders=renders)
