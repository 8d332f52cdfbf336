"""The integer ops of docs/numerics.md as torch modules, one class per HBIR op kind, for the
quantized torch model (int_model.IntModel). Each is built from one op of the compiler's integer
graph (`OpInfo`): weights, biases, tables and explicit multipliers/shifts are the graph's; every
other requantization parameter comes from `_core.compute_requant` / `_core.compute_requant_pair`.
Values are held in their declared dtype and computed in int64, or in float64 where that is exact.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 - the conventional name

from hbdk_sim import _core
from hbdk_sim.errors import UnsupportedModelError, UsageError

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


class Quantize(IntOp):
    """f32 -> integer: sat(round_half_even(x / s)), the division in float32, NaN -> 0 (§3)."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        r = info.results[0]
        if r.scales is None or r.dtype not in _RANGES:
            raise info.error(f"expected an integer result with a scale but got {r.dtype}")
        rank = len(r.shape)
        self.register_buffer("scale_bits", _float_scale_bits(r.scales).reshape(
            _axis_shape(len(r.scales), r.axis or 0, rank)))

    def compute(self, x):
        lo, hi = _RANGES[self.result_dtypes[0]]
        q = torch.round(x.to(torch.float32) / self.scale_bits.view(torch.float32))
        return [torch.nan_to_num(q, nan=0.0).clamp(lo, hi).to(TORCH_DTYPES[self.result_dtypes[0]])]


