"""The torch side of the tracer: one handler per torch module class, function or Tensor method,
each registered with the HBIR ops it emits (handler_registry.py). This file holds the compute
handlers (convolutions, linear layers, activations, normalization, pooling, arithmetic, attention)
and imports torch_shape_ops.py, which registers the shape handlers; the tracer (torch_tracer.py)
dispatches fx nodes through the registry, `SUPPORTED` (its error messages' list) and the op coverage
matrix are read from it, and the tracer checks on every node that a handler emitted only what it
declares.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 - the conventional name

from hbdk_sim import _core
from hbdk_sim.frontend import torch_shape_ops  # noqa: F401 - registers the shape handlers
from hbdk_sim.frontend.handler_registry import (
    FUNCTION_HANDLERS,
    MODULE_HANDLERS,
    Builder,
    Handler,
    arg,
    handler_for,
    is_tensor_like,
    method,
    pair,
    register_functions,
    register_modules,
    target_name,
)
from hbdk_sim.nn.layers.norm import ChannelLayerNorm
from hbdk_sim.quantization.fake_quantize import FakeQuantize
from hbdk_sim.quantization.fuse_modules import (
    Add,
    Concat,
    ConvAdd2d,
    ConvFusion,
    Matmul,
    Mul,
)
from hbdk_sim.quantization.stubs import DeQuantStub, QuantStub

# The registry, with every handler registered: what the tracer, graph-mode preparation and the op
# coverage matrix import from here.
__all__ = ["FUNCTION_HANDLERS", "MODULE_HANDLERS", "Handler", "arg", "handler_for", "is_tensor_like",
           "mha_unsupported", "pair", "sdpa_unsupported", "target_name"]


# -- module handlers ---------------------------------------------------------------------------------


# A conv whose kernel equals its stride, above this, cuts the image into patches (a vision
# transformer's patch embedding): no BPU conv window takes such strides, so it maps to what it
# computes, the patches laid out as rows of a linear layer.
PATCHIFY_ABOVE = 4


def _is_patchify(b: Builder, node: fx.Node, m: nn.Conv2d) -> bool:
    k, st = pair(m.kernel_size), pair(m.stride)
    h, w = b.shape(node.args[0])[2:]
    return (k == st and max(k) > PATCHIFY_ABOVE and m.groups == 1 and pair(m.dilation) == [1, 1]
            and isinstance(m.padding, (tuple, list)) and pair(m.padding) == [0, 0] and h % k[0] == 0
            and w % k[1] == 0)


def _m_patchify(b: Builder, node: fx.Node, m: nn.Conv2d) -> _core.Value:
    """[N, C, H, W] -> patches [N, H/kh, W/kw, C*kh*kw] -> linear -> NCHW: the same products and
    sums as the conv, with its weight (and per-output-channel quantizer) as the linear's rows."""
    path = str(node.target)
    n, c, h, w = b.shape(node.args[0])
    kh, kw = pair(m.kernel_size)
    ph, pw = h // kh, w // kw
    x = b.emit_unchecked("reshape", [b.value(node.args[0])], {"shape": [n, c, ph, kh, pw, kw]})
    x = b.emit_unchecked("transpose", [x], {"perm": [0, 2, 4, 1, 3, 5]})
    x = b.emit_unchecked("reshape", [x], {"shape": [n, ph, pw, c * kh * kw]})
    # The weight's rows are its output channels: a per-channel quantizer sees the same values.
    weight = b.weight(m.weight.reshape(m.out_channels, -1), getattr(m, "weight_fake_quant", None), f"{path}.weight")
    operands = [x, weight] + ([b.tensor_const(m.bias, f"{path}.bias")] if m.bias is not None else [])
    y = b.emit_unchecked("linear", operands, {})
    b.annotate(y, getattr(m, "activation_post_process", None), path)
    return b.emit("transpose", [y], {"perm": [0, 3, 1, 2]})


def _m_conv(b: Builder, node: fx.Node, m: nn.Conv2d) -> _core.Value:
    if m.padding_mode != "zeros":
        raise b.error(f"padding_mode '{m.padding_mode}'")
    if _is_patchify(b, node, m):
        return _m_patchify(b, node, m)
    w = b.weight(m.weight, getattr(m, "weight_fake_quant", None), f"{node.target}.weight")
    bias = b.tensor_const(m.bias, f"{node.target}.bias") if m.bias is not None else None
    return b.conv(b.value(node.args[0]), w, bias, m.stride, m.padding, m.dilation, m.groups, m.kernel_size)


