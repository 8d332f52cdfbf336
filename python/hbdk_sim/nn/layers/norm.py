"""LayerNorm over the channels of an NCHW tensor (the tracking model's LayerNorm(dim=1)): the
board's layer_norm on axis 1, with no transposes around it."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn


class ChannelLayerNorm(nn.LayerNorm):
    """`nn.LayerNorm(channels)` applied over dim 1 of [N, C, ...]: the same parameters and numbers
    as permuting the channels last, normalizing and permuting back; traced as one HBIR
    `layer_norm {axis = 1}`."""

    def __init__(self, channels: int, eps: float = 1e-5, elementwise_affine: bool = True) -> None:
        super().__init__(channels, eps=eps, elementwise_affine=elementwise_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.movedim(1, -1), self.normalized_shape, self.weight, self.bias, self.eps).movedim(-1, 1)
