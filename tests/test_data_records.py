"""UV-sample TFRecords: round trip, atomic shards with an index, the tf.data
pipeline, and damaged shards (bit flips, truncation, bad PNG, missing index)."""

import hashlib
import json

import numpy as np
import pytest
import tensorflow as tf

from tf_face.data import (CorruptShardError, Extra, encode_example, extras_spec,
                          make_dataset, make_dataset_with_report, parse_example, read_index,
                          write_shard)
from tf_face.data.shards import ShardWriter, index_path
from tf_face.types import UVSample

UV = 32  # small maps keep the tests cheap; the format does not depend on the size


def random_sample(rng, size=UV, scale=300.0):
    mask = rng.random((size, size)) > 0.3
    n = rng.normal(size=(size, size, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[~mask] = 0
    p = rng.normal(size=(size, size, 3)) * scale + 100.0
    p[~mask] = 0
    tex = rng.integers(0, 256, (size, size, 3)).astype(np.float32) / 255.0
    return UVSample(tex, mask, n.astype(np.float32), p.astype(np.float32))


def random_fit(rng):
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return {"model": "default", "scale": float(rng.uniform(1, 3)), "rotation": q,
            "translation": rng.normal(size=2) * 50, "landmark_rmse_iod": 0.03,
            "image_size": [480, 640]}


def test_round_trip_exact_for_8bit_and_within_quantisation_for_float_maps():
    rng = np.random.default_rng(0)
    s = random_sample(rng)
    fit = random_fit(rng)
    extras = {
        "sh": rng.normal(size=(9, 3)),                              # float
        "albedo": rng.random((UV, UV, 3)),                           # map16
        "displacement": rng.normal(size=(UV, UV)) * 0.01,            # map16, 1 channel
        "occlusion": rng.random((UV, UV)) > 0.5,                     # png8 (bool)
        "label": "synthetic-7",                                      # bytes
        "small_map": Extra("float", rng.normal(size=(UV, UV))),      # forced kind
    }
    spec = extras_spec(extras)
    assert spec["sh"] == {"kind": "float", "shape": [9, 3]}
    assert spec["albedo"]["kind"] == "map16" and spec["occlusion"]["kind"] == "png8"
    d = parse_example(encode_example(s, fit, "dir/photo.jpg", extras, source_path="/x/photo.jpg"),
                      uv_size=UV, extras=spec)
    np.testing.assert_array_equal(np.round(d["texture"].numpy() * 255), np.round(s.texture * 255))
    np.testing.assert_array_equal(d["mask"].numpy()[..., 0], s.mask.astype(np.float32))
    n = d["normals"].numpy()
    assert np.abs(n - s.normals).max() <= 0.5 / 32767 + 1e-6
    assert np.all(n[~s.mask] == 0)                      # outside the atlas stays exactly 0
    pos = d["position"].numpy()
    step = np.ptp(s.position[s.mask], axis=0) / 65534
    assert np.all(np.abs(pos - s.position)[s.mask] <= step / 2 + 1e-3)
    assert np.all(pos[~s.mask] == 0)
    np.testing.assert_allclose(d["rotation"].numpy(), fit["rotation"], atol=1e-6)
    np.testing.assert_allclose(d["translation"].numpy(), fit["translation"], rtol=1e-6)
    assert d["scale"].numpy() == pytest.approx(fit["scale"], rel=1e-6)
    assert d["image_size"].numpy().tolist() == [480, 640]
    assert d["image_id"].numpy() == b"dir/photo.jpg" and d["model"].numpy() == b"default"
    assert d["source_path"].numpy() == b"/x/photo.jpg"
    e = d["extras"]
    np.testing.assert_allclose(e["sh"].numpy(), extras["sh"], atol=1e-6)
    assert np.abs(e["albedo"].numpy() - extras["albedo"]).max() <= 0.5 / 65535 + 1e-6
    disp = e["displacement"].numpy()[..., 0]
    assert np.abs(disp - extras["displacement"]).max() <= np.ptp(extras["displacement"]) / 65535
    np.testing.assert_array_equal(e["occlusion"].numpy()[..., 0], extras["occlusion"])
    assert e["label"].numpy() == b"synthetic-7"
    np.testing.assert_allclose(e["small_map"].numpy(), extras["small_map"].value, atol=1e-5)


def test_other_format_version_is_refused():
    rng = np.random.default_rng(1)
    ex = tf.train.Example.FromString(encode_example(random_sample(rng), random_fit(rng), "a"))
    ex.features.feature["format_version"].int64_list.value[0] = 99
    with pytest.raises(tf.errors.InvalidArgumentError, match="format version"):
        parse_example(ex.SerializeToString(), uv_size=UV)


def write_test_shards(tmp_path, n_shards=2, per_shard=5, seed=0, extras=True):
    rng = np.random.default_rng(seed)
    ids = []
    for k in range(n_shards):
        recs = []
        for i in range(per_shard):
            image_id = f"s{k}/img{i}.png"
            ex = {"sh": rng.normal(size=(9, 3))} if extras else None
            recs.append(encode_example(random_sample(rng), random_fit(rng), image_id, ex))
            ids.append(image_id)
        spec = extras_spec({"sh": np.zeros((9, 3))}) if extras else {}
        write_shard(recs, tmp_path / f"shard-{k:05d}.tfrecord", uv_size=UV, extras=spec)
    return ids


def all_ids(ds):
    return [i.decode() for b in ds for i in b["image_id"].numpy()]


def test_write_shard_is_atomic_and_indexed(tmp_path):
    write_test_shards(tmp_path, n_shards=1, per_shard=3)
    shard = tmp_path / "shard-00000.tfrecord"
    idx = json.loads(index_path(shard).read_text())
    assert idx["count"] == 3 and idx["bytes"] == shard.stat().st_size
    assert idx["sha256"] == hashlib.sha256(shard.read_bytes()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00000.index.json",
                                                          "shard-00000.tfrecord"]
    # a failure inside the writer leaves nothing behind
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / "shard-00001.tfrecord", uv_size=UV) as w:
            w.write(b"x")
            raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-00000.index.json",
                                                          "shard-00000.tfrecord"]