def _conv_transpose_attrs(m: nn.ConvTranspose2d) -> dict:
    p = pair(m.padding)
    return {"stride": pair(m.stride), "padding": [p[0], p[1], p[0], p[1]], "output_padding": pair(m.output_padding),
            "dilation": pair(m.dilation), "groups": int(m.groups)}


def _m_fused_conv(b: Builder, node: fx.Node, m: ConvFusion) -> _core.Value:
    """FusedConv2d, ConvBn2d (BN folded as its eval forward folds it) and ConvAdd2d, over a Conv2d
    (conv2d) or a ConvTranspose2d (conv_transpose2d, its weight quantized along axis 1)."""
    conv, path = m.conv, str(node.target)
    if conv.padding_mode != "zeros":
        raise b.error(f"padding_mode '{conv.padding_mode}'")
    weight, bias = m.deploy_weight_and_bias()
    w = b.weight(weight, m.weight_fake_quant, f"{path}.weight")
    bias_v = b.tensor_const(bias, f"{path}.bias") if bias is not None else None
    last = m.act is None and not isinstance(m, ConvAdd2d)
    suffix = "" if last else ".conv"
    if isinstance(conv, nn.ConvTranspose2d):
        operands = [b.value(node.args[0]), w] + ([bias_v] if bias_v is not None else [])
        y = b.emit("conv_transpose2d", operands, _conv_transpose_attrs(conv), suffix=suffix)
    else:
        y = b.conv(b.value(node.args[0]), w, bias_v, conv.stride, conv.padding, conv.dilation, conv.groups,
                   conv.kernel_size, suffix=suffix)
    if isinstance(m, ConvAdd2d):
        b.annotate(y, m.conv_post_process, path)
        y = b.emit("add", [y, b.value(node.args[1])], suffix="" if m.act is None else ".add")
        if m.act is not None:
            b.annotate(y, m.activation_post_process, path)  # clamped at once: one rounding, as QAT computes
    elif m.act is not None:
        b.annotate(y, m.activation_post_process, path)  # the activation takes the requantize over
    if m.act is not None:
        y = b.emit("relu6" if isinstance(m.act, nn.ReLU6) else "relu", [y])
    return y


def _m_quant_stub(b: Builder, node: fx.Node, m: QuantStub) -> _core.Value:
    v = b.value(node.args[0])
    b.annotate(v, m.activation_post_process, str(node.target))
    return v


def _m_fake_quant(b: Builder, node: fx.Node, m: FakeQuantize) -> _core.Value:
    v = b.value(node.args[0])
    b.annotate(v, m, str(node.target))
    return v


def _m_add(b: Builder, node: fx.Node, m: Add) -> _core.Value:
    return b.binary("add", node.args[0], node.args[1])


def _m_mul(b: Builder, node: fx.Node, m: Mul) -> _core.Value:
    return b.binary("mul", node.args[0], node.args[1])


def _m_matmul(b: Builder, node: fx.Node, m=None) -> _core.Value:
    if len(node.args) != 2 or node.kwargs:
        raise b.error("matmul with out= or other extra arguments")
    for side, a in zip(("lhs", "rhs"), node.args, strict=True):
        if not isinstance(a, fx.Node) or not isinstance(b.env[a], _core.Value):
            raise b.error(f"matmul {side} that is not a tensor")
        if len(b.shape(a)) < 2:
            raise b.error(f"matmul {side} of rank {len(b.shape(a))} (needs rank >= 2)")
    return b.emit("matmul", [b.value(node.args[0]), b.value(node.args[1])])


def _m_concat(b: Builder, node: fx.Node, m: Concat) -> _core.Value:
    return b.emit("concat", [b.value(t) for t in node.args], {"axis": b.axis(m.dim, len(b.shape(node)))})


def _m_conv_transpose(b: Builder, node: fx.Node, m: nn.ConvTranspose2d) -> _core.Value:
    if len(node.args) > 1 or node.kwargs:
        raise b.error("output_size argument")
    # A QATConvTranspose2d's weight as QAT trained it (per channel along axis 1).
    w = b.weight(m.weight, getattr(m, "weight_fake_quant", None), f"{node.target}.weight")
    operands = [b.value(node.args[0]), w]
    if m.bias is not None:
        operands.append(b.tensor_const(m.bias, f"{node.target}.bias"))
    return b.emit("conv_transpose2d", operands, _conv_transpose_attrs(m))


