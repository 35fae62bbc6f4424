"""Shared test fixtures: where ../shared is, and skipping when it is absent."""

from pathlib import Path

import pytest

from tf_face.tf_import import quiet_tf_logs

quiet_tf_logs()   # before any test module imports TensorFlow

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FACES = SHARED / "data" / "faces"
ICT_NPZ = SHARED / "data" / "ict_face_model.npz"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: end-to-end runs of a whole job (minutes); `make test` and CI run "
        "them, `make test-fast` (-m 'not slow') leaves them out")


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not checked out beside the repo)")
    return path


@pytest.fixture
def faces_dir() -> Path:
    return require_shared(FACES)


@pytest.fixture
def ict_npz() -> Path:
    return require_shared(ICT_NPZ)
