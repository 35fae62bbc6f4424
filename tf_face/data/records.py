"""The TFRecord format of one UV sample (``tf.train.Example``), version 1.

Features of one record (``H = W = uv_size``):

===========================  ========  ==========================================
key                          type      content
===========================  ========  ==========================================
``format_version``           int64     ``FORMAT_VERSION`` (parse refuses others)
``image_id``                 bytes     id of the photo (its path relative to the
                                       input folder of the preprocessing job)
``source_path``              bytes     the photo's path as given to the job
``model``                    bytes     face-model spec / name used for the fit
``uv_size``                  int64[2]  H, W
``texture``                  bytes     PNG, uint8 RGB: round(texture * 255)
``mask``                     bytes     PNG, uint8 grey: 255 visible, 0 not
``normals``                  bytes     PNG, uint16 RGB: ``round(n * 32767) + 32768``
``position``                 bytes     PNG, uint16 RGB, per-channel affine (below)
``position_lo`` / ``_step``  float[3]  affine of the position map
``fit/scale``                float     weak-perspective scale s
``fit/rotation``             float[9]  R, row-major
``fit/translation``          float[2]  t (pixels)
``fit/landmark_rmse_iod``    float     landmark error / inter-ocular distance
``fit/image_size``           int64[2]  photo height, width
``extras``                   bytes[]   names of the extra features, sorted
``extra/<name>`` (+ ``/lo``,  per kind  see ``EXTRA_KINDS``
``/step`` for ``map16``)
===========================  ========  ==========================================

Precision choices (normals and positions need more than 8 bits):

* **normals**: 16-bit PNG with the fixed map ``q = round(n * 32767) + 32768``
  (q in 1..65535). The step is 3.1e-5 (an angle error < 0.002 deg) and
  ``n = 0`` (texels outside the atlas) is stored as exactly 32768 and decodes
  to exactly 0. 16-bit PNG was chosen over raw float16 bytes because it is
  lossless for what it stores, is compressed (~3x smaller than raw float16 on
  UV maps with large empty areas) and decodes in C++ inside tf.data.
* **position** (camera-frame pixels, unbounded range): 16-bit PNG with a
  per-sample, per-channel affine ``p = lo + (q - 1) * step`` over the texels
  where the position vector is non-zero (q in 1..65535, step = range / 65534);
  q = 0 marks texels whose position is exactly (0, 0, 0) (outside the atlas)
  and decodes to exactly 0. A 1000-pixel face gets a 0.015 px step.
* **texture** is quantised to 8 bits like the photo it was sampled from
  (< 0.5/255 error); the **mask** is exact.

Extras (optional, e.g. ground truth of synthetic faces) are ``name -> value``;
the kind is inferred (or given with ``Extra(kind, value)``):

* ``bytes`` (``bytes`` / ``str``) -> scalar string tensor;
* ``png8`` (``bool`` or ``uint8`` arrays ``[H,W]`` / ``[H,W,C]``, C in 1, 3, 4) -> float32
  ``[H,W,C]`` (bool: 0/1; uint8: / 255);
* ``map16`` (float arrays ``[h,w]`` / ``[h,w,C]``, C in 1, 3, 4, h, w >= 16) -> float32
  ``[h,w,C]``, 16-bit PNG with a per-channel affine (like ``position``, but
  zeros are not special: step = range / 65535);
* ``float`` (any other float / int array or number) -> float32 of its shape.

The kinds and shapes of a shard's extras are listed in the shard's
``*.index.json`` (see ``tf_face.data.shards``), which the reader needs to give
the tensors static shapes; ``extras_spec(extras)`` computes that listing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import cv2
import numpy as np
# TF-loading imports stay in functions: train.* imports this at start-up (test_import_weight)

FORMAT_VERSION = 1
NORMAL_OFFSET = 32768
NORMAL_SCALE = 32767.0
EXTRA_KINDS = ("bytes", "png8", "map16", "float")
_MIN_MAP_SIDE = 16


@dataclasses.dataclass(frozen=True)
class Extra:
    """An extra feature with an explicit kind (one of ``EXTRA_KINDS``)."""
    kind: str
    value: Any


# ----------------------------------------------------------------------------- encoding

def _png(img: np.ndarray) -> bytes:
    """Lossless PNG of uint8/uint16 [H,W] or [H,W,3] (channels in RGB order)."""
    img = np.ascontiguousarray(img)
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[..., ::-1]  # OpenCV writes BGR
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[..., [2, 1, 0, 3]]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError(f"PNG encoding failed for an array of shape {img.shape} {img.dtype}")
    return buf.tobytes()


def _bytes_feature(values) -> "Any":
    import tensorflow as tf
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _float_feature(values) -> "Any":
    import tensorflow as tf
    return tf.train.Feature(float_list=tf.train.FloatList(
        value=np.asarray(values, np.float32).ravel().tolist()))


def _int_feature(values) -> "Any":
    import tensorflow as tf
    return tf.train.Feature(int64_list=tf.train.Int64List(
        value=np.asarray(values, np.int64).ravel().tolist()))


def quantize_normals(normals: np.ndarray) -> np.ndarray:
    n = np.clip(np.nan_to_num(np.asarray(normals, np.float64)), -1.0, 1.0)
    return (np.round(n * NORMAL_SCALE) + NORMAL_OFFSET).astype(np.uint16)


def quantize_position(position: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[H,W,3] float -> (uint16 [H,W,3], lo [3], step [3]); see the module docstring."""
    p = np.nan_to_num(np.asarray(position, np.float64))
    valid = np.any(p != 0, axis=-1)
    lo = np.zeros(3)
    step = np.ones(3)
    q = np.zeros(p.shape, np.uint16)
    if valid.any():
        pv = p[valid]
        lo = pv.min(axis=0)
        rng = pv.max(axis=0) - lo
        step = np.where(rng > 0, rng / 65534.0, 1.0)
        q[valid] = (np.clip(np.round((pv - lo) / step), 0, 65534) + 1).astype(np.uint16)
    return q, lo, step