def _m_linear(b: Builder, node: fx.Node, m: nn.Linear) -> _core.Value:
    operands = [b.value(node.args[0]), b.weight(m.weight, getattr(m, "weight_fake_quant", None),
                                                 f"{node.target}.weight")]
    if m.bias is not None:
        operands.append(b.tensor_const(m.bias, f"{node.target}.bias"))
    return b.emit("linear", operands)


def _m_batch_norm(b: Builder, node: fx.Node, m: nn.BatchNorm2d) -> _core.Value:
    if m.running_mean is None or m.running_var is None:
        raise b.error("BatchNorm without running statistics (track_running_stats=False)")
    c = m.num_features
    gamma = m.weight if m.affine else torch.ones(c)
    beta = m.bias if m.affine else torch.zeros(c)
    path = str(node.target)
    params = [b.tensor_const(m.running_mean, f"{path}.running_mean"),
              b.tensor_const(m.running_var, f"{path}.running_var"),
              b.tensor_const(gamma, f"{path}.weight"), b.tensor_const(beta, f"{path}.bias")]
    return b.emit("batch_norm", [b.value(node.args[0]), *params], {"eps": float(m.eps)})


def _m_unary(op: str) -> Callable:
    return lambda b, node, m: b.emit(op, [b.value(node.args[0])])


def _layer_norm(b: Builder, node: fx.Node, shape, weight, bias, eps, axis: int = -1) -> _core.Value:
    """LayerNorm of one dim (a normalized_shape of one int): the last (nn.LayerNorm, F.layer_norm)
    or the NCHW channels (ChannelLayerNorm); the affine parameters as constants (ones and zeros
    when there are none)."""
    shape = [int(d) for d in ([shape] if isinstance(shape, int) else shape)]
    x = node.args[0]
    if len(shape) != 1 or b.shape(x)[axis] != shape[0]:
        raise b.error(f"normalized_shape {shape}: only the last dim is supported (for NCHW channels, use "
                      "hbdk_sim.nn.layers.ChannelLayerNorm, or permute to NHWC first)")
    n, name = shape[0], node.name
    gamma = weight if weight is not None else b.const(np.ones(n), f"{name}.weight")
    beta = bias if bias is not None else b.const(np.zeros(n), f"{name}.bias")
    return b.emit("layer_norm", [b.value(x), gamma, beta], {"axis": axis, "eps": float(eps)})


def _m_layer_norm(b: Builder, node: fx.Node, m: nn.LayerNorm) -> _core.Value:
    path = str(node.target)
    weight = b.tensor_const(m.weight, f"{path}.weight") if m.weight is not None else None
    bias = b.tensor_const(m.bias, f"{path}.bias") if m.bias is not None else None
    axis = 1 if isinstance(m, ChannelLayerNorm) else -1
    return _layer_norm(b, node, list(m.normalized_shape), weight, bias, m.eps, axis)


def mha_unsupported(node: fx.Node, m: nn.MultiheadAttention) -> str | None:
    """Why an nn.MultiheadAttention call cannot be decomposed (None when it can)."""
    if m.bias_k is not None or m.bias_v is not None or m.add_zero_attn:
        return "bias_k/bias_v or add_zero_attn"
    if m.dropout and m.training:
        return "attention dropout in training mode (trace in eval mode)"
    if arg(node, 3, "key_padding_mask") is not None:
        return "key_padding_mask (fold it into an additive float attn_mask)"
    if arg(node, 7, "is_causal", False):
        return "is_causal=True (pass the causal mask as an additive float attn_mask)"
    if any(len(u.args) < 2 or u.target is not operator.getitem or (u.args[1] == 1 and u.users) for u in node.users):
        return "reading its attention weights (pass need_weights=False and use its output)"
    return None


def _m_mha(b: Builder, node: fx.Node, m: nn.MultiheadAttention) -> _core.Value:
    """Reached only by the forms frontend/decompose.py leaves whole: names what is unsupported."""
    raise b.error(mha_unsupported(node, m) or "this form")


