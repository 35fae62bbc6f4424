"""A TfFaceError that wraps an exception keeps it as its cause: a CLI prints one
line by default, and with --debug the traceback naming the wrapped exception."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tf_face.cli.common import print_error, run_single
from tf_face.errors import LandmarkError
from tf_face.landmarks.landmark_files import read_landmark_file

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def bad_inputs(tmp_path):
    photo = tmp_path / "face.png"
    assert cv2.imwrite(str(photo), np.full((64, 64, 3), 128, np.uint8))
    lms = tmp_path / "face.txt"
    lms.write_bytes(b"1 2\n\xff\xfe\xfa 3\n")          # not UTF-8
    return photo, lms


def _unwrap(photo, lms, out, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "tf_face.cli.unwrap", f"--image={photo}",
                           f"--landmarks={lms}", f"--out_dir={out}", *extra], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=300)


def test_corrupt_landmark_file_one_line_then_traceback_with_debug(bad_inputs, tmp_path):
    photo, lms = bad_inputs
    res = _unwrap(photo, lms, tmp_path / "o")
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"error: {lms}: landmark file is not UTF-8 text"], res.stderr
    dbg = _unwrap(photo, lms, tmp_path / "o", "--debug")
    assert dbg.returncode == 1
    err = dbg.stderr
    assert "Traceback (most recent call last)" in err, err
    assert "UnicodeDecodeError" in err, err                  # the wrapped exception
    assert "direct cause of the following exception" in err, err
    assert err.strip().splitlines()[-1] == f"error: {lms}: landmark file is not UTF-8 text"
    assert not (tmp_path / "o").exists()


def test_the_cause_is_kept(bad_inputs):
    _, lms = bad_inputs
    with pytest.raises(LandmarkError) as info:
        read_landmark_file(lms)
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


def test_print_error_lines(capsys):
    def fail():
        try:
            int("x")
        except ValueError as e:
            raise LandmarkError("bad number") from e

    assert run_single(fail) == 1
    assert capsys.readouterr().err == "error: bad number\n"
    assert run_single(fail, debug=True) == 1
    err = capsys.readouterr().err
    assert "ValueError: invalid literal" in err and err.endswith("error: bad number\n")
    assert print_error(KeyError("k")) == 2
    assert capsys.readouterr().err == (
        "error: internal error (KeyError): 'k' (rerun with --debug for the traceback)\n")