def test_make_dataset_two_shards_shapes_and_all_records(tmp_path):
    ids = write_test_shards(tmp_path)
    ds, report = make_dataset_with_report(tmp_path, batch_size=4, shuffle=True, seed=3)
    assert report.records == 10 and len(report.shards) == 2
    batches = list(ds)
    assert [int(b["texture"].shape[0]) for b in batches] == [4, 4, 2]
    b = batches[0]
    assert b["texture"].shape == (4, UV, UV, 3) and b["texture"].dtype == tf.float32
    assert b["mask"].shape == (4, UV, UV, 1)
    assert b["normals"].shape == (4, UV, UV, 3) and b["position"].shape == (4, UV, UV, 3)
    assert b["rotation"].shape == (4, 3, 3) and b["translation"].shape == (4, 2)
    assert b["extras"]["sh"].shape == (4, 9, 3)
    got = [i.decode() for bb in batches for i in bb["image_id"].numpy()]
    assert sorted(got) == sorted(ids)
    # a glob works too, and repeat=2 gives every record twice
    got2 = all_ids(make_dataset(str(tmp_path / "shard-*.tfrecord"), 3, shuffle=False, repeat=2))
    assert sorted(got2) == sorted(ids * 2)


def test_augment_changes_only_the_texture_reproducibly(tmp_path):
    write_test_shards(tmp_path, n_shards=1, per_shard=4)
    plain = next(iter(make_dataset(tmp_path, 4, shuffle=False)))
    a1 = next(iter(make_dataset(tmp_path, 4, shuffle=False, augment=True, seed=5)))
    a2 = next(iter(make_dataset(tmp_path, 4, shuffle=False, augment=True, seed=5)))
    np.testing.assert_array_equal(a1["texture"].numpy(), a2["texture"].numpy())
    assert np.abs(a1["texture"].numpy() - plain["texture"].numpy()).mean() > 1e-3
    assert a1["texture"].numpy().min() >= 0 and a1["texture"].numpy().max() <= 1
    for k in ("mask", "normals", "position"):
        np.testing.assert_array_equal(a1[k].numpy(), plain[k].numpy())


