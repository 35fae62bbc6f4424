"""`make demo`: the main job on the embedded default input.

For now (geometry pipeline): take the public-domain astronaut photo that ships
in the scikit-image wheel (``skimage.data.astronaut()``), detect the face, fit
the default 3D face model, unwrap it into UV space, and write the outputs of
``tf_face.cli.unwrap`` into ``<out_dir>/astronaut/``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from absl import app, flags

from tf_face.cli.common import quiet_tensorflow, run_single

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", "demo_out", "Where the demo writes its outputs.")
flags.DEFINE_bool("debug", False, "Show tracebacks of internal errors.")


def run_demo(out_dir: Path) -> None:
    import skimage.data

    from tf_face.outputs import atomic_output_dir, write_png_rgb, write_unwrap_outputs
    from tf_face.pipeline import GeometryPipeline

    out_dir.mkdir(parents=True, exist_ok=True)
    photo = skimage.data.astronaut()
    write_png_rgb(out_dir / "astronaut.png", photo)
    print(f"[1/2] loading the default face model, UV atlas and MediaPipe TFLite models")
    t = time.perf_counter()
    pipe = GeometryPipeline("default")
    pipe.run(photo)  # warm-up: interpreters allocate on first use
    print(f"      ready in {time.perf_counter() - t:.2f} s")
    print(f"[2/2] detect -> landmarks -> fit -> unwrap on {out_dir / 'astronaut.png'}")
    result = pipe.run(photo)
    target = out_dir / "astronaut"
    with atomic_output_dir(target, overwrite=True) as tmp:
        files = write_unwrap_outputs(tmp, photo, result, pipe.model)
    fit = result.fit_json()
    print(f"      faces found: {fit['num_faces']}, landmark RMSE / inter-ocular distance: "
          f"{fit['landmark_rmse_iod']:.4f}, visible texels: {fit['visible_texels']}")
    print("      ms per stage: " + json.dumps(fit["timings_ms"]))
    print(f"wrote {target}/: {', '.join(files)}")
    print(f"open {target / 'overlay.png'} and {target / 'texture.png'}")


def main(argv):
    del argv
    quiet_tensorflow()
    return run_single(lambda: run_demo(Path(FLAGS.out_dir)), FLAGS.debug)


if __name__ == "__main__":
    app.run(main)
