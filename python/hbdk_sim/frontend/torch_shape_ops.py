"""Tracer handlers that move, index, split, join shapes or reduce: tensor indexing (ints, slices,
None, Ellipsis), split/chunk/unbind, expand, reshape/view/flatten, permute/transpose,
unsqueeze/squeeze, and mean/sum/amax over any dims, registered in handler_registry.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np
import torch
import torch.fx as fx

from hbdk_sim import _core
from hbdk_sim.frontend.handler_registry import Builder, arg, method, register_functions


def _f_flatten(b: Builder, node: fx.Node) -> _core.Value:
    return b.emit("flatten", [b.value(node.args[0])], {"start_dim": int(b.py(arg(node, 1, "start_dim", 0))),
                                                       "end_dim": int(b.py(arg(node, 2, "end_dim", -1)))})


def _f_reshape(b: Builder, node: fx.Node) -> _core.Value:
    # the target shape, with any -1 and x.size() arithmetic resolved, is the shape torch produced
    return b.emit("reshape", [b.value(node.args[0])], {"shape": b.shape(node)})


def _f_permute(b: Builder, node: fx.Node) -> _core.Value:
    dims = list(node.args[1:]) if node.op == "call_method" else [arg(node, 1, "dims")]
    if len(dims) == 1 and isinstance(b.py(dims[0]), (list, tuple)):
        dims = list(b.py(dims[0]))
    rank = len(b.shape(node))
    return b.emit("transpose", [b.value(node.args[0])], {"perm": [b.axis(d, rank) for d in dims]})


def _f_transpose(b: Builder, node: fx.Node) -> _core.Value:
    rank = len(b.shape(node))
    d0, d1 = b.axis(arg(node, 1, "dim0"), rank), b.axis(arg(node, 2, "dim1"), rank)
    perm = list(range(rank))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return b.emit("transpose", [b.value(node.args[0])], {"perm": perm})


def _reduce(kind: str) -> Callable:
    """mean / sum / amax over any dims, as ops the board has: the reduced dims moved last and
    flattened into the H of a [1, rows, reduced, 1] plane, then a global average pool (mean; sum
    multiplies it by the count) or a max pool over it (amax), and the result's shape restored.
    The mean over H and W of NCHW is the global average pool itself."""

    def handler(b: Builder, node: fx.Node) -> _core.Value:
        x = node.args[0]
        shape = b.shape(x)
        rank = len(shape)
        dims = b.py(arg(node, 1, "dim"))
        dims = list(range(rank)) if dims is None or dims == [] else \
            sorted({b.axis(d, rank) for d in (dims if isinstance(dims, (list, tuple)) else [dims])})
        if kind != "amax" and arg(node, 3, "dtype") is not None:
            raise b.error(f"{kind} with dtype")
        keepdim = bool(b.py(arg(node, 2, "keepdim", False)))
        if kind == "mean" and rank == 4 and dims == [2, 3]:
            return b.global_pool(x, keepdim)
        kept = [d for d in range(rank) if d not in dims]
        v = b.value(x)
        if kept + dims != list(range(rank)):
            v = b.emit_unchecked("transpose", [v], {"perm": kept + dims})
        rows = int(np.prod([shape[d] for d in kept])) if kept else 1
        count = int(np.prod([shape[d] for d in dims]))
        v = b.emit_unchecked("reshape", [v], {"shape": [1, rows, count, 1]})
        if kind == "amax":
            v = b.emit_unchecked("max_pool2d", [v], {"kernel": [count, 1], "stride": [count, 1],
                                                      "padding": [0, 0, 0, 0], "ceil_mode": False})
        else:
            v = b.emit_unchecked("global_avg_pool2d", [v], {})
        out = b.shape(node)
        if kind != "sum":
            return b.emit("reshape", [v], {"shape": out})
        if not out:
            raise b.error("a sum down to a scalar (keep a dim: keepdim=True, or sum over fewer dims)")
        # the product last: the node's value is what a quantizer after the sum observes
        v = b.emit_unchecked("reshape", [v], {"shape": out})
        return b.emit("mul", [v, b.const(np.full([1] * len(out), count, np.float32), f"{node.name}.count")],
                      suffix=".count")

    return handler


def _index(b: Builder, src: fx.Node, index) -> _core.Value:
    """`src[index]` for basic indexing: ints, slices with positive steps, None and one Ellipsis,
    as an HBIR slice and, where dims go or come, a reshape."""
    shape = b.shape(src)
    items = index if isinstance(index, tuple) else (index,)
    if any(not (i is None or i is Ellipsis or isinstance(i, (int, slice))) or isinstance(i, bool)
           for i in items):
        raise b.error("indexing with a tensor, list or bool (only ints, slices, None and ... are supported)")
    if sum(i is Ellipsis for i in items) > 1:
        raise b.error("more than one Ellipsis in an index")
    real = sum(1 for i in items if i is not None and i is not Ellipsis)
    if real > len(shape):
        raise b.error(f"{real} indices for a tensor of rank {len(shape)}")
    expanded = []
    for i in items:
        expanded += [slice(None)] * (len(shape) - real) if i is Ellipsis else [i]
    axes, starts, ends, steps = [], [], [], []
    dim = 0
    for i in [*expanded, *[slice(None)] * (len(shape) - sum(i is not None for i in expanded))]:
        if i is None:
            continue
        if isinstance(i, int):
            start = i + shape[dim] if i < 0 else i
            stop, step = start + 1, 1
        else:
            start, stop, step = i.indices(shape[dim])
            if step <= 0:
                raise b.error("a slice step below 1")
        if (start, stop, step) != (0, shape[dim], 1):
            axes.append(dim), starts.append(start), ends.append(stop), steps.append(step)
        dim += 1
    v = b.value(src)
    want = b.shape(b.node)
    if axes:
        attrs = {"axes": axes, "starts": starts, "ends": ends, "steps": steps}
        same_rank = len(want) == len(shape)
        v = b.emit("slice", [v], attrs) if same_rank else b.emit_unchecked("slice", [v], attrs)
    if list(v.shape) != want:
        v = b.emit("reshape", [v], {"shape": want})
    return v


def _f_getitem(b: Builder, node: fx.Node):
    """`x[index]` of a tensor (basic indexing), or one result of a multi-output op (split, chunk)."""
    src, index = node.args
    held = b.env.get(src) if isinstance(src, fx.Node) else None
    if isinstance(held, (list, tuple)):
        return held[b.py(index)]
    return _index(b, src, b.py(index))


# split-like ops: where each finds its dim among its arguments
_SPLIT_DIM = {"split": (2, 0), "chunk": (2, 0), "tensor_split": (2, 0), "unbind": (1, 0)}


def _f_split(kind: str) -> Callable:
    def handler(b: Builder, node: fx.Node) -> list[_core.Value]:
        x = node.args[0]
        rank = len(b.shape(x))
        index, default = _SPLIT_DIM[kind]
        dim = b.axis(arg(node, index, "dim", default), rank)
        pieces = b.results[node]
        if kind == "unbind":
            split = b.emit_pieces("split", [b.value(x)], {"axis": dim, "sizes": [1] * len(pieces)},
                                  [t.unsqueeze(dim) for t in pieces])
            return [b.emit_unchecked("reshape", [v], {"shape": list(t.shape)}) for v, t in zip(split, pieces,
                                                                                            strict=True)]
        return b.emit_pieces("split", [b.value(x)], {"axis": dim, "sizes": [int(t.shape[dim]) for t in pieces]},
                             pieces)
    return handler


# More copies than this make `expand` a memory hog on the board: broadcast in the consumer instead.
MAX_EXPAND_COPIES = 64


def _f_expand(b: Builder, node: fx.Node) -> _core.Value:
    """`x.expand(...)` / `expand_as`: new leading dims by a reshape, each size-1 dim repeated by a
    concat of copies (data movement: the values and their scale are unchanged)."""
    x = node.args[0]
    have, want = b.shape(x), b.shape(node)
    v = b.value(x)
    if len(want) > len(have):
        have = [1] * (len(want) - len(have)) + have
        v = b.emit_unchecked("reshape", [v], {"shape": have})
    for dim, (h, w) in enumerate(zip(have, want, strict=True)):
        if h == w:
            continue
        if w > MAX_EXPAND_COPIES:
            raise b.error(f"expanding dim {dim} to {w} copies (at most {MAX_EXPAND_COPIES}); let the next op "
                          "broadcast instead")
        have = [*have[:dim], w, *have[dim + 1:]]
        v = b.emit_unchecked("concat", [v] * w, {"axis": dim})
    if list(v.shape) != want:
        raise b.error(f"expand gives {list(v.shape)} where torch gives {want}")
    return v


register_functions([
    ((torch.flatten, method("flatten")), _f_flatten, ("flatten",)),
    ((torch.reshape, method("reshape"), method("view")), _f_reshape, ("reshape",)),
    ((torch.permute, method("permute")), _f_permute, ("transpose",)),
    ((torch.transpose, method("transpose")), _f_transpose, ("transpose",)),
    ((torch.mean, method("mean")), _reduce("mean"), ("global_avg_pool2d", "reshape", "transpose")),
    ((torch.sum, method("sum")), _reduce("sum"), ("global_avg_pool2d", "reshape", "transpose", "mul")),
    ((torch.amax, method("amax")), _reduce("amax"), ("max_pool2d", "reshape", "transpose")),
    ((operator.getitem,), _f_getitem, ("slice", "reshape")),
    ((torch.split, method("split")), _f_split("split"), ("split",)),
    ((torch.chunk, method("chunk")), _f_split("chunk"), ("split",)),
    ((torch.tensor_split, method("tensor_split")), _f_split("tensor_split"), ("split",)),
    ((torch.unbind, method("unbind")), _f_split("unbind"), ("split", "reshape")),
    ((torch.unsqueeze, method("unsqueeze"), torch.squeeze, method("squeeze")), _f_reshape, ("reshape",)),
    ((method("expand"), method("expand_as")), _f_expand, ("reshape", "concat")),
])
