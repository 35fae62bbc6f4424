"""Issue 11: batch runs that fail cleanly and can be interrupted.

* an output folder that cannot be written (under a file, a file, under /proc,
  read-only) fails with one line *before* any model loads, in batch and
  single-photo mode;
* a landmark file far outside the photo fails with one line before any model
  loads (it gave an all-black texture / an OpenCV error);
* SIGINT / SIGTERM sent to a running batch: one ``interrupted`` line, exit
  code 130 / 143, ``failures.json``, finished folders intact, no temp folder;
  a rerun removes stale temp folders and resumes (skips finished photos);
* ``--overwrite`` leaves no hidden ``.NAME.old-PID``; folders respect the umask.

"Before any model loads" is checked by also passing a model spec that does
not exist: had the model loaded first, its error would be the one printed.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

REPO = Path(__file__).resolve().parents[1]
BAD_MODEL = "--model=bfm2009:/nonexistent/model.mat"


@pytest.fixture(autouse=True)
def sigint_not_ignored():
    """These tests send SIGINT. A test run started in the background by a shell
    without job control (`cmd &` in a script) inherits SIGINT ignored, and the
    CLIs deliberately keep an inherited SIG_IGN (nohup semantics), so the tests
    would see no interrupt. Python's own handler here makes the children start
    with SIGINT at its default (a Python handler is not inherited across exec)
    and lets the in-process tests raise it; restored after each test."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    img = np.ascontiguousarray(skimage.data.astronaut()[..., ::-1])
    for i in range(1, 7):
        assert cv2.imwrite(str(d / f"p{i}.png"), img)
    return d


@pytest.fixture(scope="module")
def many_photos(photos, tmp_path_factory):
    """16 photos: a batch unwrap takes ~0.1 s a photo, so a signal sent when the
    first folder appears lands well before the end."""
    d = tmp_path_factory.mktemp("many")
    for i in range(1, 17):
        os.link(photos / "p1.png", d / f"p{i}.png")
    return d


def cli_cmd(cli, *args):
    return [sys.executable, "-m", f"tf_face.cli.{cli}", *args]


def cli_env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", OPENBLAS_NUM_THREADS="1")


def run_cli(cli, *args, timeout=300):
    return subprocess.run(cli_cmd(cli, *args), cwd=REPO, capture_output=True, text=True,
                          env=cli_env(), timeout=timeout)


def one_error_line(res) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, res.stderr
    return lines[0]


def leftovers(directory: Path) -> list:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------- output folder


def unwritable_cases(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    return {"under_file": afile / "out", "under_proc": Path("/proc/tf_face_out/x"),
            "under_sys": Path("/sys/tf_face_out"), "is_file": afile}


@pytest.mark.parametrize("case", ["under_file", "under_proc", "under_sys", "is_file"])
@pytest.mark.parametrize("mode", ["batch", "single"])
def test_unwritable_out_dir_fails_before_models_unwrap(photos, tmp_path, case, mode):
    out = unwritable_cases(tmp_path)[case]
    if not os.path.isdir(out.parents[len(out.parents) - 2]):   # /proc, /sys
        pytest.skip(f"no {out.parents[len(out.parents) - 2]} here")
    src = f"--image_dir={photos}" if mode == "batch" else f"--image={photos / 'p1.png'}"
    res = run_cli("unwrap", src, f"--out_dir={out}", BAD_MODEL)
    assert res.returncode == 1, res.stderr
    line = one_error_line(res)
    assert "--out_dir" in line or "exists" in line, line
    assert "nonexistent" not in line            # the model was never loaded
    if case == "is_file" and mode == "single":
        assert "--overwrite" in line            # a file there is replaced only on request
    else:
        assert "internal error" not in line
    assert (tmp_path / "afile").read_text() == "x"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("mode", ["batch", "single"])
def test_unwritable_out_dir_fails_before_models_reconstruct(photos, tmp_path, mode):
    out = unwritable_cases(tmp_path)["under_file"]
    src = f"--image_dir={photos}" if mode == "batch" else f"--image={photos / 'p1.png'}"
    res = run_cli("reconstruct", src, f"--out_dir={out}", BAD_MODEL)
    assert res.returncode == 1, res.stderr
    line = one_error_line(res)
    assert "--out_dir" in line and "is a file" in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_dir(tmp_path):
    from tf_face.outputs import OutputNotWritableError, check_output_writable
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputNotWritableError, match="cannot write"):
            check_output_writable(ro / "out")
        with pytest.raises(OutputNotWritableError, match="cannot write"):
            check_output_writable(ro / "out", sibling=True)
    finally:
        ro.chmod(0o700)


def test_writable_check_creates_nothing(tmp_path):
    from tf_face.outputs import check_output_writable
    check_output_writable(tmp_path / "a" / "b" / "c")
    check_output_writable(tmp_path / "d", sibling=True)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- landmark files


