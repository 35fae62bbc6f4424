"""Shared test fixtures: where ../shared is, and what happens when a requirement is absent.

Two requirements live outside the repo's Python: ``../shared`` (the real photos
and the ICT face model, beside the checkout; ``TF_FACE_SHARED_DIR`` points
elsewhere) and the custom-op ``.so`` (``make ops``). A test that needs one asks
for it through ``require_shared`` / ``require_ops`` (or the ``faces_dir`` /
``ict_npz`` fixtures, or the ``needs_ops`` marker). A plain run skips such a
test with the reason (``make test`` passes ``-rfEs``, so the reasons are listed);
in CI (``CI=true``) the same test **fails** with the reason, so a CI run cannot
pass by skipping the op tests or the real-photo tests.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tf_face.tf_import import quiet_tf_logs

quiet_tf_logs()   # before any test module imports TensorFlow

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TF_FACE_SHARED_DIR") or REPO.parent / "shared")
FACES = SHARED / "data" / "faces"
ICT_NPZ = SHARED / "data" / "ict_face_model.npz"


def in_ci() -> bool:
    """CI=true (or 1/yes): missing requirements fail instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: end-to-end runs of a whole job (minutes); `make test` and CI run "
        "them, `make test-fast` (-m 'not slow') leaves them out")
    config.addinivalue_line(
        "markers", "needs_ops: needs the built custom-op library (require_ops: skip, or "
        "fail under CI=true, when it is not built)")


# about what one run of the whole suite writes under the temp folder (wheels,
# a Bazel output root, training runs); pytest keeps failed tests' folders only
# (pyproject.toml: tmp_path_retention_policy)
# (TF_FACE_TEST_MIN_FREE_BYTES overrides the threshold; tests/test_ci_strict.py)
SUITE_TEMP_BYTES = float(os.environ.get("TF_FACE_TEST_MIN_FREE_BYTES") or 1.5 * 2**30)


def pytest_sessionstart(session):
    """Stop at once, in one line, when the temp folder's disk cannot hold a run
    (instead of ENOSPC errors scattered over the end of the suite)."""
    if hasattr(session.config, "workerinput"):   # xdist workers: the controller checks
        return
    tmp = tempfile.gettempdir()
    free = shutil.disk_usage(tmp).free
    if free < SUITE_TEMP_BYTES:
        pytest.exit(f"only {free / 2**30:.2f} GiB free on the disk of {tmp}; the suite writes "
                    f"about {SUITE_TEMP_BYTES / 2**30:.1f} GiB there (set TMPDIR to a folder "
                    f"with room, or free space: old runs are in {tmp}/pytest-of-*)", returncode=3)


def missing(reason: str):
    """Skip with ``reason``; under CI=true fail with it instead."""
    if in_ci():
        pytest.fail(f"CI=true and a requirement is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_shared(path: Path = SHARED) -> Path:
    """``path`` (a file or folder under ../shared) if it exists, else skip / fail in CI."""
    path = Path(path)
    if not path.exists():
        missing(f"{path} is absent (check out ../shared beside the repo, "
                "or point TF_FACE_SHARED_DIR at it)")
    return path


def require_ops() -> None:
    """The custom-op library is loaded, else skip / fail in CI (with the load error)."""
    from tf_face.render import _library
    if _library.library() is None:
        missing(f"custom ops unavailable: {_library.load_error()}")


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_ops") is not None:
        require_ops()


@pytest.fixture
def faces_dir() -> Path:
    return require_shared(FACES)


@pytest.fixture
def ict_npz() -> Path:
    return require_shared(ICT_NPZ)