class Dequantize(IntOp):
    """integer -> f32: float32(q) * s in float32 (§3)."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        x = info.operands[0]
        if x.scales is None:
            raise info.error("operand #0 has no scale; quantize the graph first (quantize_module)")
        self.register_buffer("scale_bits", _float_scale_bits(x.scales).reshape(
            _axis_shape(len(x.scales), x.axis or 0, len(x.shape))))

    def compute(self, q):
        return [q.to(torch.float32) * self.scale_bits.view(torch.float32)]


class Constant(IntOp):
    """A constant the function returns as it is."""

    def __init__(self, info: OpInfo, value: np.ndarray) -> None:
        super().__init__(info)
        self.register_buffer("value", torch.from_numpy(np.ascontiguousarray(value).copy()))

    def compute(self):
        return [self.value]


class _Accumulator(IntOp):
    """conv2d / conv_transpose2d / linear / matmul: exact sums of products, then + bias, sat_si32.

    The sums are float64: every product and every partial sum is an integer of magnitude below
    (number of terms) * max|x| * max|w|, which the constructor checks is below 2^53, so float64
    represents each one exactly whatever order the library adds them in (CPU has no int64 conv)."""

    def __init__(self, info: OpInfo, terms: int) -> None:
        super().__init__(info)
        info.require_integer()
        if info.results[0].dtype != "si32":
            raise info.error(f"result must be si32 (the accumulator) but is {info.results[0].dtype}")
        bound = terms
        for v in info.operands[:2]:
            lo, hi = _RANGES[v.dtype]
            bound *= max(-lo, hi)
        if bound >= _F64_EXACT:
            raise info.error(f"{terms} products per output could exceed 2^53; float64 sums would not be exact")

    def finish(self, acc: torch.Tensor, bias: torch.Tensor | None, channel_dim: int) -> torch.Tensor:
        acc = acc.to(torch.int64)
        if bias is not None:
            shape = [1] * acc.dim()
            shape[channel_dim] = -1
            acc = acc + bias.to(torch.int64).reshape(shape)
        return saturate(acc, "si32")


def _without_cudnn(x: torch.Tensor):
    """cuDNN may pick FFT/Winograd algorithms that are not exact on integers; the native CUDA
    convolution (im2col + float64 GEMM) is."""
    return torch.backends.cudnn.flags(enabled=False) if x.is_cuda else contextlib.nullcontext()


class QConv2d(_Accumulator):
    def __init__(self, info: OpInfo) -> None:
        w = info.operands[1].shape
        super().__init__(info, terms=w[1] * w[2] * w[3])
        self.stride = list(info.attrs["stride"])
        self.padding = list(info.attrs["padding"])  # top, left, bottom, right
        self.dilation = list(info.attrs["dilation"])
        self.groups = int(info.attrs["groups"])

    def compute(self, x, weight, bias=None):
        t, left, b, r = self.padding
        xf = F.pad(x.to(torch.float64), (left, r, t, b))
        with _without_cudnn(xf):
            acc = F.conv2d(xf, weight.to(torch.float64), None, self.stride, 0, self.dilation, self.groups)
        return [self.finish(acc, bias, 1)]

    def extra_repr(self) -> str:
        return f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, groups={self.groups}"


class QConvTranspose2d(_Accumulator):
    def __init__(self, info: OpInfo) -> None:
        w, x = info.operands[1].shape, info.operands[0].shape
        groups = int(info.attrs["groups"])
        # An output pixel receives at most Cin/groups * kh * kw products.
        super().__init__(info, terms=x[1] // groups * w[2] * w[3])
        self.stride = list(info.attrs["stride"])
        self.padding = list(info.attrs["padding"])
        self.dilation = list(info.attrs["dilation"])
        self.groups = groups
        self.out_hw = info.results[0].shape[2:]

    def compute(self, x, weight, bias=None):
        xf = x.to(torch.float64)
        with _without_cudnn(xf):
            full = F.conv_transpose2d(xf, weight.to(torch.float64), None, self.stride, 0, 0, self.groups,
                                      self.dilation)
        # Output (oy, ox) is full-size position (oy + top, ox + left); past the full size only the bias.
        t, left = self.padding[0], self.padding[1]
        oh, ow = self.out_hw
        full = F.pad(full, (0, max(0, left + ow - full.shape[3]), 0, max(0, t + oh - full.shape[2])))
        return [self.finish(full[:, :, t:t + oh, left:left + ow], bias, 1)]


class QLinear(_Accumulator):
    def __init__(self, info: OpInfo) -> None:
        super().__init__(info, terms=info.operands[1].shape[1])

    def compute(self, x, weight, bias=None):
        acc = F.linear(x.to(torch.float64), weight.to(torch.float64))
        return [self.finish(acc, bias, acc.dim() - 1)]


class QMatmul(_Accumulator):
    def __init__(self, info: OpInfo) -> None:
        super().__init__(info, terms=info.operands[0].shape[-1])

    def compute(self, a, b):
        return [self.finish(torch.matmul(a.to(torch.float64), b.to(torch.float64)), None, -1)]


class Requantize(IntOp):
    """sat(requant(x, M[c], S[c])): the op's multiplier/shift, or computeRequant(s_in[c] / s_out[c])."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        info.require_integer()
        x, y = info.operands[0], info.results[0]
        rank = len(x.shape)
        mult, shift = list(info.attrs.get("multiplier", [])), list(info.attrs.get("shift", []))
        if mult:
            if len(mult) != len(shift):
                raise info.error(f"{len(mult)} multipliers but {len(shift)} shifts")
            axis = info.axis("axis", rank)
            pairs = list(zip(mult, shift, strict=True))
        else:
            s_in = x.scales if x.scales is not None else info.in_scale()
            s_out = y.scales if y.scales is not None else info.out_scale()
            if x.axis is not None and y.axis is not None and x.axis != y.axis:
                raise info.error(f"input and result scales are on different axes ({x.axis} and {y.axis})")
            n = max(len(s_in), len(s_out))
            pairs = [info.requant(float(s_in[c if len(s_in) > 1 else 0]) / float(s_out[c if len(s_out) > 1 else 0]))
                     for c in range(n)]
            axis = x.axis if len(s_in) > 1 else (y.axis or 0)
        self.rescale = Rescale(pairs, _axis_shape(len(pairs), axis, rank))

    def compute(self, x):
        return [saturate(self.rescale(x), self.result_dtypes[0])]


class Relu(IntOp):
    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        info.require_integer()

    def compute(self, x):
        return [saturate(x.to(torch.int64).clamp(min=0), self.result_dtypes[0])]


