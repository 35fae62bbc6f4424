"""LiteRT (``ai-edge-litert``, Google's TFLite runtime) as a client this project
did not write, reading our ``.tflite`` files.

``fetch(folder)`` downloads the pinned wheel (``tf_face.assets.download_wheel``:
exact file, sha256 checked) and unpacks its ``ai_edge_litert`` package under
``folder``; nothing is installed. ``run(folder, models, texture)`` runs
``CLIENT`` in a fresh interpreter with only that folder added to the path:
LiteRT's ``Interpreter`` opens each model, lists its signatures and runs the
``serving_default`` runner on ``texture``; it reports the signature lists and
saves the outputs by name, and fails if TensorFlow got imported on the way
(so the answer is LiteRT's, not ``tf.lite``'s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from tf_face.assets import download_wheel

REQUIREMENT = "ai-edge-litert==2.3.0"
WHEEL = "ai_edge_litert-2.3.0-cp311-cp311-manylinux_2_27_x86_64.whl"
SHA256 = "1f15078a6725d2357d9de9221664c29afa0545d807559c5f7199ce5e40b96b23"
PLATFORM = "manylinux_2_27_x86_64"

CLIENT = """
import json, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
texture = np.load(sys.argv[1], allow_pickle=False)
report = {}
for path in sys.argv[3:]:
    it = Interpreter(model_path=path, num_threads=1)
    sigs = it.get_signature_list()
    out = it.get_signature_runner("serving_default")(texture=texture)
    np.savez(f"{sys.argv[2]}/{len(report)}.npz", **out)
    report[path] = {"signatures": sigs, "outputs": f"{sys.argv[2]}/{len(report)}.npz"}
assert "tensorflow" not in sys.modules, "the LiteRT client imported TensorFlow"
print(json.dumps(report))
"""


def platform_mismatch() -> str:
    """Why the pinned wheel cannot run here ('' on CPython 3.11, Linux x86_64)."""
    if sys.version_info[:2] != (3, 11) or sys.platform != "linux" or os.uname().machine != "x86_64":
        return f"the pinned {WHEEL} is for CPython 3.11 on Linux x86_64"
    return ""


def fetch(folder: Path) -> Path:
    """``folder`` with the ``ai_edge_litert`` package unpacked in it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wheel = download_wheel(REQUIREMENT, WHEEL, SHA256, folder, PLATFORM)
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.startswith("ai_edge_litert/")
                   and ".." not in Path(m).parts]
        zf.extractall(folder / "site", members)
    return folder / "site"


def run(site: Path, models, texture: np.ndarray, work: Path) -> dict:
    """``{model path: {"signatures": ..., "outputs": {name: array}}}`` from LiteRT."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "texture.npy", np.asarray(texture, np.float32))
    env = dict(os.environ, PYTHONPATH=str(site), TF_CPP_MIN_LOG_LEVEL="3")
    res = subprocess.run([sys.executable, "-c", CLIENT, str(work / "texture.npy"), str(work),
                          *[str(m) for m in models]],
                         capture_output=True, text=True, timeout=600, env=env, cwd=work)
    if res.returncode != 0:
        raise RuntimeError(f"LiteRT client failed: {res.stderr.strip()[-1500:]}")
    report = json.loads(res.stdout.strip().splitlines()[-1])
    for entry in report.values():
        with np.load(entry["outputs"], allow_pickle=False) as z:
            entry["outputs"] = {k: z[k] for k in z.files}
    return report
