"""``report.html``: photo, maps, renders, timings and an interactive 3D view.

The page is static and works offline from its folder, opened as a local file
(``file://``) or served (``python -m http.server``):

* Images are ``<img>`` tags with the relative paths given (PNG files written
  beside the report by the caller).
* The 3D view is ``<model-viewer>`` from ``@google/model-viewer`` (npm, pinned
  in ``tf_face.files.viewer_assets``): its UMD bundle is copied from the
  tf_face cache beside the report and loaded with a classic ``<script>`` (an
  ES-module script is refused by Chrome under ``file://``).
* Chrome also refuses ``fetch()`` of ``file://`` URLs, so the GLB is embedded
  in the page as a ``data:model/gltf-binary;base64,...`` URL (it stays beside
  the report as ``mesh.glb`` too). GLBs over ``MAX_EMBED_BYTES`` are
  referenced by name instead, which needs the folder to be served over http.
* Without the viewer bundle (not fetched) the page shows everything else and
  says how to fetch it (``python -m tf_face.files.viewer_assets``).

All text is HTML-escaped; image paths must be relative paths inside the
report folder (no ``..``, no absolute paths or URLs).
"""

from __future__ import annotations

import base64
import html
import re
import shutil
from pathlib import Path, PurePosixPath
from typing import Optional
from urllib.parse import quote

import cv2
import numpy as np

from tf_face.files import viewer_assets
from tf_face.outputs import atomic_write_file, write_text_atomic

REPORT_NAME = "report.html"
MAX_EMBED_BYTES = 48 * 1024 * 1024
VIEWER_ELEMENT_ID = "viewer3d"

_CSS = """
body { font-family: system-ui, sans-serif; margin: 16px; background: #fafafa; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 24px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; background: #fff; padding: 6px; border: 1px solid #ddd; }
figure img { display: block; max-width: 320px; max-height: 320px; image-rendering: auto; }
figcaption { font-size: 12px; color: #555; margin-top: 4px; }
table { border-collapse: collapse; font-size: 13px; background: #fff; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
#viewer3d { width: 480px; height: 480px; background: #fff; border: 1px solid #ddd; }
.note { background: #fff7e0; border: 1px solid #e0c060; padding: 8px; max-width: 640px; }
code { background: #eee; padding: 1px 4px; }
"""


def _rel_path(rel: str) -> str:
    """Validate a report-relative path; return it URL-quoted for src attributes."""
    p = PurePosixPath(str(rel).replace("\\", "/"))
    if (not str(rel) or p.is_absolute() or ".." in p.parts or ":" in str(rel)
            or str(rel).startswith("//")):
        raise ValueError(f"report paths must be relative paths inside the folder, got {rel!r}")
    return quote(str(p))


def _figures(out_dir: Path, items: dict) -> str:
    if not items:
        return "<p>(none)</p>"
    figs = []
    for name, rel in items.items():
        src = _rel_path(rel)
        cap = html.escape(str(name))
        if (out_dir / str(rel)).is_file():
            figs.append(f'<figure><a href="{src}"><img src="{src}" alt="{cap}"></a>'
                        f"<figcaption>{cap}</figcaption></figure>")
        else:
            figs.append(f"<figure><figcaption>{cap}: missing ({html.escape(str(rel))})"
                        "</figcaption></figure>")
    return '<div class="grid">' + "\n".join(figs) + "</div>"


def _timings(timings: dict) -> str:
    if not timings:
        return "<p>(none)</p>"
    rows = []
    for name, value in timings.items():
        if isinstance(value, (int, float)):
            val = f"{float(value):.1f} ms"
        else:
            val = html.escape(str(value))
        rows.append(f'<tr><td>{html.escape(str(name))}</td><td class="num">{val}</td></tr>')
    return "<table><tr><th>stage</th><th>time</th></tr>" + "".join(rows) + "</table>"


def _info(info: Optional[dict]) -> str:
    if not info:
        return ""
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                   for k, v in info.items())
    return f"<h2>Details</h2><table>{rows}</table>"