def _m_gelu(b: Builder, node: fx.Node, m: nn.GELU) -> _core.Value:
    if m.approximate != "none":
        raise b.error(f"GELU approximate='{m.approximate}' (only the exact erf form is supported)")
    return b.emit("gelu", [b.value(node.args[0])])


def _m_hardtanh(b: Builder, node: fx.Node, m: nn.Hardtanh) -> _core.Value:
    return b.clip(node.args[0], m.min_val, m.max_val)


def _m_leaky_relu(b: Builder, node: fx.Node, m: nn.LeakyReLU) -> _core.Value:
    return b.emit("leaky_relu", [b.value(node.args[0])], {"alpha": float(m.negative_slope)})


def _m_softmax(b: Builder, node: fx.Node, m: nn.Softmax) -> _core.Value:
    if m.dim is None:
        raise b.error("implicit softmax dim")
    return b.emit("softmax", [b.value(node.args[0])], {"axis": b.axis(m.dim, len(b.shape(node)))})


def _m_flatten(b: Builder, node: fx.Node, m: nn.Flatten) -> _core.Value:
    return b.emit("flatten", [b.value(node.args[0])], {"start_dim": m.start_dim, "end_dim": m.end_dim})


def _m_max_pool(b: Builder, node: fx.Node, m: nn.MaxPool2d) -> _core.Value:
    if m.return_indices:
        raise b.error("return_indices=True")
    return b.pool("max_pool2d", node.args[0], m.kernel_size, m.stride, m.padding, m.ceil_mode,
                  {"dilation": pair(m.dilation)})


def _m_avg_pool(b: Builder, node: fx.Node, m: nn.AvgPool2d) -> _core.Value:
    if m.divisor_override is not None:
        raise b.error("divisor_override")
    return b.pool("avg_pool2d", node.args[0], m.kernel_size, m.stride, m.padding, m.ceil_mode,
                  {"count_include_pad": bool(m.count_include_pad)})


def _is_one(size) -> bool:
    return size == 1 or (isinstance(size, (tuple, list)) and all(s == 1 for s in size))


def _m_adaptive_avg(b: Builder, node: fx.Node, m: nn.AdaptiveAvgPool2d) -> _core.Value:
    if not _is_one(m.output_size):
        raise b.error(f"output_size {m.output_size}; only 1 (global average) is supported")
    return b.global_pool(node.args[0])


def _m_upsample(b: Builder, node: fx.Node, m: nn.Upsample) -> _core.Value:
    return b.resize(node.args[0], m.size, m.scale_factor, m.mode, m.align_corners)


def _m_pad(b: Builder, node: fx.Node, m) -> _core.Value:
    return b.pad(node.args[0], list(m.padding), "constant", getattr(m, "value", 0.0))


def _alias(b: Builder, node: fx.Node, m=None) -> _core.Value:
    return b.value(node.args[0])


# (module classes, handler, the HBIR ops it emits besides constants); the first class in a
# module's MRO that has an entry handles it.
register_modules([
    ((ConvFusion,), _m_fused_conv, ("conv2d", "conv_transpose2d", "add", "relu", "relu6")),
    ((QuantStub,), _m_quant_stub, ()),
    ((DeQuantStub,), _alias, ()),
    ((FakeQuantize,), _m_fake_quant, ()),
    ((Add,), _m_add, ("add",)),
    ((Mul,), _m_mul, ("mul",)),
    ((Matmul,), _m_matmul, ("matmul",)),
    ((Concat,), _m_concat, ("concat",)),
    ((nn.Conv2d,), _m_conv, ("conv2d", "reshape", "transpose", "linear")),
    ((nn.ConvTranspose2d,), _m_conv_transpose, ("conv_transpose2d",)),
    ((nn.Linear,), _m_linear, ("linear",)),
    ((nn.BatchNorm2d,), _m_batch_norm, ("batch_norm",)),
    ((ChannelLayerNorm, nn.LayerNorm), _m_layer_norm, ("layer_norm",)),
    # decomposed before mapping (frontend/decompose.py): what reaches here is refused by name
    ((nn.MultiheadAttention,), _m_mha, ()),
    ((nn.ReLU,), _m_unary("relu"), ("relu",)),
    ((nn.ReLU6,), _m_unary("relu6"), ("relu6",)),
    ((nn.Hardtanh,), _m_hardtanh, ("clip", "relu6")),
    ((nn.LeakyReLU,), _m_leaky_relu, ("leaky_relu",)),
    ((nn.Sigmoid,), _m_unary("sigmoid"), ("sigmoid",)),
    ((nn.Tanh,), _m_unary("tanh"), ("tanh",)),
    ((nn.SiLU,), _m_unary("silu"), ("silu",)),
    ((nn.Hardswish,), _m_unary("hardswish"), ("hardswish",)),
    ((nn.Hardsigmoid,), _m_unary("hardsigmoid"), ("hardsigmoid",)),
    ((nn.GELU,), _m_gelu, ("gelu",)),
    ((nn.Softmax,), _m_softmax, ("softmax",)),
    ((nn.Flatten,), _m_flatten, ("flatten",)),
    ((nn.MaxPool2d,), _m_max_pool, ("max_pool2d",)),
    ((nn.AvgPool2d,), _m_avg_pool, ("avg_pool2d",)),
    ((nn.AdaptiveAvgPool2d,), _m_adaptive_avg, ("global_avg_pool2d",)),
    ((nn.Upsample,), _m_upsample, ("resize2d",)),
    ((nn.ZeroPad2d, nn.ConstantPad2d), _m_pad, ("pad",)),
    ((nn.Dropout, nn.Dropout2d, nn.Identity), _alias, ()),
])

