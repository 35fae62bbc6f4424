"""The strict CI mode of tests/conftest.py: a missing requirement skips a plain
run and fails under CI=true (so CI cannot pass by skipping)."""

import pytest

from tests import conftest
from tf_face.render import _library


@pytest.mark.parametrize("ci,outcome", [("", pytest.skip.Exception),
                                        ("false", pytest.skip.Exception),
                                        ("true", pytest.fail.Exception),
                                        ("1", pytest.fail.Exception)])
def test_missing_shared_skips_or_fails_in_ci(monkeypatch, tmp_path, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="absent.*TF_FACE_SHARED_DIR"):
        conftest.require_shared(tmp_path / "no_shared" / "data" / "faces")
    assert conftest.require_shared(tmp_path) == tmp_path


@pytest.mark.parametrize("ci,outcome", [("", pytest.skip.Exception),
                                        ("true", pytest.fail.Exception)])
def test_missing_op_library_skips_or_fails_in_ci(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(_library, "_STATE", {"loaded": True, "lib": None, "warned": False,
                                             "error": "custom-op library not built (simulated)"})
    with pytest.raises(outcome, match="simulated"):
        conftest.require_ops()


def test_shared_dir_follows_the_environment(monkeypatch, tmp_path):
    import importlib
    try:
        monkeypatch.setenv("TF_FACE_SHARED_DIR", str(tmp_path))
        fresh = importlib.reload(conftest)
        assert fresh.SHARED == tmp_path and fresh.FACES == tmp_path / "data" / "faces"
    finally:
        monkeypatch.undo()                  # the caller's environment, then its paths
        importlib.reload(conftest)


def test_a_disk_too_full_for_the_suite_stops_it_at_once_in_one_line():
    """pytest_sessionstart: not enough free space for the suite's temp folders
    is one clear line and exit code 3, before any test runs."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, TF_FACE_TEST_MIN_FREE_BYTES=str(2.0 ** 80))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/test_ci_strict.py::test_shared_dir_follows_the_environment"],
                       cwd=conftest.REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "GiB free on the disk of" in r.stdout + r.stderr
    assert "passed" not in r.stdout
