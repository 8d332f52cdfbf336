"""What the transforms share: the sample type, the random draw and the image/label check, and
Compose."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from hbdk_sim.errors import UsageTypeError
from hbdk_sim.registry import TRANSFORMS, build_from_cfg

Sample = dict[str, Any]


def uniform(generator: torch.Generator | None, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def check_sample(sample: Sample, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    img = sample.get("img")
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        got = f"{type(img).__name__} {getattr(img, 'shape', '')} {getattr(img, 'dtype', '')}"
        raise UsageTypeError(f"{name}: expected sample['img'] to be an HxWx3 uint8 array but got {got}; "
                             f"put {name} before ToTensor")
    gt = sample.get("gt_seg")
    if gt is not None and (not isinstance(gt, np.ndarray) or gt.shape != img.shape[:2]):
        raise UsageTypeError(f"{name}: expected sample['gt_seg'] to be an array of shape {img.shape[:2]} but got "
                             f"{getattr(gt, 'shape', type(gt).__name__)}")
    return img, gt


@TRANSFORMS.register
class Compose:
    """Run transforms in order; entries may be callables or TRANSFORMS config dicts."""

    def __init__(self, transforms: Sequence[Callable | Mapping]) -> None:
        self.transforms = [build_from_cfg(t, TRANSFORMS) for t in transforms]
        for t in self.transforms:
            if not callable(t):
                raise UsageTypeError(f"Compose: {t!r} is not a transform (not callable)")

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"
