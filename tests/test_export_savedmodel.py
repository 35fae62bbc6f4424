"""SavedModel export (train.export): fresh-process round trip without tf_face,
saved_model_cli listing, ``saved_model_cli run`` (the session-based loader that
model servers use) on every signature, the config signature, CLI errors."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
K = 10


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from tf_face.testing.random_weights import write_random_weights
    return write_random_weights(tmp_path_factory.mktemp("weights"), num_albedo=K, bnet_width=4,
                                ngf=4, p_a_std=0.5, sh_std=0.1, seed=3)


@pytest.fixture(scope="module")
def exported(weights, tmp_path_factory):
    from tf_face.serving.exporting import export
    out = tmp_path_factory.mktemp("export") / "sm"
    export(weights, out, tflite=False, log=lambda *_: None)
    return out


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def test_round_trip_in_a_fresh_process_without_tf_face(weights, exported, tmp_path):
    from tf_face.models.bnet import split_bnet_output
    from tf_face.serving.weights import load_albedo_model, load_networks, read_weights_config

    rng = np.random.default_rng(0)
    x = rng.random((2, 256, 256, 3), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        m = tf.saved_model.load({str(exported)!r})
        x = tf.constant(np.load({str(tmp_path / 'x.npy')!r}))
        out = {{}}
        for sig in ("albedo_and_details", "bnet", "fan", "drn"):
            for k, v in m.signatures[sig](texture=x).items():
                out[sig + "/" + k] = v.numpy()
        out["config"] = np.array(m.signatures["config"]()["json"].numpy().decode())
        np.savez({str(tmp_path / 'out.npz')!r}, **out)
        print("tf_face imported:", any(n.split(".")[0] == "tf_face" for n in sys.modules))
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=_env(), timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "tf_face imported: False" in res.stdout
    got = dict(np.load(tmp_path / "out.npz"))

    cfg = read_weights_config(weights)
    nets = load_networks(weights)
    albedo = load_albedo_model(cfg)
    p_a, sh = (t.numpy() for t in split_bnet_output(nets["bnet"](x, training=False), K))
    fan = nets["fan"](x, training=False).numpy()
    drn = nets["drn"](x, training=False).numpy()
    pca = albedo.albedo_np(p_a)
    assert np.abs(p_a).max() > 0.1                       # the biases make p_a non-trivial
    tol = dict(atol=2e-5, rtol=1e-5)
    for sig in ("albedo_and_details", "bnet"):
        np.testing.assert_allclose(got[f"{sig}/p_a"], p_a, **tol)
        np.testing.assert_allclose(got[f"{sig}/sh"], sh, **tol)
    np.testing.assert_allclose(got["albedo_and_details/albedo_pca"], pca, atol=1e-4)
    np.testing.assert_allclose(got["albedo_and_details/albedo"], fan, **tol)
    np.testing.assert_allclose(got["fan/albedo"], fan, **tol)
    np.testing.assert_allclose(got["albedo_and_details/displacement"], drn, atol=1e-6)
    np.testing.assert_allclose(got["drn/moving_rate"], drn, atol=1e-6)
    assert got["bnet/coeffs"].shape == (2, K + 27)
    assert got["albedo_and_details/displacement"].shape == (2, 256, 256, 1)
    config = json.loads(str(got["config"]))
    assert config["num_albedo"] == K and config["color_space"] == cfg.color_space
    assert config["detail_unit"] == pytest.approx(cfg.detail_unit)


def test_saved_model_cli_lists_the_signatures(exported):
    cli = _saved_model_cli()
    res = subprocess.run([str(cli), "show", "--dir", str(exported), "--all"],
                         capture_output=True, text=True, env=_env(), timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    text = res.stdout
    for sig, outputs in {"albedo_and_details": ["albedo_pca", "sh", "albedo", "displacement"],
                         "bnet": ["p_a", "sh"], "fan": ["albedo"], "drn": ["moving_rate"],
                         "config": ["json"]}.items():
        assert f"signature_def['{sig}']" in text
        block = text.split(f"signature_def['{sig}']")[1].split("signature_def[")[0]
        for o in outputs:
            assert f"outputs['{o}']" in block, (sig, o)
        if sig != "config":
            assert "inputs['texture']" in block and "(-1, 256, 256, 3)" in block
    # no tf_face custom op in the graph
    assert "TfFace" not in (exported / "saved_model.pb").read_bytes().decode("latin-1")


def _saved_model_cli():
    cli = Path(sys.executable).with_name("saved_model_cli")
    if not cli.is_file():
        pytest.skip(f"{cli} not installed")
    return cli


def test_saved_model_cli_run_matches_tf_saved_model_load_on_every_signature(exported,
                                                                              tmp_path):
    """The session-based loader (``saved_model_cli run``, as TF Serving / C++
    ``LoadSavedModel`` load) restores every variable the signatures read: each
    signature runs and matches ``tf.saved_model.load`` to 1e-5. (Keras 3
    networks tracked as children of the exported tf.Module made every signature
    fail with "Could not find variable ...".)"""
    import tensorflow as tf

    from tf_face.serving.savedmodel import SIGNATURES
    cli = _saved_model_cli()
    x = np.random.default_rng(1).random((2, 256, 256, 3), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    loaded = tf.saved_model.load(str(exported))
    assert set(loaded.signatures.keys()) == set(SIGNATURES) | {"serving_default"}
    runs = {}
    for sig, fn in loaded.signatures.items():   # one CLI process per signature, in parallel
        # the CLI needs some input flag; "--input_exprs ;" is an empty feed (config)
        feed = (["--inputs", f"texture={tmp_path / 'x.npy'}"] if fn.structured_input_signature[1]
                else ["--input_exprs", ";"])
        runs[sig] = subprocess.Popen(
            [str(cli), "run", "--dir", str(exported), "--tag_set", "serve", "--signature_def",
             sig, *feed, "--outdir", str(tmp_path / sig)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    for sig, fn in loaded.signatures.items():
        _, err = runs[sig].communicate(timeout=300)
        assert runs[sig].returncode == 0, (sig, err[-3000:])
        args = {"texture": tf.constant(x)} if fn.structured_input_signature[1] else {}
        want = {k: np.asarray(v.numpy()) for k, v in fn(**args).items()}
        got = {p.stem: np.load(p) for p in (tmp_path / sig).glob("*.npy")}
        assert set(got) == set(want), sig
        for k, v in want.items():
            if v.dtype.kind in "OSU":                   # config's JSON string
                assert got[k].item() == v.item(), (sig, k)
            else:
                assert got[k].shape == v.shape, (sig, k)
                np.testing.assert_allclose(got[k], v, atol=1e-5, rtol=1e-5, err_msg=f"{sig}/{k}")


def test_export_cli_errors_are_one_line(tmp_path, exported):
    res = subprocess.run([sys.executable, "-m", "train.export", f"--weights_dir={tmp_path}/nope",
                          f"--output={tmp_path}/o"], cwd=REPO, capture_output=True, text=True,
                         env=_env(), timeout=300)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "not a directory" in errors[0]
    assert not (tmp_path / "o").exists()


def test_existing_output_needs_overwrite(weights, exported):
    from tf_face.errors import TfFaceError
    from tf_face.serving.exporting import export
    with pytest.raises(TfFaceError, match="--overwrite"):
        export(weights, exported, tflite=False, log=lambda *_: None)
