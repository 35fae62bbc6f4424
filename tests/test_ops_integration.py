"""The training ops inside tf.function and Keras, an inverse-shading fit, and
the fallback to the pure-TF reference when the library is absent."""

import logging
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_face import render
from tf_face.render import _library, op_sources
from tf_face.testing.random_atlas import random_atlas

BACKENDS = ["reference", pytest.param("op", marks=pytest.mark.needs_ops)]


def _scene(size=24, batch=3, seed=0):
    """A normal map facing the camera, an albedo map and SH per image."""
    rng = np.random.default_rng(seed)
    normals = rng.normal(size=(1, size, size, 3))
    normals[..., 2] = np.abs(normals[..., 2])  # front hemisphere, all directions
    normals = np.repeat(normals, batch, axis=0).astype(np.float32)
    albedo = rng.uniform(0.3, 0.9, size=(1, size, size, 3)).astype(np.float32)
    sh = render.ambient_sh(batch) + rng.normal(scale=0.25, size=(batch, 9, 3)).astype(np.float32)
    return normals, albedo, sh


@pytest.mark.parametrize("backend", BACKENDS)
def test_tf_function_matches_eager(backend):
    normals, albedo, sh = _scene()
    albedo = np.repeat(albedo, 3, axis=0)
    eager = render.sh_shade(albedo, normals, sh, backend=backend)
    fn = tf.function(lambda a, n, s: render.sh_shade(a, n, s, backend=backend))
    np.testing.assert_allclose(fn(albedo, normals, sh).numpy(), eager.numpy(), rtol=1e-6, atol=1e-7)
    assert np.all(eager.numpy().max(-1) > 0)


class SmoothFit(keras.Model):
    """Per-vertex offsets fitted to a noisy target with a Laplacian prior."""

    def __init__(self, adj, num_vertices, backend):
        super().__init__()
        self.adj, self.backend = adj, backend
        self.offsets = self.add_weight(shape=(1, num_vertices, 3), initializer="zeros", name="offsets")

    def call(self, inputs):
        return self.offsets + 0.0 * tf.reduce_sum(inputs)

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            pred = self(x, training=True)
            smooth = render.mesh_laplacian_smoothness(self.offsets, self.adj.row_ptr, self.adj.col_idx,
                                                      backend=self.backend)
            loss = tf.reduce_mean(tf.square(pred - y)) + 1e-4 * tf.reduce_sum(smooth)
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return {"fit_loss": loss}


@pytest.mark.parametrize("backend", BACKENDS)
def test_keras_train_step(backend):
    at = random_atlas(50, 16, 16, seed=1)
    adj = render.mesh_adjacency(at.triangles, 50)
    target = np.random.default_rng(2).normal(size=(1, 50, 3)).astype(np.float32)
    model = SmoothFit(adj, 50, backend)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    steps = 40
    x = np.zeros((steps, 1), np.float32)
    y = np.repeat(target, steps, axis=0)
    first = float(tf.reduce_mean(tf.square(model(x[:1]) - target)))
    hist = model.fit(x, y, batch_size=1, epochs=1, verbose=0)
    last = float(tf.reduce_mean(tf.square(model(x[:1]) - target)))
    assert hist.history["fit_loss"][-1] > 0
    assert last < 0.2 * first, (first, last)


