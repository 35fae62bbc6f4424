"""The wheel: built from the repo's files, installed into a fresh venv, used from outside the repo.

The fresh venv sees the project venv's dependencies through a ``.pth`` file
(derived from the running interpreter, nothing hard-coded) but not the repo:
every check runs in a subprocess whose cwd is a temp dir and whose
``PYTHONPATH`` is empty, so ``tf_face`` can only come from the installed wheel.

* ``test_wheel_installs_and_runs``: ``pip wheel --no-build-isolation`` (the op
  built against the project's TensorFlow, CPU only) -> the wheel holds
  ``tf_face`` with the default model, the release weights and the op ``.so``,
  and no top-level ``train`` / ``eval``; installed, it loads the default model,
  verifies and loads the shipped weights, runs the op (equal to the pure-TF
  reference) and, with its ``.so`` deleted, falls back with one line.
* ``test_wheel_without_tensorflow_at_build_time``: what a plain ``pip install .``
  does under pip's build isolation (TensorFlow not importable while building):
  the wheel builds, says in one line that the op was skipped, and ships
  everything else.
"""

import json
import re
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

SO_GLOB = "_tf_face_ops*.so"
PACKAGE_DATA = ("tf_face/facemodel/data/default_model.npz", "tf_face/weights/v4/manifest.json",
                "tf_face/weights/v4/bnet.weights.npz", "tf_face/weights/v4/MODEL_CARD.md")

# Runs inside the fresh venv (argv[1] = the venv), from a temp cwd.
INSTALLED_CHECK = r'''
import importlib.util, json, os, sys
from pathlib import Path

import numpy as np

venv = Path(sys.argv[1]).resolve()
import tf_face
out = {"tf_face": str(Path(tf_face.__file__).resolve())}
assert Path(out["tf_face"]).is_relative_to(venv), out

out["toplevel"] = {n: importlib.util.find_spec(n) is not None for n in ("train", "eval")}

from tf_face.facemodel import load_face_model
model = load_face_model("default")
out["model_vertices"] = int(model.num_vertices)

from tf_face.serving import weights as W
folder = Path(W.DEFAULT_WEIGHTS_DIR).resolve()
assert folder.is_relative_to(venv), folder
manifest = W.verify_manifest(folder)
nets = W.load_networks(folder)
out["weights"] = {"files": len(manifest["files"]),
                  "nets": {k: int(v.count_params()) for k, v in nets.items()}}

from tf_face import render
from tf_face.render import ops
out["so"] = [str(p) for p in Path(render.__file__).resolve().parent.glob("_tf_face_ops*.so")]
out["ops_available"] = bool(render.ops_available())
rng = np.random.default_rng(0)
albedo = rng.uniform(0.1, 1.0, (1, 5, 4, 3)).astype(np.float32)
normals = rng.normal(size=(1, 5, 4, 3)).astype(np.float32)
sh = rng.normal(scale=0.5, size=(1, 9, 3)).astype(np.float32)
ref = ops.sh_shade(albedo, normals, sh, backend="reference").numpy()
got = ops.sh_shade(albedo, normals, sh, backend="auto").numpy()
out["auto_vs_reference"] = float(np.abs(got - ref).max())
try:
    ops.sh_shade(albedo, normals, sh, backend="op")
    out["op_error"] = None
except Exception as e:
    out["op_error"] = f"{type(e).__name__}: {e}"
print("RESULT " + json.dumps(out))
'''


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", OPENBLAS_NUM_THREADS="1", TF_FACE_NO_CUDA="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


def _run(cmd, cwd, timeout=240, **env) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=_clean_env(**env), text=True,
                         capture_output=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def _repo_copy(dst: Path) -> Path:
    """The files a clone would have (tracked + new, not ignored): no build outputs, no .so."""
    res = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    for name in filter(None, res.stdout.split("\0")):
        src = REPO / name
        if src.is_file():   # a tracked file deleted in the working tree is skipped
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    return dst


def _venv(path: Path, *site_dirs) -> Path:
    """A fresh venv that also sees ``site_dirs`` (a .pth), never the repo."""
    _run([sys.executable, "-m", "venv", path], cwd=path.parent)
    python = path / "bin" / "python"
    _see(python, *site_dirs)
    return python


def _see(python: Path, *site_dirs) -> None:
    """Point the venv's ``.pth`` at ``site_dirs`` (replacing what it saw before)."""
    purelib = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "zz_project_deps.pth").write_text("".join(f"{d}\n" for d in site_dirs))


def _build_wheel(python: Path, src: Path, dist: Path) -> tuple[Path, str]:
    res = _run([python, "-m", "pip", "wheel", "-v", "--no-build-isolation", "--no-deps",
                "--no-index", "-w", dist, src], cwd=src)
    wheels = list(dist.glob("tf_face-*.whl"))
    assert len(wheels) == 1, (wheels, res.stdout[-2000:])
    return wheels[0], res.stdout + res.stderr


def _check_wheel_contents(wheel: Path) -> list:
    names = zipfile.ZipFile(wheel).namelist()
    toplevel = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert toplevel == {"tf_face"}, toplevel
    for data in PACKAGE_DATA:
        assert data in names, f"{data} is not in {wheel.name}"
    return [n for n in names if n.startswith("tf_face/render/_tf_face_ops") and n.endswith(".so")]


