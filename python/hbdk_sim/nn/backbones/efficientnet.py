"""EfficientNet (Tan and Le, 2019) as the task models use it: the B0-B3 block table scaled by the
width and depth coefficients, ReLU instead of swish, no squeeze-excitation, PyTorch-default
BatchNorm (eps 1e-5, momentum 0.1), symmetric padding k // 2, and five feature maps out, at strides
2, 4, 8, 16 and 32 (the last block before each stride-2 group, and the end).

Every conv is a conv-bn(-relu) block that names its fusion group, and the residual add of an
MBConv block is fused with its projection conv, so `fuse_blocks` prepares the whole backbone for
quantization.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.nn.layers import ConvBNAct, ConvBNAddAct, kaiming_init, tapped_forward
from hbdk_sim.registry import MODELS

STRIDES = (2, 4, 8, 16, 32)
STEM_CHANNELS = 32

# The base block table: (kernel, repeats, in, out, expand ratio, stride) of each group.
BASE_GROUPS = (
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
)
# model type -> (width, depth) coefficients. (The resolution and dropout of the classifier do not
# apply to a feature extractor.)
COEFFICIENTS = {"b0": (1.0, 1.0), "b1": (1.0, 1.1), "b2": (1.1, 1.2), "b3": (1.2, 1.4)}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """`channels * width` rounded to a multiple of `divisor`, never below 90% of it."""
    scaled = channels * width
    rounded = max(int((scaled + divisor / 2) // divisor * divisor), divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block: kernel, stride, input, expanded ("mid") and output channels, and whether
    it adds its input to its output."""

    kernel: int
    stride: int
    in_channels: int
    mid_channels: int
    out_channels: int
    residual: bool
    group: int


def block_table(model_type: str) -> tuple[int, list[BlockSpec]]:
    """(stem channels, the blocks in order) of `model_type` ("b0".."b3")."""
    if model_type not in COEFFICIENTS:
        raise UsageError(f"EfficientNet: unknown model_type {model_type!r}; expected one of "
                         f"{', '.join(COEFFICIENTS)}")
    width, depth = COEFFICIENTS[model_type]
    blocks = []
    for group, (k, repeats, cin, cout, expand, stride) in enumerate(BASE_GROUPS):
        cin, cout = round_filters(cin, width), round_filters(cout, width)
        for i in range(round_repeats(repeats, depth)):
            s = stride if i == 0 else 1
            c = cin if i == 0 else cout
            blocks.append(BlockSpec(k, s, c, c * expand, cout, s == 1 and c == cout, group))
    return round_filters(STEM_CHANNELS, width), blocks


class MBConvBlock(nn.Module):
    """Inverted residual: a 1x1 expand conv-bn-relu (absent at expand ratio 1), a depthwise k x k
    conv-bn-relu carrying the stride, a 1x1 projection conv-bn without activation, and the input
    added when the block keeps stride and width."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.spec = spec
        mid = spec.mid_channels
        self.expand = ConvBNAct(spec.in_channels, mid, 1) if mid != spec.in_channels else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, spec.kernel, spec.stride, groups=mid)
        if spec.residual:
            self.project = ConvBNAddAct(mid, spec.out_channels, 1, act=False)
        else:
            self.project = ConvBNAct(mid, spec.out_channels, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(self.expand(x))
        return self.project(y, x) if self.spec.residual else self.project(y)


@MODELS.register
class EfficientNet(nn.Module):
    """Feature extractor: `forward(x)` returns the feature maps at `out_strides` (from 2, 4, 8,
    16, 32), shallowest first; `channels[stride]` is the width of each. `model_type` is "b0" to
    "b3". Blocks deeper than the deepest requested stride are not built."""

    def __init__(self, model_type: str = "b0", in_channels: int = 3, out_strides: Sequence[int] = STRIDES) -> None:
        super().__init__()
        bad = [s for s in out_strides if s not in STRIDES]
        if bad or not out_strides:
            raise UsageError(f"EfficientNet: expected out_strides from {STRIDES} but got {tuple(out_strides)}")
        self.model_type = model_type
        self.out_strides = tuple(sorted(set(out_strides)))
        stem, specs = block_table(model_type)
        self.stem = ConvBNAct(in_channels, stem, 3, stride=2)
        # The block after which each stride's feature map is taken: the last before the next
        # stride-2 block, or the last block.
        taps, stride = {}, 2
        for i, spec in enumerate(specs):
            stride *= spec.stride
            taps[stride] = i
        deepest = taps[self.out_strides[-1]]
        self.blocks = nn.Sequential(*(MBConvBlock(s) for s in specs[: deepest + 1]))
        self._taps = {taps[s]: s for s in self.out_strides}
        self.channels = {s: specs[taps[s]].out_channels for s in self.out_strides}
        kaiming_init(self)

    @property
    def specs(self) -> list[BlockSpec]:
        return [b.spec for b in self.blocks]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return tapped_forward(self.stem, self.blocks, self._taps, x)
