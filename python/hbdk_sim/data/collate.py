"""Batching samples whose per-object fields differ in length from image to image.

`collate_objects` default-collates every field of the samples (images stack into a batch tensor,
numbers into tensors, strings into lists) except the per-object fields of the sample schema, whose
first dimension is the image's object count: those stay a list with one tensor per image. A data
loader config selects it with `collate="objects"`.

`collate_clips` (`collate="clips"`) batches the clips of a ClipDataset: a list with one clip per
sample, each clip its list of frames with every array as a tensor (frames of different clips may
differ in size and object count).
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


def _as_tensors(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {k: _as_tensors(v) for k, v in value.items()}
    return value


def collate_clips(samples: Sequence[Sequence[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    """The clips as a batch: a list of clips, each a list of frame dicts with arrays as tensors."""
    clips = []
    for i, clip in enumerate(samples):
        if isinstance(clip, dict) or not isinstance(clip, Sequence):
            raise ConfigError(f"collate 'clips': sample {i} is a {type(clip).__name__}, not a clip (a list of "
                              "frames); use it with ClipDataset, or collate 'objects' for single frames")
        clips.append([_as_tensors(dict(frame)) for frame in clip])
    return clips


COLLATES: dict[str, Callable | None] = {"default": None, "objects": collate_objects, "clips": collate_clips}


def collate_function(name: str) -> Callable | None:
    """The collate function a data loader config names (None: torch's default)."""
    if name not in COLLATES:
        raise ConfigError(f"unknown collate {name!r}; expected one of {', '.join(COLLATES)}")
    return COLLATES[name]