def _installed_check(python: Path, venv: Path, cwd: Path) -> tuple[dict, str]:
    script = cwd / "check_installed.py"
    script.write_text(INSTALLED_CHECK)
    res = _run([python, script, venv], cwd=cwd)
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, res.stdout[-2000:] + res.stderr[-2000:]
    return json.loads(line[-1][len("RESULT "):]), res.stderr


def _check_common(out: dict) -> None:
    assert out["toplevel"] == {"train": False, "eval": False}, out
    assert out["model_vertices"] == 468   # the default model (MediaPipe face-mesh topology)
    assert out["weights"]["files"] >= 8 and set(out["weights"]["nets"]) == {"bnet", "fan", "drn"}
    assert all(n > 0 for n in out["weights"]["nets"].values()), out["weights"]


def test_wheel_with_the_op(tmp_path):
    """``pip install --no-build-isolation .``: the op is built into the wheel and runs installed."""
    project_site = sysconfig.get_path("purelib")   # the running (project) venv's deps
    src = _repo_copy(tmp_path / "src")
    wheel, build_log = _build_wheel(Path(sys.executable), src, tmp_path / "dist")
    assert "tf_face ops: built" in build_log, build_log[-3000:]
    assert len(_check_wheel_contents(wheel)) == 1

    venv = tmp_path / "venv"
    python = _venv(venv, project_site)
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], cwd=tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    out, _ = _installed_check(python, venv, work)
    _check_common(out)
    assert len(out["so"]) == 1 and Path(out["so"][0]).is_relative_to(venv.resolve()), out["so"]
    assert out["ops_available"] and out["op_error"] is None, out
    assert out["auto_vs_reference"] < 1e-5, out

    # the demo's training steps need train/ and eval/, which the wheel does not ship:
    # one line that says so, before any step runs
    res = subprocess.run([python, "-m", "tf_face.cli.demo", f"--out_dir={work / 'demo'}"],
                         capture_output=True, text=True, env=_clean_env(), cwd=work, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "checkout of the repository" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (work / "demo").exists()


def test_wheel_without_tensorflow_at_build_time(tmp_path):
    """A plain ``pip install .``: pip's isolated build cannot import TensorFlow, so the
    wheel skips the op with one line, and the installed package runs on the reference."""
    # the build venv sees the project venv's build tools (setuptools < 70.1 builds
    # wheels with the `wheel` package) but not TensorFlow
    project_site = Path(sysconfig.get_path("purelib"))
    tools = tmp_path / "build_tools"
    tools.mkdir()
    for entry in project_site.iterdir():
        if entry.name.split("-")[0] in ("wheel", "packaging"):
            (tools / entry.name).symlink_to(entry)
    venv = tmp_path / "venv"
    python = _venv(venv, tools)
    res = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('tensorflow'))"],
                         capture_output=True, text=True, env=_clean_env(), cwd=tmp_path)
    assert res.stdout.strip() == "None", res.stdout + res.stderr

    src = _repo_copy(tmp_path / "src")
    wheel, build_log = _build_wheel(python, src, tmp_path / "dist")
    skipped = [ln for ln in build_log.splitlines() if "tf_face ops: not built" in ln]
    assert len(skipped) == 1, build_log[-3000:]
    assert "TensorFlow is not importable" in skipped[0] and "--no-build-isolation" in skipped[0]
    assert _check_wheel_contents(wheel) == []

    # the same venv, now with the project's dependencies (TensorFlow) to run on
    _see(python, project_site)
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], cwd=tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    out, stderr = _installed_check(python, venv, work)
    _check_common(out)
    assert not out["ops_available"] and out["so"] == [], out
    assert out["auto_vs_reference"] == 0.0, out
    assert "OpsUnavailableError" in out["op_error"] and "--no-build-isolation" in out["op_error"]
    fallback = [ln for ln in stderr.splitlines() if "pure-TF reference" in ln]
    assert len(fallback) == 1, stderr[-2000:]


def test_install_requires_covers_every_third_party_import():
    """Every distribution whose module tf_face/ imports (at any depth) is in setup.py's
    INSTALL_REQUIRES, so `pip install .` pulls what the package needs."""
    import ast
    import importlib.metadata as md
    tree = ast.parse((REPO / "setup.py").read_text())
    requires = next(ast.literal_eval(node.value) for node in ast.walk(tree)
                    if isinstance(node, ast.Assign)
                    and any(getattr(t, "id", None) == "INSTALL_REQUIRES" for t in node.targets))
    declared = {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requires}
    owners = md.packages_distributions()
    needed = {}
    for path in (REPO / "tf_face").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "tf_face":
                    continue
                for dist in owners.get(top, [top]):
                    needed.setdefault(dist.lower().replace("_", "-"), set()).add(path.name)
    # optional at run time, each behind a try/except ImportError with a fallback
    optional = {"ai-edge-litert"}
    missing = {d: sorted(f) for d, f in needed.items() if d not in declared and d not in optional}
    assert not missing, f"imported by tf_face but not in INSTALL_REQUIRES: {missing}"
