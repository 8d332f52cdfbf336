"""The sample schema: the fields a dataset record and a sample dict may hold, beside the image and
the segmentation label, and their msgpack form in a packed record.

A record (one msgpack map per sample, written by `hbdk_sim.data.packer`) holds:
    img, img_format, shape     the image: encoded bytes with their format ("png", "jpg"), or "raw"
                               HxWx3 uint8 bytes with `shape` = [H, W]
    gt_seg, gt_format          optional: the label map, encoded or "raw" HxW uint8
    <array field>              optional: {"dtype": ..., "shape": [...], "data": bytes} (little endian),
                               one of ARRAY_FIELDS below
    anything else              str / int / float / bool metadata (name, city, sequence, frame, ...)
    bytes-valued keys          other binary payloads, passed through as bytes
The transforms' module docstring says how each geometric field moves with the image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hbdk_sim.errors import DatasetError, UsageError

# field -> (dtype, allowed ranks, last dim or None)
ARRAY_FIELDS: dict[str, tuple[str, tuple[int, ...], int | None]] = {
    "gt_boxes": ("float32", (2,), 4),  # N x (x1, y1, x2, y2) in image pixels
    "gt_classes": ("int64", (1,), None),  # N class ids
    "gt_track_ids": ("int64", (1,), None),  # N track ids, stable across the frames of a sequence
    "gt_ignore": ("bool", (1,), None),  # N: the box is ignored by the loss and the metric
    "gt_keypoints": ("float32", (2, 3), 3),  # K x 3 or N x K x 3: (x, y, visibility)
    "points": ("float32", (2,), None),  # P x D lidar points (x, y, z, intensity, ...)
}
# Record keys the image and label decoding owns.
IMAGE_KEYS = frozenset({"img", "img_format", "shape", "gt_seg", "gt_format"})


def encode_array(key: str, value: Any) -> dict[str, Any]:
    """The record form of array field `key`: its schema dtype, shape and little-endian bytes."""
    if key not in ARRAY_FIELDS:
        raise UsageError(f"{key!r} is not an array field of the sample schema ({', '.join(ARRAY_FIELDS)})")
    dtype, ranks, last = ARRAY_FIELDS[key]
    a = np.ascontiguousarray(np.asarray(value).astype(np.dtype(dtype).newbyteorder("<")))
    if a.ndim not in ranks or (last is not None and a.shape[-1] != last):
        raise UsageError(f"{key}: expected rank {' or '.join(map(str, ranks))}"
                         f"{f' with last dim {last}' if last else ''} but got shape {a.shape}")
    return {"dtype": dtype, "shape": list(a.shape), "data": a.tobytes()}


def decode_array(key: str, entry: Any, where: str) -> np.ndarray:
    """The array of field `key` from its record form; a DatasetError naming the record otherwise."""
    dtype, ranks, last = ARRAY_FIELDS[key]
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data"}:
        raise DatasetError(f"{where}: field {key!r} is not an encoded array (dtype, shape, data); re-pack it")
    shape = entry["shape"]
    if entry["dtype"] != dtype or not isinstance(shape, list) or len(shape) not in ranks or \
            any(not isinstance(d, int) or d < 0 for d in shape) or (last is not None and shape[-1] != last):
        raise DatasetError(f"{where}: field {key!r} is {entry['dtype']} {shape}, expected {dtype} of rank "
                           f"{' or '.join(map(str, ranks))}{f' with last dim {last}' if last else ''}; re-pack it")
    data = entry["data"]
    want = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if not isinstance(data, bytes) or len(data) != want:
        raise DatasetError(f"{where}: field {key!r} holds {len(data) if isinstance(data, bytes) else 'no'} bytes, "
                           f"expected {want} for {dtype} {shape}; re-pack it")
    return np.frombuffer(data, np.dtype(dtype).newbyteorder("<")).reshape(shape).astype(dtype)


def decode_fields(record: dict[str, Any], where: str) -> dict[str, Any]:
    """Every field of `record` but the image and label: arrays decoded, metadata as it is."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key in IMAGE_KEYS:
            continue
        out[key] = decode_array(key, value, where) if key in ARRAY_FIELDS else value
    return out
