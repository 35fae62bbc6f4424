"""Writing a ``Reconstruction`` into its output folder.

Files (all written into the folder given, normally the temp folder of
``tf_face.outputs.atomic_output_dir``):

* the unwrap outputs (``texture.png``, ``mask.png``, ``normals.png/.npy``,
  ``position.npy``, ``overlay.png``, ``fit.json``) and ``photo.png``;
* ``albedo.png`` (FAN albedo, sRGB; outside the atlas each texel repeats
  its nearest atlas texel, ``files.mesh_files.pad_texture``: it is the meshes'
  texture), ``albedo_pca.png`` (B-Net's R_a, sRGB, black outside the atlas);
* ``non_skin.png`` (with the per-photo fit: 255 where it left a visible
  texel out as not the face's skin -- hair, a cap; ``tf_face.appearance.skin``);
* ``displacement.png`` (16-bit grey, decoded by ``displacement.json``:
  ``d = offset + scale * value / 65535`` in **model units**; also in
  ``lighting.json``), ``detail_normals.png`` (model-frame detail normals as
  ``n * 0.5 + 0.5``);
* ``mesh.obj`` + ``mesh.mtl`` (fitted base mesh, ``map_Kd albedo.png``),
  ``mesh_detailed.obj`` + ``mesh_detailed.mtl`` (dense texel-grid mesh,
  displaced, UV = texel centres, same texture), ``mesh.glb`` /
  ``mesh_detailed.glb`` (the same with the albedo PNG embedded);
* ``lighting.json`` (SH [9,3] and its conventions, the displacement scale,
  albedo coefficients), ``reconstruction.json`` (weights, backend, timings);
* ``renders/*.png`` (``tf_face.viz.views``) and ``report.html``.

Mesh frame: the face model frame with the pose removed (+x subject's left,
+y up, +z out of the face: glTF's frame), in model units: camera-frame
positions ``P`` (pixels) map to ``R^T (P - [tx, -ty, 0]) / s``. So the base
mesh equals ``FittedFace.vertices_model`` and the detail mesh sits on it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np

from tf_face.files.detail_mesh import build_detail_mesh, write_displacement_png
from tf_face.files.mesh_files import pad_texture, write_glb, write_obj
from tf_face.files.report import write_report
from tf_face.outputs import normals_to_rgb, write_json, write_png_rgb, write_unwrap_outputs
from tf_face.viz.image_renderer import vertex_normals_camera
from tf_face.viz.views import render_views, to_display

PHOTO_MAX_SIDE = 1024
SH_DOC = ("I_c = albedo_c * sum_b sh[b][c] * H_b(n), n unit normal in the camera frame "
          "(x right, y up, z towards the camera); H_b = Lambert-convolved real SH in the order "
          "1, y, z, x, xy, yz, 3z^2-1, xz, x^2-y^2 (tf_face.render.sh); ambient offset included")


def camera_to_model(points_camera, fitted) -> np.ndarray:
    """Camera-frame pixels [..., 3] -> model frame, model units (pose removed)."""
    t = np.array([fitted.translation[0], -fitted.translation[1], 0.0])
    p = (np.asarray(points_camera, np.float64) - t) / float(fitted.scale)
    return p @ np.asarray(fitted.rotation, np.float64)  # R^T p for row vectors


def _png_bytes(rgb01) -> bytes:
    img = np.clip(np.round(np.asarray(rgb01) * 255.0), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", img[..., ::-1])
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _photo(image):
    h, w = image.shape[:2]
    f = min(1.0, PHOTO_MAX_SIDE / max(h, w))
    if f < 1.0:
        image = cv2.resize(image, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)
    return image


def write_reconstruction(directory, image, rec, recon, title: str = "tf_face reconstruction",
                         renders="all") -> dict:
    """Write every file of the module doc; returns ``{"files": [...], "timings_ms": {...}}``.

    ``renders``: "none" | "basic" | "all" (``views.RENDER_SETS``; True = "all",
    False = "none").
    """
    renders = {True: "all", False: "none"}.get(renders, renders)

    d = Path(directory)
    cs = recon.color_space
    res, nets, fitted, model = rec.result, rec.nets, rec.result.fitted, recon.model
    mask = recon.atlas.mask
    timings = {}
    t = time.perf_counter()
    write_unwrap_outputs(d, image, res, model)
    write_png_rgb(d / "photo.png", _photo(image))
    # padded beyond the atlas (pad_texture): the meshes' texture, sampled at the atlas edge
    albedo_disp = pad_texture(to_display(nets.albedo, cs), mask)
    write_png_rgb(d / "albedo.png", albedo_disp)
    write_png_rgb(d / "albedo_pca.png", np.where(mask[..., None],
                                                 to_display(nets.albedo_pca, cs), 0.0))
    if rec.non_skin is not None:      # what the per-photo fit left out as not skin
        cv2.imwrite(str(d / "non_skin.png"), np.asarray(rec.non_skin, np.uint8) * 255)
    rot = np.asarray(fitted.rotation, np.float64)
    disp_model = rec.displacement_px / float(fitted.scale)
    write_displacement_png(d / "displacement.png", disp_model, mask=rec.valid,
                           units="face-model units along the base normal")
    disp_meta = json.loads((d / "displacement.json").read_text())
    n_model = rec.detail_normals.reshape(-1, 3) @ rot
    write_png_rgb(d / "detail_normals.png",
                  normals_to_rgb(n_model.reshape(rec.detail_normals.shape), rec.valid))
    timings["write_maps"] = (time.perf_counter() - t) * 1e3

    t = time.perf_counter()
    texture_png = _png_bytes(albedo_disp)
    verts = camera_to_model(np.asarray(fitted.vertices_image, np.float64) * [1, -1, -1], fitted)
    vn = vertex_normals_camera(fitted.vertices_image, model.triangles) @ rot
    write_obj(d / "mesh.obj", verts, model.triangles, model.uv, vn, texture_name="albedo.png")
    write_glb(d / "mesh.glb", verts, model.triangles, model.uv, texture_png, vn)
    dm = build_detail_mesh(rec.valid, rec.displaced_position, rec.detail_normals)
    dverts = camera_to_model(dm.vertices, fitted)
    dnorm = dm.normals @ rot
    write_obj(d / "mesh_detailed.obj", dverts, dm.triangles, dm.uv, dnorm,
              mtl_name="mesh_detailed.mtl", texture_name="albedo.png")
    write_glb(d / "mesh_detailed.glb", dverts, dm.triangles, dm.uv, texture_png, dnorm)
    timings["write_meshes"] = (time.perf_counter() - t) * 1e3

    cfg = recon.cfg
    lighting = {
        "sh": nets.sh.tolist(), "sh_convention": SH_DOC, "color_space": cs,
        "albedo_pca_coeffs": nets.p_a.tolist(),
        "displacement": {"png": "displacement.png", "offset": disp_meta["offset"],
                         "scale": disp_meta["scale"], "decode": disp_meta["decode"],
                         "units": "face-model units along the base normal",
                         "detail_unit": cfg.detail_unit,
                         "model_units_per_detail_unit": cfg.detail_unit,
                         "photo_pixels_per_model_unit": float(fitted.scale),
                         "moving_rate_range_detail_units": [
                             float(nets.moving_rate[rec.valid].min()) if rec.valid.any() else 0.0,
                             float(nets.moving_rate[rec.valid].max()) if rec.valid.any() else 0.0]},
    }
    write_json(d / "lighting.json", lighting)

    images = {"photo": "photo.png", "fitted mesh and landmarks": "overlay.png"}
    if renders != "none":
        t = time.perf_counter()
        views = render_views(image, fitted.vertices_image, model.triangles, model.uv,
                             nets.albedo, nets.sh, rec.detail_normals, mask, cs, which=renders)
        (d / "renders").mkdir(exist_ok=True)
        for name, img in views.items():
            write_png_rgb(d / "renders" / f"{name}.png", img)
        timings["renders"] = (time.perf_counter() - t) * 1e3
        captions = {"overlay": "re-rendered over the photo", "rerender": "re-rendered",
                    "relit_image_left": "relit: light from image left",
                    "relit_image_right": "relit: light from image right",
                    "relit_top": "relit: light from the top",
                    "relit_coloured": "relit: two coloured lights",
                    "yaw_-30": "novel view, yaw -30", "yaw_+30": "novel view, yaw +30"}
        for name in views:
            base = name[:-5] if name.endswith("_base") else name
            cap = captions.get(base, base) + (" (no details)" if name.endswith("_base") else "")
            images[cap] = f"renders/{name}.png"
    source = {"fit": ("per-photo fit", "per-photo PCA fit"), "net": ("FAN", "B-Net PCA"),
              "net+fit": ("networks + fit", "B-Net start + PCA fit")}[recon.appearance]
    maps = {"UV texture (photo)": "texture.png", f"albedo ({source[0]})": "albedo.png",
            f"albedo ({source[1]})": "albedo_pca.png", "displacement (16-bit)": "displacement.png",
            "detail normals": "detail_normals.png", "base normals (camera)": "normals.png"}
    if rec.non_skin is not None:
        maps["left out of the fit (not skin)"] = "non_skin.png"
    all_timings = dict(rec.timings_ms) | timings
    info = {"backend": recon.backend.name
            + (f" ({recon.backend.precision})" if recon.backend.name == "tflite" else ""),
            "appearance": recon.appearance + (f" ({rec.appearance_note})"
                                               if rec.appearance_note else ""),
            "weights": str(recon.weights_dir) if recon.weights_dir else "none",
            "face model": model.name,
            "image size": f"{image.shape[1]}x{image.shape[0]}",
            "landmark RMSE / IOD": f"{fitted.landmark_rmse_iod:.4f}",
            **({"photo": "greyscale: the albedo is grey, not the person's skin tone"}
               if rec.photo_monochrome else {}),
            "files": "mesh.obj/.mtl, mesh_detailed.obj/.mtl, mesh.glb, mesh_detailed.glb, "
                     "lighting.json, displacement.png (+ .json)"}
    write_report(d, title, images, maps, {k: round(v, 1) for k, v in all_timings.items()},
                 glb_name="mesh.glb", info=info)
    write_json(d / "reconstruction.json", {
        "backend": info["backend"], "weights": cfg.to_json(),
        "appearance": recon.appearance, "appearance_note": rec.appearance_note,
        # a greyscale photo: the albedo is grey, whatever the person's skin tone
        "photo_monochrome": bool(rec.photo_monochrome),
        # every setting of the per-photo fit (absent with --appearance=net)
        **({"appearance_options": dataclasses.asdict(fitter.options)}
           if (fitter := getattr(recon, "fitter", None)) is not None else {}),
        # the fit's step 0: how the landmark fit's mesh was moved onto the photo
        **({"mesh_refinement": rec.mesh_refinement} if rec.mesh_refinement else {}),
        # the share of the visible texels the fit left out as not skin (non_skin.png)
        **({"non_skin_fraction": round(float(np.asarray(rec.non_skin, bool).sum())
                                       / max(int(np.asarray(res.sample.mask, bool).sum()), 1), 4)}
           if rec.non_skin is not None else {}),
        "timings_ms": {k: round(v, 3) for k, v in all_timings.items()},
        "fit": res.fit_json()})
    return {"files": sorted(p.name for p in d.iterdir()), "timings_ms": all_timings}
