"""Batching samples whose per-object fields differ in length from image to image.

`collate_objects` default-collates every field of the samples (images stack into a batch tensor,
numbers into tensors, strings into lists) except the per-object fields of the sample schema, whose
first dimension is the image's object count: those stay a list with one tensor per image. A data
loader config selects it with `collate="objects"`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from hbdk_sim.errors import ConfigError

# Fields with one row per object (their length varies per image).
PER_OBJECT = ("gt_boxes", "gt_classes", "gt_track_ids", "gt_ignore")


def collate_objects(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The samples as a batch: per-object fields (and an N x K x 3 `gt_keypoints`) as lists of
    tensors, the rest by torch's default_collate."""
    if not samples:
        return {}
    keys = samples[0].keys()
    listed = [k for k in keys if k in PER_OBJECT or (k == "gt_keypoints" and np.ndim(samples[0][k]) == 3)]
    batch = default_collate([{k: v for k, v in s.items() if k not in listed} for s in samples])
    for k in listed:
        batch[k] = [torch.as_tensor(s[k]) for s in samples]
    return batch


COLLATES: dict[str, Callable | None] = {"default": None, "objects": collate_objects}


def collate_function(name: str) -> Callable | None:
    """The collate function a data loader config names (None: torch's default)."""
    if name not in COLLATES:
        raise ConfigError(f"unknown collate {name!r}; expected one of {', '.join(COLLATES)}")
    return COLLATES[name]