@pytest.mark.parametrize("backend", BACKENDS)
def test_recover_sh_and_albedo_by_gradient_descent(backend):
    """One synthetic shaded map; recover its SH light and albedo map.

    The albedo map is piecewise constant on 4x4-texel blocks (a 6x6 map
    upsampled): with a free albedo per texel the shading would be explained by
    any light. Gauge: albedo * L is invariant under (k albedo, L / k) per
    channel, so the DC coefficient of each channel is held at its true value.
    """
    size, block = 24, 4
    normals, _, sh_true = _scene(size=size, batch=1, seed=4)
    rng = np.random.default_rng(4)
    albedo_true = rng.uniform(0.3, 0.9, size=(1, size // block, size // block, 3)).astype(np.float32)

    def upsample(a):
        return tf.repeat(tf.repeat(a, block, axis=1), block, axis=2)

    normals_tf = tf.constant(normals)
    target = render.sh_shade(upsample(albedo_true), normals, sh_true, backend="reference")
    albedo = tf.Variable(np.full_like(albedo_true, 0.6))
    sh_free = tf.Variable(render.ambient_sh(1))
    gauge = np.ones((1, 9, 3), np.float32)
    gauge[0, 0] = 0.0
    sh_fixed = sh_true * (1 - gauge)
    opt = keras.optimizers.Adam(0.02)

    def loss_fn():
        sh = sh_fixed + gauge * sh_free
        pred = render.sh_shade(upsample(albedo), normals_tf, sh, backend=backend)
        return tf.reduce_mean(tf.square(pred - target))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn()
        grads = tape.gradient(loss, [albedo, sh_free])
        opt.apply_gradients(zip(grads, [albedo, sh_free]))
        return loss

    first = float(loss_fn())
    for _ in range(600):
        step()
    last = float(loss_fn())
    assert last < first / 100, (first, last)
    sh_err = np.abs((sh_fixed + gauge * sh_free).numpy() - sh_true).max()
    assert sh_err < 0.1, sh_err  # coefficients are O(1)
    np.testing.assert_allclose(albedo.numpy(), albedo_true, atol=0.05)


def test_fallback_when_library_absent(monkeypatch, caplog):
    monkeypatch.setattr(_library, "_STATE", {"loaded": True, "lib": None, "warned": False,
                                             "error": "custom-op library not built (simulated)"})
    monkeypatch.delenv("TF_FACE_OPS", raising=False)
    assert not render.ops_available()
    normals, albedo, sh = _scene(size=12, batch=1)
    at = random_atlas(30, 12, 12, seed=0)
    vertex_values = np.random.default_rng(0).normal(size=(1, 30, 3)).astype(np.float32)
    adj = render.mesh_adjacency(at.triangles, 30)
    with caplog.at_level(logging.WARNING, logger="tf_face.render._library"):
        out1 = render.sh_shade(albedo, normals, sh)
        energy = render.mesh_laplacian_smoothness(vertex_values, *adj)
    warnings = [r for r in caplog.records if "pure-TF reference" in r.getMessage()]
    assert len(warnings) == 1 and "simulated" in warnings[0].getMessage()
    ref = render.sh_shade(albedo, normals, sh, backend="reference")
    np.testing.assert_array_equal(out1.numpy(), ref.numpy())
    ref_energy = render.mesh_laplacian_smoothness(vertex_values, *adj, backend="reference")
    np.testing.assert_array_equal(energy.numpy(), ref_energy.numpy())
    with pytest.raises(render.OpsUnavailableError, match="simulated"):
        render.sh_shade(albedo, out1, sh, backend="op")
    with pytest.raises(ValueError):
        render.sh_shade(albedo, out1, sh, backend="gpu")


@pytest.mark.needs_ops
def test_env_var_forces_reference(monkeypatch):
    calls = []
    import tf_face.render.reference as ref_module
    real = ref_module.sh_shade_reference
    monkeypatch.setattr(ref_module, "sh_shade_reference", lambda *a: calls.append(1) or real(*a))
    _, albedo, sh = _scene(size=8, batch=1)
    monkeypatch.setenv("TF_FACE_OPS", "reference")
    render.sh_shade(albedo, albedo, sh)
    assert calls == [1]
    monkeypatch.delenv("TF_FACE_OPS")
    render.sh_shade(albedo, albedo, sh)
    assert calls == [1]


def _fake_build(tmp_path):
    """A repository with op sources, two libraries and the manifest of the older one."""
    root, lib = tmp_path / "repo", tmp_path / "repo" / "lib"
    (root / "ops" / "cc").mkdir(parents=True)
    lib.mkdir()
    (root / "ops" / "cc" / "a.cc").write_text("int a;\n")
    built, newer = lib / "_tf_face_ops.built.so", lib / "_tf_face_ops.newer.so"
    built.write_bytes(b"built")
    op_sources.write_manifest(str(built), str(root), cuda=False)
    newer.write_bytes(b"newer")
    os.utime(built, (1, 1))  # the newest by mtime is not the one the build wrote
    return root, lib, built


def test_loader_takes_the_library_its_build_named(tmp_path):
    root, lib, built = _fake_build(tmp_path)
    assert op_sources.find_library(str(lib), str(root)) == (str(built), None)
    assert op_sources.find_library(str(lib), None) == (str(built), None)  # installed: no sources
    (root / "ops" / "cc" / "a.cc").write_text("int a = 1;\n")
    path, why = op_sources.find_library(str(lib), str(root))
    assert path is None and "stale" in why and "make ops" in why
    (root / "ops" / "cc" / "a.cc").write_text("int a;\n")
    built.write_bytes(b"other")
    path, why = op_sources.find_library(str(lib), str(root))
    assert path is None and "not the file its build wrote" in why
    (lib / op_sources.MANIFEST_NAME).unlink()
    path, why = op_sources.find_library(str(lib), str(root))
    assert path is None and "no build manifest" in why


def test_stale_library_is_refused_and_the_reference_used(monkeypatch, tmp_path, caplog):
    root, lib, _ = _fake_build(tmp_path)
    (root / "ops" / "cc" / "a.cc").write_text("int a = 2;\n")
    monkeypatch.setattr(_library, "_STATE", {"loaded": False, "lib": None, "warned": False, "error": None})
    monkeypatch.setattr(_library, "_select", lambda: op_sources.find_library(str(lib), str(root)))
    monkeypatch.delenv("TF_FACE_OPS", raising=False)
    assert not render.ops_available() and "stale" in _library.load_error()
    normals, albedo, sh = _scene(size=8, batch=1)
    with caplog.at_level(logging.WARNING, logger="tf_face.render._library"):
        out = render.sh_shade(albedo, normals, sh)
    assert any("stale" in r.getMessage() and "pure-TF reference" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(out.numpy(), render.sh_shade(albedo, normals, sh, backend="reference").numpy())
    with pytest.raises(render.OpsUnavailableError, match="stale"):
        render.sh_shade(albedo, normals, sh, backend="op")


@pytest.mark.skipif(not render.ops_available(), reason="custom-op library not built (make ops)")
def test_checkout_library_matches_its_sources():
    here = os.path.dirname(_library.__file__)
    path, why = op_sources.find_library(here, os.path.dirname(os.path.dirname(here)))
    assert why is None and os.path.samefile(path, _library._select()[0])
