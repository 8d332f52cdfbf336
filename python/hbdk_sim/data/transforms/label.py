"""Label-only transforms: the label id remap and the multi-scale labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hbdk_sim.data.datasets.cityscapes import ID_TO_TRAIN_ID, IGNORE_INDEX
from hbdk_sim.data.transforms.base import Sample
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.registry import TRANSFORMS


@TRANSFORMS.register
class LabelRemap:
    """Map label ids to train ids with a 256-entry table; ids without an entry become `ignore_index`.
    Default: the official Cityscapes table (34 ids -> 19 train ids, the rest 255)."""

    label_only = True

    def __init__(self, mapping: Mapping[int, int] | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        mapping = ID_TO_TRAIN_ID if mapping is None else mapping
        self.table = np.full(256, ignore_index, dtype=np.uint8)
        for src, dst in mapping.items():
            if not (0 <= int(src) < 256 and 0 <= int(dst) < 256):
                raise UsageError(f"LabelRemap: mapping {src} -> {dst} is outside 0..255")
            self.table[int(src)] = int(dst)

    def __call__(self, sample: Sample) -> Sample:
        gt = sample["gt_seg"]
        if not isinstance(gt, np.ndarray) or gt.dtype != np.uint8:
            raise UsageTypeError(f"LabelRemap: expected sample['gt_seg'] to be a uint8 array but got "
                                 f"{type(gt).__name__} {getattr(gt, 'dtype', '')}")
        return {**sample, "gt_seg": self.table[gt]}


@TRANSFORMS.register
class MultiScaleLabels:
    """Add `gt_seg_scales`: the label downsampled (nearest, sampling each output pixel's centre) by
    each of `strides` (output H//s x W//s) or `factors` (output round(H*f) x round(W*f)), in order."""

    label_only = True

    def __init__(self, strides: Sequence[int] | None = (4, 8, 16, 32), factors: Sequence[float] | None = None) -> None:
        if (strides is None) == (factors is None):
            raise UsageError("MultiScaleLabels: give exactly one of strides or factors")
        if strides is not None and any(int(s) < 1 for s in strides):
            raise UsageError(f"MultiScaleLabels: strides must be >= 1 but got {list(strides)}")
        if factors is not None and any(not 0 < f <= 1 for f in factors):
            raise UsageError(f"MultiScaleLabels: factors must be in (0, 1] but got {list(factors)}")
        self.strides = None if strides is None else [int(s) for s in strides]
        self.factors = None if factors is None else [float(f) for f in factors]

    def _sizes(self, h: int, w: int) -> list[tuple[int, int]]:
        if self.strides is not None:
            return [(max(1, h // s), max(1, w // s)) for s in self.strides]
        return [(max(1, round(h * f)), max(1, round(w * f))) for f in self.factors]

    def __call__(self, sample: Sample) -> Sample:
        gt = sample["gt_seg"]
        h, w = gt.shape
        scales = []
        for oh, ow in self._sizes(h, w):
            rows = ((np.arange(oh) + 0.5) * h / oh).astype(np.int64)
            cols = ((np.arange(ow) + 0.5) * w / ow).astype(np.int64)
            scales.append(np.ascontiguousarray(gt[rows[:, None], cols[None, :]]))
        return {**sample, "gt_seg_scales": scales}
