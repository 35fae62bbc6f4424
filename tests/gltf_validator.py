"""The Khronos glTF validator (npm ``gltf-validator``) for the tests: a client
this project did not write, reading our GLB files.

``fetch(folder)`` gets ``gltf-validator@VERSION`` with
``tf_face.files.viewer_assets.npm_pack`` (``npm pack``, pinned sha512
integrity) and unpacks the files node needs (a self-contained package, no
dependencies) under ``folder``; ``validate(folder,
paths)`` runs it with node on each file and returns ``{path: report}`` with
the validator's ``numErrors``, ``numWarnings``, ``numInfos`` and the issue
codes. Nothing is committed or installed outside ``folder``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tf_face.files.viewer_assets import extract_members, npm_pack

VERSION = "2.0.0-dev.3.10"
INTEGRITY = ("sha512-odJ4k0tRkGXiDGn78yDBg+fBbAIvBnXxh3RwAta0emSxGtyagFE8B4xELB1oYe3S5RD8C"
             "i3uZAsZaascH2LAEQ==")

FILES = ("package.json", "index.js", "gltf_validator.dart.js", "LICENSE")

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
    """The validator's package folder under ``folder`` (the files node needs)."""
    package = Path(folder) / "gltf-validator"
    data = npm_pack("gltf-validator", VERSION, INTEGRITY)
    extract_members(data, {f"package/{name}": package / name for name in FILES},
                    f"gltf-validator@{VERSION}")
    (Path(folder) / "run.js").write_text(RUNNER)
    return package


def validate(package: Path, paths) -> dict:
    """``{str(path): {numErrors, numWarnings, numInfos, codes}}`` for each file."""
    paths = [str(p) for p in paths]
    res = subprocess.run(["node", str(Path(package).parent / "run.js"), str(package), *paths],
                         capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        raise RuntimeError(f"gltf-validator failed: {res.stderr.strip()[-500:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])
