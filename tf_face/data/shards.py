"""Atomic TFRecord shards with a JSON index, and their verification.

A shard is ``NAME.tfrecord`` plus ``NAME.index.json``. Writing order:

1. records go to a hidden temp file ``.NAME.tfrecord.tmp-XXXX`` in the same
   folder (never matched by ``*.tfrecord`` listings);
2. the file is closed, read back (sha256, per-record CRC32), fsync'ed and
   renamed to ``NAME.tfrecord``;
3. only then ``NAME.index.json`` is written (temp + fsync + rename) and the
   folder is fsync'ed.

A run killed at any point leaves either a hidden temp file (ignored, removed by
``remove_stale_temp_files``) or a ``.tfrecord`` without an index, which readers
ignore with a warning and the preprocessing job redoes. The index holds the
record count, the file size and sha256, and per record ``[offset, length,
crc32]`` of its payload (zlib CRC-32, C speed), so a damaged shard (bit flips,
truncation) is detected before training starts and its intact records can
still be read (``salvage_records``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import logging
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Iterable, Optional

from tf_face.data.records import FORMAT_VERSION
from tf_face.errors import TfFaceError
from tf_face.file_hash import sha256_file
from tf_face.outputs import atomic_write_file, write_json
# TF-loading imports stay in functions: train.preprocess imports this at start-up
# (test_import_weight)

log = logging.getLogger(__name__)

INDEX_SUFFIX = ".index.json"
_HEADER = 12   # uint64 length + uint32 masked CRC32C of the length
_FOOTER = 4    # uint32 masked CRC32C of the payload


class CorruptShardError(TfFaceError):
    """A shard's file does not match its index (truncated, bit flips...)."""


def index_path(shard_path) -> Path:
    p = Path(shard_path)
    return p.with_name(p.name[:-len(".tfrecord")] + INDEX_SUFFIX if p.name.endswith(".tfrecord")
                       else p.name + INDEX_SUFFIX)


def write_json_atomic(path, data) -> None:
    """Write JSON (indent 1) to a temp file in the same folder, fsync, rename."""
    write_json(path, data, indent=1, fsync=True)


def _scan_file(path: Path, lengths: list[int]) -> tuple[str, list[list[int]], int]:
    """sha256, per-record [offset, length, crc32] and size of a just-written file."""
    sha = hashlib.sha256()
    records = []
    with open(path, "rb") as f:
        data = f.read()
    sha.update(data)
    off = 0
    for n in lengths:
        (stored,) = struct.unpack("<Q", data[off:off + 8])
        if stored != n:
            raise OSError(f"{path}: record framing at byte {off} does not match what was written")
        payload = data[off + _HEADER:off + _HEADER + n]
        records.append([off, n, zlib.crc32(payload)])
        off += _HEADER + n + _FOOTER
    if off != len(data):
        raise OSError(f"{path}: file size {len(data)} != expected {off}")
    return sha.hexdigest(), records, len(data)


@dataclasses.dataclass
class ShardInfo:
    path: Path
    count: int
    sha256: str
    bytes: int


class ShardWriter:
    """Context manager writing one shard atomically::

        with ShardWriter("out/shard-00000.tfrecord", uv_size=256, extras=spec) as w:
            w.write(encode_example(...))
        w.info  # ShardInfo after a clean exit

    ``extras`` is ``records.extras_spec(...)`` of the records' extras (all
    records of a shard hold the same extras); ``meta`` is any JSON-able dict
    stored in the index (the preprocessing job stores the photo ids).
    On an exception inside the block nothing but the temp file is touched, and
    the temp file is removed.
    """

    def __init__(self, path, uv_size: int = 256, extras: Optional[dict] = None,
                 meta: Optional[dict] = None):
        self.path = Path(path)
        if not self.path.name.endswith(".tfrecord"):
            raise ValueError(f"shard names end in .tfrecord, got {self.path.name}")
        self.uv_size = int(uv_size)
        self.extras = dict(extras or {})
        self.meta = dict(meta or {})
        self._lengths: list[int] = []
        self._tmp: Optional[Path] = None
        self._writer = None
        self.info: Optional[ShardInfo] = None

    def __enter__(self) -> "ShardWriter":
        import tensorflow as tf

        self.path.parent.mkdir(parents=True, exist_ok=True)
        # the temp file ends in .tmp-PID-XXXX (no .tfrecord): never a shard to listings
        self._atomic = atomic_write_file(self.path, fsync=True, suffix="")
        self._tmp = self._atomic.__enter__()
        try:
            self._writer = tf.io.TFRecordWriter(str(self._tmp))
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, record: bytes) -> None:
        self._writer.write(record)
        self._lengths.append(len(record))

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            with contextlib.suppress(Exception):   # we are already failing
                self._writer.close()
            self._atomic.__exit__(exc_type, exc, tb)   # removes the temp file
            return False
        with contextlib.ExitStack() as stack:
            stack.push(self._atomic)   # renames it into place, or removes it on an error
            self._writer.close()
            sha, records, size = _scan_file(self._tmp, self._lengths)
            idx = index_path(self.path)
            idx.unlink(missing_ok=True)         # an old index must never describe the new file
        write_json_atomic(idx, {
            "format_version": FORMAT_VERSION, "tfrecord": self.path.name,
            "count": len(records), "bytes": size, "sha256": sha, "uv_size": self.uv_size,
            "extras": self.extras, "meta": self.meta, "records": records,
        })
        self.info = ShardInfo(self.path, len(records), sha, size)
        return False


