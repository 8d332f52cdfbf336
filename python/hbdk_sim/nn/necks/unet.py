"""UNet neck: a top-down path that starts from the deepest feature map and, one stride at a time,
upsamples by 2, adds the lateral feature of that stride (conv-bn + add + relu, fusable as one
conv+add) and smooths the sum with a depthwise-separable block; it returns the map of every
requested output stride."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.nn.layers import ConvBNAct, ConvBNAddAct, DepthwiseSeparable, kaiming_init
from hbdk_sim.registry import MODELS

UPSAMPLE_MODES = ("nearest", "bilinear")


@MODELS.register
class UNetNeck(nn.Module):
    """`in_strides` are consecutive powers of two (each twice the one before) with `in_channels`
    aligned to them; `out_strides` is a subset. Outputs come finest first, each with the channel
    count of the input at its stride.

    Per level s below the top: `up = Upsample2x(reduce_s(P_2s))` (a 1x1 conv-bn to the level's width,
    applied before upsampling where it is 4x cheaper), `P_s = smooth_s(relu(bn(conv1x1(C_s)) + up))`.
    """

    def __init__(self, in_channels: Sequence[int], in_strides: Sequence[int] = (2, 4, 8, 16, 32),
                 out_strides: Sequence[int] = (4, 8, 16, 32), upsample_mode: str = "bilinear") -> None:
        super().__init__()
        in_strides, in_channels = tuple(in_strides), tuple(in_channels)
        if len(in_channels) != len(in_strides):
            raise UsageError(f"UNetNeck: expected one in_channels entry per in_stride {in_strides} "
                             f"but got {in_channels}")
        if any(b != 2 * a for a, b in zip(in_strides, in_strides[1:], strict=False)):
            raise UsageError(f"UNetNeck: expected in_strides ascending by factors of 2 but got {in_strides}")
        out_strides = tuple(sorted(out_strides))
        if not out_strides or any(s not in in_strides for s in out_strides):
            raise UsageError(f"UNetNeck: expected out_strides among in_strides {in_strides} but got {out_strides}")
        if upsample_mode not in UPSAMPLE_MODES:
            raise UsageError(f"UNetNeck: expected upsample_mode in {UPSAMPLE_MODES} but got {upsample_mode!r}")
        self.in_strides = in_strides
        self.out_strides = out_strides
        self.channels = dict(zip(in_strides, in_channels, strict=True))
        top = in_strides[-1]
        # The top-down path stops at the finest output; finer inputs are not used.
        self.levels = tuple(s for s in reversed(in_strides[:-1]) if s >= out_strides[0])
        self.top = DepthwiseSeparable(self.channels[top], self.channels[top])
        self.reduce = nn.ModuleDict()
        self.lateral = nn.ModuleDict()
        self.smooth = nn.ModuleDict()
        for s in self.levels:
            c = self.channels[s]
            self.reduce[f"s{s}"] = ConvBNAct(self.channels[2 * s], c, 1, act=False)
            self.lateral[f"s{s}"] = ConvBNAddAct(c, c)
            self.smooth[f"s{s}"] = DepthwiseSeparable(c, c)
        align = False if upsample_mode == "bilinear" else None
        self.upsample = nn.Upsample(scale_factor=2, mode=upsample_mode, align_corners=align)
        kaiming_init(self)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        by_stride = dict(zip(self.in_strides, features, strict=True))
        x = self.top(by_stride[self.in_strides[-1]])
        outputs = {self.in_strides[-1]: x}
        for s in self.levels:
            key = f"s{s}"
            up = self.upsample(self.reduce[key](x))
            x = self.smooth[key](self.lateral[key](by_stride[s], up))
            outputs[s] = x
        return [outputs[s] for s in self.out_strides]
