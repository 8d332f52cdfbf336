"""QConfig: which fake-quantizers a module gets for its input, its weight and its output.

Each field is a factory (a no-argument callable returning a fresh FakeQuantize), so one QConfig
can be shared by many modules without sharing statistics. `None` means "not quantized here".
The default follows docs/numerics.md: si8 activations per tensor, si8 weights per output channel
(axis 0); `qconfig_int16()` raises the activations to si16 (weights stay si8, as the contract
has no other weight type).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from hbdk_sim.quantization.fake_quantize import FakeQuantize, WeightFakeQuantize
from hbdk_sim.quantization.observers import MinMaxObserver, MovingAverageMinMaxObserver, ObserverBase, check_dtype

FakeQuantFactory = Callable[[], FakeQuantize]


def _build(observer_cls: type[ObserverBase], kwargs: dict) -> FakeQuantize:
    return FakeQuantize(observer_cls(**kwargs))


def fake_quant_factory(observer_cls: type[ObserverBase], **kwargs) -> FakeQuantFactory:
    """A factory of `FakeQuantize(observer_cls(**kwargs))`; picklable (no lambdas)."""
    return partial(_build, observer_cls, kwargs)


def activation_fake_quant(dtype: str = "si8", averaging_constant: float = 0.01) -> FakeQuantFactory:
    return fake_quant_factory(
        MovingAverageMinMaxObserver, averaging_constant=averaging_constant, dtype=check_dtype(dtype)
    )


def _build_weight(kwargs: dict) -> WeightFakeQuantize:
    return WeightFakeQuantize(MinMaxObserver(**kwargs))


def weight_fake_quant(ch_axis: int = 0) -> FakeQuantFactory:
    """si8 per output channel along `ch_axis`, the scale from the weight itself (WeightFakeQuantize)."""
    return partial(_build_weight, {"dtype": "si8", "ch_axis": ch_axis})


@dataclass(frozen=True)
class QConfig:
    input: FakeQuantFactory | None = field(default_factory=activation_fake_quant)
    weight: FakeQuantFactory | None = field(default_factory=weight_fake_quant)
    output: FakeQuantFactory | None = field(default_factory=activation_fake_quant)


def default_qconfig() -> QConfig:
    return QConfig()


def qconfig_int16() -> QConfig:
    """si16 activations (input and output), si8 per-channel weights."""
    return QConfig(
        input=activation_fake_quant("si16"), weight=weight_fake_quant(), output=activation_fake_quant("si16")
    )
