"""The SavedModel with serving signatures (``python -m train.export``).

``ServingModule`` is a ``tf.Module`` holding the three Keras networks' variables and B-Net's
albedo PCA model (mean and basis as non-trainable variables), with
``tf.function(input_signature=...)`` methods that become the signatures:

``albedo_and_details(texture float32[B,S,S,3])`` ->
    ``albedo_pca`` [B,S,S,3]  B-Net's R_a = m_a + U_a p_a (low frequency)
    ``sh``         [B,9,3]    SH lighting gamma (ambient offset included;
                              ``tf_face.render.sh`` basis and order, camera frame)
    ``albedo``     [B,S,S,3]  FAN's high-fidelity albedo
    ``displacement`` [B,S,S,1] DRN's moving rate r_d in *detail units*
                              (inter-ocular distances of the face model's mean
                              shape): the detail vertex moves by
                              Δd = r_d · n. Multiply by ``detail_unit`` (model
                              units) and the fit scale s to get pixels of the
                              photo's position map.
    ``p_a``        [B,K]      albedo PCA coefficients
``bnet(texture)`` -> ``{p_a, sh, coeffs}`` (``coeffs``: the raw [B,K+27] output)
``fan(texture)``  -> ``{albedo}``
``drn(texture)``  -> ``{moving_rate}``
``config()``      -> ``{json}``: tf_face_weights.json fields (colour space,
                     detail_unit, K, UV size, model spec) as a JSON string.

Inputs: UV textures in [0, 1], sRGB as sampled from the photo
(``UVSample.texture``). Albedo outputs are in the weights' colour space
(``"linear"``: linear RGB; convert with the sRGB curve for display). The graph
holds only standard TF ops (no tf_face custom op), so the folder loads with
plain ``tf.saved_model.load`` and with the session-based loader that model
servers use (TF Serving, C++ ``LoadSavedModel``, ``saved_model_cli run``)::

    saved_model_cli run --dir EXPORT --tag_set serve \\
        --signature_def albedo_and_details --inputs texture=x.npy --outdir OUT
    saved_model_cli run --dir EXPORT --tag_set serve --signature_def config \\
        --input_exprs ';'      # no inputs; the CLI wants some input flag

(x.npy: float32 [B,S,S,3]; each output lands in ``OUT/<key>.npy``.)

The signatures run ``serving.inference_model`` of each network: the same
function (to float rounding) with FAN/DRN's transposed convs as sub-pixel
convs and their instance norms on 4D maps, so the SavedModel's variables are
those layers' (``up<i>_convt/kernel`` is [2,2,2,2,Cin,Cout]).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_face.models.bnet import split_bnet_output
from tf_face.serving.inference_model import inference_model
from tf_face.serving.weights import load_albedo_model, load_networks, read_weights_config

SIGNATURES = ("albedo_and_details", "bnet", "fan", "drn", "config")


class _Untracked:
    """Plain holder: what it holds is invisible to ``tf.Module`` tracking."""

    def __init__(self, **items):
        self.__dict__.update(items)


class ServingModule(tf.Module):
    """The SavedModel's root object (see the module docstring).

    The Keras networks are *not* tracked as children: a Keras 3 variable
    (``keras.Variable`` on the TF backend) exports as two graph variables --
    its inner ``tf.Variable`` (which the traced functions read) and a second
    ``tf.Variable`` initialised from it (``Variable._export_to_saved_model_graph``
    in Keras 3.15), and the SavedModel's checkpoint and restore op only fill
    the second. ``tf.saved_model.load`` rebinds the captures through the object
    graph and works, but a session-based loader (``saved_model_cli run``, TF
    Serving, the C++ ``LoadSavedModel``) only runs the restore op and the
    functions then read never-initialised variables ("Could not find variable
    down3_norm/beta_1"). Tracking the inner ``tf.Variable`` objects themselves
    (``network_variables``) gives one graph variable per weight, restored by
    the restore op and read by the functions.
    """

    def __init__(self, networks: dict, albedo_mean: np.ndarray, albedo_basis: np.ndarray,
                 config: dict):
        super().__init__(name="tf_face_serving")
        # the same function in faster layers (serving.inference_model; FAN 83 -> 59 ms)
        networks = {n: inference_model(networks[n]) for n in ("bnet", "fan", "drn")}
        self._nets = _Untracked(**networks)
        self.network_variables = {n: [_tf_variable(v) for v in networks[n].variables]
                                  for n in ("bnet", "fan", "drn")}
        s = int(albedo_mean.shape[0])
        k = int(albedo_basis.shape[-1])
        self.size, self.num_albedo = s, k
        self.albedo_mean = tf.Variable(albedo_mean.reshape(1, -1).astype(np.float32),
                                       trainable=False, name="albedo_mean")
        # [K, S*S*3] so that R_a = mean + p_a @ basis_t
        self.albedo_basis_t = tf.Variable(
            np.ascontiguousarray(albedo_basis.reshape(-1, k).T).astype(np.float32),
            trainable=False, name="albedo_basis_t")
        self.config_json = tf.constant(json.dumps(config, sort_keys=True))
        spec = [tf.TensorSpec([None, s, s, 3], tf.float32, name="texture")]
        self.albedo_and_details = tf.function(self._albedo_and_details, input_signature=spec)
        self.bnet = tf.function(self._bnet, input_signature=spec)
        self.fan = tf.function(self._fan, input_signature=spec)
        self.drn = tf.function(self._drn, input_signature=spec)
        self.config = tf.function(self._config, input_signature=[])

    @property
    def bnet_model(self):
        return self._nets.bnet

    @property
    def fan_model(self):
        return self._nets.fan

    @property
    def drn_model(self):
        return self._nets.drn

    def _coeffs(self, texture):
        y = self.bnet_model(texture, training=False)
        p_a, sh = split_bnet_output(y, self.num_albedo)
        return y, p_a, sh

    def _albedo_pca(self, p_a):
        flat = self.albedo_mean + tf.matmul(p_a, self.albedo_basis_t)
        return tf.reshape(flat, [-1, self.size, self.size, 3])

    def _albedo_and_details(self, texture):
        _, p_a, sh = self._coeffs(texture)
        return {"albedo_pca": self._albedo_pca(p_a), "sh": sh, "p_a": p_a,
                "albedo": self.fan_model(texture, training=False),
                "displacement": self.drn_model(texture, training=False)}

    def _bnet(self, texture):
        y, p_a, sh = self._coeffs(texture)
        return {"p_a": p_a, "sh": sh, "coeffs": y}

    def _fan(self, texture):
        return {"albedo": self.fan_model(texture, training=False)}

    def _drn(self, texture):
        return {"moving_rate": self.drn_model(texture, training=False)}

    def _config(self):
        return {"json": self.config_json}


def _tf_variable(v) -> tf.Variable:
    """The ``tf.Variable`` behind a Keras 3 variable (itself if it already is one)."""
    inner = getattr(v, "value", v)
    if not isinstance(inner, tf.Variable):
        raise TypeError(f"variable {getattr(v, 'path', v)!r} is not backed by a tf.Variable "
                        f"(Keras backend is not TensorFlow?)")
    return inner


def build_serving_module(weights_dir) -> ServingModule:
    """Load a weights folder into a ``ServingModule``."""
    cfg = read_weights_config(weights_dir)
    nets = load_networks(weights_dir)
    albedo = load_albedo_model(cfg)
    return ServingModule(nets, albedo.mean, albedo.basis, cfg.to_json() | {"folder": None})


def export_savedmodel(weights_dir, output) -> Path:
    """Write the SavedModel of ``weights_dir`` to ``output`` (a new folder)."""
    module = build_serving_module(weights_dir)
    output = Path(output)
    sigs = {name: getattr(module, name) for name in SIGNATURES}
    sigs["serving_default"] = module.albedo_and_details
    tf.saved_model.save(module, str(output), signatures=sigs)
    return output
