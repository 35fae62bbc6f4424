"""Package tf_face and build its custom TensorFlow ops.

``python setup.py build_ext --inplace`` (what ``make ops`` runs) compiles
``ops/cc/*.cc`` into ``tf_face/render/_tf_face_ops*.so`` with the compiler
flags TensorFlow reports (``tf.sysconfig``). When ``nvcc`` is on PATH (or
``$CUDA_HOME/bin``) and the TF wheel ships its CUDA headers
(``tensorflow/include/third_party/gpus/cuda/include``), the GPU functors
(``ops/cc/*.cu.cc``) and CUDA kernels (``ops/cuda/*.cu.cc``) are compiled too
and every op kernel is also registered for the GPU (``-DGOOGLE_CUDA=1``); no
CUDA runtime is linked: libtensorflow_framework exports the cudart symbols. ``TF_FACE_NO_CUDA=1`` skips CUDA;
``TF_FACE_CUDA_ARCHS="80;90"`` picks the GPU architectures.

The build also writes ``_tf_face_ops.build.json`` beside the library (its
digest and that of the op sources): tf_face loads that library only while the
sources match (``tf_face/render/op_sources.py``). If the build fails, tf_face
still imports and uses the pure-TF reference.

Installing (README "Install"): the wheel ships one top-level package,
``tf_face`` -- its code, the default face model (``facemodel/data/*.npz``), the
release weights (``weights/<version>/*``) and the op ``.so`` when it built.
``train/`` and ``eval/`` are NOT installed: they are the repo's entry points
(``python -m train.train_bnet``, ``python eval/bench_ops.py``), run from a
checkout, so the wheel claims no generic top-level names (``train``, ``eval``).
The op build needs TensorFlow importable at build time, which pip's build
isolation hides: ``pip install --no-build-isolation .`` builds it against the
TensorFlow of the target environment (the ABI the ``.so`` must match); a plain
``pip install .`` skips it with one line and tf_face runs on the pure-TF
reference (``pyproject.toml`` says why TensorFlow is not a build requirement).
``make ops`` (``build_ext --inplace``) still fails when the op does not build.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
CPU_SOURCES = ["ops/cc/ops.cc", "ops/cc/validation.cc", "ops/cc/sh_shade.cc", "ops/cc/laplacian.cc"]
CUDA_SOURCES = ["ops/cc/sh_shade.cu.cc", "ops/cc/laplacian.cu.cc", "ops/cuda/tf_face_kernels.cu.cc"]


def _op_sources():
    """tf_face/render/op_sources.py, loaded by path (importing tf_face would import TF)."""
    spec = importlib.util.spec_from_file_location(
        "_tf_face_op_sources", os.path.join(ROOT, "tf_face", "render", "op_sources.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tf_flags():
    # TF's libraries print INFO lines on stderr while they load (oneDNN notice,
    # "Could not find cuda drivers"); the op build does not need them
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags(), tf.sysconfig.get_include()


def _find_nvcc():
    if os.environ.get("TF_FACE_NO_CUDA"):
        return None
    nvcc = shutil.which("nvcc")
    if nvcc is None and os.environ.get("CUDA_HOME"):
        cand = os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
        nvcc = cand if os.path.exists(cand) else None
    return nvcc


class BuildTfOps(build_ext):
    """Compiles the op library with TF's flags instead of distutils' defaults."""

    _manifest = None

    def run(self):
        super().run()
        if self.inplace and self._manifest:  # setuptools copies only the library into the tree
            in_tree = os.path.join(ROOT, "tf_face", "render", os.path.basename(self._manifest))
            if os.path.abspath(in_tree) != os.path.abspath(self._manifest):
                shutil.copyfile(self._manifest, in_tree)

    def build_extension(self, ext):
        compile_flags, link_flags, tf_include = _tf_flags()
        out = self.get_ext_fullpath(ext.name)
        tmp = os.path.join(self.build_temp, "tf_face_ops")
        os.makedirs(tmp, exist_ok=True)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        cxx = os.environ.get("CXX", "g++")
        # TF's headers are system headers (their warnings are not ours): -isystem, not -I
        tf_flags = [f"-isystem{f[2:]}" if f.startswith("-I") else f for f in compile_flags]
        defines = [f for f in compile_flags if f.startswith("-D")]
        common = ["-O3", "-fPIC", "-Wall", f"-I{ROOT}"] + tf_flags

        cuda_include = os.path.join(tf_include, "third_party", "gpus", "cuda", "include")
        nvcc = _find_nvcc()
        use_cuda = nvcc is not None and os.path.isdir(cuda_include)
        gpu_flags = ["-DGOOGLE_CUDA=1", f"-isystem{cuda_include}"] if use_cuda else []
        jobs = [[cxx, "-c", os.path.join(ROOT, src), "-o", os.path.join(tmp, os.path.basename(src) + ".o")]
                + common + gpu_flags for src in CPU_SOURCES]
        if use_cuda:
            archs = os.environ.get("TF_FACE_CUDA_ARCHS", "80;90").split(";")
            gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs if a]
            for src in CUDA_SOURCES:
                # nvcc's own CUDA headers (not the wheel's, see ops/README.md); TF's
                # include dir only for Eigen (GpuDevice), as a system dir
                jobs.append([nvcc, "-c", "-x", "cu", os.path.join(ROOT, src), "-o",
                             os.path.join(tmp, os.path.basename(src).replace(".cu.cc", ".cu.o")), "-O3",
                             "-std=c++17", "-DGOOGLE_CUDA=1", "--expt-relaxed-constexpr",
                             "-Xcompiler", "-fPIC,-Wall", f"-I{ROOT}", "-isystem", tf_include]
                            + defines + gencode)
        else:
            print("tf_face ops: building CPU kernels only (no nvcc or no TF CUDA headers)")
        with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
            results = list(pool.map(lambda cmd: (cmd, subprocess.run(cmd, capture_output=True, text=True)), jobs))
        for cmd, res in results:
            if res.stderr.strip():  # warnings included: our sources build -Wall clean
                sys.stderr.write(res.stderr)
            if res.returncode != 0:
                sys.stderr.write(res.stdout)
                raise RuntimeError(f"tf_face ops: compile failed: {' '.join(cmd[:4])} ...")
        objects = [cmd[cmd.index("-o") + 1] for cmd, _ in results]
        link = [cxx, "-shared", "-o", out] + objects + link_flags
        res = subprocess.run(link, capture_output=True, text=True)
        if res.returncode != 0:
            sys.stderr.write(res.stdout + res.stderr)
            raise RuntimeError("tf_face ops: link failed")
        # the loader loads the library this manifest names, if the sources still match
        self._manifest = _op_sources().write_manifest(out, ROOT, use_cuda)
        print(f"tf_face ops: built {os.path.relpath(out, ROOT)} ({'CPU+CUDA' if use_cuda else 'CPU'})")


class BuildTfOpsOrSkip(BuildTfOps):
    """``make ops`` (``build_ext --inplace``) fails loudly when the op does not
    build; a wheel build (``pip install .`` / ``pip wheel .``) skips the op with
    one line instead, so the package still installs and uses the reference."""

    def run(self):
        # setuptools clears self.inplace while it builds (then copies into the tree)
        self._required = bool(self.inplace)
        super().run()

    def build_extension(self, ext):
        if getattr(self, "_required", False):
            return super().build_extension(ext)
        hint = "build it with: pip install --no-build-isolation ."
        if importlib.util.find_spec("tensorflow") is None:
            why = "TensorFlow is not importable at build time (pip's build isolation)"
        else:
            try:
                return super().build_extension(ext)
            except (ImportError, RuntimeError, OSError) as err:
                why, hint = str(err).splitlines()[0], "the compiler output is above"
        print(f"tf_face ops: not built ({why}); tf_face will use the pure-TF reference; {hint}")
        return None


# Runtime requirements (requirements.txt pins the tested versions). TensorFlow
# stays on 2.21.x: the op .so is built against one TF's ABI (a .so that does
# not load falls back to the reference, but the pins say what was tested).
INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "keras>=3.10",
    "numpy>=1.26",
    "opencv-python-headless>=4.9",
    "absl-py>=2.0",
    "scipy>=1.11",
    "h5py>=3.10",
    "scikit-image>=0.22",
    "tqdm>=4.60",
    "threadpoolctl>=3.1",
]

setup(
    name="tf_face",
    version="0.1.0",
    description="One face photo -> 3D face, UV albedo and detail (TensorFlow)",
    long_description=open(os.path.join(ROOT, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # only tf_face: train/ and eval/ are the repo's entry points, run from a
    # checkout (see the module docstring); they would install as top-level
    # packages named `train` and `eval` and shadow anyone else's
    packages=find_packages(include=["tf_face", "tf_face.*"]),
    # data tf_face reads at run time: the default face model
    # (facemodel/default.py) and the release weights (serving/weights.py:
    # tf_face/weights/<version>/: json, npz, manifest, model card, curves)
    package_data={"tf_face": ["facemodel/data/*.npz", "weights/*/*"]},
    # only package_data: a stray build output in the tree (the in-place .so,
    # caches) never rides along into a wheel
    include_package_data=False,
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    ext_modules=[Extension("tf_face.render._tf_face_ops", sources=CPU_SOURCES)],
    cmdclass={"build_ext": BuildTfOpsOrSkip},
    zip_safe=False,
)
