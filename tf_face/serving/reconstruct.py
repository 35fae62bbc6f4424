"""Photo -> reconstruction: geometry pipeline, the three networks, detail maps.

``Reconstructor(weights_dir, backend)`` loads once (face model, UV atlas,
MediaPipe TFLite models, B-Net/FAN/DRN on TF or TFLite, the albedo PCA model)
and ``run(image)`` returns a ``Reconstruction``:

* the ``PipelineResult`` (detection, landmarks, fit, UV sample),
* ``NetworkOutputs`` (p_a, SH, albedo_pca, FAN albedo, DRN moving rate),
* the detail maps: ``valid`` [S,S] (atlas texels with a base normal),
  ``displacement_px`` [S,S] (Δd along the base normal, position-map pixels:
  r_d * detail_unit * fit scale), the displaced position map and the detail
  normal map (``tf_face.serving.detail``: the one detail-normal formula, also
  used by DRN training in TF and by the export -- base normals plus the
  change the displacement makes, camera frame; its module doc states the
  training vs serving displacement conventions),
* ``timings_ms`` per stage.

``write_reconstruction`` (``tf_face.serving.write``) turns it into files.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Optional

import numpy as np

from tf_face.serving.backends import NetworkOutputs, make_backend
from tf_face.serving.weights import (WeightsError, load_albedo_model, read_weights_config,
                                     resolve_weights_dir)


@dataclasses.dataclass
class Reconstruction:
    result: object                 # tf_face.pipeline.PipelineResult
    nets: NetworkOutputs
    valid: np.ndarray              # [S, S] bool
    displacement_px: np.ndarray    # [S, S] float32
    displaced_position: np.ndarray  # [S, S, 3] camera frame, pixels
    detail_normals: np.ndarray     # [S, S, 3] camera frame, unit (0 outside valid)
    timings_ms: dict


def model_kind(spec: str) -> str:
    return str(spec).split(":", 1)[0]


def detail_maps(sample, atlas_mask, moving_rate, scale: float, detail_unit: float):
    """``(valid, displacement_px, displaced_position, detail_normals)`` (module doc)."""
    from tf_face.serving.detail import detail_normals_np, displace_np

    valid = np.asarray(atlas_mask, bool) & np.any(sample.normals != 0, axis=-1)
    disp = (np.asarray(moving_rate, np.float64) * float(scale) * float(detail_unit)
            * valid).astype(np.float32)
    moved = displace_np(sample.position, sample.normals, disp, valid)
    normals = detail_normals_np(moved, sample.position, sample.normals, valid)
    return valid, disp, moved, normals


class Reconstructor:
    """Everything loaded once; ``run`` per photo (see the module doc)."""

    def __init__(self, weights_dir=None, backend: str = "tf", model: Optional[str] = None,
                 tflite_precision: str = "float32", tflite_dir=None, num_threads=None,
                 min_cos: float = 0.2, fit_options=None, log=print):
        from tf_face.pipeline import GeometryPipeline

        t0 = time.perf_counter()
        self.weights_dir = resolve_weights_dir(weights_dir)
        self.cfg = read_weights_config(self.weights_dir)
        if model is not None and model_kind(model) != model_kind(self.cfg.model):
            raise WeightsError(
                f"the weights in {self.weights_dir} were trained with --model={self.cfg.model}; "
                f"--model={model} has another UV layout/albedo model (omit --model or pass "
                "one of the same kind)")
        self.pipeline = GeometryPipeline(model or self.cfg.model, uv_size=self.cfg.uv_size,
                                         min_cos=min_cos, fit_options=fit_options)
        self.model, self.atlas = self.pipeline.model, self.pipeline.atlas
        self.albedo_model = load_albedo_model(self.cfg, self.model)
        kwargs = {}
        if backend == "tflite":
            kwargs = {"precision": tflite_precision, "tflite_dir": tflite_dir,
                      "num_threads": num_threads, "log": log}
        self.backend = make_backend(backend, self.weights_dir, self.cfg, self.albedo_model,
                                    **kwargs)
        # trace the tf.functions / allocate the interpreters now, so that the
        # first photo's timings are warm like the others
        self.backend(np.zeros((self.cfg.uv_size, self.cfg.uv_size, 3), np.float32))
        self.load_ms = (time.perf_counter() - t0) * 1e3

    @property
    def color_space(self) -> str:
        return self.cfg.color_space

    def run_networks(self, result) -> tuple:
        nets = self.backend(result.sample.texture)
        t = time.perf_counter()
        maps = detail_maps(result.sample, self.atlas.mask, nets.moving_rate,
                           result.fitted.scale, self.cfg.detail_unit)
        return nets, maps, (time.perf_counter() - t) * 1e3

    def run(self, image: np.ndarray, landmarks=None, face_index: int = 0) -> Reconstruction:
        result = self.pipeline.run(image, landmarks=landmarks, face_index=face_index)
        nets, (valid, disp, moved, normals), detail_ms = self.run_networks(result)
        timings = {k: v for k, v in result.timings_ms.items() if k != "total"}
        timings.update(nets.timings_ms)
        timings["detail_maps"] = detail_ms
        return Reconstruction(result, nets, valid, disp, moved, normals, timings)


def reconstruct_one(recon, image_path, out_dir, landmarks_path=None, face_index=0,
                    overwrite=False, renders=True, inputs=None) -> dict:
    """Reconstruct one photo into ``out_dir`` (atomically); returns write info.

    An occupied ``out_dir`` (without ``overwrite``) fails before any work.
    ``inputs``: ``tf_face.pipeline.read_inputs``' result when the caller
    checked them already.
    """
    from tf_face.outputs import atomic_output_dir, check_output_free
    from tf_face.pipeline import read_inputs
    from tf_face.serving.write import write_reconstruction

    check_output_free(out_dir, overwrite)
    image, landmarks = inputs if inputs is not None else read_inputs(image_path,
                                                                     landmarks_path)
    rec = recon.run(image, landmarks=landmarks, face_index=face_index)
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        return write_reconstruction(tmp, image, rec, recon, title=Path(image_path).name,
                                    renders=renders)
