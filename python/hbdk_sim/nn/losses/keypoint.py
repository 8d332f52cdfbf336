"""The keypoint heatmap loss."""

from __future__ import annotations

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.registry import LOSSES


@LOSSES.register
class HeatmapMSELoss(nn.Module):
    """Weighted squared error of predicted and target heatmaps (B, K, H, W):
    `sum(0.5 * (pred - target)**2 * weight * valid) / B`, where `weight` (B, K, H, W) weighs the
    target's peak pixels and background (GenerateHeatmapTarget's map) and `valid` (B, K) is 0 for a
    keypoint without a label, which then adds nothing. The sum is divided by the batch size, not by
    the pixel count."""

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                valid: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape or weight.shape != pred.shape:
            raise UsageError(f"HeatmapMSELoss: predictions {tuple(pred.shape)}, targets {tuple(target.shape)} and "
                             f"weights {tuple(weight.shape)} must have one shape")
        if valid.shape != pred.shape[:2]:
            raise UsageError(f"HeatmapMSELoss: expected a (B, K) = {tuple(pred.shape[:2])} validity mask but got "
                             f"{tuple(valid.shape)}")
        per_pixel = 0.5 * (pred - target) ** 2 * weight * valid[:, :, None, None].to(pred.dtype)
        return self.loss_weight * per_pixel.sum() / pred.shape[0]