def write_shard(examples: Iterable[bytes], path, uv_size: int = 256,
                extras: Optional[dict] = None, meta: Optional[dict] = None) -> ShardInfo:
    """Write serialized examples to ``path`` atomically (see ``ShardWriter``)."""
    with ShardWriter(path, uv_size=uv_size, extras=extras, meta=meta) as w:
        for e in examples:
            w.write(e)
    return w.info


# ----------------------------------------------------------------------------- reading side

@dataclasses.dataclass
class ShardStatus:
    """What ``check_shard`` found. ``status``: ok | no_index | bad_index | corrupt."""
    path: Path
    status: str
    reason: str = ""
    index: Optional[dict] = None

    @property
    def count(self) -> int:
        return int(self.index["count"]) if self.index else 0


def read_index(shard_path) -> tuple[Optional[dict], str]:
    """(index dict, "") or (None, why it is missing/invalid)."""
    ip = index_path(shard_path)
    if not ip.is_file():
        return None, "no index file (the run that wrote it was interrupted?)"
    try:
        idx = json.loads(ip.read_text())
    except (OSError, ValueError) as e:
        return None, f"unreadable index {ip.name} ({e})"
    need = {"format_version": int, "tfrecord": str, "count": int, "bytes": int, "sha256": str,
            "uv_size": int, "extras": dict, "records": list}
    for k, t in need.items():
        if not isinstance(idx, dict) or not isinstance(idx.get(k), t):
            return None, f"index {ip.name} lacks a valid {k!r}"
    if idx["format_version"] != FORMAT_VERSION:
        return None, f"format version {idx['format_version']} (this code reads {FORMAT_VERSION})"
    if idx["tfrecord"] != Path(shard_path).name:
        return None, f"index {ip.name} describes {idx['tfrecord']!r}"
    if len(idx["records"]) != idx["count"]:
        return None, f"index {ip.name}: {len(idx['records'])} record entries != count"
    return idx, ""


def check_shard(shard_path, verify: bool = True) -> ShardStatus:
    """Check a shard against its index: size always, sha256 when ``verify``."""
    p = Path(shard_path)
    idx, why = read_index(p)
    if idx is None:
        status = "no_index" if why.startswith("no index") else "bad_index"
        return ShardStatus(p, status, why)
    try:
        size = p.stat().st_size
    except OSError as e:
        return ShardStatus(p, "corrupt", f"cannot stat ({e})", idx)
    if size != idx["bytes"]:
        return ShardStatus(p, "corrupt", f"size {size} bytes, index says {idx['bytes']} "
                           "(truncated or appended to)", idx)
    if verify and sha256_file(p) != idx["sha256"]:
        return ShardStatus(p, "corrupt", "sha256 differs from the index (damaged bytes)", idx)
    return ShardStatus(p, "ok", "", idx)


def salvage_records(shard_path, index: dict) -> tuple[list[bytes], int]:
    """The payloads of a damaged shard whose CRC32 still matches the index.

    Returns (good payloads in order, number of records lost).
    """
    good = []
    with open(shard_path, "rb") as f:
        data = f.read()
    for off, n, crc in index["records"]:
        start = off + _HEADER
        payload = data[start:start + n]
        if len(payload) == n and zlib.crc32(payload) == crc:
            good.append(payload)
    return good, len(index["records"]) - len(good)


def list_shards(pattern_or_dir) -> list[Path]:
    """``*.tfrecord`` files of a folder, or files matching a glob (sorted)."""
    s = os.fspath(pattern_or_dir)
    if os.path.isdir(s):
        paths = [Path(s) / n for n in os.listdir(s)
                 if n.endswith(".tfrecord") and not n.startswith(".")]
    else:
        paths = [Path(p) for p in glob.glob(s)
                 if not os.path.basename(p).startswith(".")]
    return sorted(p for p in paths if p.is_file())


def remove_stale_temp_files(directory) -> int:
    """Remove hidden ``.*.tmp-*`` files a killed writer left; returns how many."""
    d = Path(directory)
    n = 0
    if d.is_dir():
        for p in d.iterdir():
            if p.name.startswith(".") and ".tmp-" in p.name and p.is_file():
                p.unlink(missing_ok=True)
                n += 1
    return n
