"""Pooling, resizing, softmax, layer_norm and selection integer ops: max/avg/global pooling,
resize2d, softmax (reading the compiler's exp table), layer_norm, argmax and topk.
See base.py for how an op module is built; docs/numerics.md for each op's integer semantics."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

from hbdk_sim import _core
from hbdk_sim.quantization.int_ops.base import (
    _RANGES,
    IntOp,
    OpInfo,
    Rescale,
    apply_requant,
    saturate,
)


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


def grid_source(u: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    """§4 grid_sample: the input coordinate of normalized grid values `u` (float64) along an axis of
    `size` pixels, as csrc/exec/resize_coords.h's gridSource writes it, clamped to [-2, size + 1]."""
    n = float(size)
    p = (u + 1.0) / 2.0 * (n - 1.0) if align_corners else ((u + 1.0) * n - 1.0) / 2.0
    return p.clamp(-2.0, n + 1.0)


class QGridSample(IntOp):
    """Bilinear sampling at the grid's positions (x = g * s_grid in float64), 1024 weights per axis,
    zero outside the input; the accumulator requantized with computeRequant(s_in / (s_out * 2^20))."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        info.require_integer()
        self.align_corners = bool(info.attrs["align_corners"])
        self.grid_scale = info.in_scale(1)
        self.rescale = Rescale([info.requant(info.in_scale() / (info.out_scale() * 1048576.0))])

    def compute(self, x, grid):
        n, c, h, w = x.shape
        _, oh, ow, _ = grid.shape
        u = grid.to(torch.float64) * self.grid_scale
        px, py = grid_source(u[..., 0], w, self.align_corners), grid_source(u[..., 1], h, self.align_corners)
        x0, y0 = px.floor(), py.floor()
        wx, wy = ((px - x0) * 1024.0).round().to(torch.int64), ((py - y0) * 1024.0).round().to(torch.int64)
        x0, y0 = x0.to(torch.int64), y0.to(torch.int64)
        planes = x.to(torch.int64).reshape(n, c, h * w)
        acc = torch.zeros(n, c, oh * ow, dtype=torch.int64, device=x.device)
        for dy, fy in ((0, 1024 - wy), (1, wy)):
            for dx, fx in ((0, 1024 - wx), (1, wx)):
                iy, ix = y0 + dy, x0 + dx
                inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
                index = torch.where(inside, iy * w + ix, 0).reshape(n, 1, oh * ow).expand(n, c, oh * ow)
                weight = torch.where(inside, fy * fx, 0).reshape(n, 1, oh * ow)
                acc += weight * planes.gather(2, index)
        return [saturate(self.rescale(acc.reshape(n, c, oh, ow)), self.result_dtypes[0])]

    def extra_repr(self) -> str:
        return f"align_corners={self.align_corners}"


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


class QLayerNorm(IntOp):
    """§4: per row along `axis`, mean m = floor((2 S1 + n) / 2n), d = q - m, V = sum d^2 + E,
    R = isqrt(V << 2k), z = round(d 2^(k+16) / R), y = sign * requant(z) + bias per channel; the
    per-channel integers come from `_core.layer_norm_params`, the very function the C++ kernel
    calls, on the f32 weight and bias constants."""

    def __init__(self, info: OpInfo) -> None:
        super().__init__(info)
        x = info.operands[0]
        if x.dtype not in ("si8", "si16"):
            raise info.error(f"input must be si8 or si16 but is {x.dtype}")
        if 1 not in info.constants or 2 not in info.constants:
            raise info.error("expected constant weight and bias operands")
        rank = len(x.shape)
        self.axis = info.axis("axis", rank)
        n = x.shape[self.axis]
        gamma, beta = (np.asarray(info.constants[i], np.float32).reshape(-1).tolist() for i in (1, 2))
        try:
            eps_term, multipliers, shifts, signs, biases = _core.layer_norm_params(
                n, float(info.attrs["eps"]), info.in_scale(), info.out_scale(), gamma, beta)
        except _core.HbirError as e:
            raise info.error(str(e)) from None
        self.n, self.eps_term = n, int(eps_term)
        shape = [n] + [1] * (rank - self.axis - 1)
        self.rescale = Rescale(list(zip(multipliers, shifts, strict=True)), shape)
        self.register_buffer("sign", torch.tensor(signs, dtype=torch.int64).reshape(shape))
        self.register_buffer("offset", torch.tensor(biases, dtype=torch.int64).reshape(shape))
        self.register_buffer("powers", torch.tensor([1 << j for j in range(63)], dtype=torch.int64))

    def compute(self, x, weight, bias):
        q = x.to(torch.int64)
        n = self.n
        total = q.sum(dim=self.axis, keepdim=True)
        mean = torch.div(2 * total + n, 2 * n, rounding_mode="floor")
        d = q - mean
        v = ((d * d).sum(dim=self.axis, keepdim=True) + self.eps_term).clamp(min=1)
        bits = (v.unsqueeze(-1) >= self.powers).sum(-1)  # the bit length of v
        k = ((62 - bits) // 2).clamp(min=0)
        w = v << (2 * k)
        r = torch.sqrt(w.to(torch.float64)).to(torch.int64)  # floor sqrt, within one: corrected below
        r = r - (r * r > w).to(torch.int64)
        r = r + ((r + 1) * (r + 1) <= w).to(torch.int64)
        z = torch.div(2 * (d << (k + 16)) + r, 2 * r, rounding_mode="floor")
        y = self.sign * self.rescale(z) + self.offset
        return [saturate(y, self.result_dtypes[0])]


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


OPS: dict[str, type[IntOp]] = {
    "max_pool2d": MaxPool2d,
    "avg_pool2d": QAvgPool2d,
    "global_avg_pool2d": QGlobalAvgPool2d,
    "resize2d": QResize2d,
    "grid_sample": QGridSample,
    "softmax": QSoftmax,
    "layer_norm": QLayerNorm,
    "argmax": Argmax,
    "topk": TopK,
}
