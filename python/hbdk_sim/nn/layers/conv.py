"""Building blocks shared by the task models: conv-bn-act, depthwise-separable and conv-bn-add-act
blocks, each naming its own fusion groups, plus the init and fusion helpers the networks use.

Every block keeps its conv, bn, add and act as named children so that
`hbdk_sim.quantization.fuse_modules` can fuse them by name; `fusion_groups(model)` collects the
groups of every block in a model with their full module paths.
"""

from __future__ import annotations

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.quantization import Add, fuse_modules


class ConvBNAct(nn.Module):
    """`act(bn(conv(x)))`; `act=False` leaves the activation out (a linear projection)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
        self.has_act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def fusion_groups(self) -> list[list[str]]:
        return [["conv", "bn", "act"] if self.has_act else ["conv", "bn"]]


class DepthwiseSeparable(nn.Module):
    """MobileNetV1's block: a 3x3 depthwise conv-bn-relu (carrying the stride), then a 1x1 pointwise
    conv-bn-relu."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pointwise = ConvBNAct(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ConvBNAddAct(nn.Module):
    """`act(bn(conv(x)) + residual)`: the conv output is the Add's first operand, as the conv+add
    fusion requires. `act=False` leaves the activation out (an inverted-residual block's sum)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.add = Add()
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
        self.has_act = act

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.act(self.add(self.bn(self.conv(x)), residual))

    def fusion_groups(self) -> list[list[str]]:
        return [["conv", "bn", "add", "act"] if self.has_act else ["conv", "bn", "add"]]


def fusion_groups(model: nn.Module) -> list[list[str]]:
    """The fusion groups of every block in `model` that declares them, as full module paths."""
    groups = []
    for path, module in model.named_modules():
        declare = getattr(module, "fusion_groups", None)
        if callable(declare):
            prefix = f"{path}." if path else ""
            groups += [[prefix + name for name in group] for group in declare()]
    return groups


def fuse_blocks(model: nn.Module, mode: str = "fuse_bn") -> nn.Module:
    """Fuse every conv+bn(+add)(+relu) group of `model` in place ("fuse_bn" folds BN now, "with_bn"
    keeps it live for QAT). A model fuses once: its blocks no longer hold a BatchNorm afterwards."""
    groups = fusion_groups(model)
    for group in groups:
        if not isinstance(model.get_submodule(group[0]), (nn.Conv2d, nn.ConvTranspose2d)):
            raise UsageError(f"{type(model).__name__} is already fused ({group[0]!r} is no plain conv); "
                             "call fuse_model once, on the float model")
    return fuse_modules(model, groups, mode=mode, inplace=True)


def tapped_forward(stem: nn.Module, blocks: nn.Sequential, taps: dict[int, int] | set[int],
                   x: torch.Tensor) -> list[torch.Tensor]:
    """A backbone's forward: `stem`, then `blocks` in order, keeping the output of every block whose
    index is in `taps` (shallowest first)."""
    x = stem(x)
    features = []
    for i, block in enumerate(blocks):
        x = block(x)
        if i in taps:
            features.append(x)
    return features


def kaiming_init(model: nn.Module) -> None:
    """Kaiming-normal convs (fan_out, for ReLU), unit BN scale, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
