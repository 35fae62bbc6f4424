"""Reading face-model files without ever unpickling.

* MATLAB v5/v6/v7 ``.mat``: ``scipy.io.loadmat`` (no pickle involved).
* MATLAB v7.3 ``.mat`` and ``.h5``: ``h5py``; v7.3 stores arrays column-major,
  so 2-D datasets are transposed back to MATLAB's row/column order.
* ``.npz``: ``np.load(..., allow_pickle=False)``, so object arrays are refused.

Every failure (missing file, wrong format, pickle) becomes a one-line
``FaceModelError``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tf_face.errors import FaceModelError

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def check_file(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not str(path):
        raise FaceModelError(f"{what}: empty path")
    if not p.exists():
        raise FaceModelError(f"{what}: file not found: {p}")
    if not p.is_file():
        raise FaceModelError(f"{what}: not a file: {p}")
    if p.stat().st_size == 0:
        raise FaceModelError(f"{what}: empty file: {p}")
    return p


def is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(1024)
    # MATLAB v7.3 files carry a 512-byte text header before the HDF5 superblock.
    return head.startswith(_HDF5_MAGIC) or head[512:520] == _HDF5_MAGIC


def _numeric(name: str, arr, what: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf":
        raise FaceModelError(f"{what}: field {name!r} is not a numeric array (dtype {a.dtype})")
    return a


def read_mat(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """All numeric top-level variables of a .mat file (v5 or v7.3)."""
    p = check_file(path, what)
    if is_hdf5(p):
        out = read_h5_tree(p, what)
        # v7.3 is column-major: undo the transpose h5py shows.
        return {k: (v.T if v.ndim == 2 else v) for k, v in out.items() if "/" not in k}
    # lazy: scipy.io (~120 ms) is for .mat models only; facemodel loads at CLI start-up
    import scipy.io
    try:
        raw = scipy.io.loadmat(str(p), mat_dtype=False, squeeze_me=False,
                               struct_as_record=True)
    except Exception as e:  # noqa: BLE001 - any parse error is a format error
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FaceModelError(f"{what}: {p.name} is not a readable MATLAB .mat file ({msg})") from e
    out = {}
    for k, v in raw.items():
        if k.startswith("__"):
            continue
        if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            out[k] = v
    return out


def read_h5_tree(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """All numeric datasets of an HDF5 file, keyed by their path ("a/b/c")."""
    p = check_file(path, what)
    import h5py  # lazy: h5py costs ~30 ms; only .h5 models need it
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(p, "r") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "biuf":
                    out[name] = np.asarray(obj[()])
            f.visititems(visit)
    except OSError as e:
        msg = str(e).splitlines()[0] if str(e) else "unreadable"
        raise FaceModelError(f"{what}: {p.name} is not a readable HDF5 file ({msg})") from e
    return out


def read_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """Arrays of an .npz file; object (pickled) arrays are refused."""
    p = check_file(path, what)
    with open(p, "rb") as fh:
        magic = fh.read(6)
    if not magic.startswith(b"PK\x03\x04") and magic != b"\x93NUMPY":
        # np.load would take anything else for a pickle and say so: misleading
        raise FaceModelError(f"{what}: {p.name} is not an .npz archive (no zip header)")
    try:
        z = np.load(p, allow_pickle=False)
        if not hasattr(z, "files"):
            raise FaceModelError(f"{what}: {p.name} is a single .npy array, not an .npz archive")
        with z:
            return {k: z[k] for k in z.files}
    except FaceModelError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise FaceModelError(
                f"{what}: {p.name} contains pickled object arrays, which are refused") from e
        raise FaceModelError(f"{what}: {p.name} is not a valid .npz archive ({e})") from e
    except Exception as e:  # noqa: BLE001
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FaceModelError(f"{what}: {p.name} is not a valid .npz archive ({msg})") from e


def need(d: dict, key: str, what: str) -> np.ndarray:
    if key not in d:
        raise FaceModelError(f"{what}: missing field {key!r} (found: {', '.join(sorted(d)[:12])})")
    return _numeric(key, d[key], what)
