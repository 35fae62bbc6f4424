"""Real-photo report: how well each appearance path explains real photos.

    python eval/real_photos.py --image_dir=DIR --json=PATH --out_dir=PICS \\
        [--weights_dir=W] [--recursive] [--rows_per_sheet=12]

There is no ground truth for a real photo, so two things are measured per
photo (the largest face; ``GeometryPipeline("default")``: detect ->
landmarks -> fit -> unwrap):

* ``rerender_error_<m>``: how well the albedo, the SH light and the normals
  of path ``m`` explain the photo -- mean |texture - re-render| over the
  visible texels and the three channels, **in sRGB** (the re-render
  ``albedo x SH shading`` is computed in linear RGB, as every path works,
  then encoded to sRGB and clipped to [0, 1]; the texture is the photo's
  own sRGB values). Visible = the pipeline's visibility & the UV atlas &
  a base normal.
* ``rerender_error_<m>_skin``: the same over the visible texels the fit
  found to be the face's skin (``AppearanceResult.non_skin`` left out: a
  fringe, a cap; ``non_skin_fraction`` of the visible texels), with the fit.
  The fit leaves those texels out of its objective, so over all visible
  texels it no longer reproduces the hair, and that error rises with it.
* ``light_cast_fraction_fit`` / ``light_negative_fraction_fit``: how far
  the fit's light is from one colour: the shares of the face's texels (the
  atlas, base normals, hidden ones included) whose irradiance has one
  channel below 0.6x another, or a negative one
  (``tf_face.eval_metrics.light_colour_cast``); a tinted re-render (teal
  nostrils or rims) shows up here.
* ``ita_<m>``: the albedo's skin tone, ITA° of its mean linear colour over
  the cheeks + forehead (``tf_face.skin_tone.skin_ita`` with
  ``face_skin_mask``), and ``tone_group_<m>`` its ITA group.
  ``ita_texture`` is the same over the visible part of that mask of the
  photo's texture (shading included): not a truth, a reference for what
  the photo shows.

Paths ``m`` (a path that was not run is absent from the JSON, never zero or
null):

* ``pca_fit``: the per-photo fit's PCA albedo ``m_a + U_a p_a`` and light
  (``tf_face.appearance.fit``, step 1), base normals;
* ``fit``: the per-photo fit's albedo map, its light and its detail normals
  (``tf_face.serving.reconstruct.detail_maps`` of the fitted moving rate);
* ``pca``: B-Net's ``R_a`` and SH (``--weights_dir`` only), base normals;
* ``fan``: FAN's albedo with B-Net's SH (``--weights_dir`` only), base normals.

Network albedos are in the weights' colour space (``color_space`` in their
config); an sRGB-trained network's albedo is shaded in sRGB as in its
training and converted to linear for its ITA.

Per photo also ``ms_geometry_<stage>`` (``PipelineResult.timings_ms``),
``ms_<stage>`` of the fit (``AppearanceResult.timings_ms``: fit_light_albedo,
fit_displacement, fit_albedo_map; ``ms_fit_align``: the mesh refinement
before them, ``AppearanceFitter.align``; ``ms_fit_total`` the sum of all four) and
``ms_net_<stage>`` (``NetworkOutputs.timings_ms``: ``networks``, the three in
one call on TF, and ``albedo_pca``; ``ms_net_total`` their sum). A photo the pipeline
rejects goes to ``failures`` with its one-line error; a photo whose
appearance fit fails keeps its geometry and network results and gets
``fit_error`` (one line) instead of the fit keys.

Detail: ``<d>_rate_rms`` per photo, the RMS of the moving-rate map (detail
units) over the atlas, for d = ``fit`` and (with weights) ``drn``; and in the
summary ``cross_photo_rate_correlation_<d>``: the mean over every pair of
photos of the Pearson correlation of their rate maps over the texels visible
in both. Different people have different wrinkles, so a detail method that
follows the photo scores near 0 and one that draws the same wrinkles on
everyone (a template) near 1; the fit, which has no learned template, is
the baseline beside DRN.

Summary: the mean of every per-photo number over the photos that have it
(``mean_<key>``), ``fit_beats_pca_fit_on`` = the number of photos where
``rerender_error_fit < rerender_error_pca_fit`` (and ``fit_beats_pca_on``
vs B-Net with weights) out of ``photos_compared_*``. A photo without colour
(a greyscale photo, ``tf_face.skin_tone.is_monochrome``) gets ``monochrome``
true and no ITA or tone group (its albedo is grey whoever it shows); the
summary lists them in ``monochrome_photos``.

With ``--out_dir``, contact sheets ``real_photos_sheet_<k>.png`` (at most
``--rows_per_sheet`` rows each): photo crop | unwrapped texture | fit
albedo (sRGB) | fit re-render (visible texels) | fit detail shading (grey
albedo under one fixed light with the fit's detail normals, as in
``eval/synthetic_benchmark.py``), the photo's name and ITAs written on its
row; with weights a FAN albedo and a DRN detail shading column follow.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from absl import flags
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from eval.synthetic_benchmark import _grey_shading, served_detail_normals  # noqa: E402
from tf_face.cli.fit_flags import define_fit_flags, fit_options_from_flags  # noqa: E402
from tf_face.cli.common import (IMAGE_SUFFIXES, describe_error, list_images,  # noqa: E402
                                run_single)
from tf_face.detail import model_detail_unit  # noqa: E402
from tf_face.errors import TfFaceError  # noqa: E402
from tf_face.eval_metrics import json_safe  # noqa: E402,F401 - tests use it from here
from tf_face.eval_metrics import (light_colour_cast, masked_mae,  # noqa: E402
                                  write_result_json)
from tf_face.pipeline import GeometryPipeline, read_inputs  # noqa: E402
from tf_face.serving.reconstruct import (Reconstructor, model_kind,  # noqa: E402
                                         photo_is_monochrome)
from tf_face.skin_tone import face_skin_mask, skin_ita, tone_group  # noqa: E402
from tf_face.srgb import linear_to_srgb  # noqa: E402
# TF-loading imports stay in functions, run after main's quiet_tensorflow() (test_import_weight)
if __name__ == "__main__":   # a script: TensorFlow without its start-up noise
    from tf_face.tf_import import quiet_tensorflow
    quiet_tensorflow()

#: appearance paths, in table order
PATHS = ("pca", "pca_fit", "fan", "fit")
NETWORK_PATHS = ("pca", "fan")


def define_flags() -> None:
    """The CLI flags (defined only when run as a script)."""
    flags.DEFINE_string("image_dir", None, "Folder of photos.")
    flags.DEFINE_bool("recursive", False, "Also take the photos of sub-folders.")
    flags.DEFINE_string("json", None, "Write the results here.")
    flags.DEFINE_string("out_dir", None, "Write the contact sheets (PNG) here.")
    flags.DEFINE_string("weights_dir", None,
                        "Trained weights (optional): adds B-Net's PCA and FAN's albedo.")
    flags.DEFINE_integer("rows_per_sheet", 12, "Photos per contact-sheet file.")
    flags.DEFINE_bool("progress", True, "Show a progress bar (--noprogress: none).")
    flags.DEFINE_bool("debug", False, "Show the traceback of an error (with the exception it wraps).")
    define_fit_flags()


# ------------------------------------------------------------------ inputs
def list_photos(image_dir, recursive: bool = False) -> list[Path]:
    """Image files of ``image_dir`` (and its sub-folders with ``recursive``),
    sorted; hidden files/folders and non-images (e.g. landmark txt files) skipped."""
    d = Path(image_dir)
    if not recursive:
        return list_images(d)
    if not d.is_dir():
        raise TfFaceError(f"--image_dir {d} is not a directory")
    return sorted(p for p in d.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(d).parts))


# ------------------------------------------------------------------ metrics
def shade(albedo, normals, sh) -> np.ndarray:
    """``albedo x SH shading`` [S, S, 3] with the render op (``tf_face.render.sh_shade``)."""
    from tf_face.render import sh_shade
    return sh_shade(np.asarray(albedo, np.float32)[None], np.asarray(normals, np.float32)[None],
                    np.asarray(sh, np.float32)[None])[0].numpy()


def rerender_error_srgb(texture_srgb, rerender, mask, rerender_space: str = "linear") -> float:
    """Mean |texture - re-render| in sRGB over ``mask`` texels and the 3 channels.

    ``rerender`` is in ``rerender_space`` ("linear": encoded to sRGB first;
    "srgb": clipped to [0, 1]). NaN for an empty mask."""
    r = np.asarray(rerender, np.float64)
    r = linear_to_srgb(r) if rerender_space == "linear" else np.clip(r, 0.0, 1.0)
    return masked_mae(r, np.clip(np.asarray(texture_srgb, np.float64), 0.0, 1.0), mask)[0]


def visible_texels(sample, atlas_mask) -> np.ndarray:
    return (np.asarray(sample.mask, bool) & np.asarray(atlas_mask, bool)
            & np.any(np.asarray(sample.normals) != 0, -1))


def _finite_or_none(x):
    x = float(x)
    return x if np.isfinite(x) else None


def _ita_keys(out: dict, name: str, albedo_linear, mask) -> None:
    """``ita_<name>`` and ``tone_group_<name>``; None for a photo without colour
    (``out["monochrome"]``): a grey albedo's ITA is +/-90 deg whoever it is."""
    ita = float("nan") if out.get("monochrome") else skin_ita(albedo_linear, mask)
    out[f"ita_{name}"] = _finite_or_none(ita)
    out[f"tone_group_{name}"] = tone_group(ita) if np.isfinite(ita) else None