# -- function and method handlers --------------------------------------------------------------------


def _f_unary(op: str) -> Callable:
    return lambda b, node: b.emit(op, [b.value(node.args[0])])


def _f_hardtanh(b: Builder, node: fx.Node) -> _core.Value:
    return b.clip(node.args[0], arg(node, 1, "min_val", -1.0), arg(node, 2, "max_val", 1.0))


def _f_clamp(b: Builder, node: fx.Node) -> _core.Value:
    return b.clip(node.args[0], arg(node, 1, "min"), arg(node, 2, "max"))


def _f_leaky_relu(b: Builder, node: fx.Node) -> _core.Value:
    return b.emit("leaky_relu", [b.value(node.args[0])], {"alpha": float(b.py(arg(node, 1, "negative_slope", 0.01)))})


def _f_softmax(b: Builder, node: fx.Node) -> _core.Value:
    dim = arg(node, 1, "dim")
    if dim is None:
        raise b.error("implicit softmax dim")
    if arg(node, 3 if node.op == "call_function" and node.target is F.softmax else 2, "dtype") is not None:
        raise b.error("softmax dtype")
    return b.emit("softmax", [b.value(node.args[0])], {"axis": b.axis(dim, len(b.shape(node)))})


def _f_layer_norm(b: Builder, node: fx.Node) -> _core.Value:
    weight, bias = arg(node, 2, "weight"), arg(node, 3, "bias")
    return _layer_norm(b, node, b.py(arg(node, 1, "normalized_shape")),
                       b.value(weight) if weight is not None else None, b.value(bias) if bias is not None else None,
                       b.py(arg(node, 4, "eps", 1e-5)))


def _f_gelu(b: Builder, node: fx.Node) -> _core.Value:
    approximate = b.py(node.kwargs.get("approximate", "none"))
    if approximate != "none":
        raise b.error(f"F.gelu approximate='{approximate}' (only the exact erf form is supported)")
    return b.emit("gelu", [b.value(node.args[0])])


def _f_binary(op: str) -> Callable:
    def handler(b: Builder, node: fx.Node) -> _core.Value:
        alpha = b.py(node.kwargs.get("alpha", 1))
        if alpha != 1:
            raise b.error(f"alpha={alpha}")
        return b.binary(op, node.args[0], arg(node, 1, "other"))
    return handler


def _f_div(b: Builder, node: fx.Node) -> _core.Value:
    rhs = arg(node, 1, "other")
    if node.kwargs.get("rounding_mode") is not None or (isinstance(rhs, fx.Node) and
                                                        isinstance(b.env[rhs], _core.Value)):
        raise b.error("only division by a number is supported")
    return b.binary("mul", node.args[0], 1.0 / float(b.py(rhs)))


def _f_cat(b: Builder, node: fx.Node) -> _core.Value:
    tensors = arg(node, 0, "tensors")
    return b.emit("concat", [b.value(t) for t in tensors],
                  {"axis": b.axis(arg(node, 1, "dim", 0), len(b.shape(node)))})