def test_landmarks_far_outside_the_photo_fail_before_models(photos, tmp_path):
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    far = np.stack([5000 + 100 * np.cos(t), 5000 + 120 * np.sin(t) + 3 * t], 1)
    lm = tmp_path / "far.txt"
    lm.write_text("\n".join(f"{x:.2f} {y:.2f}" for x, y in far))
    for cli in ("unwrap", "reconstruct"):
        out = tmp_path / f"out_{cli}"
        res = run_cli(cli, f"--image={photos / 'p1.png'}", f"--landmarks={lm}",
                      f"--out_dir={out}", BAD_MODEL)
        assert res.returncode == 1, res.stderr
        line = one_error_line(res)
        assert "outside the 512x512 photo" in line and "nonexistent" not in line, line
        assert not out.exists()


def test_landmark_plausibility_rules():
    from tf_face.errors import LandmarkError
    from tf_face.landmarks.landmark_files import check_landmarks_in_image
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    face = np.stack([250 + 80 * np.cos(t), 250 + 100 * np.sin(t)], 1)
    check_landmarks_in_image(face, (512, 512, 3))
    check_landmarks_in_image(face - [200, 0], (512, 512, 3))   # cut by the border: fine
    with pytest.raises(LandmarkError, match="outside"):
        check_landmarks_in_image(face + [400, 0], (512, 512, 3))
    with pytest.raises(LandmarkError, match="outside"):
        check_landmarks_in_image(face, (100, 100))
    with pytest.raises(LandmarkError, match="span only"):
        check_landmarks_in_image(np.full((68, 2), 100.0), (512, 512))


