"""Segmentation losses: the multi-class softmax focal loss and its multi-scale combination with
per-scale weights (coarser scales weigh less)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn

from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.registry import LOSSES, build_from_cfg


@LOSSES.register
class FocalLoss(nn.Module):
    """Softmax focal loss (Lin et al., 2017) over (N, C, H, W) logits and (N, H, W) class indices:
    `-alpha_t * (1 - p_t) ** gamma * log(p_t)`, averaged over the pixels whose label is not
    `ignore_index` (0 when there are none). `gamma=0` without `alpha` is the cross entropy.

    `alpha` is an optional weight: one number for every class, or one per class. Unlike
    F.cross_entropy's `weight`, the mean stays over valid pixels (not over the weights' sum), so a
    class weight scales that class's share of the loss.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | Sequence[float] | None = None,
                 ignore_index: int = 255) -> None:
        super().__init__()
        if not gamma >= 0:
            raise UsageError(f"FocalLoss: expected gamma >= 0 but got {gamma}")
        self.gamma = float(gamma)
        self.ignore_index = int(ignore_index)
        if alpha is None:
            self.register_buffer("alpha", None)
        else:
            a = torch.as_tensor(alpha, dtype=torch.float32)
            if a.dim() > 1 or (a < 0).any():
                raise UsageError(f"FocalLoss: expected alpha to be a non-negative number or a list of one "
                                 f"per class but got {alpha}")
            self.register_buffer("alpha", a)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.dim() != target.dim() + 1 or logits.shape[:1] + logits.shape[2:] != target.shape:
            raise UsageError(f"FocalLoss: expected logits (N, C, *S) and target (N, *S) but got "
                             f"{tuple(logits.shape)} and {tuple(target.shape)}")
        num_classes = logits.shape[1]
        if self.alpha is not None and self.alpha.dim() == 1 and self.alpha.numel() != num_classes:
            raise UsageError(f"FocalLoss: alpha has {self.alpha.numel()} weights for {num_classes} classes")
        target = target.long()
        valid = target != self.ignore_index
        index = torch.where(valid, target, torch.zeros_like(target))
        if bool(((index < 0) | (index >= num_classes)).any()):
            bad = torch.unique(target[valid & ((index < 0) | (index >= num_classes))])[:8].tolist()
            raise UsageError(f"FocalLoss: labels {bad} are outside 0..{num_classes - 1} and are not "
                             f"ignore_index={self.ignore_index}")
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, index.unsqueeze(1)).squeeze(1)
        loss = -log_p
        if self.gamma != 0:
            loss = loss * (1.0 - log_p.exp()).clamp(min=0.0).pow(self.gamma)
        if self.alpha is not None:
            alpha = self.alpha.to(loss.device)
            loss = loss * (alpha[index] if alpha.dim() == 1 else alpha)
        loss = torch.where(valid, loss, torch.zeros_like(loss))
        return loss.sum() / valid.sum().clamp(min=1)


@LOSSES.register
class MultiScaleSegLoss(nn.Module):
    """`loss` applied to each scale's logits and targets (finest first), scaled by `weights`.
    Returns one entry per scale, `loss_s<stride>` when the strides are given (else `loss_<i>`); the
    training loss is their sum."""

    def __init__(self, loss: Mapping | nn.Module | None = None,
                 weights: Sequence[float] = (1.0, 0.5, 0.25, 0.125)) -> None:
        super().__init__()
        self.loss = build_from_cfg(loss, LOSSES) if loss is not None else FocalLoss()
        if not isinstance(self.loss, nn.Module):
            raise UsageTypeError(f"MultiScaleSegLoss: expected loss to be an nn.Module or its config but got "
                                 f"{type(self.loss).__name__}")
        self.weights = tuple(float(w) for w in weights)

    def forward(self, logits: Sequence[torch.Tensor], targets: Sequence[torch.Tensor],
                strides: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        if not len(logits) == len(targets) == len(self.weights):
            raise UsageError(f"MultiScaleSegLoss: got {len(logits)} logits, {len(targets)} targets and "
                             f"{len(self.weights)} weights; give one weight per output scale")
        names = [f"loss_s{s}" for s in strides] if strides is not None else [f"loss_{i}" for i in range(len(logits))]
        return {name: w * self.loss(x, t)
                for name, w, x, t in zip(names, self.weights, logits, targets, strict=True)}