def quantize_map16(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[h,w,C] float -> (uint16, lo [C], step [C]) with p = lo + q * step."""
    v = np.nan_to_num(np.asarray(values, np.float64))
    lo = v.reshape(-1, v.shape[-1]).min(axis=0)
    rng = v.reshape(-1, v.shape[-1]).max(axis=0) - lo
    step = np.where(rng > 0, rng / 65535.0, 1.0)
    q = np.clip(np.round((v - lo) / step), 0, 65535).astype(np.uint16)
    return q, lo, step


def _infer_extra(name: str, value) -> Extra:
    if isinstance(value, Extra):
        if value.kind not in EXTRA_KINDS:
            raise ValueError(f"extra {name!r}: unknown kind {value.kind!r} (one of {EXTRA_KINDS})")
        return value
    if isinstance(value, (bytes, str)):
        return Extra("bytes", value)
    arr = np.asarray(value)
    if arr.dtype == bool or arr.dtype == np.uint8:
        return Extra("png8", arr)
    if (np.issubdtype(arr.dtype, np.floating) and arr.ndim in (2, 3)
            and min(arr.shape[:2]) >= _MIN_MAP_SIDE
            and (arr.ndim == 2 or arr.shape[2] in (1, 3, 4))):
        return Extra("map16", arr)
    return Extra("float", arr)


def _as_image(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"image extras must be [H,W] or [H,W,1|3|4], got {arr.shape}")
    return arr


def extras_spec(extras: Optional[dict]) -> dict:
    """``{name: {"kind", "shape"}}`` of an extras dict (the shape after decoding)."""
    spec = {}
    for name, value in sorted((extras or {}).items()):
        _check_name(name)
        ex = _infer_extra(name, value)
        if ex.kind == "bytes":
            shape: list = []
        elif ex.kind in ("png8", "map16"):
            shape = list(_as_image(ex.value).shape)
        else:
            shape = list(np.asarray(ex.value).shape)
        spec[name] = {"kind": ex.kind, "shape": shape}
    return spec


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"extra feature names must be non-empty [A-Za-z0-9_-], got {name!r}")


def _encode_extra(name: str, ex: Extra, feats: dict) -> None:
    key = f"extra/{name}"
    if ex.kind == "bytes":
        v = ex.value.encode("utf-8") if isinstance(ex.value, str) else bytes(ex.value)
        feats[key] = _bytes_feature([v])
    elif ex.kind == "png8":
        arr = _as_image(ex.value)
        if arr.dtype == bool:
            arr = arr.astype(np.uint8) * 255
        if arr.dtype != np.uint8:
            raise ValueError(f"extra {name!r}: png8 needs bool or uint8, got {arr.dtype}")
        feats[key] = _bytes_feature([_png(arr[..., 0] if arr.shape[2] == 1 else arr)])
        feats[key + "/bool"] = _int_feature([int(np.asarray(ex.value).dtype == bool)])
    elif ex.kind == "map16":
        arr = _as_image(np.asarray(ex.value, np.float64))
        q, lo, step = quantize_map16(arr)
        feats[key] = _bytes_feature([_png(q[..., 0] if q.shape[2] == 1 else q)])
        feats[key + "/lo"] = _float_feature(lo)
        feats[key + "/step"] = _float_feature(step)
    else:
        feats[key] = _float_feature(np.asarray(ex.value, np.float64))


def fit_params(fitted) -> dict:
    """The fit fields stored in a record, from a ``FittedFace``."""
    return {
        "model": fitted.model_name,
        "scale": float(fitted.scale),
        "rotation": np.asarray(fitted.rotation, np.float64).reshape(9).tolist(),
        "translation": np.asarray(fitted.translation, np.float64).reshape(2).tolist(),
        "landmark_rmse_iod": float(fitted.landmark_rmse_iod),
        "image_size": [int(v) for v in fitted.image_size],
    }


def encode_example(sample, fit: dict, image_id: str, extras: Optional[dict] = None,
                   source_path: str = "") -> bytes:
    """Serialise one ``UVSample`` + fit parameters (+ extras) to ``tf.train.Example`` bytes.

    ``fit`` holds ``scale``, ``rotation`` (9 or 3x3), ``translation`` (2),
    ``landmark_rmse_iod``, ``model`` and optionally ``image_size`` (H, W);
    ``fit_params(fitted_face)`` builds it. ``extras``: see the module docstring.
    """
    import tensorflow as tf

    tex = np.asarray(sample.texture)
    h, w = tex.shape[:2]
    for name in ("mask", "normals", "position"):
        if np.asarray(getattr(sample, name)).shape[:2] != (h, w):
            raise ValueError(f"UVSample.{name} is {np.asarray(getattr(sample, name)).shape}, "
                             f"texture is {tex.shape}")
    if tex.dtype != np.uint8:
        tex = np.clip(np.round(np.nan_to_num(tex.astype(np.float64)) * 255.0), 0, 255)
    mask = np.asarray(sample.mask).astype(bool).reshape(h, w)
    pos_q, pos_lo, pos_step = quantize_position(sample.position)
    rotation = np.asarray(fit["rotation"], np.float64).reshape(9)
    feats = {
        "format_version": _int_feature([FORMAT_VERSION]),
        "image_id": _bytes_feature([str(image_id).encode("utf-8")]),
        "source_path": _bytes_feature([str(source_path).encode("utf-8")]),
        "model": _bytes_feature([str(fit.get("model", "")).encode("utf-8")]),
        "uv_size": _int_feature([h, w]),
        "texture": _bytes_feature([_png(tex.astype(np.uint8))]),
        "mask": _bytes_feature([_png(mask.astype(np.uint8) * 255)]),
        "normals": _bytes_feature([_png(quantize_normals(sample.normals))]),
        "position": _bytes_feature([_png(pos_q)]),
        "position_lo": _float_feature(pos_lo),
        "position_step": _float_feature(pos_step),
        "fit/scale": _float_feature([fit["scale"]]),
        "fit/rotation": _float_feature(rotation),
        "fit/translation": _float_feature(np.asarray(fit["translation"]).reshape(2)),
        "fit/landmark_rmse_iod": _float_feature([fit.get("landmark_rmse_iod", -1.0)]),
        "fit/image_size": _int_feature(fit.get("image_size", [0, 0])),
    }
    names = []
    for name, value in sorted((extras or {}).items()):
        _check_name(name)
        _encode_extra(name, _infer_extra(name, value), feats)
        names.append(name.encode("utf-8"))
    feats["extras"] = _bytes_feature(names)
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


# ----------------------------------------------------------------------------- parsing

def _feature_spec(extras: dict) -> dict:
    import tensorflow as tf

    fl = tf.io.FixedLenFeature
    spec = {
        "format_version": fl([], tf.int64),
        "image_id": fl([], tf.string),
        "source_path": fl([], tf.string, default_value=""),
        "model": fl([], tf.string),
        "uv_size": fl([2], tf.int64),
        "texture": fl([], tf.string),
        "mask": fl([], tf.string),
        "normals": fl([], tf.string),
        "position": fl([], tf.string),
        "position_lo": fl([3], tf.float32),
        "position_step": fl([3], tf.float32),
        "fit/scale": fl([], tf.float32),
        "fit/rotation": fl([9], tf.float32),
        "fit/translation": fl([2], tf.float32),
        "fit/landmark_rmse_iod": fl([], tf.float32),
        "fit/image_size": fl([2], tf.int64),
    }
    for name, s in extras.items():
        key = f"extra/{name}"
        kind, shape = s["kind"], list(s["shape"])
        if kind == "float":
            spec[key] = fl([int(np.prod(shape))] if shape else [], tf.float32)
        else:
            spec[key] = fl([], tf.string)
        if kind == "png8":
            spec[key + "/bool"] = fl([], tf.int64)
        if kind == "map16":
            spec[key + "/lo"] = fl([shape[-1]], tf.float32)
            spec[key + "/step"] = fl([shape[-1]], tf.float32)
    return spec


def parse_example(serialized, uv_size: int = 256, extras: Optional[dict] = None) -> dict:
    """Parse + decode one serialized record (a scalar string tensor) into tensors.

    Returns ``texture`` float32 [H,W,3] in [0,1], ``mask`` float32 [H,W,1] (0/1),
    ``normals`` float32 [H,W,3], ``position`` float32 [H,W,3] (camera-frame
    pixels), ``scale`` [], ``rotation`` [3,3], ``translation`` [2],
    ``landmark_rmse_iod`` [], ``image_size`` int32 [2], ``model``, ``image_id``,
    ``source_path`` (strings) and ``extras`` (a dict; ``extras`` is the spec
    from ``extras_spec`` / the shard index; None = no extras are parsed).
    Usable inside ``tf.data.Dataset.map``. PNG decoding errors raise
    ``InvalidArgumentError``; a record of another format version fails an
    assertion.
    """
    import tensorflow as tf

    extras = extras or {}
    f = tf.io.parse_single_example(serialized, _feature_spec(extras))
    h = w = int(uv_size)
    check = tf.debugging.assert_equal(
        f["format_version"], tf.constant(FORMAT_VERSION, tf.int64),
        message=f"TFRecord format version is not {FORMAT_VERSION}")
    with tf.control_dependencies([check]):
        tex_u8 = tf.io.decode_png(f["texture"], channels=3, dtype=tf.uint8)
    texture = tf.ensure_shape(tf.cast(tex_u8, tf.float32) / 255.0, [h, w, 3])
    mask = tf.cast(tf.io.decode_png(f["mask"], channels=1, dtype=tf.uint8) > 127, tf.float32)
    mask = tf.ensure_shape(mask, [h, w, 1])
    nq = tf.cast(tf.io.decode_png(f["normals"], channels=3, dtype=tf.uint16), tf.float32)
    normals = tf.ensure_shape((nq - NORMAL_OFFSET) / NORMAL_SCALE, [h, w, 3])
    pq = tf.cast(tf.io.decode_png(f["position"], channels=3, dtype=tf.uint16), tf.float32)
    position = tf.where(pq > 0, f["position_lo"] + (pq - 1.0) * f["position_step"], 0.0)
    position = tf.ensure_shape(position, [h, w, 3])
    out = {
        "texture": texture, "mask": mask, "normals": normals, "position": position,
        "scale": f["fit/scale"],
        "rotation": tf.reshape(f["fit/rotation"], [3, 3]),
        "translation": f["fit/translation"],
        "landmark_rmse_iod": f["fit/landmark_rmse_iod"],
        "image_size": tf.cast(f["fit/image_size"], tf.int32),
        "model": f["model"], "image_id": f["image_id"], "source_path": f["source_path"],
    }
    ex_out = {}
    for name, s in extras.items():
        key = f"extra/{name}"
        kind, shape = s["kind"], list(s["shape"])
        if kind == "bytes":
            ex_out[name] = f[key]
        elif kind == "float":
            ex_out[name] = tf.reshape(f[key], shape)
        elif kind == "png8":
            img = tf.cast(tf.io.decode_png(f[key], channels=shape[-1], dtype=tf.uint8), tf.float32)
            img = tf.where(f[key + "/bool"] > 0, tf.cast(img > 127, tf.float32), img / 255.0)
            ex_out[name] = tf.ensure_shape(img, shape)
        else:  # map16
            q = tf.cast(tf.io.decode_png(f[key], channels=shape[-1], dtype=tf.uint16), tf.float32)
            ex_out[name] = tf.ensure_shape(f[key + "/lo"] + q * f[key + "/step"], shape)
    out["extras"] = ex_out
    return out
