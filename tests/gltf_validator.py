"""The Khronos glTF validator (npm ``gltf-validator``) for the tests: a client
this project did not write, reading our GLB files.

``fetch(folder)`` runs ``npm pack gltf-validator@VERSION``, checks the tarball
against the pinned npm integrity (sha512) and unpacks it (one self-contained
JavaScript package, no dependencies) under ``folder``; ``validate(folder,
paths)`` runs it with node on each file and returns ``{path: report}`` with
the validator's ``numErrors``, ``numWarnings``, ``numInfos`` and the issue
codes. Nothing is committed or installed outside ``folder``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

VERSION = "2.0.0-dev.3.10"
INTEGRITY = ("sha512-odJ4k0tRkGXiDGn78yDBg+fBbAIvBnXxh3RwAta0emSxGtyagFE8B4xELB1oYe3S5RD8C"
             "i3uZAsZaascH2LAEQ==")

RUNNER = """
const path = require('path'); const fs = require('fs');
const validator = require(path.resolve(process.argv[2]));
(async () => {
  const out = {};
  for (const f of process.argv.slice(3)) {
    const r = await validator.validateBytes(new Uint8Array(fs.readFileSync(f)));
    out[f] = {numErrors: r.issues.numErrors, numWarnings: r.issues.numWarnings,
              numInfos: r.issues.numInfos,
              codes: r.issues.messages.map(m => m.code + ' ' + (m.pointer || ''))};
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.error(String(e)); process.exit(3); });
"""


def tools_missing() -> str:
    """Why the validator cannot run here ('' when npm and node are there)."""
    absent = [t for t in ("npm", "node") if shutil.which(t) is None]
    return f"{' and '.join(absent)} not installed (the glTF validator runs on node)" if absent \
        else ""


def fetch(folder: Path) -> Path:
    """The unpacked validator package folder under ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["npm", "pack", f"gltf-validator@{VERSION}", "--silent",
                          "--pack-destination", str(folder)], capture_output=True, text=True,
                         timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"npm pack gltf-validator@{VERSION} failed: {res.stderr.strip()[-500:]}")
    tarball = folder / res.stdout.strip().splitlines()[-1]
    data = tarball.read_bytes()
    got = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")
    if got != INTEGRITY:
        raise RuntimeError(f"gltf-validator@{VERSION} tarball integrity mismatch: {got[:30]}...")
    package = folder / "gltf-validator"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar.getmembers():
            if not info.isreg() or not info.name.startswith("package/"):
                continue
            rel = Path(info.name[len("package/"):])
            if rel.is_absolute() or ".." in rel.parts:
                raise RuntimeError(f"unexpected path in the tarball: {info.name}")
            dest = package / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(tar.extractfile(info).read())
    (folder / "run.js").write_text(RUNNER)
    return package


def validate(package: Path, paths) -> dict:
    """``{str(path): {numErrors, numWarnings, numInfos, codes}}`` for each file."""
    paths = [str(p) for p in paths]
    res = subprocess.run(["node", str(Path(package).parent / "run.js"), str(package), *paths],
                         capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"gltf-validator failed: {res.stderr.strip()[-500:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])