# ------------------------------------------------------------------ evaluator
class RealPhotoEvaluator:
    """Geometry pipeline + per-photo appearance fit (+ networks with weights),
    loaded once; ``evaluate(image, name)`` per photo."""

    def __init__(self, weights_dir=None, pipeline=None, fit_options=None):
        """``pipeline``: a ``GeometryPipeline("default")`` to reuse (ignored with
        weights: the ``Reconstructor``'s is used); ``fit_options``: the fit's
        ``AppearanceOptions`` (default: its defaults)."""
        from tf_face.appearance.fit import AppearanceFitter
        from tf_face.uv.albedo_model import uv_albedo_model

        self.recon = None
        if weights_dir:
            # the networks only: this report runs the fit itself, from scratch
            self.recon = Reconstructor(weights_dir, log=lambda *a, **k: None, appearance="net")
            pipeline = self.recon.pipeline
            if model_kind(self.recon.cfg.model) != "default":
                raise TfFaceError(
                    f"the weights use --model={self.recon.cfg.model}; the skin mask "
                    "(cheeks + forehead) is in the default model's UV space")
        self.pipe = pipeline if pipeline is not None else GeometryPipeline("default")
        self.atlas = self.pipe.atlas
        self.detail_unit = model_detail_unit(self.pipe.model)
        self.albedo_model = uv_albedo_model(self.pipe.model, self.atlas)
        self.fitter = AppearanceFitter.for_model(self.albedo_model, self.pipe.model, self.atlas,
                                                 self.detail_unit, fit_options)
        self.fitter.warm_up()   # so the first photo's ms_fit_* are warm like the others
        self.skin_mask = face_skin_mask(self.atlas.mask.shape[0]) & np.asarray(self.atlas.mask,
                                                                               bool)

    @property
    def has_networks(self) -> bool:
        return self.recon is not None

    def evaluate(self, image, name: str = "") -> tuple[dict, dict]:
        """``(record, pictures)`` of one RGB uint8 photo; pipeline errors raise."""
        from tf_face.appearance.fit import AppearanceFitError, srgb_to_linear_np

        res = self.pipe.run(image)
        res, al = self.fitter.align(image, res, self.pipe.model, self.atlas, self.pipe.min_cos)
        sample, scale = res.sample, float(res.fitted.scale)
        vis = visible_texels(sample, self.atlas.mask)
        tex = np.asarray(sample.texture, np.float32)
        rec = {"photo": name, "visible_texels": int(vis.sum()),
               "landmark_rmse_iod": _finite_or_none(getattr(res.fitted, "landmark_rmse_iod",
                                                            np.nan))}
        rec = {k: v for k, v in rec.items() if v is not None}
        rec["monochrome"] = photo_is_monochrome(sample)
        _ita_keys(rec, "texture", srgb_to_linear_np(tex), self.skin_mask & vis)
        for k, v in res.timings_ms.items():
            if k != "align":
                rec[f"ms_geometry_{k}"] = float(v)
        ms_align = float(res.timings_ms.get("align", 0.0))
        pics = {"image": image, "result": res, "vis": vis}

        rerenders = {}        # path -> (re-render, its space), for the skin-only errors
        if self.recon is not None:
            nets = self.recon.backend(tex)
            space = self.recon.color_space
            to_lin = (lambda a: a) if space == "linear" else srgb_to_linear_np
            for m, albedo in (("pca", nets.albedo_pca), ("fan", nets.albedo)):
                rr = shade(albedo, sample.normals, nets.sh)
                rerenders[m] = (rr, space)
                rec[f"rerender_error_{m}"] = _finite_or_none(
                    rerender_error_srgb(tex, rr, vis, space))
                _ita_keys(rec, m, to_lin(albedo), self.skin_mask)
            for k, v in nets.timings_ms.items():
                rec[f"ms_net_{k}"] = float(v)
            # "networks" holds bnet/fan/drn when a backend also times them apart
            rec["ms_net_total"] = float(nets.timings_ms["networks"]
                                        + nets.timings_ms.get("albedo_pca", 0.0))
            pics["fan"] = np.asarray(to_lin(nets.albedo), np.float32)
            pics["drn_rate"] = np.asarray(nets.moving_rate, np.float32)
            rec["drn_rate_rms"] = _rate_rms(pics["drn_rate"], self.atlas.mask)
            pics["drn_detail_normals"] = served_detail_normals(
                sample, self.atlas.mask, pics["drn_rate"], scale, self.detail_unit
            ).astype(np.float32)

        try:
            r = self.fitter.fit(sample, scale, stage1=getattr(al, "light_albedo", None))
        except AppearanceFitError as e:
            rec["fit_error"] = str(e)
            return rec, pics
        detail_normals = served_detail_normals(sample, self.atlas.mask, r.moving_rate, scale,
                                               self.detail_unit).astype(np.float32)
        rr_pca = shade(r.albedo_pca, sample.normals, r.sh)
        rr_fit = shade(r.albedo, detail_normals, r.sh)
        rec["rerender_error_pca_fit"] = _finite_or_none(rerender_error_srgb(tex, rr_pca, vis))
        rec["rerender_error_fit"] = _finite_or_none(rerender_error_srgb(tex, rr_fit, vis))
        # the same over the texels the fit found to be skin (one mask for every path)
        non_skin = np.zeros_like(vis) if r.non_skin is None else np.asarray(r.non_skin, bool)
        rec["non_skin_fraction"] = float((vis & non_skin).sum() / max(int(vis.sum()), 1))
        rerenders.update({"pca_fit": (rr_pca, "linear"), "fit": (rr_fit, "linear")})
        for m, (rr, space) in rerenders.items():
            rec[f"rerender_error_{m}_skin"] = _finite_or_none(
                rerender_error_srgb(tex, rr, vis & ~non_skin, space))
        _ita_keys(rec, "pca_fit", r.albedo_pca, self.skin_mask)
        _ita_keys(rec, "fit", r.albedo, self.skin_mask)
        cast, negative = light_colour_cast(sample.normals, r.sh, self.atlas.mask)
        rec["light_cast_fraction_fit"] = _finite_or_none(cast)
        rec["light_negative_fraction_fit"] = _finite_or_none(negative)
        for k, v in r.timings_ms.items():
            rec[f"ms_{k}"] = float(v)
        rec["ms_fit_align"] = ms_align
        rec["ms_fit_total"] = float(sum(r.timings_ms.values())) + ms_align
        rec["fit_rate_rms"] = _rate_rms(r.moving_rate, self.atlas.mask)
        pics.update({"albedo": r.albedo, "rerender": rr_fit, "detail_normals": detail_normals,
                     "fit_rate": np.asarray(r.moving_rate, np.float32)})
        return rec, pics