def _f_max_pool(b: Builder, node: fx.Node) -> _core.Value:
    if b.py(arg(node, 6, "return_indices", False)):
        raise b.error("return_indices=True")
    return b.pool("max_pool2d", node.args[0], b.py(arg(node, 1, "kernel_size")), b.py(arg(node, 2, "stride")),
                  b.py(arg(node, 3, "padding", 0)), b.py(arg(node, 5, "ceil_mode", False)),
                  {"dilation": pair(b.py(arg(node, 4, "dilation", 1)))})


def _f_avg_pool(b: Builder, node: fx.Node) -> _core.Value:
    if b.py(arg(node, 6, "divisor_override")) is not None:
        raise b.error("divisor_override")
    return b.pool("avg_pool2d", node.args[0], b.py(arg(node, 1, "kernel_size")), b.py(arg(node, 2, "stride")),
                  b.py(arg(node, 3, "padding", 0)), b.py(arg(node, 4, "ceil_mode", False)),
                  {"count_include_pad": bool(b.py(arg(node, 5, "count_include_pad", True)))})


def _f_adaptive_avg(b: Builder, node: fx.Node) -> _core.Value:
    size = b.py(arg(node, 1, "output_size"))
    if not _is_one(size):
        raise b.error(f"output_size {size}; only 1 (global average) is supported")
    return b.global_pool(node.args[0])


def _f_interpolate(b: Builder, node: fx.Node) -> _core.Value:
    if b.py(arg(node, 6, "antialias", False)):
        raise b.error("antialias=True")
    return b.resize(node.args[0], b.py(arg(node, 1, "size")), b.py(arg(node, 2, "scale_factor")),
                    b.py(arg(node, 3, "mode", "nearest")), b.py(arg(node, 4, "align_corners")))


def _f_grid_sample(b: Builder, node: fx.Node) -> _core.Value:
    mode, padding = b.py(arg(node, 2, "mode", "bilinear")), b.py(arg(node, 3, "padding_mode", "zeros"))
    if mode != "bilinear" or padding != "zeros":
        raise b.error(f"F.grid_sample mode={mode!r} padding_mode={padding!r} (only bilinear with zero padding is "
                      "supported)")
    align = b.py(arg(node, 4, "align_corners"))
    return b.emit("grid_sample", [b.value(node.args[0]), b.value(arg(node, 1, "grid"))],
                  {"mode": "bilinear", "padding_mode": "zeros", "align_corners": bool(align)})


def _f_pad(b: Builder, node: fx.Node) -> _core.Value:
    return b.pad(node.args[0], arg(node, 1, "pad"), b.py(arg(node, 2, "mode", "constant")),
                 arg(node, 3, "value"))


def _f_conv(b: Builder, node: fx.Node) -> _core.Value:
    weight = arg(node, 1, "weight")
    bias = arg(node, 2, "bias")
    kernel = b.shape(weight)[2:]
    return b.conv(b.value(node.args[0]), b.value(weight), b.value(bias) if bias is not None else None,
                  b.py(arg(node, 3, "stride", 1)), b.py(arg(node, 4, "padding", 0)),
                  b.py(arg(node, 5, "dilation", 1)), b.py(arg(node, 6, "groups", 1)), kernel)


def _f_linear(b: Builder, node: fx.Node) -> _core.Value:
    bias = arg(node, 2, "bias")
    operands = [b.value(node.args[0]), b.value(arg(node, 1, "weight"))]
    return b.emit("linear", operands + ([b.value(bias)] if bias is not None else []))


def _f_batch_norm(b: Builder, node: fx.Node) -> _core.Value:
    """F.batch_norm as a BatchNorm subclass's forward calls it: eval statistics, as constants."""
    if b.py(arg(node, 5, "training", False)):
        raise b.error("F.batch_norm with training=True (trace in eval mode, with running statistics)")
    x, mean, var = node.args[0], arg(node, 1, "running_mean"), arg(node, 2, "running_var")
    if mean is None or var is None:
        raise b.error("F.batch_norm without running statistics")
    c = b.shape(x)[1]
    weight, bias = arg(node, 3, "weight"), arg(node, 4, "bias")
    gamma = b.value(weight) if weight is not None else b.const(np.ones(c), f"{node.name}.weight")
    beta = b.value(bias) if bias is not None else b.const(np.zeros(c), f"{node.name}.bias")
    return b.emit("batch_norm", [b.value(x), b.value(mean), b.value(var), gamma, beta],
                  {"eps": float(b.py(arg(node, 7, "eps", 1e-5)))})


