"""Batch transforms: collated tensors, on the training device."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from hbdk_sim.data.transforms.tensor import Normalize
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.registry import TRANSFORMS, build_from_cfg


def _check_batch(batch: Mapping[str, Any], name: str) -> torch.Tensor:
    img = batch.get("img")
    if not isinstance(img, torch.Tensor) or img.ndim != 4:
        raise UsageTypeError(f"{name}: expected batch['img'] to be a BxCxHxW tensor but got "
                             f"{type(img).__name__} {list(getattr(img, 'shape', []))}")
    return img


@TRANSFORMS.register
class BatchNormalize:
    """Normalize on a BxCxHxW batch: (img - mean) / std, as float32."""

    def __init__(self, mean: float | Sequence[float] = 128.0, std: float | Sequence[float] = 128.0) -> None:
        self.sample_normalize = Normalize(mean, std)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        img = _check_batch(batch, "BatchNormalize")
        mean = self.sample_normalize.mean.to(img.device).view(1, -1, 1, 1)
        std = self.sample_normalize.std.to(img.device).view(1, -1, 1, 1)
        return {**batch, "img": (img.float() - mean) / std}


@TRANSFORMS.register
class BatchRandomFlip:
    """Flip each sample of a batch left-right with probability `p` (one draw per sample), image and
    labels together."""

    random = True

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise UsageError(f"BatchRandomFlip: p must be in [0, 1] but got {p}")
        self.p, self.generator = p, generator

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        img = _check_batch(batch, "BatchRandomFlip")
        flip = torch.rand(img.shape[0], generator=self.generator) < self.p
        if not flip.any():
            return batch

        def apply(t: torch.Tensor) -> torch.Tensor:
            mask = flip.to(t.device).view(-1, *([1] * (t.ndim - 1)))
            return torch.where(mask, t.flip(-1), t)

        out = {**batch, "img": apply(img)}
        if isinstance(batch.get("gt_seg"), torch.Tensor):
            out["gt_seg"] = apply(batch["gt_seg"])
        if "gt_seg_scales" in batch:
            out["gt_seg_scales"] = [apply(g) for g in batch["gt_seg_scales"]]
        return out


@TRANSFORMS.register
class BatchPreprocessor:
    """Moves a collated batch's tensors to `device` and runs batch transforms there: the per-batch
    preprocessing the trainer applies between the DataLoader and the model (e.g. flip and
    normalize on the GPU, leaving the workers only decoding)."""

    def __init__(self, transforms: Sequence[Callable | Mapping] = (), device: str | torch.device | None = None) -> None:
        self.transforms = [build_from_cfg(t, TRANSFORMS) for t in transforms]
        self.device = None if device is None else torch.device(device)

    def _move(self, value: Any, device: torch.device) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device, non_blocking=True)
        if isinstance(value, list):
            return [self._move(v, device) for v in value]
        return value

    def __call__(self, batch: dict[str, Any], device: str | torch.device | None = None) -> dict[str, Any]:
        target = torch.device(device) if device is not None else self.device
        if target is not None:
            batch = {k: self._move(v, target) for k, v in batch.items()}
        for t in self.transforms:
            batch = t(batch)
        return batch
