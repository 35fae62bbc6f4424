"""Untrained networks in the weights-folder layout, for tests and development.

``write_random_weights(folder)`` builds B-Net / FAN / DRN with the right
shapes (random init; B-Net's head is drawn near 0, so p_a ~ 0 and the ambient
offset gives grey light), saves them with ``tf_face.models.saving.save_model``
and writes ``tf_face_weights.json`` with the fields ``tf_face.training.jobs``
writes. ``make demo`` produces the same layout with trained weights.

``drn_scale`` multiplies DRN's output layer weights so an untrained DRN
produces a visible (random) displacement instead of r_d ~ 0 -- useful to see
the detail path work end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tf_face.detail import model_detail_unit
from tf_face.facemodel import load_face_model
from tf_face.serving.weights import CONFIG_FILE
# TF-loading imports stay in functions: eval.bench_reconstruct imports this at start-up
# (test_import_weight)


def write_random_weights(folder, model: str = "default", num_albedo=None, uv_size: int = 256,
                         bnet_width: int = 8, ngf: int = 16, color_space: str = "linear",
                         drn_max_displacement: float = 0.05, seed: int = 0,
                         p_a_std: float = 0.0, sh_std: float = 0.0) -> Path:
    """Write random B-Net/FAN/DRN + tf_face_weights.json into ``folder``.

    ``p_a_std`` / ``sh_std``: optional spread put into B-Net's head bias so a
    test sees non-trivial albedo coefficients / lighting (0 = fresh init).
    """
    import keras

    from tf_face.models import build_bnet, build_drn, build_fan
    from tf_face.models.saving import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    face = load_face_model(model)
    k_all = int(face.albedo_basis.shape[-1]) if face.albedo_basis is not None else 0
    k = k_all if num_albedo is None else int(num_albedo)
    bnet = build_bnet(k, input_size=uv_size, width=bnet_width)
    if p_a_std or sh_std:
        rng = np.random.default_rng(seed)
        kernel, bias = bnet.get_layer("head").get_weights()
        bias = bias.copy()
        bias[:k] = rng.normal(0, p_a_std, k)
        bias[k:] = rng.normal(0, sh_std, bias.size - k)
        bnet.get_layer("head").set_weights([kernel, bias.astype(np.float32)])
    fan = build_fan(input_size=uv_size, ngf=ngf)
    drn = build_drn(input_size=uv_size, ngf=ngf, max_displacement=drn_max_displacement)
    for name, net in (("bnet", bnet), ("fan", fan), ("drn", drn)):
        save_model(net, folder / name)
    config = {"model": model, "num_albedo": k, "uv_size": int(uv_size),
              "color_space": color_space, "detail_unit": model_detail_unit(face),
              "drn_max_displacement": float(drn_max_displacement),
              "bnet_width": int(bnet_width), "ngf": int(ngf),
              "stages": {}, "note": "random (untrained) weights from "
                                    "tf_face.testing.random_weights"}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return folder
