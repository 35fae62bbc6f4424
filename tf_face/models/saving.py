"""Saving and loading the networks in the Keras format (training's weights folder).

``save_model`` writes ``<stem>.keras`` and ``<stem>.weights.h5`` atomically;
``load_stage_model`` reads ``<folder>/<name>.keras`` with one-line errors for
a missing, truncated or corrupt file. Shared by training (writes, and loads
the earlier stages) and serving (loads), so neither imports the other.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras

import tf_face.models  # noqa: F401 - registers the custom layers
from tf_face.errors import TfFaceError
from tf_face.outputs import atomic_write_file


def save_model(model, stem: Path) -> None:
    """``stem.keras`` (architecture + weights) and ``stem.weights.h5``, atomically."""
    stem = Path(stem)
    for suffix, fn in ((".keras", model.save), (".weights.h5", model.save_weights)):
        final = stem.with_name(stem.name + suffix)
        with atomic_write_file(final, suffix=suffix) as tmp:
            fn(str(tmp))



def load_stage_model(folder, name: str):
    """Load ``<folder>/<name>.keras`` with a clear error naming the job that makes it."""
    path = Path(folder) / f"{name}.keras"
    if not path.is_file():
        job = {"bnet": "train.train_bnet", "fan": "train.train_fan", "drn": "train.train_drn"}
        raise TfFaceError(f"{path} not found; train it first with "
                          f"python -m {job.get(name, 'train.' + name)}")
    if not zipfile.is_zipfile(path):
        # Keras says "File not found" for a file that exists but is no zip
        raise TfFaceError(f"{path} is corrupt or truncated (not a .keras zip archive, "
                          f"{path.stat().st_size} bytes); re-copy or re-export it")
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise TfFaceError(f"{path} is corrupt or truncated ({e})") from e
    if bad is not None:
        raise TfFaceError(f"{path} is corrupt: member {bad} fails its checksum")
    return keras.models.load_model(str(path), compile=False)