class Clamp(IntOp):
    """relu6 / clip: min(max(q, lo), hi), bounds sat(round_half_even(bound / s_in)) in the result type."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        info.require_integer()
        lo, hi = (0.0, 6.0) if info.name == "relu6" else (float(info.attrs["min"]), float(info.attrs["max"]))
        s = info.in_scale()
        self.lo = sat_round(lo / s, info.results[0].dtype)
        self.hi = sat_round(hi / s, info.results[0].dtype)

    def compute(self, x):
        return [saturate(x.to(torch.int64).clamp(min=self.lo).clamp(max=self.hi), self.result_dtypes[0])]

    def extra_repr(self) -> str:
        return f"lo={self.lo}, hi={self.hi}"


class Lut(IntOp):
    """si8: table[q + 128]; si16: linear interpolation between 257 knots (§5)."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        info.require_integer(0)
        self.wide = info.operands[0].dtype == "si16"
        if info.operands[0].dtype not in ("si8", "si16"):
            raise info.error(f"input must be si8 or si16 but is {info.operands[0].dtype}")
        entries = 257 if self.wide else 256
        if math.prod(info.operands[1].shape) != entries:
            raise info.error(f"an {info.operands[0].dtype} input needs a table of {entries} entries "
                             f"but it has {math.prod(info.operands[1].shape)}")

    def compute(self, q, table):
        t = table.reshape(-1).to(torch.int64)
        u = q.to(torch.int64) + (32768 if self.wide else 128)
        if not self.wide:
            return [saturate(t[u], self.result_dtypes[0])]
        k, r = u >> 8, u & 255
        lo, hi = t[k], t[k + 1]
        return [saturate(lo + (((hi - lo) * r + 128) >> 8), self.result_dtypes[0])]


class QAddSub(IntOp):
    """add/sub: (a * Ma +- b * Mb + 2^(S-1)) >> S with computeRequantPair(s_a / s_y, s_b / s_y)."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        info.require_integer()
        s_y = info.out_scale()
        try:
            ma, mb, s = _core.compute_requant_pair(info.in_scale(0) / s_y, info.in_scale(1) / s_y)
        except _core.HbirError as e:
            raise info.error(str(e)) from None
        self.sign = -1 if info.name == "sub" else 1
        self.multiplier_a, self.multiplier_b, self.shift = ma, mb, s

    def compute(self, a, b):
        # |a|, |b| < 2^16 and Ma, Mb < 2^31: the sum stays far inside int64.
        half = (1 << (self.shift - 1)) if self.shift >= 1 else 0
        acc = a.to(torch.int64) * self.multiplier_a + self.sign * (b.to(torch.int64) * self.multiplier_b) + half
        return [saturate(acc >> self.shift, self.result_dtypes[0])]

    def extra_repr(self) -> str:
        return f"multipliers=({self.multiplier_a}, {self.multiplier_b}), shift={self.shift}"


class QMul(IntOp):
    """mul: sat(requant(a * b, computeRequant(s_a * s_b / s_y)))."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        info.require_integer()
        self.rescale = Rescale([info.requant(info.in_scale(0) * info.in_scale(1) / info.out_scale())])

    def compute(self, a, b):
        return [saturate(self.rescale(a.to(torch.int64) * b.to(torch.int64)), self.result_dtypes[0])]


class QConcat(IntOp):
    """Each input requantized to the result scale (computeRequant(s_i / s_y)), then concatenated;
    a plain copy when nothing carries a scale."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        rank = len(info.results[0].shape)
        self.axis = info.axis("axis", rank)
        scaled = info.results[0].scales is not None or any(v.scales is not None for v in info.operands)
        self.rescales = nn.ModuleList()
        if scaled:
            info.require_integer()
            s_y = info.out_scale()
            for i in range(len(info.operands)):
                self.rescales.append(Rescale([info.requant(info.in_scale(i) / s_y)]))

    def compute(self, *xs):
        if not len(self.rescales):
            return [torch.cat(xs, self.axis)]
        dtype = self.result_dtypes[0]
        return [torch.cat([saturate(r(x), dtype) for r, x in zip(self.rescales, xs, strict=True)], self.axis)]


class Reshape(IntOp):
    """Row-major reshape to the traced result shape; a leading dim the reshape keeps follows the
    runtime batch."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        self.in_shape = list(info.operands[0].shape)
        self.out_shape = list(info.results[0].shape)
        # The leading dim follows the runtime input when the op keeps it.
        self.batch_follows = bool(self.in_shape and self.out_shape and self.in_shape[0] == self.out_shape[0])

    def compute(self, x):
        return [x.reshape([x.shape[0], *self.out_shape[1:]] if self.batch_follows else self.out_shape)]


