"""DeconvDecoder: upsample one backbone feature map with transposed convs and predict one heatmap
per keypoint (the keypoint task's head)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.registry import MODELS

# Transposed-conv kernel -> (padding, output_padding) that doubles the spatial size at stride 2.
_DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


class ConvTransposeBNAct(nn.Module):
    """`relu(bn(conv_transpose(x)))`, a x2 upsampling without bias (BN follows), fused as one group."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 4) -> None:
        super().__init__()
        if kernel_size not in _DECONV_PADDING:
            raise UsageError(f"DeconvDecoder: deconv kernel {kernel_size} is not one of {sorted(_DECONV_PADDING)}")
        padding, output_padding = _DECONV_PADDING[kernel_size]
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, 2, padding, output_padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))

    def fusion_groups(self) -> list[list[str]]:
        return [["conv", "bn", "act"]]


@MODELS.register
class DeconvDecoder(nn.Module):
    """Takes `features[input_index]` (`in_channels` wide), doubles its size `len(num_deconv_filters)`
    times with ConvTranspose2d -> BN -> ReLU blocks, then a `final_conv_kernel` conv (with bias, no
    activation) gives `out_channels` heatmaps."""

    def __init__(self, in_channels: int = 320, out_channels: int = 12, input_index: int = -1,
                 num_deconv_filters: Sequence[int] = (128, 128, 128), num_deconv_kernels: Sequence[int] = (4, 4, 4),
                 final_conv_kernel: int = 3) -> None:
        super().__init__()
        if len(num_deconv_filters) != len(num_deconv_kernels):
            raise UsageError(f"DeconvDecoder: {len(num_deconv_filters)} deconv filter counts but "
                             f"{len(num_deconv_kernels)} kernels; give one kernel per deconv layer")
        if final_conv_kernel % 2 != 1:
            raise UsageError(f"DeconvDecoder: final_conv_kernel must be odd but got {final_conv_kernel}")
        self.input_index = input_index
        layers, c = [], in_channels
        for filters, kernel in zip(num_deconv_filters, num_deconv_kernels, strict=True):
            layers.append(ConvTransposeBNAct(c, filters, kernel))
            c = filters
        self.deconvs = nn.Sequential(*layers)
        self.final = nn.Conv2d(c, out_channels, final_conv_kernel, 1, final_conv_kernel // 2)
        self.upsample = 2 ** len(layers)
        # Heatmaps start near zero everywhere (the target's background).
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.zeros_(self.final.bias)

    def forward(self, features: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        x = features if isinstance(features, torch.Tensor) else features[self.input_index]
        return self.final(self.deconvs(x))
