"""The ONNX emitters of HBIR's float ops (the generic path of onnx_export.py quantizes and
dequantizes around them in a QDQ export): one function per op, in the FLOAT_OPS table, and the
nearest-resize picks of docs/numerics.md §6 in ONNX terms."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from onnx import TensorProto

from hbdk_sim import _core

# The exporter (onnx_export._Exporter: node, initializer, ints, error, ...) each emitter writes
# into. Not imported: it imports this table.
Exporter = Any

# docs/numerics.md §6 in ONNX Resize terms. Nearest: asymmetric takes floor(o * in / out), ONNX's
# asymmetric with floor; half_pixel (torch nearest-exact) takes floor((o + 0.5) * in / out), which is
# ONNX's half_pixel, (o + 0.5) / scale - 0.5, rounded with round_prefer_ceil; align_corners takes
# floor(src + 0.5), round_prefer_ceil. onnxruntime computes o / (out / in) in float32, which lands
# just below an integer for many ratios (14 -> 2 picks row 6, not 7), so Resize stands for nearest
# only where every axis is upsampled by a whole factor (checked exact for all three modes); other
# sizes gather the rows and columns that §6 picks.
_NEAREST_RESIZE = {
    "asymmetric": ("asymmetric", "floor"),
    "half_pixel": ("half_pixel", "round_prefer_ceil"),
    "align_corners": ("align_corners", "round_prefer_ceil"),
}
# Bilinear: HBIR's half_pixel clamps negative source coordinates to 0 and has no special case
# for an output of size 1, which is ONNX's half_pixel (not pytorch_half_pixel).
_LINEAR_RESIZE = {"asymmetric": "asymmetric", "half_pixel": "half_pixel", "align_corners": "align_corners"}


def nearest_indices(size_in: int, size_out: int, coordinate_mode: str) -> np.ndarray:
    """The input index each output index copies (docs/numerics.md §6, float64 left to right)."""
    picks = []
    for o in range(size_out):
        if coordinate_mode == "asymmetric":
            i = math.floor(o * size_in / size_out)
        elif coordinate_mode == "half_pixel":
            i = math.floor((o + 0.5) * size_in / size_out)
        else:
            src = o * (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
            i = math.floor(src + 0.5)
        picks.append(min(i, size_in - 1))
    return np.asarray(picks, dtype=np.int64)


def _conv2d(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    a = op.attrs
    e.node("Conv", ins, outs, kernel_shape=list(op.operands[1].shape[2:]), strides=a["stride"],
           pads=a["padding"], dilations=a["dilation"], group=a["groups"])


def _conv_transpose2d(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    a = op.attrs
    e.node("ConvTranspose", ins, outs, kernel_shape=list(op.operands[1].shape[2:]), strides=a["stride"],
           pads=a["padding"], output_padding=a["output_padding"], dilations=a["dilation"], group=a["groups"])


def _linear(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    if len(op.operands[0].shape) == 2:
        e.node("Gemm", ins, outs, transB=1)
        return
    (weight_t,) = e.node("Transpose", [ins[1]], perm=[1, 0])
    if len(ins) == 2:
        e.node("MatMul", [ins[0], weight_t], outs)
    else:
        (product,) = e.node("MatMul", [ins[0], weight_t])
        e.node("Add", [product, ins[2]], outs)


def _batch_norm(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    x, mean, var, gamma, beta = ins
    e.node("BatchNormalization", [x, gamma, beta, mean, var], outs, epsilon=op.attrs["eps"])


def _clip_between(lo: float, hi: float) -> Callable:
    def emit(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
        bounds = [e.initializer(np.array(b, dtype=np.float32), f"{op.results[0].name}.{n}")
                  for b, n in ((lo, "min"), (hi, "max"))]
        e.node("Clip", [ins[0], *bounds], outs)
    return emit


def _clip(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    _clip_between(op.attrs["min"], op.attrs["max"])(e, op, ins, outs)


def _same(onnx_op: str, **fixed) -> Callable:
    """An ONNX op taking the HBIR op's inputs as they are, with HBIR attributes renamed."""
    def emit(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
        attrs = {onnx_name: op.attrs[hbir_name] for onnx_name, hbir_name in fixed.items()}
        e.node(onnx_op, ins, outs, **attrs)
    return emit


def _silu(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    (gate,) = e.node("Sigmoid", ins)
    e.node("Mul", [ins[0], gate], outs)


def _layer_norm(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    """LayerNormalization over the last axis; another axis (NCHW channels) is moved last and back,
    since ONNX normalizes over every axis from `axis` on."""
    rank = len(op.operands[0].shape)
    axis = op.attrs["axis"] % rank
    eps = float(op.attrs["eps"])
    if axis == rank - 1:
        e.node("LayerNormalization", ins, outs, axis=-1, epsilon=eps)
        return
    perm = [d for d in range(rank) if d != axis] + [axis]
    (moved,) = e.node("Transpose", [ins[0]], perm=perm)
    (normed,) = e.node("LayerNormalization", [moved, ins[1], ins[2]], axis=-1, epsilon=eps)
    e.node("Transpose", [normed], outs, perm=[perm.index(d) for d in range(rank)])


def _hardsigmoid(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    e.node("HardSigmoid", ins, outs, alpha=1.0 / 6.0, beta=0.5)  # clip(x / 6 + 1/2, 0, 1)


def _gelu(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    """0.5 x (1 + erf(x / sqrt 2)): ONNX's own Gelu needs opset 20."""
    name = op.results[0].name
    (scaled,) = e.node("Mul", [ins[0], e.initializer(np.array(1.0 / np.sqrt(2.0), np.float32), f"{name}.rsqrt2")])
    (erf,) = e.node("Erf", [scaled])
    (plus,) = e.node("Add", [erf, e.initializer(np.array(1.0, np.float32), f"{name}.one")])
    (half,) = e.node("Mul", [ins[0], e.initializer(np.array(0.5, np.float32), f"{name}.half")])
    e.node("Mul", [half, plus], outs)


def _split(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    e.node("Split", [ins[0], e.ints(op.attrs["sizes"], f"{op.results[0].name}.sizes")], outs,
           axis=op.attrs["axis"])


def _slice(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    a = op.attrs
    base = op.results[0].name
    steps = a["steps"] or [1] * len(a["axes"])
    e.node("Slice", [ins[0], e.ints(a["starts"], f"{base}.starts"), e.ints(a["ends"], f"{base}.ends"),
                     e.ints(a["axes"], f"{base}.axes"), e.ints(steps, f"{base}.steps")], outs)


def _reshape(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    # The exact result shape: no -1 left to infer and no 0 that ONNX would read as "copy this dim".
    result = op.results[0]
    e.node("Reshape", [ins[0], e.ints(result.shape, f"{result.name}.shape")], outs)


def _pad(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    a = op.attrs
    base = op.results[0].name
    pads = e.ints(a["pads"], f"{base}.pads")
    if a["mode"] == "constant":
        value = e.initializer(np.array(a["value"], dtype=np.float32), f"{base}.value")
        e.node("Pad", [ins[0], pads, value], outs, mode="constant")
    else:
        e.node("Pad", [ins[0], pads], outs, mode=a["mode"])


def _pool_geometry(op: _core.Op, dilation: list[int], padding_counts: bool) -> tuple[list[int], int]:
    """(pads, ceil_mode) for ONNX. HBIR's ceil_mode drops a last window that would start in the end
    padding, as the ONNX spec says; onnx's shape inference and some runtimes do not. Where the
    ceil result has an extra window, floor mode with that much more end padding gives the same
    windows; only an average that counts padding (whose divisor that padding would change) keeps
    ceil_mode."""
    a = op.attrs
    pads = list(a["padding"])
    if not a["ceil_mode"]:
        return pads, 0
    in_hw, out_hw = op.operands[0].shape[2:], op.results[0].shape[2:]
    extra = []
    for axis in range(2):
        effective = dilation[axis] * (a["kernel"][axis] - 1) + 1
        span = in_hw[axis] + pads[axis] + pads[axis + 2] - effective
        extra.append((out_hw[axis] - 1) * a["stride"][axis] - span)  # > 0 when ceil adds a window
    if any(x > 0 for x in extra) and padding_counts:
        return pads, 1
    for axis in range(2):
        pads[axis + 2] += max(extra[axis], 0)
    if any(pads[axis + 2] >= a["kernel"][axis] for axis in range(2)):
        return list(a["padding"]), 1  # onnxruntime refuses a pad as large as the kernel
    return pads, 0


def _max_pool2d(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    a = op.attrs
    pads, ceil_mode = _pool_geometry(op, a["dilation"], padding_counts=False)
    e.node("MaxPool", ins, outs, kernel_shape=a["kernel"], strides=a["stride"], pads=pads, dilations=a["dilation"],
           ceil_mode=ceil_mode)


def _avg_pool2d(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    a = op.attrs
    pads, ceil_mode = _pool_geometry(op, [1, 1], padding_counts=a["count_include_pad"])
    e.node("AveragePool", ins, outs, kernel_shape=a["kernel"], strides=a["stride"], pads=pads, ceil_mode=ceil_mode,
           count_include_pad=int(a["count_include_pad"]))


def _resize2d(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    a = op.attrs
    result = op.results[0]
    in_hw, out_hw = op.operands[0].shape[2:], result.shape[2:]
    if a["mode"] == "bilinear":
        sizes = e.ints(result.shape, f"{result.name}.sizes")
        e.node("Resize", [ins[0], "", "", sizes], outs, mode="linear",
               coordinate_transformation_mode=_LINEAR_RESIZE[a["coordinate_mode"]])
    elif all(o % i == 0 for i, o in zip(in_hw, out_hw, strict=True)):
        coordinates, nearest = _NEAREST_RESIZE[a["coordinate_mode"]]
        sizes = e.ints(result.shape, f"{result.name}.sizes")
        e.node("Resize", [ins[0], "", "", sizes], outs, mode="nearest", coordinate_transformation_mode=coordinates,
               nearest_mode=nearest)
    else:
        x = ins[0]
        for axis, (i, o) in enumerate(zip(in_hw, out_hw, strict=True), start=2):
            picks = nearest_indices(i, o, a["coordinate_mode"])
            if axis == 3 or not np.array_equal(picks, np.arange(i)):
                index = e.initializer(picks, f"{result.name}.rows" if axis == 2 else f"{result.name}.columns")
                (x,) = e.node("Gather", [x, index], outs if axis == 3 else None, axis=axis)


def _grid_sample(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    a = op.attrs
    e.node("GridSample", ins, outs, mode="bilinear", padding_mode="zeros", align_corners=int(a["align_corners"]))


def _argmax(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    (index,) = e.node("ArgMax", ins, axis=op.attrs["axis"], keepdims=int(op.attrs["keepdim"]), select_last_index=0)
    e.node("Cast", [index], outs, to=TensorProto.INT32)


def _topk(e: Exporter, op: _core.Op, ins: list[str], outs: list[str]) -> None:
    a = op.attrs
    k = e.ints([a["k"]], f"{op.results[0].name}.k")
    # ONNX TopK puts the lower index first on ties, as HBIR does; HBIR's sorted=false is sorted too.
    index = e.fresh(f"{op.results[1].name}.int64")
    e.node("TopK", [ins[0], k], [outs[0], index], axis=a["axis"], largest=int(a["largest"]), sorted=1)
    e.node("Cast", [index], [outs[1]], to=TensorProto.INT32)


TRAITS = {d["name"]: d["traits"] for d in _core.op_table()}

FLOAT_OPS: dict[str, Callable] = {
    "conv2d": _conv2d,
    "conv_transpose2d": _conv_transpose2d,
    "linear": _linear,
    "matmul": _same("MatMul"),
    "batch_norm": _batch_norm,
    "layer_norm": _layer_norm,
    "relu": _same("Relu"),
    "relu6": _clip_between(0.0, 6.0),
    "clip": _clip,
    "leaky_relu": _same("LeakyRelu", alpha="alpha"),
    "sigmoid": _same("Sigmoid"),
    "tanh": _same("Tanh"),
    "exp": _same("Exp"),
    "sin": _same("Sin"),
    "cos": _same("Cos"),
    "silu": _silu,
    "hardswish": _same("HardSwish"),
    "hardsigmoid": _hardsigmoid,
    "gelu": _gelu,
    "softmax": _same("Softmax", axis="axis"),
    "add": _same("Add"),
    "sub": _same("Sub"),
    "mul": _same("Mul"),
    "concat": _same("Concat", axis="axis"),
    "split": _split,
    "slice": _slice,
    "reshape": _reshape,
    "flatten": _reshape,
    "transpose": _same("Transpose", perm="perm"),
    "pad": _pad,
    "gather": _same("Gather", axis="axis"),
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "global_avg_pool2d": _same("GlobalAveragePool"),
    "resize2d": _resize2d,
    "grid_sample": _grid_sample,
    "argmax": _argmax,
    "topk": _topk,
}

# -- integer-only ops ---------------------------------------------------------------------------------
