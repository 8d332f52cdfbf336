"""QuantStub and DeQuantStub: where a model enters and leaves the quantized region.

QuantStub fake-quantizes its input with the qconfig's output (activation) fake-quantizer: the
tensor it produces is the first quantized activation. `prepare_qat` attaches that quantizer
(from the stub's or the model's qconfig); a stub given a qconfig at construction gets it at once.
Before either, the stub passes its input through, so a float model with stubs is a float model.
DeQuantStub marks the way back to float; in the float simulation the values already are float,
so it returns its input as is.
"""

from __future__ import annotations

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.quantization.qconfig import QConfig


class QuantStub(nn.Module):
    def __init__(self, qconfig: QConfig | None = None) -> None:
        super().__init__()
        self.activation_post_process = None
        if qconfig is not None:
            if qconfig.output is None:
                raise UsageError("expected a qconfig with an output fake-quantizer for QuantStub but got output=None")
            self.qconfig = qconfig
            self.activation_post_process = qconfig.output()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.activation_post_process is None else self.activation_post_process(x)


class DeQuantStub(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
