"""The FCOS head: per pyramid level, a classification and a regression tower of separable convs
whose conv weights all levels share while each level keeps its own BatchNorms, then class logits,
box distances (in stride units, through ReLU) and centerness (from the regression tower)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.registry import MODELS


class SharedConvBNAct(nn.Module):
    """relu(bn(pointwise(x))) where `pointwise` is shared with the other levels (the same module
    object) and `bn` is this level's own; fused per level (BN folded into a copy of the shared
    weight for calibration and deployment, kept live and the weight shared in QAT)."""

    def __init__(self, pointwise: nn.Conv2d, channels: int) -> None:
        super().__init__()
        self.pointwise = pointwise
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.pointwise(x)))

    def fusion_groups(self) -> list[list[str]]:
        return [["pointwise", "bn", "act"]]


class _Tower(nn.Module):
    """`stacked_convs` separable convs (depthwise 3x3 with bias, pointwise 1x1 with bias, BN,
    ReLU); the convs are shared by the `num_levels` levels, the BNs are per level."""

    def __init__(self, channels: int, stacked_convs: int, num_levels: int) -> None:
        super().__init__()
        self.depthwise = nn.ModuleList(nn.Conv2d(channels, channels, 3, 1, 1, groups=channels)
                                       for _ in range(stacked_convs))
        pointwise = [nn.Conv2d(channels, channels, 1) for _ in range(stacked_convs)]
        self.levels = nn.ModuleList(
            nn.ModuleList(SharedConvBNAct(pw, channels) for pw in pointwise) for _ in range(num_levels))

    def forward(self, x: torch.Tensor, level: int) -> torch.Tensor:
        for depthwise, block in zip(self.depthwise, self.levels[level], strict=True):
            x = block(depthwise(x))
        return x


@MODELS.register
class FCOSHead(nn.Module):
    """`forward(features)` (one map of `in_channels` per level) returns three lists, one entry per
    level: class logits (N, num_classes, h, w), box distances (N, 4, h, w) (left, top, right, bottom
    in units of the level's stride, >= 0) and centerness logits (N, 1, h, w). The output convs are
    3x3 and shared by all levels; the class bias starts at -log(99) (a prior of 0.01)."""

    def __init__(self, num_classes: int = 80, in_channels: int = 64, feat_channels: int = 64, stacked_convs: int = 4,
                 strides: Sequence[int] = (8, 16, 32, 64, 128)) -> None:
        super().__init__()
        if in_channels != feat_channels:
            raise UsageError(f"FCOSHead: the towers keep the width, so in_channels ({in_channels}) must equal "
                             f"feat_channels ({feat_channels})")
        if num_classes < 1 or stacked_convs < 1:
            raise UsageError(f"FCOSHead: expected num_classes and stacked_convs >= 1 but got {num_classes}, "
                             f"{stacked_convs}")
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.cls_tower = _Tower(feat_channels, stacked_convs, len(self.strides))
        self.reg_tower = _Tower(feat_channels, stacked_convs, len(self.strides))
        self.conv_cls = nn.Conv2d(feat_channels, num_classes, 3, 1, 1)
        self.conv_reg = nn.Conv2d(feat_channels, 4, 3, 1, 1)
        self.reg_act = nn.ReLU()
        self.conv_centerness = nn.Conv2d(feat_channels, 1, 3, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.conv_cls.bias, -math.log(99.0))

    def fusion_groups(self) -> list[list[str]]:
        return [["conv_reg", "reg_act"]]  # the box output is quantized once, after its ReLU

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], ...]:
        if len(features) != len(self.strides):
            raise UsageError(f"FCOSHead: expected {len(self.strides)} feature maps (strides {self.strides}) but got "
                             f"{len(features)}")
        cls, reg, ctr = [], [], []
        for level, x in enumerate(features):
            cls.append(self.conv_cls(self.cls_tower(x, level)))
            r = self.reg_tower(x, level)
            reg.append(self.reg_act(self.conv_reg(r)))
            ctr.append(self.conv_centerness(r))
        return cls, reg, ctr
