"""eval/loss_terms.py: each weighted training term, fresh vs given weights."""

import json

import numpy as np
import pytest

from eval import loss_terms
from tf_face.errors import TfFaceError


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from tf_face.synthetic.make_dataset import make_dataset
    from tf_face.synthetic.sampling import Difficulty
    out = tmp_path_factory.mktemp("lt_faces")
    rep = make_dataset(out, num_faces=2, seed=5, difficulty=Difficulty(max_yaw=20.0),
                       image_size=256, progress=False)
    assert rep["records"] >= 1
    return out / "shards"


def _weights(folder, w_sup_fan):
    from tf_face.testing.random_weights import write_random_weights
    folder = write_random_weights(folder, bnet_width=4, ngf=4, p_a_std=0.3, sh_std=0.05, seed=3)
    cfg = json.loads((folder / "tf_face_weights.json").read_text())
    base = {"w_a": 1.0, "w_pixel": 0.005, "w_percep": 0.0, "w_gan": 1.0, "w_grad": 0.5,
            "w_const": 1.0, "w_smooth": 20.0, "reduction": "sum", "w_sup": 1.0,
            "sup_space": "linear"}
    cfg["stages"] = {"bnet": {"loss_weights": dict(base)},
                     "fan": {"loss_weights": dict(base, w_sup=w_sup_fan)},
                     "drn": {"loss_weights": dict(base, w_const=2.0)}}
    (folder / "tf_face_weights.json").write_text(json.dumps(cfg))
    return folder


def test_terms_are_the_stage_objectives_weighted(tmp_path, shards):
    """The "trained" column is the stage objectives of the folder's networks
    on the same faces times the stage's weights (recomputed here through the
    stage functions); a zero weight gives no row; FAN's E_gan has no value
    after training; the fresh networks give other values."""
    import tensorflow as tf

    from tf_face.data import make_dataset
    from tf_face.serving.weights import load_networks
    from tf_face.training.jobs import scaled_batch
    from tf_face.training.stages import bnet_forward, bnet_predict, drn_forward
    weights = _weights(tmp_path / "w", w_sup_fan=0.0)
    r = loss_terms.measure(weights, shards, init_seed=1, batch_size=2, progress=False)
    rows = {(x["stage"], x["term"]): x for x in r["terms"]}
    assert ("fan", "E_sup") not in rows                      # w_sup 0 for FAN
    assert rows[("fan", "E_gan")]["trained"] is None and rows[("fan", "E_gan")]["init"] > 0
    cfg = json.loads((weights / "tf_face_weights.json").read_text())
    nets = load_networks(weights)
    from tf_face.facemodel import load_face_model
    from tf_face.uv import get_atlas
    from tf_face.uv.albedo_model import uv_albedo_model
    face = load_face_model("default")
    atlas = get_atlas(face, size=256)
    albedo = uv_albedo_model(face, atlas, cfg["num_albedo"])
    batch = next(iter(make_dataset(shards, batch_size=2, shuffle=False)))
    ctx_b = loss_terms._stage_context(cfg, "bnet", face, atlas, albedo)
    _, terms, _ = bnet_forward(nets["bnet"], batch, ctx_b, training=False)
    assert rows[("bnet", "E_pixel")]["trained"] == pytest.approx(float(terms["pixel"]), rel=1e-5)
    assert rows[("bnet", "E_a")]["trained"] == pytest.approx(float(terms["albedo_reg"]), rel=1e-5)
    ctx_d = loss_terms._stage_context(cfg, "drn", face, atlas, albedo)
    _, terms, _ = drn_forward(nets["drn"], nets["fan"], nets["bnet"], scaled_batch(batch, ctx_d),
                              ctx_d, training=False)
    assert rows[("drn", "E_const")]["weight"] == 2.0
    assert rows[("drn", "E_const")]["trained"] == pytest.approx(2.0 * float(terms["const"]),
                                                                rel=1e-5)
    assert rows[("drn", "E_grad")]["trained"] == pytest.approx(0.5 * float(terms["grad"]),
                                                               rel=1e-5)
    p_a, _, _ = bnet_predict(nets["bnet"], batch["texture"], ctx_b, False)
    norms = tf.norm(p_a, axis=-1).numpy()
    assert r["p_a_norm"]["trained"]["mean"] == pytest.approx(float(np.mean(norms)), rel=1e-5)
    # fresh weights are other weights
    assert rows[("bnet", "E_pixel")]["init"] != pytest.approx(rows[("bnet", "E_pixel")]["trained"])
    assert "B-Net |p_a|" in loss_terms.format_table(r)


def test_folder_without_stage_weights_is_refused(tmp_path, shards):
    from tf_face.testing.random_weights import write_random_weights
    weights = write_random_weights(tmp_path / "w", bnet_width=4, ngf=4)
    with pytest.raises(TfFaceError, match="loss weights"):
        loss_terms.measure(weights, shards, progress=False)
