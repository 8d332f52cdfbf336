"""Data movement integer ops: concat, reshape, flatten, transpose, split, slice, gather, the
pillar scatter and pad.
See base.py for how an op module is built; docs/numerics.md for each op's integer semantics."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 - the conventional name

from hbdk_sim.errors import UsageError
from hbdk_sim.quantization.int_ops.base import (
    IntOp,
    OpInfo,
    Rescale,
    sat_round,
    saturate,
)


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


OPS: dict[str, type[IntOp]] = {
    "concat": QConcat,
    "split": Split,
    "slice": Slice,
    "reshape": Reshape,
    "flatten": Flatten,
    "transpose": Transpose,
    "gather": Gather,
    "point_pillar_scatter": PointPillarScatter,
    "pad": Pad,
}