def _record_span(shard, k):
    off, n, _ = read_index(shard)[0]["records"][k]
    return off + 12, n


def test_bit_flips_in_a_record_skip_mode_keeps_the_rest_fail_mode_raises(tmp_path, caplog):
    ids = write_test_shards(tmp_path)
    shard = tmp_path / "shard-00001.tfrecord"
    start, n = _record_span(shard, 2)
    data = bytearray(shard.read_bytes())
    for i in range(start + n // 2, start + n // 2 + 4):
        data[i] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match="shard-00001"):
        make_dataset(tmp_path, 4, on_corrupt="fail")
    with caplog.at_level("WARNING"):
        ds, report = make_dataset_with_report(tmp_path, 4, on_corrupt="skip", seed=0)
    assert "shard-00001" in caplog.text and report.records_lost == 1
    assert sorted(all_ids(ds)) == sorted(i for i in ids if i != "s1/img2.png")


def test_truncated_shard(tmp_path):
    ids = write_test_shards(tmp_path)
    shard = tmp_path / "shard-00000.tfrecord"
    start, n = _record_span(shard, 3)
    shard.write_bytes(shard.read_bytes()[:start + n // 3])
    with pytest.raises(CorruptShardError, match="truncated"):
        make_dataset(tmp_path, 4, on_corrupt="fail", verify=False)
    ds, report = make_dataset_with_report(tmp_path, 4, on_corrupt="skip", shuffle=False)
    assert report.records_lost == 2
    assert sorted(all_ids(ds)) == sorted(i for i in ids if i not in ("s0/img3.png", "s0/img4.png"))


def test_undecodable_png_in_a_well_formed_record(tmp_path):
    ids = write_test_shards(tmp_path, n_shards=1, per_shard=3, extras=False)
    rng = np.random.default_rng(9)
    ex = tf.train.Example.FromString(encode_example(random_sample(rng), random_fit(rng), "bad"))
    ex.features.feature["texture"].bytes_list.value[0] = b"\x89PNG\r\n\x1a\nnot really"
    write_shard([ex.SerializeToString()], tmp_path / "shard-00001.tfrecord", uv_size=UV)
    assert sorted(all_ids(make_dataset(tmp_path, 2, on_corrupt="skip"))) == sorted(ids)
    with pytest.raises(tf.errors.InvalidArgumentError):
        all_ids(make_dataset(tmp_path, 2, on_corrupt="fail", shuffle=False))


def test_shard_without_index_is_ignored(tmp_path, caplog):
    ids = write_test_shards(tmp_path)
    index_path(tmp_path / "shard-00001.tfrecord").unlink()     # killed before the index
    (tmp_path / ".shard-00002.tfrecord.tmp-abc").write_bytes(b"half")  # killed mid-write
    with caplog.at_level("WARNING"):
        ds, report = make_dataset_with_report(tmp_path, 4, on_corrupt="fail")
    assert "shard-00001" in caplog.text
    assert [p for p, _ in report.ignored] == [str(tmp_path / "shard-00001.tfrecord")]
    assert sorted(all_ids(ds)) == sorted(i for i in ids if i.startswith("s0/"))


@pytest.mark.parametrize("n_shards", [1, 4])
def test_input_context_partitions_the_records(tmp_path, n_shards):
    ids = write_test_shards(tmp_path, n_shards=n_shards, per_shard=8 // n_shards, extras=False)
    parts = [all_ids(make_dataset(tmp_path, 4, seed=1, input_context=tf.distribute.InputContext(
        num_input_pipelines=2, input_pipeline_id=i, num_replicas_in_sync=2))) for i in range(2)]
    assert len(parts[0]) == len(parts[1]) == 4
    assert sorted(parts[0] + parts[1]) == sorted(ids)
