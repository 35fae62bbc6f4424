"""Writing outputs: atomic files and folders, UV maps, overlays, fit.json.

The one place files and folders are written atomically (temp then rename):
``atomic_write_file`` (and ``write_bytes_atomic`` / ``write_text_atomic`` /
``write_json``) for a file, ``atomic_output_dir`` for a folder. Every output
folder is written into a temporary sibling folder first and renamed into
place at the end, so a failure never leaves a partial folder. An existing
folder is replaced only with ``overwrite=True``. Temp files and folders are
removed on failure and on interrupts, and the folders killed runs left behind
are removed by the next run (``remove_stale_temp``). This module does not
import TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

import cv2
import numpy as np

from tf_face.errors import TfFaceError
from tf_face.ibug import eye_centres

OVERLAY_MAX_SIDE = 1600  # overlays of huge photos are downscaled to this long side


class OutputExistsError(TfFaceError):
    """The output folder exists and --overwrite was not given."""


class OutputNotWritableError(TfFaceError):
    """The output folder cannot be created or written."""


# Temp and replaced folders are named .NAME.tmp-PID-XXXX / .NAME.old-PID, so a
# later run can tell the leftovers of a killed run (PID no longer alive) from
# those of a run still going and remove them (``remove_stale_temp``).
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?:tmp-(?P<pid>\d+)-[a-z0-9]+|tmp-[a-z0-9_]{8}"
                     r"|old-(?P<oldpid>\d+))$")

# Interrupt handlers (``tf_face.cli.common``) defer SIGINT/SIGTERM while a
# folder swap or a temp-folder clean-up is under way, so an interrupt never
# leaves a half-swapped output or a half-removed temp folder.
_critical = 0
_pending_signals: list = []


def in_critical_section() -> bool:
    return _critical > 0


def defer_signal(signum: int) -> None:
    _pending_signals.append(signum)


@contextlib.contextmanager
def uninterruptible():
    global _critical
    _critical += 1
    try:
        yield
    finally:
        _critical -= 1
        if _critical == 0 and _pending_signals:
            signum = _pending_signals.pop(0)
            _pending_signals.clear()
            signal.raise_signal(signum)   # the handler runs now and raises


def check_output_free(out_dir, overwrite: bool = False) -> None:
    """Raise ``OutputExistsError`` if ``out_dir`` holds something and not overwrite."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputExistsError(f"{out_dir} exists; pass --overwrite to replace it")


def check_output_writable(path, flag: str = "--out_dir", sibling: bool = False) -> None:
    """Raise ``OutputNotWritableError`` unless ``path`` can be created and written
    (``sibling``: unless folders can be created beside ``path``, where
    ``atomic_output_dir`` writes its temp folder).

    Creates nothing that stays: finds the deepest existing ancestor of the
    folder to write in, which must be a folder, and creates and removes a
    probe folder in it (permission bits alone do not tell: root ignores them,
    read-only mounts and /proc do not show them)."""
    path = Path(os.path.abspath(path))
    base = path.parent if sibling else path
    while not os.path.lexists(base):
        base = base.parent
    if not base.is_dir():
        what = "is a file" if base.is_file() else "is not a folder"
        if base == path:
            raise OutputNotWritableError(f"{flag} {path} {what}, not a folder")
        raise OutputNotWritableError(f"cannot create {flag} {path}: {base} {what}")
    try:
        probe = Path(tempfile.mkdtemp(prefix=f".tf_face-probe-{os.getpid()}-", dir=base))
    except OSError as e:
        reason = ("this file system takes no new folders" if e.errno == errno.ENOENT
                  else e.strerror or str(e))
        raise OutputNotWritableError(f"cannot write {flag} {path}: {reason} (in {base})") from e
    with contextlib.suppress(OSError):
        probe.rmdir()