def _viewer(out_dir: Path, glb_name: str, title: str) -> str:
    glb = out_dir / glb_name
    js = viewer_assets.viewer_js_path()
    if js is None:
        return (f'<div class="note" id="viewer-missing">The interactive 3D view needs the '
                f"viewer script, which is not installed. Fetch it with "
                f"<code>{html.escape(viewer_assets.FETCH_COMMAND)}</code> and write the report "
                f"again, or open <a href=\"{_rel_path(glb_name)}\">{html.escape(glb_name)}</a> "
                "in any glTF viewer.</div>")
    shutil.copyfile(js, out_dir / viewer_assets.VIEWER_JS)
    lic = js.parent / viewer_assets.VIEWER_LICENSE
    if lic.is_file():
        shutil.copyfile(lic, out_dir / viewer_assets.VIEWER_LICENSE)
    if not glb.is_file():
        return f'<div class="note">No 3D mesh: {html.escape(glb_name)} is missing.</div>'
    size = glb.stat().st_size
    if size <= MAX_EMBED_BYTES:
        src = "data:model/gltf-binary;base64," + base64.b64encode(glb.read_bytes()).decode()
        note = ""
    else:
        src = _rel_path(glb_name)
        note = ('<p class="note">The mesh is too large to embed: serve this folder '
                "(<code>python -m http.server</code>) to see it.</p>")
    return (f'<script src="{quote(viewer_assets.VIEWER_JS)}"></script>\n'
            f'<model-viewer id="{VIEWER_ELEMENT_ID}" src="{src}" alt="{html.escape(title)}" '
            'camera-controls interaction-prompt="none" shadow-intensity="0" '
            'environment-image="neutral" exposure="1.0" camera-orbit="0deg 90deg auto">'
            "</model-viewer>\n"
            f'<p><a href="{_rel_path(glb_name)}">{html.escape(glb_name)}</a> '
            f"({size / 1024:.0f} KiB) &middot; drag to orbit, scroll to zoom</p>{note}")


def save_images(out_dir, images: dict, subdir: str = "renders") -> dict:
    """Write ``{name: RGB image}`` (float in [0, 1] or uint8) as PNGs under
    ``out_dir/subdir``; return ``{name: relative path}`` for ``write_report``.
    File names are the names with characters outside ``[A-Za-z0-9_+.-]``
    replaced by ``_``."""
    rel_dir = PurePosixPath(_rel_path(subdir)) if subdir else PurePosixPath()
    folder = Path(out_dir) / str(rel_dir)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, img in images.items():
        arr = np.asarray(img)
        if arr.dtype != np.uint8:
            arr = np.clip(np.round(arr * 255.0), 0, 255).astype(np.uint8)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"image {name!r} must be [H,W,3], got {arr.shape}")
        fname = re.sub(r"[^A-Za-z0-9_+.-]", "_", str(name)).strip(".") or "image"
        path = folder / f"{fname}.png"
        with atomic_write_file(path) as tmp:
            if not cv2.imwrite(str(tmp), np.ascontiguousarray(arr[..., ::-1])):
                raise OSError(f"could not write {path}")
        out[name] = str(rel_dir / path.name)
    return out


def write_report(out_dir, title: str, images: dict, maps: dict, timings: dict,
                 glb_name: str = "mesh.glb", info: Optional[dict] = None) -> Path:
    """Write ``out_dir/report.html`` (and the viewer script beside it).

    Args:
      out_dir: the reconstruction folder (holds the PNGs and ``glb_name``).
      title: page title.
      images: ``{caption: relative png path}`` -- photo, overlay, renders.
      maps: ``{caption: relative png path}`` -- albedo, normals, displacement.
      timings: ``{stage: milliseconds}`` (numbers are printed as ``x.x ms``;
        strings as they are).
      glb_name: the GLB beside the report shown in the 3D view.
      info: optional ``{key: value}`` table (model, image size, ...).
    Returns the path of report.html.
    """
    out_dir = Path(out_dir)
    _rel_path(glb_name)
    body = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Photo and renders</h2>", _figures(out_dir, images),
        "<h2>UV maps</h2>", _figures(out_dir, maps),
        "<h2>3D view</h2>", _viewer(out_dir, glb_name, title),
        "<h2>Timings</h2>", _timings(timings),
        _info(info),
    ]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    path = out_dir / REPORT_NAME
    write_text_atomic(path, page)
    return path
