"""The 3D viewer's JavaScript for report.html: ``@google/model-viewer`` from npm.

The file is fetched by the install step, never committed: ``fetch_viewer()``
runs ``npm pack @google/model-viewer@<VERSION>`` into a temporary folder,
checks the tarball against the pinned npm ``integrity`` (sha512), and copies
``package/dist/model-viewer-umd.min.js`` (a self-contained UMD bundle that
includes three.js; a classic ``<script>`` that works from ``file://``, where
Chrome refuses ES-module scripts) and the package's BSD-3-Clause LICENSE into
the tf_face cache directory (``tf_face.assets.cache_dir()``).
``tf_face.files.report.write_report`` copies both beside ``report.html``.

Command line::

    python -m tf_face.files.viewer_assets          # fetch (no-op when present)
    python -m tf_face.files.viewer_assets --check  # exit 1 when missing
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Optional

from tf_face.assets import cache_dir
from tf_face.errors import AssetMissingError
from tf_face.outputs import write_bytes_atomic

PACKAGE = "@google/model-viewer"
VERSION = "4.4.0"
INTEGRITY = ("sha512-8z1SB5sPlzKoak5mdx/D31brBakPYm3Qi31EfAucHAUrtrHHCbabypkKvSwReYhU"
             "pPaxyJ46oT47uWE/hrs1Zw==")
JS_MEMBER = "package/dist/model-viewer-umd.min.js"
LICENSE_MEMBER = "package/LICENSE"
VIEWER_JS = "model-viewer-umd.min.js"
VIEWER_LICENSE = "model-viewer-LICENSE.txt"
FETCH_COMMAND = "python -m tf_face.files.viewer_assets"


def viewer_js_path() -> Optional[Path]:
    """The cached viewer bundle, or None when it has not been fetched."""
    path = cache_dir() / VIEWER_JS
    return path if path.is_file() else None


def check_integrity(data: bytes, integrity: str = INTEGRITY,
                    package: str = f"{PACKAGE}@{VERSION}") -> None:
    """Raise ``AssetMissingError`` unless ``data`` (the tarball of ``package``)
    matches an npm sha512 integrity."""
    algo, _, digest = integrity.partition("-")
    if algo != "sha512":
        raise ValueError(f"unsupported integrity algorithm {algo!r}")
    got = base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if got != digest:
        raise AssetMissingError(f"{package} tarball integrity mismatch "
                                f"(got sha512-{got[:16]}..., want {integrity[:23]}...)")


def extract_members(tarball: bytes, members: dict, package: str = f"{PACKAGE}@{VERSION}") -> None:
    """Write the named tar members (``{member: destination path}``) atomically.

    Only regular files whose exact names are asked for are read; nothing else
    of the archive touches the disk.
    """
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        found = {}
        for info in tar.getmembers():
            if info.name in members and info.isreg():
                found[info.name] = tar.extractfile(info).read()
    missing = sorted(set(members) - set(found))
    if missing:
        raise AssetMissingError(f"{package} tarball lacks {', '.join(missing)}")
    for name, dest in members.items():
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(dest, found[name])


def npm_pack(package: str, version: str, integrity: str, npm: str = "npm") -> bytes:
    """The tarball of ``package@version`` from the npm registry (``npm pack``, no
    install scripts), checked against its pinned sha512 ``integrity``."""
    spec = f"{package}@{version}"
    if shutil.which(npm) is None:
        raise AssetMissingError(f"npm not found; install Node.js/npm to fetch {spec}")
    with tempfile.TemporaryDirectory(prefix="tf_face_npm_") as tmp:
        cmd = [npm, "pack", spec, "--pack-destination", tmp, "--ignore-scripts", "--silent"]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or len(tarballs) != 1:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise AssetMissingError(f"npm pack {spec} failed: {msg[-1] if msg else 'no output'}")
        data = tarballs[0].read_bytes()
    check_integrity(data, integrity, spec)
    return data


def fetch_viewer(force: bool = False, npm: str = "npm") -> Path:
    """Fetch and verify the viewer bundle into the cache; return its path."""
    dest = cache_dir() / VIEWER_JS
    if dest.is_file() and not force:
        return dest
    try:
        data = npm_pack(PACKAGE, VERSION, INTEGRITY, npm)
    except AssetMissingError as err:
        raise AssetMissingError(f"{err}; then run {FETCH_COMMAND}") from err
    extract_members(data, {JS_MEMBER: dest, LICENSE_MEMBER: cache_dir() / VIEWER_LICENSE})
    return dest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=f"fetch {PACKAGE}@{VERSION} for report.html")
    parser.add_argument("--check", action="store_true", help="only check it is present")
    parser.add_argument("--force", action="store_true", help="fetch again")
    args = parser.parse_args(argv)
    if args.check:
        path = viewer_js_path()
        print(path if path else f"missing: {cache_dir() / VIEWER_JS} (run {FETCH_COMMAND})")
        return 0 if path else 1
    try:
        print(fetch_viewer(force=args.force))
    except AssetMissingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
