"""TFLite vs TensorFlow on real UV textures: size, latency, output differences.

``compare_tflite(weights_dir, tflite_dir, textures)`` runs every
``<net>_<precision>.tflite`` of ``tflite_dir`` and the Keras networks (TF,
``tf.function``) on the same textures and returns one row per (net,
precision):

* ``size_mb``: .tflite file size (10^6 bytes);
* ``ms_tflite`` / ``ms_tf``: median latency of one batch-1 call (warm);
* ``max_abs`` / ``mean_abs``: differences of the main output, over the UV
  atlas texels (bnet: the composed albedo R_a = m_a + U_a p_a; fan: albedo;
  drn: moving rate in detail units), in the network's output space (linear
  RGB for albedos when the weights are ``linear``);
* albedos also ``max_abs_display_255``: the difference after the sRGB display
  curve, in 8-bit steps (what the PNG shows; the sRGB slope near black makes
  it the stricter of the two), and ``sh_max_abs`` for B-Net.

Goals (issue 5): FAN float16 <= 4 MB; float16 albedo max abs diff <= 2/255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tf_face.errors import TfFaceError
from tf_face.image_io import load_image
from tf_face.serving.tflite import NETWORKS, PRECISIONS, TFLiteNetwork, tflite_name, time_call
from tf_face.viz.views import to_display


def _main_output(net: str, out: dict, albedo_model):
    if net == "bnet":
        return albedo_model.albedo_np(out["p_a"])[0]
    if net == "fan":
        return out["albedo"][0]
    return out["moving_rate"][0, ..., 0]


def compare_tflite(tf_backend, tflite_dir, textures, atlas_mask, color_space: str,
                   precisions=PRECISIONS, nets=NETWORKS, repeats: int = 3) -> list:
    rows = []
    m = np.asarray(atlas_mask, bool)
    for net in nets:
        refs = [tf_backend.run_network(net, t[None]) for t in textures]
        ms_tf = time_call(lambda x: tf_backend.run_network(net, x), textures[0][None], repeats)
        for prec in precisions:
            path = Path(tflite_dir) / tflite_name(net, prec)
            runner = TFLiteNetwork(path)
            diffs, diffs_disp, sh_diff = [], [], 0.0
            for t, ref in zip(textures, refs):
                out = runner(t[None])
                a = _main_output(net, out, tf_backend.albedo_model)
                b = _main_output(net, ref, tf_backend.albedo_model)
                diffs.append(np.abs(a - b)[m])
                if net in ("bnet", "fan"):
                    diffs_disp.append(np.abs(to_display(a, color_space)
                                             - to_display(b, color_space))[m])
                if net == "bnet":
                    sh_diff = max(sh_diff, float(np.abs(out["sh"] - ref["sh"]).max()))
            d = np.concatenate([x.ravel() for x in diffs])
            row = {"net": net, "precision": prec, "size_mb": path.stat().st_size / 1e6,
                   "ms_tflite": time_call(runner, textures[0][None], repeats), "ms_tf": ms_tf,
                   "max_abs": float(d.max()), "mean_abs": float(d.mean()),
                   "output": {"bnet": "albedo_pca", "fan": "albedo",
                              "drn": "moving_rate"}[net]}
            if diffs_disp:
                dd = np.concatenate([x.ravel() for x in diffs_disp])
                row["max_abs_display_255"] = float(dd.max() * 255.0)
            if net == "bnet":
                row["sh_max_abs"] = sh_diff
            rows.append(row)
    return rows


def format_table(rows: list) -> str:
    head = (f"{'net':5} {'precision':9} {'size MB':>8} {'ms TFLite':>10} {'ms TF':>8} "
            f"{'max|d|':>10} {'mean|d|':>10} {'max|d| sRGB/255':>16}  output")
    lines = [head, "-" * len(head)]
    for r in rows:
        disp = f"{r['max_abs_display_255']:16.3f}" if "max_abs_display_255" in r else " " * 16
        lines.append(f"{r['net']:5} {r['precision']:9} {r['size_mb']:8.2f} {r['ms_tflite']:10.1f} "
                     f"{r['ms_tf']:8.1f} {r['max_abs']:10.2e} {r['mean_abs']:10.2e} {disp}  "
                     f"{r['output']}")
    return "\n".join(lines)


def textures_from_photos(pipeline, paths, max_photos: int = 8, log=print) -> tuple:
    """Unwrapped UV textures of the photos that reconstruct (skips the rest)."""
    textures, used = [], []
    for p in paths:
        if len(textures) >= max_photos:
            break
        try:
            textures.append(pipeline.run(load_image(p)).sample.texture.astype(np.float32))
            used.append(str(p))
        except TfFaceError as e:
            log(f"skipping {p}: {e}")
    return textures, used
