"""BiFPN (Tan et al., 2020) as the FCOS detector uses it: levels P3-P5 from the backbone plus P6 and
P7 made by a 1x1 conv-bn and max pooling, then `stack` bidirectional layers of eight fusion nodes,
fusing by a plain sum (no learned weights). A node is sum -> ReLU -> depthwise 3x3 (no bias, no BN)
-> 1x1 conv (bias) -> BN. Up is bilinear x2 (half-pixel), down is a 2x2 max pool. An input whose
width differs from `out_channels` passes a lateral 1x1 conv-bn first, its own for each use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.quantization import Add
from hbdk_sim.registry import MODELS

LEVELS = 5  # P3..P7


class ConvBN(nn.Module):
    """A 1x1 conv with bias, then BN: a lateral or the P6 projection."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    def fusion_groups(self) -> list[list[str]]:
        return [["conv", "bn"]]


class FusionNode(nn.Module):
    """The sum of 2 or 3 inputs, then ReLU, depthwise 3x3, 1x1 conv and BN. Each addition is an Add
    module, so it gets an output scale of its own."""

    def __init__(self, channels: int, num_inputs: int) -> None:
        super().__init__()
        self.adds = nn.ModuleList(Add() for _ in range(num_inputs - 1))
        self.act = nn.ReLU()
        self.depthwise = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        for add, other in zip(self.adds, inputs[1:], strict=True):
            x = add(x, other)
        return self.bn(self.pointwise(self.depthwise(self.act(x))))

    def fusion_groups(self) -> list[list[str]]:
        return [["pointwise", "bn"]]


# The eight nodes of a layer: (inputs as level offsets 0-4 = P3..P7 or earlier nodes 5-12, each with
# how it is resized: "" as is, "up" or "down"). Nodes 8-12 are the layer's P3..P7.
NODES = (
    ((3, ""), (4, "up")),  # 5: P6 + up(P7)
    ((2, ""), (5, "up")),  # 6: P5 + up(5)
    ((1, ""), (6, "up")),  # 7: P4 + up(6)
    ((0, ""), (7, "up")),  # 8: P3 + up(7) -> P3
    ((1, ""), (7, ""), (8, "down")),  # 9: P4 + 7 + down(8) -> P4
    ((2, ""), (6, ""), (9, "down")),  # 10: P5 + 6 + down(9) -> P5
    ((3, ""), (5, ""), (10, "down")),  # 11: P6 + 5 + down(10) -> P6
    ((4, ""), (11, "down")),  # 12: P7 + down(11) -> P7
)


class BiFPNLayer(nn.Module):
    """One bidirectional layer over five levels of `in_channels` widths (`out_channels` out)."""

    def __init__(self, in_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.nodes = nn.ModuleList(FusionNode(out_channels, len(inputs)) for inputs in NODES)
        # A lateral per use of a level input whose width differs (node index, input position).
        self.laterals = nn.ModuleDict()
        for n, inputs in enumerate(NODES):
            for pos, (src, _) in enumerate(inputs):
                if src < LEVELS and in_channels[src] != out_channels:
                    self.laterals[f"n{n + LEVELS}_{pos}"] = ConvBN(in_channels[src], out_channels)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.down = nn.MaxPool2d(2, 2)

    def forward(self, levels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        values = list(levels)
        for n, (node, inputs) in enumerate(zip(self.nodes, NODES, strict=True)):
            args = []
            for pos, (src, resize) in enumerate(inputs):
                x = values[src]
                key = f"n{n + LEVELS}_{pos}"
                if key in self.laterals:
                    x = self.laterals[key](x)
                if resize == "up":
                    x = self.up(x)
                elif resize == "down":
                    x = self.down(x)
                args.append(x)
            values.append(node(*args))
        return values[-LEVELS:]


@MODELS.register
class BiFPN(nn.Module):
    """`forward(features)` takes the backbone's feature maps at `in_strides` and returns five maps of
    `out_channels` at strides 8, 16, 32, 64, 128 (P3..P7). `stride2channels` gives each input's
    width; the inputs at strides 8, 16 and 32 are used. The image size must be a multiple of 128."""

    out_strides = (8, 16, 32, 64, 128)

    def __init__(self, in_strides: Sequence[int] = (2, 4, 8, 16, 32),
                 stride2channels: Mapping[int, int] | None = None, out_channels: int = 64, stack: int = 3) -> None:
        super().__init__()
        stride2channels = dict(stride2channels or {2: 16, 4: 24, 8: 40, 16: 112, 32: 320})
        missing = [s for s in (8, 16, 32) if s not in in_strides or s not in stride2channels]
        if missing:
            raise UsageError(f"BiFPN: needs inputs at strides 8, 16 and 32 with their widths in stride2channels; "
                             f"missing {missing}")
        if stack < 1:
            raise UsageError(f"BiFPN: stack must be at least 1 but got {stack}")
        self.in_strides = tuple(in_strides)
        self.out_channels = out_channels
        c5 = stride2channels[32]
        self.p6 = ConvBN(c5, out_channels)
        self.pool = nn.MaxPool2d(2, 2)
        widths = [stride2channels[8], stride2channels[16], c5, out_channels, out_channels]
        layers = []
        for _ in range(stack):
            layers.append(BiFPNLayer(widths, out_channels))
            widths = [out_channels] * LEVELS
        self.layers = nn.ModuleList(layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.in_strides):
            raise UsageError(f"BiFPN: expected {len(self.in_strides)} feature maps (strides {self.in_strides}) but got "
                             f"{len(features)}")
        by_stride = dict(zip(self.in_strides, features, strict=True))
        p5 = by_stride[32]
        p6 = self.pool(self.p6(p5))
        levels = [by_stride[8], by_stride[16], p5, p6, self.pool(p6)]
        for layer in self.layers:
            levels = layer(levels)
        return levels