class Flatten(IntOp):
    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        self.start_dim, self.end_dim = int(info.attrs["start_dim"]), int(info.attrs["end_dim"])

    def compute(self, x):
        return [torch.flatten(x, self.start_dim, self.end_dim)]


class Transpose(IntOp):
    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        rank = len(info.operands[0].shape)
        self.perm = [p + rank if p < 0 else p for p in info.attrs["perm"]]

    def compute(self, x):
        return [x.permute(self.perm).contiguous()]


class Split(IntOp):
    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        self.axis = info.axis("axis", len(info.operands[0].shape))
        self.sizes = [r.shape[self.axis] for r in info.results]

    def compute(self, x):
        return list(torch.split(x, self.sizes, self.axis))


class Slice(IntOp):
    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        shape = info.operands[0].shape
        rank = len(shape)
        steps = list(info.attrs.get("steps", [])) or [1] * len(info.attrs["axes"])
        self.slices = []  # (axis, start, step, length)
        for a, start, step in zip(info.attrs["axes"], info.attrs["starts"], steps, strict=True):
            a = a + rank if a < 0 else a
            start = min(max(start + shape[a] if start < 0 else start, 0), shape[a])
            self.slices.append((a, start, step, info.results[0].shape[a]))

    def compute(self, x):
        for a, start, step, length in self.slices:
            x = x.narrow(a, start, (length - 1) * step + 1)[(slice(None),) * a + (slice(None, None, step),)]
        return [x.contiguous()]


class Gather(IntOp):
    """Entries along `axis` at si32 indices in [-dim, dim), negative from the end."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        self.axis = info.axis("axis", len(info.operands[0].shape))
        self.where = info.where

    def compute(self, x, indices):
        dim = x.shape[self.axis]
        idx = indices.to(torch.int64)
        if bool(((idx < -dim) | (idx >= dim)).any()):
            bad = idx[(idx < -dim) | (idx >= dim)][0].item()
            raise UsageError(f"int model: {self.where}: expected gather indices in [{-dim}, {dim}) but got {bad}")
        idx = torch.where(idx < 0, idx + dim, idx)
        out = x.index_select(self.axis, idx.reshape(-1))
        return [out.reshape(*x.shape[: self.axis], *indices.shape, *x.shape[self.axis + 1:])]


class PointPillarScatter(IntOp):
    """Pillar features onto a zero canvas at (batch, y, x); outside pillars skipped, the last one wins."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        self.out_shape = list(info.results[0].shape)

    def compute(self, features, coords):
        n, c, h, w = self.out_shape
        coords = coords.to(torch.int64)
        b, y, x = coords[:, 0], coords[:, 2], coords[:, 3]
        inside = (b >= 0) & (b < n) & (y >= 0) & (y < h) & (x >= 0) & (x < w)
        pillar = torch.arange(features.shape[0], device=features.device)[inside]
        pos = ((b * h + y) * w + x)[inside]
        # The last pillar at a place wins: the largest pillar index per position.
        winner = torch.full((n * h * w,), -1, dtype=torch.int64, device=features.device)
        winner.scatter_reduce_(0, pos, pillar, reduce="amax")
        hit = winner >= 0
        canvas = torch.zeros((n, h * w, c), dtype=features.dtype, device=features.device).reshape(n * h * w, c)
        canvas[hit] = features[winner[hit]]
        return [canvas.reshape(n, h, w, c).permute(0, 3, 1, 2).contiguous()]


