"""tf_face.outputs: the one atomic file write (and its folder sibling)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tf_face.outputs import (atomic_output_dir, atomic_write_file, write_bytes_atomic,
                             write_json, write_text_atomic)

REPO = Path(__file__).resolve().parents[1]


def _leftovers(folder: Path, keep: set) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_write_that_raises_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "fit.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write_file(path) as tmp:
            tmp.write_text("half-writ")
            assert tmp.parent == path.parent and tmp.name.startswith(".fit.json.tmp-")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert _leftovers(tmp_path, {"fit.json"}) == []


def test_interrupt_inside_the_write_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "mesh.obj"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write_file(path) as tmp:
            tmp.write_bytes(b"new")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path, {"mesh.obj"}) == []


def test_failed_helpers_leave_nothing(tmp_path):
    path = tmp_path / "data.json"
    with pytest.raises(TypeError):
        write_json(path, {"x": object()})           # not JSON-serialisable
    with pytest.raises(TypeError):
        write_bytes_atomic(path, "not bytes")        # str, not bytes
    assert list(tmp_path.iterdir()) == []


def test_success_replaces_and_keeps_umask_mode(tmp_path):
    old_mask = os.umask(0o027)
    try:
        path = tmp_path / "report.html"
        path.write_text("old")
        write_text_atomic(path, "new \u00e9")
        write_json(tmp_path / "a.json", {"a": 1}, fsync=True)
        write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    finally:
        os.umask(old_mask)
    assert path.read_text(encoding="utf-8") == "new \u00e9"
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": 1}
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (path.stat().st_mode & 0o777) == 0o640     # 0666 less the umask, not mkstemp's 0600
    assert _leftovers(tmp_path, {"report.html", "a.json", "b.bin"}) == []


def test_temp_name_keeps_the_suffixes_for_format_picking_writers(tmp_path):
    """np.savez appends .npz and Keras wants .weights.h5 unless the name ends so."""
    with atomic_write_file(tmp_path / "m.weights.h5") as tmp:
        assert tmp.name.endswith(".weights.h5")
        tmp.write_bytes(b"h5")
    with atomic_write_file(tmp_path / "a.npz") as tmp:
        np.savez(tmp, x=np.arange(3))
    assert np.load(tmp_path / "a.npz")["x"].tolist() == [0, 1, 2]
    with atomic_write_file(tmp_path / "s.tfrecord", suffix="") as tmp:
        assert not tmp.name.endswith(".tfrecord")
        tmp.write_bytes(b"r")
    assert _leftovers(tmp_path, {"m.weights.h5", "a.npz", "s.tfrecord"}) == []


def test_folder_that_raises_keeps_the_old_folder_and_no_temp(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("old")
    with pytest.raises(ValueError):
        with atomic_output_dir(out, overwrite=True) as tmp:
            (tmp / "a.txt").write_text("new")
            raise ValueError("boom")
    assert (out / "a.txt").read_text() == "old"
    assert _leftovers(tmp_path, {"out"}) == []


def test_outputs_does_not_import_tensorflow():
    code = ("import sys, tf_face.outputs; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "False"]
