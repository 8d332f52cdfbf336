"""QuantStub and DeQuantStub: where a model enters and leaves the quantized region.

QuantStub fake-quantizes its input with the qconfig's output (activation) fake-quantizer: the
tensor it produces is the first quantized activation. DeQuantStub marks the way back to float;
in the float simulation the values already are float, so it returns its input as is.
"""

from __future__ import annotations

import torch
from torch import nn

from hbdk_sim.quantization.qconfig import QConfig


class QuantStub(nn.Module):
    def __init__(self, qconfig: QConfig | None = None) -> None:
        super().__init__()
        self.qconfig = qconfig if qconfig is not None else QConfig()
        if self.qconfig.output is None:
            raise ValueError("expected a qconfig with an output fake-quantizer for QuantStub but got output=None")
        self.activation_post_process = self.qconfig.output()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation_post_process(x)


class DeQuantStub(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
