"""Boundary, accumulating, requantizing and elementwise integer ops: quantize, dequantize,
constants, conv2d, conv_transpose2d, linear, matmul, requantize, relu, clip, lut, add, sub, mul.
See base.py for how an op module is built; docs/numerics.md for each op's integer semantics."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

from hbdk_sim import _core
from hbdk_sim.quantization.int_ops.base import (
    _F64_EXACT,
    _RANGES,
    TORCH_DTYPES,
    IntOp,
    OpInfo,
    Rescale,
    _axis_shape,
    _float_scale_bits,
    sat_round,
    saturate,
)


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


OPS: dict[str, type[IntOp]] = {
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
}