def _rate_rms(rate, atlas_mask) -> float:
    r = np.asarray(rate, np.float64)[np.asarray(atlas_mask, bool)]
    return float(np.sqrt(np.mean(np.square(r)))) if r.size else float("nan")


def cross_photo_correlation(maps, masks, min_texels: int = 100):
    """Mean over every pair (i < j) of the Pearson correlation of ``maps[i]`` and
    ``maps[j]`` over ``masks[i] & masks[j]`` (pairs with fewer than ``min_texels``
    common texels or a constant map there are skipped); None without a pair.
    1 = the same pattern on every photo, 0 = unrelated patterns."""
    flat = [np.asarray(m, np.float64).ravel() for m in maps]
    keep = [np.asarray(k, bool).ravel() for k in masks]
    vals = []
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            both = keep[i] & keep[j]
            if both.sum() < min_texels:
                continue
            a, b = flat[i][both], flat[j][both]
            a, b = a - a.mean(), b - b.mean()
            den = np.sqrt((a @ a) * (b @ b))
            if den > 0:
                vals.append(float(a @ b / den))
    return float(np.mean(vals)) if vals else None


# ------------------------------------------------------------------ summary
def summarize(per_photo: list, failures: list, num_photos: int) -> dict:
    """Means of every per-photo number (``mean_<key>``) and the fit-vs-PCA counts."""
    keys = []
    for rec in per_photo:
        for k, v in rec.items():
            if (k not in keys and isinstance(v, (int, float)) and not isinstance(v, bool)):
                keys.append(k)
    out = {}
    for k in keys:
        vals = [float(r[k]) for r in per_photo
                if isinstance(r.get(k), (int, float)) and np.isfinite(r[k])]
        if vals:
            out[f"mean_{k}"] = float(np.mean(vals))
    for base in ("pca_fit", "pca"):
        pairs = [(r["rerender_error_fit"], r[f"rerender_error_{base}"]) for r in per_photo
                 if r.get("rerender_error_fit") is not None
                 and r.get(f"rerender_error_{base}") is not None]
        if pairs:
            out[f"fit_beats_{base}_on"] = int(sum(a < b for a, b in pairs))
            out[f"photos_compared_{base}"] = len(pairs)
    fit_failures = [{"photo": r["photo"], "error": r["fit_error"]} for r in per_photo
                    if "fit_error" in r]
    # greyscale photos: no ITA (``_ita_keys``), listed so nobody wonders where it went
    out["monochrome_photos"] = [r["photo"] for r in per_photo if r.get("monochrome")]
    out.update({"photos": num_photos, "photos_evaluated": len(per_photo),
                "num_failures": len(failures), "failures": failures,
                "num_fit_failures": len(fit_failures), "fit_failures": fit_failures})
    return out




