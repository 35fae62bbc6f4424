"""Benchmark of reconstruct: warm per-photo time per stage, TF vs TFLite backends.

    python eval/bench_reconstruct.py --json=PATH [--weights_dir=W]
        [--tflite_precision=float32] [--max_photos=8] [--repeats=1]

Photos: ../shared/data/faces (recursively; the first ``--max_photos`` that
reconstruct) when present, else the astronaut. Weights: ``--weights_dir``, else
the release weights shipped in the package (``DEFAULT_WEIGHTS_DIR``), else random
networks of the paper's size (B-Net width 64, UNet ngf 16 -- speed depends on the
architecture, not on the values). Each backend is loaded and warmed up (one
pass over the photos) before the timed passes.

Per-photo time = detect + landmarks + fit + unwrap + networks (B-Net, FAN and
DRN: on TF in one ``tf.function`` call, as reconstruct runs them; the
``tf_separate`` column calls them one by one, for the per-network split;
``tf_blas_threads`` leaves BLAS at its thread count, see ``tf_face.blas``) +
albedo_pca (host matmul) + detail_maps (displacement, displaced positions,
detail normals; on a second thread beside albedo_pca, so those two stage
times overlap -- ``tflite_serial`` runs them one after the other and the
MediaPipe models on one thread, the A/B of those two ideas); model loading, image decoding and file writing are
excluded; renders (16 images, numpy z-buffer) are timed separately on the
first photo (all 16 views and the ``basic`` pair). Each backend is timed in
its own process (``--measure_only``), so one's threads and memory do not weigh
on the next. Batch throughput
``batch_photos_per_s_<backend>``: ``reconstruct_one`` over the photos with
every output file written and no renders (what ``--image_dir --renders=none``
does per photo). ``--ideas`` (default on) times each network alone, warm:
TF with the networks' own Keras layers and with ``serving.inference_model``'s
(what the backend runs), TF + XLA, TFLite float32 with Keras's 5D instance
norms and with the 4D ones, float16 (XNNPACK) with and without the last-conv
and skip-join rewrites (``<net>_tflite_float16_without_<rewrite>``), FAN of
ngf 8, 12 and 16 (random weights), and FAN + DRN in one ``tf.function`` (``ms_per_network_ideas``). ``cpu_model`` / ``cpu_isa``
name the machine. Writes ``ms_per_photo_tf``, ``ms_per_photo_tflite``,
``ms_per_stage_tf``, ``ms_per_stage_tflite`` (medians; ``_tf_separate``
likewise) and more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
from absl import app, flags, logging

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tf_face.cli.common import IMAGE_SUFFIXES  # noqa: E402
from tf_face.errors import TfFaceError  # noqa: E402
from tf_face.image_io import load_image  # noqa: E402
from tf_face.landmarks.tflite_model import set_small_model_threads  # noqa: E402
from tf_face.serving.backends import ensure_tflite  # noqa: E402
from tf_face.serving.reconstruct import Reconstructor, reconstruct_one  # noqa: E402
from tf_face.serving.inference_model import REWRITES, inference_model  # noqa: E402
from tf_face.serving.tflite import TFLiteNetwork, convert_network, tflite_name  # noqa: E402
from tf_face.serving.weights import (CONFIG_FILE, DEFAULT_WEIGHTS_DIR, NETWORKS,  # noqa: E402
                                     load_networks, read_weights_config)
from tf_face.testing.random_weights import write_random_weights  # noqa: E402
from tf_face.eval_metrics import write_result_json  # noqa: E402
# TF-loading imports stay in functions, run after main's quiet_tensorflow() (test_import_weight)
if __name__ == "__main__":   # a script: TensorFlow without its start-up noise
    from tf_face.tf_import import quiet_tensorflow
    quiet_tensorflow()

FLAGS = flags.FLAGS
flags.DEFINE_string("json", None, "Write the results here.")
flags.DEFINE_string("weights_dir", None, "Weights folder (default: the shipped release "
                    "weights; random ones where the package has none).")
flags.DEFINE_enum("tflite_precision", "float32", ["float32", "float16", "int8"],
                  "TFLite files used by the TFLite backend.")
flags.DEFINE_integer("max_photos", 8, "Photos timed.")
flags.DEFINE_integer("repeats", 1, "Timed passes over the photos.")
flags.DEFINE_bool("ideas", True, "Also time each network alone (tight loop, warm): TF, TF with "
                  "XLA (jit_compile), TFLite float32/float16 (XNNPACK), and FAN+DRN in one "
                  "tf.function call.")
flags.DEFINE_integer("bnet_width", 64, "B-Net width of the random weights (no real weights).")
flags.DEFINE_enum("measure_only", None,
                  ["tf", "tf_separate", "tf_blas_threads", "tflite", "tflite_serial"],
                  "Internal: time only this backend and write its part of the result to "
                  "--json (each backend runs in its own process).")
flags.DEFINE_string("faces_dir", str(REPO.parent / "shared" / "data" / "faces"),
                    "Photo folder (searched recursively).")

STAGES = ("detect", "landmarks", "fit", "unwrap", "bnet", "fan", "drn", "networks",
          "albedo_pca", "detail_maps")
# (key, Reconstructor arguments + "landmark_threads", column title): "tf" is
# what reconstruct runs (the three networks in one tf.function call, BLAS on
# one thread around them: tf_face.blas), "tf_separate" one call per network
# (the per-network split), "tf_blas_threads" the TF path with BLAS at its own
# thread count (the idea's A/B), "tflite" the interpreter, "tflite_serial" the
# interpreter with the host stages one after the other and the MediaPipe
# models on one thread (what tflite was before those two ideas: their A/B)
BACKENDS = (("tf", dict(backend="tf"), "TF"),
            ("tf_separate", dict(backend="tf", fuse_networks=False), "TF 3 calls"),
            ("tf_blas_threads", dict(backend="tf", limit_blas_threads=False), "TF BLAS thr"),
            ("tflite", dict(backend="tflite"), "TFLite"),
            ("tflite_serial", dict(backend="tflite", parallel_host_stages=False,
                                   landmark_threads=1), "TFLite ser."))


def load_photos(faces_dir: Path) -> list:
    photos = []
    if faces_dir.is_dir():
        for p in sorted(faces_dir.rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES and "detections" not in p.parts:
                photos.append((str(p.relative_to(faces_dir)), load_image(p)))
    if not photos:
        photos = [("astronaut", skimage.data.astronaut())]
    return photos


def pick_weights() -> tuple:
    if FLAGS.weights_dir:
        return Path(FLAGS.weights_dir), "given"
    if (DEFAULT_WEIGHTS_DIR / CONFIG_FILE).is_file():
        return DEFAULT_WEIGHTS_DIR, "shipped release weights"
    folder = Path(tempfile.mkdtemp(prefix="tf_face_bench_weights_"))
    print(f"no trained weights: random networks (B-Net width {FLAGS.bnet_width}, ngf 16) "
          f"in {folder}")
    write_random_weights(folder, bnet_width=FLAGS.bnet_width, ngf=16)
    return folder, f"random (bnet_width={FLAGS.bnet_width}, ngf=16)"


def time_backend(recon, photos) -> tuple:
    usable = []
    for name, img in photos:  # warm-up pass; drop photos the pipeline rejects
        if len(usable) >= FLAGS.max_photos:
            break
        try:
            recon.run(img)
            usable.append((name, img))
        except TfFaceError as e:
            print(f"skipped {name}: {e}")
    stages = {k: [] for k in STAGES}
    totals = []
    for _ in range(FLAGS.repeats):
        for _, img in usable:
            t = time.perf_counter()
            rec = recon.run(img)
            totals.append((time.perf_counter() - t) * 1e3)
            for k in STAGES:
                if k in rec.timings_ms:
                    stages[k].append(rec.timings_ms[k])
    return usable, {k: float(np.median(v)) for k, v in stages.items() if v}, totals


def _median_ms(fn, n: int = 15) -> float:
    fn()
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3


def cpu_description() -> dict:
    """The CPU the numbers come from: model name and the vector extensions that
    set the networks' speed (2 cores of an earlier machine ran TF FAN in 26 ms,
    2 cores of an AMD EPYC with AVX2 in 76-80 ms; README, "Speed")."""
    info = {"cpu_model": "unknown", "cpu_isa": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:                   # not Linux
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and info["cpu_model"] == "unknown":
            info["cpu_model"] = value.strip()
        elif key.strip() == "flags":
            flags_ = set(value.split())
            info["cpu_isa"] = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni",
                                           "amx_tile") if f in flags_]
            break
    return info


def time_ideas(weights) -> dict:
    """ms per call of each network alone (warm, median of 15) under each idea."""
    import tensorflow as tf

    from tf_face.models.unet import build_fan

    cfg = read_weights_config(weights)
    nets = load_networks(weights)
    s = cfg.uv_size
    x = tf.constant(np.random.default_rng(0).uniform(0, 1, (1, s, s, 3)).astype(np.float32))
    # what TFBackend runs (serving.inference_model: sub-pixel transposed convs, 4D
    # instance norms, shifted last convs, split ReLUs); tf_keras_layers below: the
    # networks' own Keras layers
    served = {n: inference_model(m) for n, m in nets.items()}
    out = {}
    for name in NETWORKS:
        for label, jit, m in (("tf_keras_layers", False, nets[name]),
                              ("tf", False, served[name]),
                              ("tf_xla", True, served[name])):
            f = tf.function(lambda t, m=m: m(t, training=False), jit_compile=jit)
            out[f"{name}_{label}"] = _median_ms(lambda f=f: np.asarray(f(x)))
    xn = x.numpy()
    with tempfile.TemporaryDirectory() as tmp:   # TFLite with Keras's 5D instance norms
        for name in ("fan", "drn"):
            path = Path(tmp) / f"{name}.tflite"
            path.write_bytes(convert_network(
                nets[name], name, "float32", s,
                rewrites=tuple(r for r in REWRITES if r != "instance_norm"))["float32"])
            net = TFLiteNetwork(path)
            out[f"{name}_tflite_float32_5d_norms"] = _median_ms(lambda net=net: net(xn))
            # float16 without the last-conv and skip-join rewrites (alone and both)
            for off in ("small_conv", "relu_concat", "small_conv+relu_concat"):
                path = Path(tmp) / f"{name}_{off}.tflite"
                path.write_bytes(convert_network(
                    nets[name], name, "float16", s,
                    rewrites=tuple(r for r in REWRITES if r not in off.split("+")))["float16"])
                net = TFLiteNetwork(path)
                out[f"{name}_tflite_float16_without_{off.replace('+', '_')}"] = \
                    _median_ms(lambda net=net: net(xn))
        # narrower UNets (random weights: speed does not depend on the values; their
        # quality is not measured here): what the architecture costs per ngf
        for ngf in (8, 12, 16):
            path = Path(tmp) / f"fan_ngf{ngf}.tflite"
            path.write_bytes(convert_network(build_fan(s, ngf=ngf), "fan", "float32",
                                             s)["float32"])
            net = TFLiteNetwork(path)
            out[f"fan_ngf{ngf}_tflite_float32"] = _median_ms(lambda net=net: net(xn))
    for precision in ("float32", "float16"):
        folder = ensure_tflite(weights, cfg, precision, log=lambda *_: None)
        for name in NETWORKS:
            net = TFLiteNetwork(folder / tflite_name(name, precision))
            out[f"{name}_tflite_{precision}"] = _median_ms(lambda net=net: net(xn))
            if precision == "float16":   # the interpreter's own default: one thread
                net = TFLiteNetwork(folder / tflite_name(name, precision), num_threads=1)
                out[f"{name}_tflite_{precision}_1thread"] = _median_ms(lambda net=net: net(xn))
    both = tf.function(lambda t: (served["fan"](t, training=False),
                                  served["drn"](t, training=False)))
    out["fan_drn_one_call_tf"] = _median_ms(lambda: [np.asarray(v) for v in both(x)])
    three = tf.function(lambda t: [served[n](t, training=False) for n in NETWORKS])
    out["all_one_call_tf"] = _median_ms(lambda: [np.asarray(v) for v in three(x)])
    return out


def measure_backend(backend: str, weights, photos) -> dict:
    """One BACKENDS entry, timed in this process: per-stage medians, per-photo
    times, batch throughput (and the renders for ``tf``)."""
    from tf_face.viz.views import render_views

    kwargs = dict(next(b[1] for b in BACKENDS if b[0] == backend))
    set_small_model_threads(kwargs.pop("landmark_threads", None))   # this process only
    result = {}
    t = time.perf_counter()
    # the networks path (the per-photo fit is timed by eval/synthetic_benchmark.py)
    recon = Reconstructor(weights, tflite_precision=FLAGS.tflite_precision, appearance="net",
                          **kwargs)
    load_s = time.perf_counter() - t
    usable, ms, totals = time_backend(recon, photos)
    result[f"ms_per_photo_{backend}"] = float(np.median(totals))
    result[f"ms_per_photo_{backend}_mean"] = float(np.mean(totals))
    result[f"ms_per_stage_{backend}"] = ms
    result[f"load_s_{backend}"] = load_s
    result["photos"] = [n for n, _ in usable]
    # batch throughput: reconstruct_one per photo (inference + every output file
    # written atomically), no renders -- what `--image_dir` does per photo
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        for i, (name, img) in enumerate(usable):
            reconstruct_one(recon, Path(name), Path(tmp) / f"p{i}", renders="none",
                            inputs=(img, None))
        result[f"batch_photos_per_s_{backend}"] = len(usable) / (time.perf_counter() - t)
    if backend == "tf":
        img = usable[0][1]
        rec = recon.run(img)
        m, f = recon.model, rec.result.fitted
        t = time.perf_counter()
        render_views(img, f.vertices_image, m.triangles, m.uv, rec.nets.albedo,
                     rec.nets.sh, rec.detail_normals, recon.atlas.mask, recon.color_space)
        result["ms_renders_16_views"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        render_views(img, f.vertices_image, m.triangles, m.uv, rec.nets.albedo,
                     rec.nets.sh, rec.detail_normals, recon.atlas.mask, recon.color_space,
                     which="basic")
        result["ms_renders_basic"] = (time.perf_counter() - t) * 1e3
    return result


def measure_in_subprocess(backend: str, weights) -> dict:
    """``measure_backend`` in a fresh Python: one backend's thread pools and
    memory do not weigh on the next one's timings (measured: TFLite's networks
    took ~90 ms after three TF backends in the same process, ~60 ms alone)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "part.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), f"--measure_only={backend}",
               f"--json={out}", f"--weights_dir={weights}",
               f"--tflite_precision={FLAGS.tflite_precision}", f"--max_photos={FLAGS.max_photos}",
               f"--repeats={FLAGS.repeats}", f"--faces_dir={FLAGS.faces_dir}", "--noideas"]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            raise TfFaceError(f"timing the {backend} backend failed (rc {proc.returncode}): "
                              f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}")
        for line in proc.stdout.splitlines():
            if line.startswith("skipped "):
                print(line)
        return json.loads(out.read_text())


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)   # the TFLite converter logs at INFO
    weights, origin = pick_weights()
    photos = load_photos(Path(FLAGS.faces_dir))
    if FLAGS.measure_only:   # the child of measure_in_subprocess
        write_result_json(FLAGS.json, measure_backend(FLAGS.measure_only, weights, photos))
        return
    result = {"weights": str(weights), "weights_origin": origin, "cpus": os.cpu_count(),
              **cpu_description(),
              "tflite_precision": FLAGS.tflite_precision, "repeats": FLAGS.repeats,
              "one_process_per_backend": True}
    for backend, *_ in BACKENDS:
        result.update(measure_in_subprocess(backend, weights))
    geo = ("detect", "landmarks", "fit", "unwrap")
    print(f"\n{len(result['photos'])} photos x {FLAGS.repeats} pass(es); weights: {origin}; "
          f"CPU: {result['cpu_model']} x {result['cpus']} ({', '.join(result['cpu_isa'])})")
    print("ms, medians; '-': the stage is not separate on that backend")
    print(f"{'stage':<13}" + "".join(f"{title:>12}" for *_, title in BACKENDS))
    for k in STAGES:
        cells = [result[f"ms_per_stage_{b}"].get(k) for b, *_ in BACKENDS]
        print(f"{k:<13}" + "".join(f"{c:>12.1f}" if c is not None else f"{'-':>12}"
                                   for c in cells))
    for b, *_ in BACKENDS:
        s = result[f"ms_per_stage_{b}"]
        result[f"ms_geometry_{b}"] = sum(s[k] for k in geo)
        result[f"ms_networks_{b}"] = s["networks"]
    print(f"{'per photo':<13}" + "".join(f"{result[f'ms_per_photo_{b}']:>12.1f}"
                                         for b, *_ in BACKENDS)
          + "   (goals: <= 100 TF, <= 50 TFLite)")
    print(f"{'batch phot/s':<13}" + "".join(f"{result[f'batch_photos_per_s_{b}']:>12.2f}"
                                            for b, *_ in BACKENDS)
          + "   (files written, no renders)")
    print(f"renders (first photo): all 16 views {result['ms_renders_16_views']:.0f} ms, "
          f"basic (2) {result['ms_renders_basic']:.0f} ms   (goal: basic <= 300)")
    if FLAGS.ideas:
        ideas = result["ms_per_network_ideas"] = time_ideas(weights)
        print("\nnetworks alone, warm (median ms per call):")
        cols = ("tf_keras_layers", "tf", "tf_xla", "tflite_float32_5d_norms", "tflite_float32",
                "tflite_float16", "tflite_float16_1thread")
        w = max(len(c) for c in cols) + 2
        print(f"{'network':<10}" + "".join(f"{c:>{w}}" for c in cols))
        for name in ("bnet", "fan", "drn"):
            print(f"{name:<10}" + "".join(f"{ideas[f'{name}_{c}']:>{w}.1f}"
                                          if f"{name}_{c}" in ideas else f"{'-':>{w}}"
                                          for c in cols))
        print(f"(TFLite with {TFLiteNetwork.default_threads()} threads, the backend's default; "
              "_1thread: the interpreter's own default; tf_keras_layers / _5d_norms: without "
              "serving.inference_model's rewrites / with all but its 4D instance norms)")
        print("TFLite float16 without the last-conv rewrite / the skip-join ReLU rewrite / "
              "both (serving.inference_model): "
              + "; ".join(f"{n} " + " / ".join(
                  f"{ideas[f'{n}_tflite_float16_without_{o}']:.1f}"
                  for o in ("small_conv", "relu_concat", "small_conv_relu_concat"))
                  + f" (with both: {ideas[f'{n}_tflite_float16']:.1f})" for n in ("fan", "drn"))
              + " ms")
        print("FAN of ngf 8 / 12 / 16 (random weights), TFLite float32: "
              + " / ".join(f"{ideas[f'fan_ngf{n}_tflite_float32']:.1f}" for n in (8, 12, 16))
              + " ms")
        print(f"fan+drn in one tf.function call: {ideas['fan_drn_one_call_tf']:.1f} ms "
              f"(separately {ideas['fan_tf'] + ideas['drn_tf']:.1f}); all three in one call: "
              f"{ideas['all_one_call_tf']:.1f} ms (separately "
              f"{sum(ideas[f'{n}_tf'] for n in NETWORKS):.1f})")
    if FLAGS.json:
        write_result_json(FLAGS.json, result)


if __name__ == "__main__":
    app.run(main)
