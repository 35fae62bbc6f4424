"""`make demo`: the main job, end to end, on embedded defaults.

1. Geometry: the public-domain astronaut photo that ships in scikit-image
   (``skimage.data.astronaut()``) -> detect -> landmarks -> fit -> unwrap,
   outputs in ``<out_dir>/astronaut/``.
2. A small synthetic training set with known truth
   (``python -m tf_face.synthetic.make_dataset``), turned into TFRecord shards
   by the real geometry pipeline.
3. A **demonstration** of the three training jobs: B-Net -> FAN -> DRN,
   trained for a few CPU minutes (``python -m train.train_*``) into
   ``<out_dir>/weights``. These are not the weights reconstruct uses: the
   package ships release weights (``tf_face/weights/v4``, made by
   ``python -m train.release``, see its MODEL_CARD.md).
4. The synthetic benchmark of the demonstration weights on a held-out seed
   (``eval/synthetic_benchmark.py``).
5. Reconstruction of the astronaut and of a held-out synthetic face
   (``python -m tf_face.cli.reconstruct``) with the shipped release weights
   and the default appearance (``net+fit``): meshes, maps, renders,
   report.html.

Every step is the same command a user would type (printed before it runs), and
every step resumes: a second ``make demo`` reuses the finished data and
checkpoints. ``--quick`` shrinks everything (used by the tests).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import skimage.data
from absl import app, flags

from tf_face.cli.common import quiet_tensorflow, run_command_step, run_single
from tf_face.tf_import import VERBOSE_HELP
from tf_face.errors import TfFaceError
from tf_face.outputs import atomic_output_dir, write_png_rgb, write_unwrap_outputs
from tf_face.pipeline import GeometryPipeline

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", "demo_out", "Where the demo writes its outputs.")
flags.DEFINE_bool("geometry_only", False, "Only step 1 (photo -> UV texture).")
flags.DEFINE_integer("num_faces", 24, "Synthetic training faces.")
flags.DEFINE_integer("bnet_steps", 150, "B-Net training steps.")
flags.DEFINE_integer("fan_steps", 40, "FAN training steps.")
flags.DEFINE_integer("drn_steps", 40, "DRN training steps.")
flags.DEFINE_integer("bench_faces", 6, "Held-out synthetic faces in the benchmark.")
flags.DEFINE_bool("quick", False, "Tiny settings (for tests): 6 faces, a few steps.")
flags.DEFINE_bool("debug", False, "Show the traceback of an error (with the exception it wraps).")
flags.DEFINE_bool("verbose", False, VERBOSE_HELP)

REPO = Path(__file__).resolve().parents[2]
HELD_OUT_SEED = 1000   # never used for training data


def run_step(title: str, cmd: list[str]) -> float:
    return run_command_step(title, cmd, REPO, what="demo step")


def geometry_step(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    photo = skimage.data.astronaut()
    write_png_rgb(out_dir / "astronaut.png", photo)
    print("=== 1. geometry: astronaut photo -> landmarks -> fitted 3D face -> UV texture")
    t = time.perf_counter()
    pipe = GeometryPipeline("default")
    pipe.run(photo)  # warm-up: interpreters allocate on first use
    print(f"    models loaded in {time.perf_counter() - t:.2f} s")
    result = pipe.run(photo)
    target = out_dir / "astronaut"
    with atomic_output_dir(target, overwrite=True) as tmp:
        files = write_unwrap_outputs(tmp, photo, result, pipe.model)
    fit = result.fit_json()
    print(f"    faces found: {fit['num_faces']}, landmark RMSE / inter-ocular distance: "
          f"{fit['landmark_rmse_iod']:.4f}, visible texels: {fit['visible_texels']}")
    print("    ms per stage (warm): " + json.dumps(fit["timings_ms"]))
    print(f"    wrote {target}/: {', '.join(files)}")
    return fit


def run_demo(out_dir: Path) -> None:
    py = sys.executable
    t0 = time.perf_counter()
    if not FLAGS.geometry_only and not ((REPO / "train").is_dir() and (REPO / "eval").is_dir()):
        # known before anything runs: an installed wheel ships only tf_face
        raise TfFaceError(
            f"the demo's training steps run train/ and eval/ from a checkout of the repository, "
            f"and {REPO} has none (an installed package ships only tf_face); "
            f"run `make demo` in a clone, or pass --geometry_only")
    geometry_step(out_dir)
    if FLAGS.geometry_only:
        return
    quick = FLAGS.quick
    n = 6 if quick else FLAGS.num_faces
    steps = (4, 2, 2) if quick else (FLAGS.bnet_steps, FLAGS.fan_steps, FLAGS.drn_steps)
    syn, weights = out_dir / "synthetic_train", out_dir / "weights"
    times = {}
    times["synthetic data"] = run_step(
        "2. synthetic training faces (known truth) -> real pipeline -> TFRecord shards",
        [py, "-m", "tf_face.synthetic.make_dataset", f"--output={syn}", f"--num_faces={n}",
         "--seed=0", "--shard_size=8"])
    common = [f"--data={syn / 'shards'}", f"--output_dir={weights}", "--checkpoint_every=50",
              "--image_every=20"]
    # CPU-sized settings (the paper's B-Net width is 64, batch and steps far larger;
    # see README "Training on real photos")
    times["train B-Net"] = run_step(
        "3a. DEMONSTRATION training (a few CPU minutes; reconstruct uses the shipped release "
        "weights): train B-Net (albedo PCA coefficients + SH lighting)",
        [py, "-m", "train.train_bnet", *common, f"--steps={steps[0]}", "--batch_size=4",
         "--bnet_width=16", "--learning_rate=1e-3"])
    times["train FAN"] = run_step(
        "3b. train FAN (high-fidelity albedo), guided by B-Net",
        # a few CPU minutes: a higher learning rate and the paper's w_pixel / w_gan
        # (with the summed E_pixel the pixel term leads: ~20x the LSGAN term at the
        # start); no perceptual term (there are no ImageNet VGG weights offline,
        # and a random VGG measures nothing)
        [py, "-m", "train.train_fan", *common, f"--steps={steps[1]}", "--batch_size=2",
         "--learning_rate=1e-3", "--w_percep=0", "--disc_learning_rate=2e-4"])
    times["train DRN"] = run_step(
        "3c. train DRN (wrinkle-level displacement)",
        [py, "-m", "train.train_drn", *common, f"--steps={steps[2]}", "--batch_size=2",
         "--learning_rate=2e-4"])
    bench_json = out_dir / "benchmark.json"
    times["benchmark"] = run_step(
        "4. synthetic benchmark of the demonstration weights on held-out faces "
        "(seed never used in training)",
        [py, str(REPO / "eval" / "synthetic_benchmark.py"), f"--weights_dir={weights}",
         f"--json={bench_json}", f"--num_faces={2 if quick else FLAGS.bench_faces}",
         f"--seed={HELD_OUT_SEED}", f"--out_dir={out_dir / 'benchmark'}"])
    held = out_dir / "synthetic_heldout"
    run_step("5a. one held-out synthetic face",
             [py, "-m", "tf_face.synthetic.make_dataset", f"--output={held}", "--num_faces=1",
              f"--seed={HELD_OUT_SEED + 1}"])
    held_photo = sorted((held / "photos").glob("*.png"))[0]
    reports = []
    for name, photo in (("astronaut", out_dir / "astronaut.png"), ("synthetic", held_photo)):
        target = out_dir / "reconstruct" / name
        times[f"reconstruct {name}"] = run_step(
            f"5. reconstruct {name}: textured, detailed 3D face, renders, report.html "
            "(the shipped release weights; appearance net+fit: the per-photo fit started "
            "at the networks' outputs)",
            [py, "-m", "tf_face.cli.reconstruct", f"--image={photo}", f"--out_dir={target}",
             "--overwrite"])
        reports.append(target / "report.html")
    print("\n=== done in %.0f s" % (time.perf_counter() - t0))
    for k, v in times.items():
        print(f"    {k:<24}{v:8.1f} s")
    if bench_json.exists():
        bench = json.loads(bench_json.read_text())
        print("    benchmark of the demonstration weights (held-out synthetic faces):")
        for k in ("albedo_error_pca_visible", "albedo_error_fan_visible",
                  "albedo_error_pca_hidden", "albedo_error_fan_hidden",
                  "normal_error_base_deg", "normal_error_drn_deg"):
            if k in bench:
                print(f"      {k:<28}{bench[k]:.4f}")
    print(f"    demonstration weights: {weights}; reconstruct used the shipped release "
          f"weights (tf_face/weights/v4/MODEL_CARD.md)")
    for r in reports:
        print(f"    open {r}")


def main(argv):
    del argv
    quiet_tensorflow(verbose=FLAGS.verbose)
    return run_single(lambda: run_demo(Path(FLAGS.out_dir)), FLAGS.debug)


if __name__ == "__main__":
    app.run(main)