def _f_dropout(b: Builder, node: fx.Node) -> _core.Value:
    if b.py(arg(node, 2, "training", True)):
        raise b.error("F.dropout with training=True (pass training=self.training and trace in eval)")
    return b.value(node.args[0])


def _f_alias(b: Builder, node: fx.Node) -> _core.Value:
    return b.value(node.args[0])


def sdpa_unsupported(node: fx.Node) -> str | None:
    """Why an SDPA call cannot be decomposed (None when it can)."""
    if arg(node, 4, "dropout_p", 0.0) not in (0, 0.0):
        return "dropout_p != 0 (trace in eval mode with dropout_p=0.0)"
    if arg(node, 5, "is_causal", False) is not False:
        return "is_causal=True (pass the causal mask as an additive float attn_mask)"
    if node.kwargs.get("enable_gqa", False):
        return "enable_gqa=True"
    return None


def _f_sdpa(b: Builder, node: fx.Node) -> _core.Value:
    """Reached only by the forms frontend/decompose.py leaves whole: names what is unsupported."""
    raise b.error(sdpa_unsupported(node) or "this form")


# (targets, handler, the HBIR ops it emits besides constants); ("method", name) is Tensor.<name>.
register_functions([
    ((F.relu, torch.relu, method("relu")), _f_unary("relu"), ("relu",)),
    ((F.relu6,), _f_unary("relu6"), ("relu6",)),
    ((F.hardtanh,), _f_hardtanh, ("clip", "relu6")),
    ((torch.clamp, torch.clip, method("clamp"), method("clip")), _f_clamp, ("clip", "relu6")),
    ((F.leaky_relu,), _f_leaky_relu, ("leaky_relu",)),
    ((torch.sigmoid, F.sigmoid, method("sigmoid")), _f_unary("sigmoid"), ("sigmoid",)),
    ((torch.tanh, F.tanh, method("tanh")), _f_unary("tanh"), ("tanh",)),
    ((torch.exp, method("exp")), _f_unary("exp"), ("exp",)),
    ((torch.sin, method("sin")), _f_unary("sin"), ("sin",)),
    ((torch.cos, method("cos")), _f_unary("cos"), ("cos",)),
    ((F.silu,), _f_unary("silu"), ("silu",)),
    ((F.hardswish,), _f_unary("hardswish"), ("hardswish",)),
    ((F.hardsigmoid,), _f_unary("hardsigmoid"), ("hardsigmoid",)),
    ((F.gelu,), _f_gelu, ("gelu",)),
    ((F.softmax, torch.softmax, method("softmax")), _f_softmax, ("softmax",)),
    ((operator.add, operator.iadd, torch.add, method("add")), _f_binary("add"), ("add",)),
    ((operator.sub, operator.isub, torch.sub, method("sub")), _f_binary("sub"), ("sub",)),
    ((operator.mul, operator.imul, torch.mul, method("mul")), _f_binary("mul"), ("mul",)),
    ((torch.matmul, operator.matmul, method("matmul")), _m_matmul, ("matmul",)),
    ((operator.truediv, torch.div, method("div")), _f_div, ("mul",)),
    ((torch.cat, torch.concat), _f_cat, ("concat",)),
    ((F.max_pool2d,), _f_max_pool, ("max_pool2d",)),
    ((F.avg_pool2d,), _f_avg_pool, ("avg_pool2d",)),
    ((F.adaptive_avg_pool2d,), _f_adaptive_avg, ("global_avg_pool2d",)),
    ((F.interpolate,), _f_interpolate, ("resize2d",)),
    ((F.grid_sample,), _f_grid_sample, ("grid_sample",)),
    ((F.pad,), _f_pad, ("pad",)),
    ((F.conv2d,), _f_conv, ("conv2d",)),
    ((F.linear,), _f_linear, ("linear",)),
    ((F.batch_norm,), _f_batch_norm, ("batch_norm",)),
    ((F.layer_norm,), _f_layer_norm, ("layer_norm",)),
    ((F.dropout,), _f_dropout, ()),
    ((method("contiguous"),), _f_alias, ()),
    # decomposed into transpose, matmul, mul, add and softmax before mapping (frontend/decompose.py)
    ((F.scaled_dot_product_attention,), _f_sdpa, ("transpose", "matmul", "mul", "add", "softmax")),
])