# ------------------------------------------------------------------ pictures
_TILE = 256
SHEET_COLUMNS = ("photo", "texture", "fit albedo", "fit re-render", "fit detail shading")
NETWORK_COLUMNS = ("FAN albedo", "DRN detail shading")


def _srgb_tile(linear, mask) -> np.ndarray:
    img = (linear_to_srgb(linear) * 255).round().astype(np.uint8)
    img[~np.asarray(mask, bool)] = 0
    return img


def _photo_crop(image, result) -> np.ndarray:
    lm = np.asarray(result.landmarks)[:, :2]
    lo, hi = lm.min(0), lm.max(0)
    c, half = 0.5 * (lo + hi), 0.65 * float(np.max(hi - lo))
    h, w = image.shape[:2]
    x0, y0 = int(max(c[0] - half, 0)), int(max(c[1] - half, 0))
    x1, y1 = int(min(c[0] + half, w)), int(min(c[1] + half, h))
    crop = image[y0:y1, x0:x1] if (x1 > x0 + 4 and y1 > y0 + 4) else image
    # keep the aspect ratio: pad to a square
    ch, cw = crop.shape[:2]
    s = max(ch, cw)
    sq = np.zeros((s, s, 3), np.uint8)
    sq[(s - ch) // 2:(s - ch) // 2 + ch, (s - cw) // 2:(s - cw) // 2 + cw] = crop[..., :3]
    return cv2.resize(sq, (_TILE, _TILE), interpolation=cv2.INTER_AREA)


def _label(tile, lines) -> np.ndarray:
    tile = tile.copy()
    h = 16 * len(lines) + 6
    tile[-h:] = (tile[-h:].astype(np.float32) * 0.35).astype(np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(tile, text, (4, _TILE - h + 16 * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _fmt_ita(v) -> str:
    return "n/a" if v is None else f"{v:+.0f}"


def sheet_row(rec: dict, pics: dict, atlas_mask, with_fan: bool = False) -> np.ndarray:
    atlas = np.asarray(atlas_mask, bool)
    res = pics["result"]
    tex = (np.clip(res.sample.texture, 0, 1) * 255).round().astype(np.uint8)
    tex[~pics["vis"]] = (20, 20, 60)
    blank = np.full((_TILE, _TILE, 3), 40, np.uint8)
    name = rec["photo"]
    if len(name) > 34:
        name = "..." + name[-31:]
    lines = [name,
             "ITA n/a: greyscale photo" if rec.get("monochrome") else
             f"ITA tex {_fmt_ita(rec.get('ita_texture'))} fit {_fmt_ita(rec.get('ita_fit'))}"
             f" pcafit {_fmt_ita(rec.get('ita_pca_fit'))}"]
    if "rerender_error_fit" in rec:
        lines.append(f"L1 fit {rec['rerender_error_fit']:.3f} "
                     f"pcafit {rec['rerender_error_pca_fit']:.3f}")
    if "fit_error" in rec:
        lines.append("fit failed: " + rec["fit_error"][:28])
    tiles = [_label(_photo_crop(pics["image"], res), lines), tex]
    if "albedo" in pics:
        tiles += [_srgb_tile(pics["albedo"], atlas), _srgb_tile(pics["rerender"], pics["vis"]),
                  _grey_shading(pics["detail_normals"], atlas)]
    else:
        tiles += [blank, blank, blank]
    if with_fan:
        tiles.append(_srgb_tile(pics["fan"], atlas) if "fan" in pics else blank)
        tiles.append(_grey_shading(pics["drn_detail_normals"], atlas)
                     if "drn_detail_normals" in pics else blank)
    return np.concatenate(tiles, axis=1)


def save_sheets(rows, out_dir, rows_per_sheet: int = 12, with_fan: bool = False) -> list:
    """Write the rows into ``real_photos_sheet_<k>.png`` files; returns their paths."""
    cols = SHEET_COLUMNS + (NETWORK_COLUMNS if with_fan else ())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    n = max(1, int(rows_per_sheet))
    for k, start in enumerate(range(0, len(rows), n)):
        header = np.full((28, rows[0].shape[1], 3), 255, np.uint8)
        for i, c in enumerate(cols):
            cv2.putText(header, c, (i * _TILE + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                        (0, 0, 0), 1, cv2.LINE_AA)
        sheet = np.concatenate([header] + list(rows[start:start + n]), axis=0)
        path = out_dir / f"real_photos_sheet_{k + 1}.png"
        cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    return paths


# ------------------------------------------------------------------ the run
def run_real_photos(paths, root=None, weights_dir=None, out_dir=None, rows_per_sheet: int = 12,
                    progress: bool = True, evaluator=None, fit_options=None) -> dict:
    """Evaluate every photo of ``paths`` (names relative to ``root``);
    ``fit_options``: the fit's ``AppearanceOptions`` (without ``evaluator``)."""
    paths = list(paths)
    ev = evaluator if evaluator is not None else RealPhotoEvaluator(weights_dir,
                                                                    fit_options=fit_options)
    per_photo, failures, rows = [], [], []
    rates = {"fit": ([], []), "drn": ([], [])}     # detail -> (rate maps, visible masks)
    t0 = time.perf_counter()
    for p in tqdm(paths, desc="real photos", unit="photo", file=sys.stderr,
                  disable=not progress):
        p = Path(p)
        name = str(p.relative_to(root)) if root is not None else p.name
        try:
            image, _ = read_inputs(p)
            rec, pics = ev.evaluate(image, name)
        except Exception as e:  # noqa: BLE001 - one bad photo never stops the report
            failures.append({"photo": name, "error": describe_error(e)})
            continue
        per_photo.append(rec)
        for d, (maps, masks) in rates.items():
            if f"{d}_rate" in pics:
                maps.append(pics[f"{d}_rate"])
                masks.append(pics["vis"])
        if out_dir:
            rows.append(sheet_row(rec, pics, ev.atlas.mask, with_fan=ev.has_networks))
    result = summarize(per_photo, failures, len(paths))
    for d, (maps, masks) in rates.items():
        c = cross_photo_correlation(maps, masks)
        if c is not None:
            result[f"cross_photo_rate_correlation_{d}"] = c
    result.update({
        "per_photo": per_photo,
        "appearance_paths": [m for m in PATHS
                             if any(f"rerender_error_{m}" in r for r in per_photo)],
        "rerender_space": "sRGB, visible texels, mean over texels and channels",
        "ita_mask": "tf_face.skin_tone.face_skin_mask (cheeks + forehead)",
        "settings": {"weights_dir": None if weights_dir is None else str(weights_dir),
                     "color_space": ev.recon.color_space if ev.has_networks else None,
                     "root": None if root is None else str(root),
                     "fit_options": dataclasses.asdict(ev.fitter.options)},
        "seconds": time.perf_counter() - t0,
    })
    if out_dir and rows:
        result["sheets"] = save_sheets(rows, out_dir, rows_per_sheet, ev.has_networks)
    return result


def format_table(result: dict) -> str:
    paths = [m for m in PATHS if m in result.get("appearance_paths", ())]

    def f(v, w=8, d=3):
        return f"{'n/a':>{w}}" if v is None else f"{v:{w}.{d}f}"

    head = (f"{'photo':<44}{'ITA tex':>8}" + "".join(f"{'ITA ' + m:>12}" for m in paths)
            + "".join(f"{'err ' + m:>12}" for m in paths) + f"{'fit ms':>8}")
    lines = [head]
    for r in result["per_photo"]:
        name = r["photo"] if len(r["photo"]) <= 43 else "..." + r["photo"][-40:]
        lines.append(f"{name:<44}{f(r.get('ita_texture'), 8, 1)}"
                     + "".join(f(r.get(f"ita_{m}"), 12, 1) for m in paths)
                     + "".join(f(r.get(f"rerender_error_{m}"), 12, 4) for m in paths)
                     + f(r.get("ms_fit_total"), 8, 0)
                     + ("  FIT FAILED: " + r["fit_error"] if "fit_error" in r else ""))
    lines.append(f"{'mean':<44}{f(result.get('mean_ita_texture'), 8, 1)}"
                 + "".join(f(result.get(f"mean_ita_{m}"), 12, 1) for m in paths)
                 + "".join(f(result.get(f"mean_rerender_error_{m}"), 12, 4) for m in paths)
                 + f(result.get("mean_ms_fit_total"), 8, 0))
    for base in ("pca_fit", "pca"):
        if f"fit_beats_{base}_on" in result:
            lines.append(f"fit re-render error < {base}: {result[f'fit_beats_{base}_on']}"
                         f"/{result[f'photos_compared_{base}']} photos")
    corr = [f"{d} {result[f'cross_photo_rate_correlation_{d}']:.3f} (rate RMS "
            f"{result.get(f'mean_{d}_rate_rms', float('nan')):.2e})" for d in ("drn", "fit")
            if f"cross_photo_rate_correlation_{d}" in result]
    if corr:
        lines.append("detail maps alike across photos (mean pairwise correlation; 1 = one "
                     "template for everyone): " + ", ".join(corr))
    lines.append(f"{result['photos_evaluated']}/{result['photos']} photos evaluated, "
                 f"{result['num_failures']} rejected by the pipeline, "
                 f"{result['num_fit_failures']} fit failures")
    for fl in result["failures"]:
        lines.append(f"  rejected {fl['photo']}: {fl['error']}")
    return "\n".join(lines)


def main(argv):
    del argv

    F = flags.FLAGS
    if not F.image_dir:
        print("error: --image_dir is required", file=sys.stderr)
        return 2
    if not (F.json or F.out_dir):
        print("error: give --json and/or --out_dir (nothing would be written)", file=sys.stderr)
        return 2
    box = {}

    def job():
        paths = list_photos(F.image_dir, F.recursive)
        if not paths:
            raise TfFaceError(f"no images in {F.image_dir}"
                              + ("" if F.recursive else " (sub-folders: --recursive)"))
        box["r"] = run_real_photos(paths, Path(F.image_dir), F.weights_dir, F.out_dir,
                                   F.rows_per_sheet, progress=F.progress,
                                   fit_options=fit_options_from_flags())

    code = run_single(job, debug=F.debug)
    r = box.get("r")
    if r is None:
        return code
    print(format_table(r))
    for s in r.get("sheets", []):
        print(f"contact sheet: {s}")
    if F.json:
        write_result_json(F.json, r)
    return code


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
