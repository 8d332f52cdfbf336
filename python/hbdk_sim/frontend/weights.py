"""A model's weights checked before tracing: a NaN or an infinity in a parameter or a BN statistic
would quantize to garbage without a word."""

from __future__ import annotations

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.quantization.fake_quantize import FakeQuantize


def check_finite_weights(model: nn.Module, name: str = "model") -> None:
    """Raise UsageError naming the first parameter or BN statistic that holds a NaN or an infinity:
    such weights would quantize to garbage without a word. A quantizer's own state (an observer's
    running range starts at +-inf) is left to the quantizer."""
    quantizer_prefixes = tuple(f"{n}." for n, m in model.named_modules() if isinstance(m, FakeQuantize) and n)
    tensors = [*model.named_parameters(), *model.named_buffers()]
    for key, t in tensors:
        if not t.is_floating_point() or key.startswith(quantizer_prefixes) or isinstance(model, FakeQuantize):
            continue
        bad = ~torch.isfinite(t.detach())
        if bad.any():
            index = tuple(int(i) for i in bad.nonzero()[0])
            value = float(t.detach()[index]) if index else float(t.detach())
            raise UsageError(f"{name}: {'parameter' if isinstance(t, nn.Parameter) else 'buffer'} '{key}' holds "
                             f"{value} at index {list(index)} ({int(bad.sum())} non-finite of {t.numel()}); "
                             "the weights are corrupt: retrain (a lower learning rate or gradient clipping) or "
                             "load a good checkpoint")
