"""Training clips of video frames: `ClipDataset` turns a per-frame LMDB (one record per frame,
sequences stored one after another, e.g. the MOT17 packer's) into clips of L frames of one sequence,
L growing with the epoch (a curriculum: short clips first), the frames `interval` apart or a random
1..`interval` apart.

Clip `i` starts at frame `i` (so one epoch visits every frame once as a start) unless the clip would
run past the end of the frame's sequence, in which case it starts early enough to fit; a clip never
crosses into the next sequence. A sequence shorter than the clip's span gets a smaller step (at
least 1); one with fewer frames than L repeats its last frame.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from hbdk_sim.data.datasets.lmdb import LmdbDataset
from hbdk_sim.data.transforms.sequence import Seq
from hbdk_sim.errors import DatasetError, UsageError
from hbdk_sim.registry import DATASETS


def sequence_runs(frames: LmdbDataset) -> list[tuple[int, int]]:
    """(first index, frame count) of each sequence, in storage order, from the database's
    `sequence_lengths` metadata."""
    lengths = frames.meta.get("sequence_lengths")
    if not isinstance(lengths, list) or not lengths:
        raise DatasetError(f"{frames.path}: no sequence_lengths in the database's metadata; ClipDataset needs a "
                           "per-frame database written by a video packer (e.g. tools/datasets/mot17_packer.py)")
    runs, start = [], 0
    for entry in lengths:
        count = int(entry[1]) if isinstance(entry, list | tuple) else int(entry)
        if count < 1:
            raise DatasetError(f"{frames.path}: sequence_lengths holds an empty sequence ({entry!r}); re-pack it")
        runs.append((start, count))
        start += count
    if start != len(frames):
        raise DatasetError(f"{frames.path}: sequence_lengths add up to {start} frames but the database holds "
                           f"{len(frames)}; re-pack it")
    return runs


@DATASETS.register
class ClipDataset(Dataset):
    """`dataset[i]` is a clip: a list of frame samples (per-frame records as LmdbDataset decodes
    them), through `transforms` (clip transforms; a list of per-frame transforms is wrapped in
    `Seq`, which gives every frame the same random draw).

    `lengths` and `length_epochs`: the clip has lengths[k] frames from epoch length_epochs[k - 1]
    on (lengths[0] before length_epochs[0]); the trainer calls `set_epoch` before every epoch.
    `interval`: frames between consecutive clip frames, drawn uniformly from 1..interval when
    `random_interval`."""

    def __init__(self, path: str | os.PathLike, transforms: Callable | Sequence | None = None,
                 lengths: Sequence[int] = (2, 3, 4, 5), length_epochs: Sequence[int] = (100, 180, 240),
                 interval: int = 10, random_interval: bool = True, generator: torch.Generator | None = None) -> None:
        lengths, length_epochs = [int(n) for n in lengths], [int(e) for e in length_epochs]
        if not lengths or min(lengths) < 1:
            raise UsageError(f"ClipDataset: lengths must be clip lengths >= 1 but got {lengths}")
        if len(length_epochs) != len(lengths) - 1 or length_epochs != sorted(length_epochs):
            raise UsageError(f"ClipDataset: length_epochs must hold {len(lengths) - 1} increasing epochs (one per "
                             f"change of length) but got {length_epochs}")
        if interval < 1:
            raise UsageError(f"ClipDataset: interval must be >= 1 but got {interval}")
        self.frames = LmdbDataset(path)
        self.runs = sequence_runs(self.frames)
        self._starts = [start for start, _ in self.runs]
        if isinstance(transforms, Mapping):
            raise UsageError("ClipDataset: transforms must be a list of per-frame transforms (applied to every frame "
                             "with one random draw) or a clip transform")
        self.transforms = Seq(transforms) if isinstance(transforms, Sequence) else transforms
        self.lengths, self.length_epochs = lengths, length_epochs
        self.interval, self.random_interval, self.generator = int(interval), bool(random_interval), generator
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def clip_length(self) -> int:
        return self.lengths[bisect.bisect_right(self.length_epochs, self.epoch)]

    def __len__(self) -> int:
        return len(self.frames)

    def clip_indices(self, index: int, step: int) -> list[int]:
        """The frame indices of clip `index` with frames `step` apart (before fitting it into the
        sequence)."""
        if not 0 <= index < len(self):
            raise IndexError(f"clip {index} out of range [0, {len(self)})")
        first, count = self.runs[bisect.bisect_right(self._starts, index) - 1]
        length = self.clip_length
        if length > 1:
            step = max(1, min(step, (count - 1) // (length - 1)))
        last = first + count - 1
        start = max(first, min(index, last - (length - 1) * step))
        return [min(start + k * step, last) for k in range(length)]

    def __getitem__(self, index: int) -> list[dict[str, Any]]:
        step = int(torch.randint(1, self.interval + 1, (), generator=self.generator)) if self.random_interval \
            else self.interval
        clip = [self.frames[i] for i in self.clip_indices(index, step)]
        return self.transforms(clip) if self.transforms is not None else clip
