"""FakeQuantize: an observer plus the float simulation of quantize-then-dequantize.

The simulated value is `sat(round_half_even(x / s)) * s` computed in float32, exactly the
`quantize` / `dequantize` pair of docs/numerics.md §3 (NaN becomes 0, infinities saturate), so a
fake-quantized tensor holds the very values the integer model will represent. The gradient is the
straight-through estimator: passed unchanged where `round(x / s)` lies inside the type's range,
zero where the value was saturated.

Three states, set on a whole model by `set_fake_quant_state`:

- "calibration": observers record, fake quantization is off (outputs are the float values).
- "qat": observers record and fake quantization is on with the scale from the statistics so
  far (it follows them as training goes). Observers record only while the module is in training
  mode: evaluating a QAT model in eval mode (validation between epochs) leaves its statistics
  alone.
- "validation": observers are frozen and fake quantization is on with the last scale, i.e. the
  model computes what the quantized model will.

The state does not touch `module.training`; train()/eval() stay the caller's choice (calibration
runs in eval mode and still records).
"""

from __future__ import annotations

import torch
from torch import nn

from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.quantization.observers import QMAX, QMIN, MinMaxObserver, ObserverBase

STATES = ("calibration", "qat", "validation")


class _FakeQuantFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor, qmin: int, qmax: int) -> torch.Tensor:
        # Few passes over the tensor, in place where the tensor is our own: this runs on every
        # activation of every QAT step. `q == r` is the in-range mask (false for NaN and for
        # saturated values, as `qmin <= r <= qmax` is); NaN is the only non-finite value left after
        # the clamp, and it becomes 0.
        r = torch.div(x, scale).round_()
        q = torch.clamp(r, qmin, qmax)
        ctx.save_for_backward(q == r)
        return q.nan_to_num_(0.0).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, dtype: str = "si8", ch_axis: int | None = None) -> torch.Tensor:
    """`sat(round_half_even(x / s)) * s` in float32; `scale` is per tensor or one per index of
    `ch_axis`. The gradient with respect to `x` is straight-through inside the range."""
    x = x.to(torch.float32)
    scale = scale.to(device=x.device, dtype=torch.float32)
    if ch_axis is not None and x.dim() > 0:
        axis = ch_axis % x.dim()
        shape = [1] * x.dim()
        shape[axis] = -1
        scale = scale.reshape(shape)
    return _FakeQuantFn.apply(x, scale, QMIN[dtype], QMAX[dtype])


class FakeQuantize(nn.Module):
    """Wraps `observer`; the dtype and channel axis are the observer's.

    `scale` is a buffer holding the scale last computed from the observer. It is recomputed
    lazily (before fake quantization, on `calculate_qparams()` and when saving), so calibration
    with a histogram observer does not redo its search on every batch.
    """

    _version = 2  # 2: the state flags are no longer saved

    def __init__(self, observer: ObserverBase) -> None:
        super().__init__()
        if not isinstance(observer, ObserverBase):
            raise UsageTypeError(f"expected an observer module but got {type(observer).__name__}")
        self.observer = observer
        # The state is how the model is used now, not something it learned: it is not saved, so a
        # calibration checkpoint loaded into a QAT model leaves it training with fake quantization.
        self.register_buffer("observer_enabled", torch.tensor(1, dtype=torch.uint8), persistent=False)
        self.register_buffer("fake_quant_enabled", torch.tensor(0, dtype=torch.uint8), persistent=False)
        self.register_buffer("scale", torch.empty(0))
        self._stale = False
        self.observer_frozen = False  # see freeze_observer

    @property
    def dtype(self) -> str:
        return self.observer.dtype

    @property
    def ch_axis(self) -> int | None:
        return self.observer.ch_axis

    def enable_observer(self, enabled: bool = True) -> FakeQuantize:
        self.observer_enabled.fill_(int(enabled and not self.observer_frozen))
        return self

    def freeze_observer(self) -> FakeQuantize:
        """Stop recording for good: the scale stays where it is (loaded or observed so far) in
        every state, as in QAT with frozen activation scales."""
        self.observer_frozen = True
        return self.enable_observer(False)

    def enable_fake_quant(self, enabled: bool = True) -> FakeQuantize:
        self.fake_quant_enabled.fill_(int(enabled))
        return self

    def set_state(self, state: str) -> FakeQuantize:
        if state not in STATES:
            raise UsageError(f"expected a state in {STATES} but got {state!r}")
        self.enable_observer(state != "validation")
        self.enable_fake_quant(state != "calibration")
        if state == "validation":
            self._refresh()
        return self

    @property
    def state(self) -> str:
        observe, fq = bool(self.observer_enabled), bool(self.fake_quant_enabled)
        if observe and not fq:
            return "calibration"
        if observe and fq:
            return "qat"
        if fq:
            return "validation"
        return "off"

    def _refresh(self) -> None:
        if self._stale:
            self.scale = self.observer.calculate_qparams().detach().to(self.scale.device)
            self._stale = False

    def calculate_qparams(self) -> torch.Tensor:
        self._refresh()
        if self.scale.numel() == 0:
            return self.observer.calculate_qparams()
        return self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observer_enabled and (self.training or not self.fake_quant_enabled):
            self.observer(x.detach())
            self._stale = True
        if self.fake_quant_enabled:
            return fake_quantize(x, self.calculate_qparams(), self.dtype, self.ch_axis)
        return x

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        self._refresh()
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        for flag in ("observer_enabled", "fake_quant_enabled"):  # saved by version 1 of this module
            state_dict.pop(prefix + flag, None)
        saved = state_dict.get(prefix + "scale")
        if isinstance(saved, torch.Tensor) and saved.shape != self.scale.shape:
            self.scale = torch.empty_like(saved, dtype=torch.float32, device=self.scale.device)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        self._stale = False

    def extra_repr(self) -> str:
        return f"state={self.state}"


def set_fake_quant_state(model: nn.Module, state: str) -> nn.Module:
    """Put every FakeQuantize in `model` into `state` ("calibration", "qat" or "validation")."""
    if state not in STATES:
        raise UsageError(f"expected a state in {STATES} but got {state!r}")
    for m in model.modules():
        if isinstance(m, FakeQuantize):
            m.set_state(state)
    return model


class WeightFakeQuantize(FakeQuantize):
    """A weight's fake-quantizer. A weight is known, not sampled: its scale is `max|w| / qmax`
    per channel of the weight it is given, in every state, which is what the compiler's quantize
    pass computes from the deployed weight. A scale from the statistics of earlier steps (a
    running min-max, or one frozen before the last optimizer step) would be one the board never
    uses. The observer (a MinMaxObserver) holds the latest weight's range, for `scale` and
    state_dict compatibility with FakeQuantize.
    """

    def __init__(self, observer: ObserverBase) -> None:
        if not isinstance(observer, MinMaxObserver):
            raise UsageTypeError(f"expected a MinMaxObserver for a weight but got {type(observer).__name__}: "
                                 "the compiler quantizes weights by their max, so their fake-quantizer must too")
        super().__init__(observer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0:
            return x
        # The range of this weight alone: the observer starts afresh.
        self.observer.min_val, self.observer.max_val = torch.empty(0), torch.empty(0)
        self.observer(x)
        self.scale = self.observer.calculate_qparams().detach()
        self._stale = False
        return fake_quantize(x, self.scale, self.dtype, self.ch_axis) if self.fake_quant_enabled else x
