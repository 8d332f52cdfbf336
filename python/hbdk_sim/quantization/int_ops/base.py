"""What every integer op module shares: exact integer helpers (saturation, the requant rule), the
builder's view of one graph op (OpInfo) and the IntOp base class. Each op module is built from one
op of the compiler's integer graph (`OpInfo`): weights, biases, tables and explicit
multipliers/shifts are the graph's; every other requantization parameter comes from
`_core.compute_requant` / `_core.compute_requant_pair`. Values are held in their declared dtype
and computed in int64, or in float64 where that is exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from hbdk_sim import _core
from hbdk_sim.errors import UnsupportedModelError

# ---- element types and exact integer helpers ------------------------------------------------------

TORCH_DTYPES = {
    "f32": torch.float32,
    "si8": torch.int8,
    "si16": torch.int16,
    "si32": torch.int32,
    "ui8": torch.uint8,
    "bool": torch.bool,
}
_RANGES = {"si8": (-128, 127), "si16": (-32768, 32767), "si32": (-(2**31), 2**31 - 1), "ui8": (0, 255)}
# float64 sums of integer products are exact while every partial sum stays below 2^53.
_F64_EXACT = 2**53
# apply_requant splits x at this bit: exact for |x| < 2^54 (see there).
_SPLIT = 24
_SPLIT_MASK = (1 << _SPLIT) - 1


def sat_round(v: float, dtype: str) -> int:
    """sat_T(round_half_even(v)) of a float64, NaN -> 0, infinities saturate (numerics §1)."""
    lo, hi = _RANGES[dtype]
    if math.isnan(v):
        return 0
    if v <= lo:
        return lo
    if v >= hi:
        return hi
    return round(v)  # Python rounds floats half to even, like nearbyint


def saturate(x: torch.Tensor, dtype: str) -> torch.Tensor:
    """Clamp an integer tensor to the range of `dtype` and store it in that torch dtype."""
    lo, hi = _RANGES[dtype]
    return x.clamp(lo, hi).to(TORCH_DTYPES[dtype])


def apply_requant(x: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor, min_shift: int = 0,
                  max_shift: int = 62) -> torch.Tensor:
    """(x * M + 2^(S-1)) >> S (x * M when S == 0) exactly in int64, for |x| < 2^54, M < 2^31,
    0 <= S <= 62 (numerics §2), without the 128-bit product.

    x = hi * 2^24 + lo with 0 <= lo < 2^24. Then x*M + R = (hi*M) * 2^24 + b, b = lo*M + R < 2^62,
    |hi*M| < 2^61, and floor((a * 2^24 + b) / 2^S) is (a + (b >> 24)) >> (S - 24) for S >= 24
    (nested floor divisions) or (a << (24 - S)) + (b >> S) for S < 24; both stay within int64.
    `min_shift`/`max_shift` (known at build time) skip the branch no shift needs."""
    x = x.to(torch.int64)
    hi = x >> _SPLIT
    lo = x & _SPLIT_MASK
    rounding = torch.where(shift >= 1, torch.ones_like(shift) << (shift - 1).clamp(min=0), torch.zeros_like(shift))
    a = hi * multiplier
    b = lo * multiplier + rounding
    big = small = None
    if max_shift >= _SPLIT:
        big = (a + (b >> _SPLIT)) >> (shift - _SPLIT).clamp(min=0)
    if min_shift < _SPLIT:
        small = (a << (_SPLIT - shift).clamp(min=0)) + (b >> shift.clamp(max=_SPLIT - 1))
    if small is None:
        return big
    if big is None:
        return small
    return torch.where(shift >= _SPLIT, big, small)


def _float_scale_bits(scales: Sequence[float]) -> torch.Tensor:
    """f32 scales kept as their int32 bit patterns, so that model.double() or .half() cannot
    change the float32 arithmetic of quantize/dequantize."""
    return torch.tensor(np.asarray(scales, dtype=np.float32).view(np.int32))


def _axis_shape(n: int, axis: int, rank: int) -> list[int]:
    """Broadcast shape for one value per index of `axis` in a tensor of `rank` dims."""
    return [n] + [1] * (rank - axis - 1) if n > 1 else [1]


# ---- what the builder knows about an op -----------------------------------------------------------


@dataclass
class ValueInfo:
    shape: list[int]
    dtype: str
    scales: list[float] | None
    axis: int | None

    @classmethod
    def of(cls, v: _core.Value) -> ValueInfo:
        t = v.type
        return cls(list(t.shape), t.dtype, None if t.scales is None else list(t.scales), t.axis)


@dataclass
class OpInfo:
    """One HBIR op as the torch modules are built from it."""

    name: str
    loc: str
    attrs: dict
    operands: list[ValueInfo]
    results: list[ValueInfo]
    operand_names: list[str]
    constants: dict[int, np.ndarray] = field(default_factory=dict)  # operand index -> value

    @property
    def where(self) -> str:
        return f"op '{self.name}'" + (f" at loc '{self.loc}'" if self.loc else "")

    def error(self, why: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"int model: {self.where}: {why}")

    def scale(self, v: ValueInfo, label: str) -> float:
        """The one per-tensor scale of a value, as float64 of the f32."""
        if v.scales is None:
            raise self.error(f"{label} has no scale; quantize the graph first (quantize_module)")
        if v.axis is not None or len(v.scales) != 1:
            raise self.error(f"{label}: expected a per-tensor scale but got {len(v.scales)} on axis {v.axis}")
        return float(v.scales[0])

    def in_scale(self, i: int = 0) -> float:
        return self.scale(self.operands[i], f"operand #{i}")

    def out_scale(self, i: int = 0) -> float:
        return self.scale(self.results[i], f"result #{i}")

    def requant(self, ratio: float) -> tuple[int, int]:
        try:
            return _core.compute_requant(ratio)
        except _core.HbirError as e:
            raise self.error(str(e)) from None

    def require_integer(self, *indices: int) -> None:
        for i in indices or range(len(self.operands)):
            if self.operands[i].dtype not in _RANGES:
                raise self.error(f"operand #{i} is {self.operands[i].dtype}: an integer graph is expected "
                                 "(run quantize_module on the calibrated float module first)")

    def axis(self, name: str, rank: int) -> int:
        a = int(self.attrs[name])
        return a + rank if a < 0 else a


class Rescale(nn.Module):
    """Multipliers and shifts (one, or one per index of an axis) and their exact application."""

    def __init__(self, pairs: Sequence[tuple[int, int]], shape: Sequence[int] = (1,)) -> None:
        super().__init__()
        self.register_buffer("multiplier", torch.tensor([m for m, _ in pairs], dtype=torch.int64).reshape(shape))
        self.register_buffer("shift", torch.tensor([s for _, s in pairs], dtype=torch.int64).reshape(shape))
        self.min_shift = min(s for _, s in pairs)
        self.max_shift = max(s for _, s in pairs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_requant(x, self.multiplier, self.shift, self.min_shift, self.max_shift)

    def extra_repr(self) -> str:
        return f"shift=[{self.min_shift}, {self.max_shift}], channels={self.multiplier.numel()}"


# ---- op modules ------------------------------------------------------------------------------------


class IntOp(nn.Module):
    """One HBIR op. Constant operands are buffers named after the op table's operand names
    (`weight`, `bias`, `table`, ...); `forward` takes the other operands in order and returns the
    op's results as a tuple."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__()
        self.op = info.name
        self.loc = info.loc
        self.result_dtypes = [r.dtype for r in info.results]
        self._operand_buffers: list[str | None] = []
        for i, name in enumerate(info.operand_names):
            if i in info.constants:
                self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(info.constants[i]).copy()))
                self._operand_buffers.append(name)
            else:
                self._operand_buffers.append(None)

    def forward(self, *dynamic: torch.Tensor) -> tuple[torch.Tensor, ...]:
        it = iter(dynamic)
        xs = [next(it) if b is None else getattr(self, b) for b in self._operand_buffers]
        return tuple(self.compute(*xs))  # each op kind below defines compute

    def extra_repr(self) -> str:
        return f"loc={self.loc!r}" if self.loc else ""