# ---------------------------------------------------------------- interrupts


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def interrupt_batch(cli, photos, out, signum, extra=(), ready=None):
    """Start a batch, wait until ``ready(out)`` (default: the first photo's
    folder exists), send ``signum``; return (exit code, stderr)."""
    ready = ready or (lambda o: (o / "p1").is_dir())
    proc = subprocess.Popen(cli_cmd(cli, f"--image_dir={photos}", f"--out_dir={out}", *extra),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli_env())
    deadline = time.monotonic() + 240
    while not ready(out):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no output folder appeared"
        time.sleep(0.02)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def check_interrupted(rc, err, out, signum, name):
    assert rc == 128 + signum, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [line for line in err.replace("\r", "\n").splitlines()
             if "interrupted" in line or line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(f"interrupted ({name})"), err
    assert leftovers(out) == []                     # no temp folder
    assert isinstance(json.loads((out / "failures.json").read_text()), list)
    done = [p for p in out.iterdir() if p.is_dir()]
    assert done and all((p / "fit.json").is_file() for p in done)  # complete folders
    return done


def check_rerun_resumes(cli, photos, out, done, extra=()):
    n = len(list(photos.iterdir()))
    stale = out / f".p6.tmp-{dead_pid()}-0a1b"      # what a SIGKILLed run leaves
    stale.mkdir()
    (stale / "texture.png").write_bytes(b"partial")
    res = run_cli(cli, f"--image_dir={photos}", f"--out_dir={out}", *extra)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert f"{len(done)} skipped" in res.stderr, res.stderr
    assert leftovers(out) == []
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == \
        sorted(f"p{i}" for i in range(1, n + 1))
    assert all((out / f"p{i}" / "fit.json").is_file() for i in range(1, n + 1))
    assert json.loads((out / "failures.json").read_text()) == []


def test_sigint_during_batch_unwrap_then_rerun(many_photos, tmp_path):
    out = tmp_path / "out"
    rc, err = interrupt_batch("unwrap", many_photos, out, signal.SIGINT)
    done = check_interrupted(rc, err, out, signal.SIGINT, "SIGINT")
    assert len(done) < 16
    check_rerun_resumes("unwrap", many_photos, out, done)


def test_sigterm_while_reconstruct_writes_then_rerun(photos, tmp_path):
    """SIGTERM while the second photo's temp folder is being written (the renders
    take ~2 s): the temp folder goes, the first photo's folder stays."""
    out = tmp_path / "out"

    def writing_second(o):
        return (o / "p1").is_dir() and any(p.name.startswith(".p2.tmp-") for p in o.iterdir())

    rc, err = interrupt_batch("reconstruct", photos, out, signal.SIGTERM, ready=writing_second)
    done = check_interrupted(rc, err, out, signal.SIGTERM, "SIGTERM")
    assert [p.name for p in done] == ["p1"]
    check_rerun_resumes("reconstruct", photos, out, done, ["--renders=none"])


def test_sigint_in_single_photo_mode(photos, tmp_path):
    out = tmp_path / "one"
    proc = subprocess.Popen(cli_cmd("reconstruct", f"--image={photos / 'p1.png'}",
                                    f"--out_dir={out}"),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli_env())
    deadline = time.monotonic() + 240
    while not any(p.name.startswith(".one.tmp-") for p in tmp_path.iterdir()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted (SIGINT)", err
    assert list(tmp_path.iterdir()) == []


def test_interrupt_inside_atomic_output_dir_removes_temp(tmp_path):
    from tf_face.cli.common import Interrupted, interrupt_handlers
    from tf_face.outputs import atomic_output_dir
    with interrupt_handlers():
        with pytest.raises(Interrupted) as exc:
            with atomic_output_dir(tmp_path / "out") as tmp:
                (tmp / "a.txt").write_text("partial")
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)                            # the handler raises first
    assert exc.value.exit_code == 143
    assert list(tmp_path.iterdir()) == []


def test_interrupt_right_after_the_temp_mkdir_leaves_nothing(tmp_path, monkeypatch):
    """A signal that lands between the temp folder's mkdir and the body (seen in a
    loaded CI run: the folder was left) is deferred until the folder is known,
    then raised and the folder removed."""
    import tf_face.outputs as O
    from tf_face.cli.common import Interrupted, interrupt_handlers
    real = O._make_temp_dir

    def mkdir_then_signal(out_dir):
        tmp = real(out_dir)
        signal.raise_signal(signal.SIGINT)   # the handler runs before we return
        return tmp
    monkeypatch.setattr(O, "_make_temp_dir", mkdir_then_signal)
    body = []
    with interrupt_handlers():
        with pytest.raises(Interrupted) as exc:
            with O.atomic_output_dir(tmp_path / "out"):
                body.append("ran")
    assert exc.value.exit_code == 130 and body == []
    assert list(tmp_path.iterdir()) == []


def test_signal_during_swap_is_deferred(tmp_path):
    from tf_face.cli.common import Interrupted, interrupt_handlers
    from tf_face.outputs import uninterruptible
    steps = []
    with interrupt_handlers():
        with pytest.raises(Interrupted):
            with uninterruptible():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(100):
                    time.sleep(0.001)                    # handler runs here: deferred
                steps.append("finished")
    assert steps == ["finished"]


def test_stale_temp_cleanup_keeps_live_runs_and_restores_orphans(tmp_path):
    from tf_face.outputs import remove_stale_temp
    live = tmp_path / f".a.tmp-{os.getppid()}-0000"
    dead = tmp_path / f".a.tmp-{dead_pid()}-0000"
    legacy = tmp_path / ".b.tmp-abcd_123"                # mkdtemp name of older versions
    orphan = tmp_path / f".c.old-{dead_pid()}"           # killed between the two renames
    for d in (live, dead, legacy, orphan):
        d.mkdir()
    (orphan / "fit.json").write_text("{}")
    removed = remove_stale_temp(tmp_path)
    assert sorted(p.name for p in removed) == sorted([dead.name, legacy.name])
    assert live.is_dir() and (tmp_path / "c" / "fit.json").is_file()
    assert remove_stale_temp(tmp_path, "zzz") == []


# ---------------------------------------------------------------- overwrite, umask


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_overwrite_leaves_no_hidden_old(tmp_path, kind):
    from tf_face.outputs import atomic_output_dir
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("old")
    else:
        out.mkdir()
        (out / "old.txt").write_text("old")
    with atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_output_folder_respects_umask(tmp_path, umask):
    from tf_face.outputs import atomic_output_dir
    old = os.umask(umask)
    try:
        with atomic_output_dir(tmp_path / "out") as tmp:
            (tmp / "x").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask


def test_ignored_signal_stays_ignored(photos, tmp_path):
    """A run started with SIGTERM ignored (as nohup / `cmd &` do with SIGINT)
    keeps ignoring it: the batch completes."""
    out = tmp_path / "out"
    proc = subprocess.Popen(cli_cmd("unwrap", f"--image_dir={photos}", f"--out_dir={out}"),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=cli_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
    deadline = time.monotonic() + 240
    while not (out / "p1").is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "interrupted" not in err, err
    assert all((out / f"p{i}" / "fit.json").is_file() for i in range(1, 7))


def test_interrupt_turned_into_another_error_by_library_code_still_stops_the_batch(tmp_path):
    """A signal whose KeyboardInterrupt a library swallows and re-raises as some
    other error (seen in a fresh-clone run: a TypeError from a file write's
    clean-up) stops the batch as an interrupt, not as a failed photo."""
    from tf_face.cli import common

    calls = []

    def fn(p):
        calls.append(p)
        if len(calls) == 2:
            try:
                common._on_signal(signal.SIGTERM, None)
            except KeyboardInterrupt:
                raise TypeError("expected str, bytes or os.PathLike object, not BufferedWriter")

    with common.interrupt_handlers():
        summary = common.run_batch([tmp_path / f"p{i}.png" for i in range(4)], fn,
                                   tmp_path / "out")
    assert summary["interrupted"] == signal.SIGTERM
    assert summary["succeeded"] == 1 and summary["failed"] == 0 and len(calls) == 2
    assert json.loads((tmp_path / "out" / "failures.json").read_text()) == []
    with common.interrupt_handlers():      # state does not leak into the next run
        assert common.received_signal() is None