def remove_stale_temp(directory, name: str | None = None) -> list:
    """Remove the temp / replaced folders (``.NAME.tmp-*``, ``.NAME.old-*``) that
    killed runs left in ``directory`` (only ``NAME`` == ``name`` when given).
    Folders of runs still alive on this machine are kept. Returns the removed paths."""
    d = Path(directory)
    removed = []
    try:
        entries = list(d.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TMP_RE.match(p.name)
        if m is None or (name is not None and m.group("name") != name):
            continue
        pid = m.group("pid") or m.group("oldpid")
        if pid is not None and (int(pid) == os.getpid() or _alive(int(pid))):
            continue
        with uninterruptible():
            target = d / m.group("name")
            if m.group("oldpid") is not None and not os.path.lexists(target):
                # killed between the two renames of a swap: the old folder is
                # the only copy; put it back
                with contextlib.suppress(OSError):
                    os.replace(p, target)
                    continue
            _remove(p)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:   # EPERM: it exists
        return True
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            p.unlink()


def _make_temp_dir(out_dir: Path) -> Path:
    """A new empty sibling ``.NAME.tmp-PID-XXXX`` of ``out_dir``, created with the
    default mode (0777 less the umask, as ``mkdir`` does; ``mkdtemp`` makes 0700)."""
    for _ in range(100):
        tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temp folder beside {out_dir}")


@contextlib.contextmanager
def atomic_output_dir(out_dir, overwrite: bool = False):
    """Yield a temp dir that becomes ``out_dir`` when the block succeeds.

    The temp dir is removed when the block fails or is interrupted
    (KeyboardInterrupt, or SIGTERM through the CLIs' handler); the swap into
    place defers SIGINT/SIGTERM until it is done. With ``overwrite`` the old
    ``out_dir`` (folder or file) is removed after the swap."""
    out_dir = Path(out_dir)
    check_output_free(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        # an interrupt between the mkdir and this try would leak the folder (seen
        # under load: the process was preempted right after the mkdir): defer it
        # until tmp is known, then it is raised inside the try
        with uninterruptible():
            tmp = _make_temp_dir(out_dir)
        yield tmp
    except BaseException:
        if tmp is not None:
            with uninterruptible():
                shutil.rmtree(tmp, ignore_errors=True)
        raise
    with uninterruptible():
        old = None
        try:
            if os.path.lexists(out_dir):
                os.replace(out_dir, out_dir.parent / f".{out_dir.name}.old-{os.getpid()}")
                old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            os.replace(tmp, out_dir)
        except BaseException:
            if old is not None and not os.path.lexists(out_dir):
                with contextlib.suppress(OSError):
                    os.replace(old, out_dir)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if old is not None:
            _remove(old)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write_file(path, fsync: bool = False, suffix: str | None = None):
    """Yield a temp path beside ``path`` that becomes ``path`` when the block succeeds.

    The block writes the temp path (``.NAME.tmp-PID-XXXX.SUFFIX``: hidden, in
    the same folder so the rename is atomic, and ending in ``path``'s suffixes,
    or ``suffix`` when given, so writers that pick the format from the name --
    ``cv2.imwrite``, ``np.savez``, Keras ``save_weights`` (``.weights.h5``) --
    write the same format). Whatever the block creates gets
    the default mode (0666 less the umask). When the block raises or is
    interrupted the temp file is removed and ``path`` is left as it was; the
    rename (and the clean-up) defer SIGINT/SIGTERM until done. ``fsync``: the
    file and the folder are flushed to disk before and after the rename."""
    path = Path(path)
    if suffix is None:
        suffix = "".join(path.suffixes)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}{suffix}")
    try:
        yield tmp
        with uninterruptible():
            if fsync and tmp.is_file():
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        with uninterruptible():
            if os.path.lexists(tmp):
                _remove(tmp)
        raise
    if fsync:
        _fsync_dir(path.parent)


def write_bytes_atomic(path, data: bytes, fsync: bool = False) -> None:
    """``Path(path).write_bytes(data)``, atomically (see ``atomic_write_file``)."""
    with atomic_write_file(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path, text: str, fsync: bool = False) -> None:
    """``Path(path).write_text(text)`` in UTF-8, atomically (see ``atomic_write_file``)."""
    with atomic_write_file(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, data, indent: int = 2, fsync: bool = False) -> None:
    """``data`` as JSON, atomically (see ``atomic_write_file``)."""
    write_text_atomic(path, json.dumps(data, indent=indent), fsync=fsync)


def write_png_rgb(path, rgb_float_or_uint8) -> None:
    img = np.asarray(rgb_float_or_uint8)
    if img.dtype != np.uint8:
        img = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    if img.ndim == 3:
        img = img[..., ::-1]  # RGB -> BGR for OpenCV
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")


def normals_to_rgb(normals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Unit normals [H,W,3] -> RGB in [0,1] (n * 0.5 + 0.5), black outside mask."""
    rgb = normals * 0.5 + 0.5
    return np.where(mask[..., None], rgb, 0.0)


OVERLAY_OBSERVED_BGR = (40, 40, 230)    # red: landmarks the fit was given
OVERLAY_FITTED_BGR = (230, 210, 0)      # cyan: the fitted model's landmarks, reprojected
OVERLAY_LINK_BGR = (0, 230, 255)        # yellow: observed -> fitted, one line per pair


def draw_overlay(image: np.ndarray, vertices_image: np.ndarray, triangles: np.ndarray,
                 landmarks_2d: np.ndarray | None = None,
                 detection_box: np.ndarray | None = None,
                 fitted_2d: np.ndarray | None = None) -> np.ndarray:
    """Mesh wireframe (green), observed landmarks (red), the face box (blue) on the photo.

    With ``fitted_2d`` (the fitted model's landmarks projected, same order and
    count as ``landmarks_2d``) each pair is joined by a yellow line and the
    fitted point is drawn in cyan on top, so the reprojection error of every
    landmark is visible; a one-line legend goes in the top-left corner."""
    h, w = image.shape[:2]
    scale = min(1.0, OVERLAY_MAX_SIDE / max(h, w))
    canvas = image if scale == 1.0 else cv2.resize(
        image, (max(1, round(w * scale)), max(1, round(h * scale))),
        interpolation=cv2.INTER_AREA)
    canvas = np.ascontiguousarray(canvas[..., ::-1])  # BGR for drawing
    shift = 4  # sub-pixel drawing precision
    f = float(1 << shift) * scale
    pts = np.round(vertices_image[:, :2] * f).astype(np.int32)
    polys = [pts[t] for t in triangles]
    thick = max(1, round(max(canvas.shape[:2]) / 800))
    # the wireframe at 45 % opacity: dense meshes (ICT: 18k triangles) on a small
    # face would otherwise hide the photo and the landmarks' context
    wire = canvas.copy()
    cv2.polylines(wire, polys, True, (60, 200, 60), thick, cv2.LINE_AA, shift)
    canvas = cv2.addWeighted(wire, 0.45, canvas, 0.55, 0.0)
    if landmarks_2d is not None:
        r = max(2, thick * 2) << shift
        obs = np.round(np.asarray(landmarks_2d)[:, :2] * f).astype(np.int32)
        fit = None
        if fitted_2d is not None and np.shape(fitted_2d)[0] == len(obs):
            fit = np.round(np.asarray(fitted_2d)[:, :2] * f).astype(np.int32)
            for a, b in zip(obs, fit):
                cv2.line(canvas, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])),
                         OVERLAY_LINK_BGR, thick, cv2.LINE_AA, shift)
        for p in obs:
            cv2.circle(canvas, (int(p[0]), int(p[1])), r, OVERLAY_OBSERVED_BGR, -1,
                       cv2.LINE_AA, shift)
        if fit is not None:
            rf = max(1 << shift, (r * 3) // 4)
            for p in fit:
                cv2.circle(canvas, (int(p[0]), int(p[1])), rf, OVERLAY_FITTED_BGR, -1,
                           cv2.LINE_AA, shift)
            _legend(canvas, thick)
    if detection_box is not None:
        b = np.round(np.asarray(detection_box) * f).astype(np.int32)
        cv2.rectangle(canvas, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (230, 120, 30),
                      thick, cv2.LINE_AA, shift)
    return canvas[..., ::-1]


def _legend(canvas: np.ndarray, thick: int) -> None:
    """'observed' in red, 'fitted' in cyan, on a dark strip in the top-left corner."""
    font_scale = max(0.4, max(canvas.shape[:2]) / 1400)
    x, y = 4, 4
    (w1, h), _ = cv2.getTextSize("observed ", cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
    (w2, _), _ = cv2.getTextSize("fitted", cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
    cv2.rectangle(canvas, (x, y), (x + w1 + w2 + 8, y + h + 10), (0, 0, 0), -1)
    cv2.putText(canvas, "observed", (x + 4, y + h + 4), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                OVERLAY_OBSERVED_BGR, thick, cv2.LINE_AA)
    cv2.putText(canvas, "fitted", (x + 4 + w1, y + h + 4), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                OVERLAY_FITTED_BGR, thick, cv2.LINE_AA)


def write_unwrap_outputs(directory, image: np.ndarray, result, model) -> list:
    """Write texture/mask/normals/position/overlay/fit.json of one PipelineResult.

    The overlay shows the fitted mesh, the landmarks the fit used (red; for
    the 468-point MediaPipe landmarks their 68 iBUG points, for readability)
    and the fitted model's landmarks reprojected (cyan: the vertices
    ``fitted.landmark_vertices``, sliding jaw choices included), each pair
    joined by a yellow line. For the default model the fitted vertices are
    the observations, so the pairs coincide."""
    d = Path(directory)
    s = result.sample
    write_png_rgb(d / "texture.png", np.where(s.mask[..., None], s.texture, 0.0))
    cv2.imwrite(str(d / "mask.png"), s.mask.astype(np.uint8) * 255)
    write_png_rgb(d / "normals.png", normals_to_rgb(s.normals, np.any(s.normals != 0, axis=-1)))
    np.save(d / "position.npy", s.position.astype(np.float32))
    np.save(d / "normals.npy", s.normals.astype(np.float32))
    fitted = result.fitted
    lm = np.asarray(fitted.landmarks_observed)
    fit_lm = np.asarray(fitted.vertices_image)[np.asarray(fitted.landmark_vertices)]
    if lm.shape[0] == model.num_vertices and model.landmarks68 is not None:
        lm, fit_lm = lm[model.landmarks68], fit_lm[model.landmarks68]
    elif lm.shape[0] == 5 and model.landmarks68 is not None:
        # 5-point fits: eye centres are means of iBUG 36-41 / 42-47 (see fitting.spec_5)
        v68 = np.asarray(fitted.vertices_image)[np.asarray(model.landmarks68)]
        fit_lm = np.stack([*eye_centres(v68), v68[30], v68[48], v68[54]])
    box = result.detection.box if result.detection is not None else None
    write_png_rgb(d / "overlay.png", draw_overlay(image, fitted.vertices_image,
                                                   model.triangles, lm, box, fit_lm))
    write_json(d / "fit.json", result.fit_json())
    return sorted(p.name for p in d.iterdir())
