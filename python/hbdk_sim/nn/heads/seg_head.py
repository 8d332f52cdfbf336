"""Segmentation head: one 1x1 conv to per-class logits for each output stride of the neck."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.registry import MODELS


@MODELS.register
class SegHead(nn.Module):
    """Maps the i-th neck output (`in_channels[i]` channels) to `num_classes` logits."""

    def __init__(self, in_channels: Sequence[int], num_classes: int = 19) -> None:
        super().__init__()
        if num_classes < 1:
            raise UsageError(f"SegHead: expected num_classes >= 1 but got {num_classes}")
        self.num_classes = num_classes
        self.convs = nn.ModuleList(nn.Conv2d(c, num_classes, 1) for c in in_channels)
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="linear")
            nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(f) for conv, f in zip(self.convs, features, strict=True)]
