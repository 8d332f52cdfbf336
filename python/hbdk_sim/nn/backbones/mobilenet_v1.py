"""MobileNetV1 (Howard et al., 2017) as a feature extractor: a stride-2 conv-bn-relu stem and 13
depthwise-separable blocks, scaled by a width multiplier, returning the feature maps at strides
2, 4, 8, 16 and 32 for a neck."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.nn.layers import ConvBNAct, DepthwiseSeparable, kaiming_init, tapped_forward
from hbdk_sim.registry import MODELS

STEM_CHANNELS = 32
# (output channels, stride) of the 13 depthwise-separable blocks at width 1.0.
BLOCKS = (
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)
STRIDES = (2, 4, 8, 16, 32)


def scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


@MODELS.register
class MobileNetV1(nn.Module):
    """Returns a list of feature maps, one per entry of `out_strides` (each in 2, 4, 8, 16, 32), taken
    after the last block at that stride. `channels[stride]` is the width of each."""

    def __init__(self, width: float = 0.25, in_channels: int = 3, out_strides: Sequence[int] = STRIDES) -> None:
        super().__init__()
        if not width > 0:
            raise UsageError(f"MobileNetV1: expected width > 0 but got {width}")
        bad = [s for s in out_strides if s not in STRIDES]
        if bad or not out_strides:
            raise UsageError(f"MobileNetV1: expected out_strides from {STRIDES} but got {tuple(out_strides)}")
        self.width = width
        self.out_strides = tuple(sorted(out_strides))
        self.stem = ConvBNAct(in_channels, scaled(STEM_CHANNELS, width), 3, stride=2)
        blocks, stride, cin = [], 2, scaled(STEM_CHANNELS, width)
        last_at: dict[int, int] = {}  # stride -> index of the last block producing it
        self.channels: dict[int, int] = {}
        for i, (cout, s) in enumerate(BLOCKS):
            cout = scaled(cout, width)
            blocks.append(DepthwiseSeparable(cin, cout, s))
            stride *= s
            last_at[stride] = i
            self.channels[stride] = cout
            cin = cout
        # Blocks past the deepest tap would be parameters without gradients (DDP rejects those).
        self.blocks = nn.Sequential(*blocks[: max(last_at[s] for s in self.out_strides) + 1])
        self._taps = {last_at[s]: s for s in self.out_strides}
        self.channels = {s: self.channels[s] for s in self.out_strides}
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return tapped_forward(self.stem, self.blocks, self._taps, x)