def _pad_to_windows(x: torch.Tensor, pads: Sequence[int], out_hw: Sequence[int], kernel: Sequence[int],
                    stride: Sequence[int], dilation: Sequence[int], value: float) -> torch.Tensor:
    """x padded (top/left as given, bottom/right as far as the last window reaches) with `value`."""
    t, left = pads[0], pads[1]
    need_h = (out_hw[0] - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1
    need_w = (out_hw[1] - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1
    b = max(0, need_h - t - x.shape[2])
    r = max(0, need_w - left - x.shape[3])
    return F.pad(x, (left, r, t, b), value=value)


class MaxPool2d(IntOp):
    """Padding never wins; a window of padding only gives the type's minimum."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        info.require_integer()
        a = info.attrs
        self.kernel, self.stride = list(a["kernel"]), list(a["stride"])
        self.padding, self.dilation = list(a["padding"]), list(a["dilation"])
        self.out_hw = info.results[0].shape[2:]
        self.fill = float(_RANGES[info.operands[0].dtype][0])

    def compute(self, x):
        # si8/si16 (and si32 up to 2^24) are exact in float32; max only compares.
        xf = x.to(torch.float64 if x.dtype == torch.int32 else torch.float32)
        xf = _pad_to_windows(xf, self.padding, self.out_hw, self.kernel, self.stride, self.dilation, self.fill)
        y = F.max_pool2d(xf, self.kernel, self.stride, 0, self.dilation)
        return [y[:, :, : self.out_hw[0], : self.out_hw[1]].to(x.dtype)]


class QAvgPool2d(IntOp):
    """Window sums, then sat(requant(sum, computeRequant(s_in / (s_out * n)))) with the divisor n of
    each output position (count_include_pad: PyTorch's clipped window; else the real elements)."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        info.require_integer()
        a = info.attrs
        self.kernel, self.stride, self.padding = list(a["kernel"]), list(a["stride"]), list(a["padding"])
        _, _, h, w = info.operands[0].shape
        oh, ow = info.results[0].shape[2:]
        self.out_hw = [oh, ow]
        s_in, s_out = info.in_scale(), info.out_scale()
        kh, kw = self.kernel
        pt, pl, pb, pr = self.padding
        by_divisor: dict[int, tuple[int, int]] = {}
        mult = np.zeros((oh, ow), dtype=np.int64)
        shift = np.zeros((oh, ow), dtype=np.int64)
        for oy in range(oh):
            for ox in range(ow):
                y0, x0 = oy * self.stride[0] - pt, ox * self.stride[1] - pl
                if a["count_include_pad"]:
                    n = (min(y0 + kh, h + pb) - y0) * (min(x0 + kw, w + pr) - x0)
                else:
                    n = (min(y0 + kh, h) - max(y0, 0)) * (min(x0 + kw, w) - max(x0, 0))
                if n not in by_divisor:
                    by_divisor[n] = info.requant(s_in / (s_out * float(n)))
                mult[oy, ox], shift[oy, ox] = by_divisor[n]
        self.register_buffer("multiplier", torch.from_numpy(mult))
        self.register_buffer("shift", torch.from_numpy(shift))
        self.min_shift, self.max_shift = int(shift.min()), int(shift.max())

    def compute(self, x):
        # Window sums of si8/si16 values are integers far below 2^53: exact in float64.
        xf = _pad_to_windows(x.to(torch.float64), self.padding, self.out_hw, self.kernel, self.stride, (1, 1), 0.0)
        sums = F.avg_pool2d(xf, self.kernel, self.stride, 0, divisor_override=1)
        sums = sums[:, :, : self.out_hw[0], : self.out_hw[1]].to(torch.int64)
        y = apply_requant(sums, self.multiplier, self.shift, self.min_shift, self.max_shift)
        return [saturate(y, self.result_dtypes[0])]


class QGlobalAvgPool2d(IntOp):
    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        info.require_integer()
        _, _, h, w = info.operands[0].shape
        self.rescale = Rescale([info.requant(info.in_scale() / (info.out_scale() * float(h * w)))])

    def compute(self, x):
        sums = x.to(torch.int64).sum(dim=(2, 3), keepdim=True)
        return [saturate(self.rescale(sums), self.result_dtypes[0])]


def _resize_source(o: int, size_in: int, size_out: int, mode: str) -> float:
    """§6 source coordinate, float64, left to right as csrc/exec/resize_coords.h writes it."""
    od, i, n = float(o), float(size_in), float(size_out)
    if mode == "asymmetric":
        return od * i / n
    if mode == "half_pixel":
        return max((od + 0.5) * i / n - 0.5, 0.0)
    return 0.0 if size_out == 1 else od * (i - 1) / (n - 1)


def _resize_nearest(o: int, size_in: int, size_out: int, mode: str) -> int:
    od, i, n = float(o), float(size_in), float(size_out)
    if mode == "half_pixel":
        f = (od + 0.5) * i / n
    elif mode == "asymmetric":
        f = _resize_source(o, size_in, size_out, mode)
    else:
        f = _resize_source(o, size_in, size_out, mode) + 0.5
    return min(math.floor(f), size_in - 1)


def _bilinear_taps(size_in: int, size_out: int, mode: str) -> tuple[list[int], list[int], list[int]]:
    """i0, i1 and the weight round_half_even(frac * 1024) of the second tap, per output index."""
    i0s, i1s, ws = [], [], []
    for o in range(size_out):
        s = _resize_source(o, size_in, size_out, mode)
        i0 = min(math.floor(s), size_in - 1)
        i0s.append(i0)
        i1s.append(min(i0 + 1, size_in - 1))
        ws.append(round((s - float(i0)) * 1024.0))
    return i0s, i1s, ws


class QResize2d(IntOp):
    """nearest: data movement; bilinear: the 1024-weight accumulator (up to 2^35 for si16 inputs)
    requantized with computeRequant(s_in / (s_out * 2^20))."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        info.require_integer()
        _, _, h, w = info.operands[0].shape
        oh, ow = info.results[0].shape[2:]
        cmode = info.attrs["coordinate_mode"]
        self.mode = info.attrs["mode"]
        if self.mode == "nearest":
            self.register_buffer("rows", torch.tensor([_resize_nearest(o, h, oh, cmode) for o in range(oh)]))
            self.register_buffer("cols", torch.tensor([_resize_nearest(o, w, ow, cmode) for o in range(ow)]))
            return
        y0, y1, wy = _bilinear_taps(h, oh, cmode)
        x0, x1, wx = _bilinear_taps(w, ow, cmode)
        for name, v in (("y0", y0), ("y1", y1), ("x0", x0), ("x1", x1)):
            self.register_buffer(name, torch.tensor(v, dtype=torch.int64))
        self.register_buffer("wy", torch.tensor(wy, dtype=torch.int64).reshape(-1, 1))
        self.register_buffer("wx", torch.tensor(wx, dtype=torch.int64).reshape(1, -1))
        self.rescale = Rescale([info.requant(info.in_scale() / (info.out_scale() * 1048576.0))])

    def compute(self, x):
        if self.mode == "nearest":
            return [x.index_select(2, self.rows).index_select(3, self.cols)]
        q = x.to(torch.int64)
        top, bottom = q.index_select(2, self.y0), q.index_select(2, self.y1)
        wy, wx = self.wy, self.wx
        acc = ((1024 - wy) * (1024 - wx) * top.index_select(3, self.x0)
               + (1024 - wy) * wx * top.index_select(3, self.x1)
               + wy * (1024 - wx) * bottom.index_select(3, self.x0)
               + wy * wx * bottom.index_select(3, self.x1))
        return [saturate(self.rescale(acc), self.result_dtypes[0])]

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class QSoftmax(IntOp):
    """§4: e = EXP[min(d, 255)] of the distance to the max (si16: d >> 8), y = (e*K + sum/2) / sum.
    EXP is the graph constant the quantize pass built (operand 1), read as it is."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        x = info.operands[0]
        if x.dtype not in ("si8", "si16"):
            raise info.error(f"input must be si8 or si16 but is {x.dtype}")
        if len(info.operands) < 2:
            raise info.error("expected the exp table as operand #1; the quantize pass builds it")
        self.wide = x.dtype == "si16"
        self.axis = info.axis("axis", len(x.shape))
        k_real = 1.0 / info.out_scale()
        if not k_real < 2147483648.0:
            raise info.error(f"expected a result scale above 2^-31 but got {info.out_scale()!r}")
        self.k = round(k_real)

    def compute(self, x, table):
        q = x.to(torch.int64)
        d = q.amax(dim=self.axis, keepdim=True) - q
        if self.wide:
            d = d >> 8
        e = table.reshape(-1).to(torch.int64)[d.clamp(max=255)]
        total = e.sum(dim=self.axis, keepdim=True)
        return [saturate(torch.div(e * self.k + torch.div(total, 2, rounding_mode="floor"), total,
                                   rounding_mode="floor"), self.result_dtypes[0])]


class Argmax(IntOp):
    """The first index of the largest value (also for f32 input), si32."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        self.axis = info.axis("axis", len(info.operands[0].shape))
        self.keepdim = bool(info.attrs["keepdim"])

    def compute(self, x):
        v = x if x.is_floating_point() else x.to(torch.int64)
        best = v.amax(dim=self.axis, keepdim=True)
        n = v.shape[self.axis]
        shape = [1] * v.dim()
        shape[self.axis] = n
        position = torch.arange(n, device=v.device).reshape(shape)
        first = torch.where(v == best, position, n).amin(dim=self.axis, keepdim=self.keepdim)
        return [first.to(torch.int32)]


class TopK(IntOp):
    """The k best values (input dtype and scale) and their si32 indices, best first, ties by index."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        self.axis = info.axis("axis", len(info.operands[0].shape))
        self.k = int(info.attrs["k"])
        self.largest = bool(info.attrs["largest"])

    def compute(self, x):
        v = x if x.is_floating_point() else x.to(torch.int64)
        _, order = torch.sort(v, dim=self.axis, descending=self.largest, stable=True)
        order = order.narrow(self.axis, 0, self.k)
        return [torch.gather(x, self.axis, order), order.to(torch.int32)]


class Pad(IntOp):
    """constant: fill sat(round_half_even(value / s)) (s = 1 without a scale); edge/reflect copy."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        x = info.operands[0]
        info.require_integer()
        self.pads = list(info.attrs["pads"])
        self.mode = info.attrs["mode"]
        scale = info.in_scale() if x.scales is not None else 1.0
        self.fill = sat_round(float(info.attrs["value"]) / scale, x.dtype)

    @staticmethod
    def _source(i: int, n: int, mode: str) -> int:
        if mode == "edge":
            return min(max(i, 0), n - 1)
        if n == 1:
            return 0
        while i < 0 or i >= n:
            i = -i if i < 0 else 2 * (n - 1) - i  # reflect without repeating the edge
        return i

    def compute(self, x):
        rank = x.dim()
        if self.mode == "constant":
            flat = []
            for d in reversed(range(rank)):
                flat += [self.pads[d], self.pads[d + rank]]
            return [F.pad(x, flat, value=self.fill)]
        for d in range(rank):
            before, after = self.pads[d], self.pads[d + rank]
            if before or after:
                n = x.shape[d]
                index = [self._source(i - before, n, self.mode) for i in range(n + before + after)]
                x = x.index_select(d, torch.tensor(index, device=x.device))
        return [x]


OP_MODULES: dict[str, type[IntOp]] = {
    "quantize": Quantize,
    "dequantize": Dequantize,
    "conv2d": QConv2d,
    "conv_transpose2d": QConvTranspose2d,
    "linear": QLinear,
    "matmul": QMatmul,
    "requantize": Requantize,
    "relu": Relu,
    "relu6": Clamp,
    "clip": Clamp,
    "lut": Lut,
    "add": QAddSub,
    "sub": QAddSub,
    "mul": QMul,
    "concat": QConcat,
    "split": Split,
    "slice": Slice,
    "reshape": Reshape,
    "flatten": Flatten,
    "transpose": Transpose,
    "gather": Gather,
    "point_pillar_scatter": PointPillarScatter,
    "max_pool2d": MaxPool2d,
    "pad": Pad,
    "avg_pool2d": QAvgPool2d,
    "global_avg_pool2d": QGlobalAvgPool2d,
    "resize2d": QResize2d,
    "softmax": QSoftmax,
    "argmax": Argmax,
    "topk": TopK,
}
SUPPORTED_OPS = tuple(OP_MODULES)
