"""PyTorch models to HBIR: torch.fx traces the model, ShapeProp runs it once on the example
inputs for shapes (and for the values of shape arithmetic such as `x.size(0)`), and each fx node
maps onto one HBIR op (a few onto two). Locations are fx module paths, so a compiler diagnostic
points back at the user's `nn.Module`.

`trace_float` gives the float graph. `trace_quant` traces a calibrated or QAT model (one that
`prepare_qat` equipped with FakeQuantize modules) and records every activation scale on the f32
types, which is what the compiler's `quantize` pass reads:

- a FakeQuantize (a module's `activation_post_process`, a QuantStub's, a fused conv's) gives the
  scale of the value it quantizes, and `quant.dtype = "si16"` on its op for an si16 quantizer;
- weights are traced as the weight fake-quantizer returns them, so the integer model holds the
  very weights QAT trained;
- a value no quantizer saw takes its scale from the ops around it: data movement, pooling,
  resize and relu keep their input's scale, a concat takes its largest input scale (no
  saturation), and a conv, linear, add or sub whose only reader is a quantized relu/relu6/clip
  takes that one's (the clamp then needs no second rounding: what saturates it clamps anyway).
  Anything else without a scale is an error naming the module and the op: it needs a quantizer
  (e.g. hbdk_sim.quantization.Add).
"""

from __future__ import annotations

import operator
import os
import traceback
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch.fx.passes.shape_prop import ShapeProp

from hbdk_sim import _core
from hbdk_sim.errors import UnsupportedModelError, UsageError
from hbdk_sim.quantization.fake_quantize import FakeQuantize
from hbdk_sim.quantization.fuse_modules import (
    Add,
    Concat,
    ConvAdd2d,
    Matmul,
    Mul,
    QATConv2d,
    QATConvTranspose2d,
    QATLinear,
    _ConvFusion,
    _fold_params,
)
from hbdk_sim.quantization.stubs import DeQuantStub, QuantStub

SUPPORTED = (
    "Conv2d, ConvTranspose2d, Linear, BatchNorm2d (eval), ReLU, ReLU6, Hardtanh, clamp, LeakyReLU, sigmoid, "
    "tanh, exp, softmax, add, sub, mul, div by a scalar, matmul, cat, flatten, reshape/view, permute/transpose, "
    "MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), mean over H and W, interpolate/Upsample (nearest, bilinear), "
    "pad, Dropout and Identity; hbdk_sim.quantization's QuantStub, DeQuantStub, FakeQuantize, fused and QAT "
    "convs and deconvs, QATLinear, Add, Mul, Matmul and Concat"
)
# Modules the tracer maps whole instead of tracing through their forward.
_LEAVES = (FakeQuantize, QuantStub, DeQuantStub, _ConvFusion, QATConv2d, QATConvTranspose2d, QATLinear, Add, Mul,
           Matmul, Concat)
# Ops whose result, when no quantizer annotates it, keeps the (first) input's scale.
_KEEPS_SCALE = {"relu", "reshape", "flatten", "transpose", "slice", "split", "max_pool2d", "pad", "resize2d",
                "avg_pool2d", "global_avg_pool2d", "gather", "topk"}
_CLAMPS = {"relu", "relu6", "clip"}
F32_MAX = float(np.finfo(np.float32).max)
_TORCH_DIR = os.path.dirname(torch.__file__)


class UnsupportedOpError(UnsupportedModelError):
    """A model the tracer cannot express in HBIR: the message names the module path, the op and the
    user's source line."""


def _user_frame(frames: Sequence[traceback.FrameSummary]) -> str:
    """The innermost frame outside torch and this file, as `file:line: code`."""
    for f in reversed(frames):
        if f.filename.startswith(_TORCH_DIR) or f.filename == __file__:
            continue
        code = f" `{f.line.strip()}`" if f.line else ""
        return f"{f.filename}:{f.lineno}{code}"
    return ""


def _parse_stack_trace(stack_trace: str | None) -> str:
    """node.stack_trace is traceback text; pick its innermost user frame."""
    if not stack_trace:
        return ""
    frames = []
    lines = stack_trace.splitlines()
    for i, line in enumerate(lines):
        s = line.strip()
        if not s.startswith('File "'):
            continue
        try:
            file_part, rest = s[len('File "'):].split('", line ', 1)
            lineno = int(rest.split(",", 1)[0])
        except ValueError:
            continue
        code = lines[i + 1].strip() if i + 1 < len(lines) and not lines[i + 1].strip().startswith("File ") else None
        frames.append(traceback.FrameSummary(file_part, lineno, "", line=code))
    return _user_frame(frames)


class _PathTracer(fx.Tracer):
    """Records which module was being traced when tracing failed, to name it in the error, and,
    with `record_stack_traces`, each node's source line (which costs seconds on first use)."""

    def __init__(self, record_stack_traces: bool = True) -> None:
        super().__init__()
        self.record_stack_traces = record_stack_traces
        self.failed_at: str | None = None
        self.failed_type: str | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m, forward, args, kwargs):
        path = self.path_of_module(m)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_at is None:
                self.failed_at, self.failed_type = path, type(m).__name__
            raise


def _trace(model: nn.Module, name: str, record_stack_traces: bool = True) -> fx.GraphModule:
    tracer = _PathTracer(record_stack_traces)
    try:
        graph = tracer.trace(model)
    except Exception as e:  # fx raises TraceError, TypeError, RuntimeError... for untraceable code
        path = tracer.failed_at or "<root>"
        kind = tracer.failed_type or type(model).__name__
        where = _user_frame(traceback.extract_tb(e.__traceback__))
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UnsupportedOpError(
            f"{name}: cannot trace module '{path}' ({kind}){' at ' + where if where else ''}: {reason}; "
            "the tracer needs a forward without data-dependent control flow (torch.fx symbolic tracing)"
        ) from e
    return fx.GraphModule(model, graph, name)


class _Recorder(ShapeProp):
    """ShapeProp that also keeps every node's concrete result."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.results: dict[fx.Node, object] = {}

    def run_node(self, n: fx.Node):
        result = super().run_node(n)
        self.results[n] = result
        return result


def _pair(v) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(x) for x in v]


def _arg(node: fx.Node, i: int, name: str, default=None):
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def _is_tensor_like(v) -> bool:
    return isinstance(v, torch.Tensor) or (
        isinstance(v, (tuple, list)) and any(isinstance(x, torch.Tensor) for x in v))


class _Builder:
    def __init__(self, gm: fx.GraphModule, results: dict[fx.Node, object], name: str, quant: bool = False) -> None:
        self.gm = gm
        self.quant = quant
        self.scales: dict[_core.Value, tuple[float, str, str]] = {}  # value -> (scale, dtype, who set it)
        self.results = results
        self.name = name
        self.module = _core.Module(name)
        self.fn = self.module.add_function("main")
        self.env: dict[fx.Node, object] = {}  # an HBIR Value for tensors, the Python value otherwise
        self.modules = dict(gm.named_modules())
        self.node: fx.Node | None = None

    # -- diagnostics -------------------------------------------------------------------------------

    def _path(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return str(node.target)
        stack = node.meta.get("nn_module_stack")
        return next(reversed(stack.values()))[0] if stack else ""

    def _loc(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return str(node.target)
        path = self._path(node)
        return f"{path}.{node.name}" if path else node.name

    def _target_name(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"{type(self.modules[node.target]).__name__}"
        if node.op == "call_method":
            return f"Tensor.{node.target}"
        t = node.target
        short = getattr(t, "__name__", None) or str(t)
        for namespace, prefix in ((torch, "torch."), (F, "torch.nn.functional."), (operator, "operator.")):
            if getattr(namespace, short, None) is t:
                return prefix + short
        mod = getattr(t, "__module__", None) or ""
        qual = getattr(t, "__qualname__", None) or short
        return f"{mod}.{qual}" if mod and mod != "builtins" else qual

    def error(self, why: str = "") -> UnsupportedOpError:
        node = self.node
        assert node is not None
        src = _parse_stack_trace(node.stack_trace)
        detail = f" ({why})" if why else ""
        return UnsupportedOpError(
            f"{self.name}: unsupported op '{self._target_name(node)}'{detail} in module "
            f"'{self._path(node) or '<root>'}' (node '{node.name}'){' at ' + src if src else ''}; "
            f"the torch tracer supports: {SUPPORTED}")

    # -- values --------------------------------------------------------------------------------------

    def value(self, a) -> _core.Value:
        if isinstance(a, fx.Node):
            v = self.env[a]
            if isinstance(v, _core.Value):
                return v
        raise self.error(f"expected a tensor operand but got {type(a).__name__}")

    def py(self, a):
        """A non-tensor argument with its fx nodes (shape arithmetic) replaced by their values."""
        if isinstance(a, fx.Node):
            v = self.env[a]
            if isinstance(v, _core.Value):
                raise self.error("expected a Python value but got a tensor")
            return v
        if isinstance(a, (list, tuple)):
            return type(a)(self.py(x) for x in a)
        return a

    def shape(self, node: fx.Node) -> list[int]:
        return [int(d) for d in self.results[node].shape]

    def const(self, array, name: str) -> _core.Value:
        arr = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
        return self.module.create_constant(self.fn, arr, name=name).result()

    def tensor_const(self, t: torch.Tensor, name: str) -> _core.Value:
        if not t.is_floating_point():
            raise self.error(f"constant '{name}' is {t.dtype}, expected a float tensor")
        return self.const(t.detach().cpu().float().numpy(), name)

    def emit(self, op: str, operands: list[_core.Value], attrs: dict | None = None,
             suffix: str = "") -> _core.Value:
        """Create `op` for the current node; its result must have the node's shape. Ops after the
        first of one node get a `suffix` to keep value names unique."""
        node = self.node
        result = self.module.create_op(self.fn, op, operands, attrs or {}, loc=self._loc(node),
                                       names=[node.name + suffix]).result()
        expected = self.shape(node)
        if list(result.shape) != expected:
            raise self.error(f"maps to HBIR '{op}' of shape {list(result.shape)} but torch gives {expected}")
        return result

    # -- the walk ------------------------------------------------------------------------------------

    def build(self) -> _core.Module:
        outputs: list[_core.Value] = []
        for node in self.gm.graph.nodes:
            self.node = node
            if node.op == "placeholder":
                t = self.results[node]
                if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                    raise self.error("model inputs must be float tensors")
                self.env[node] = self.fn.add_argument(_core.TensorType(self.shape(node), "f32"), node.name)
            elif node.op == "get_attr":
                t = self.results[node]
                self.env[node] = self.tensor_const(t, str(node.target)) if isinstance(t, torch.Tensor) else t
            elif node.op == "output":
                outputs = self._outputs(node.args[0])
            elif not _is_tensor_like(self.results[node]):
                # shape arithmetic (x.size(0), x.shape[1] * 2): fixed by the example inputs
                self.env[node] = self.results[node]
            else:
                self.env[node] = self._convert(node)
        self.fn.returns = outputs
        if self.quant:
            self.complete_scales()
        self.module.verify()
        return self.module

    def _outputs(self, out) -> list[_core.Value]:
        if isinstance(out, (tuple, list)):
            return [v for o in out for v in self._outputs(o)]
        return [self.value(out)]

    def _convert(self, node: fx.Node) -> _core.Value:
        if node.op == "call_module":
            mod = self.modules[node.target]
            for cls in type(mod).__mro__:
                handler = _MODULE_HANDLERS.get(cls)
                if handler is not None:
                    result = handler(self, node, mod)
                    post = getattr(mod, "activation_post_process", None)
                    if isinstance(post, FakeQuantize) and isinstance(result, _core.Value):
                        self.annotate(result, post, str(node.target))
                    return result
            raise self.error()
        key = ("method", node.target) if node.op == "call_method" else node.target
        try:
            handler = _FUNCTION_HANDLERS.get(key)
        except TypeError:  # an unhashable target
            handler = None
        if handler is None:
            raise self.error()
        return handler(self, node)

    # -- shared emitters -----------------------------------------------------------------------------

    def conv(self, x, weight, bias, stride, padding, dilation, groups, kernel, suffix: str = "") -> _core.Value:
        dilation = _pair(dilation)
        if isinstance(padding, str):
            if padding == "valid":
                pads = [0, 0, 0, 0]
            else:  # "same": torch puts the odd extra row/column at the end
                total = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
                pads = [total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2]
        else:
            p = _pair(padding)
            pads = [p[0], p[1], p[0], p[1]]
        operands = [x, weight] + ([bias] if bias is not None else [])
        return self.emit("conv2d", operands, {"stride": _pair(stride), "padding": pads, "dilation": dilation,
                                              "groups": int(groups)}, suffix=suffix)

    def binary(self, op: str, lhs, rhs) -> _core.Value:
        node = self.node
        rank = len(self.shape(node))

        def operand(a, side: str) -> _core.Value:
            if isinstance(a, fx.Node) and isinstance(self.env[a], _core.Value):
                return self.env[a]
            v = self.py(a)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise self.error(f"{side} operand is {type(v).__name__}, expected a tensor or a number")
            return self.const(np.full([1] * rank, v, np.float32), f"{node.name}.{side}")

        return self.emit(op, [operand(lhs, "lhs"), operand(rhs, "rhs")])

    def clip(self, x, lo, hi) -> _core.Value:
        lo, hi = self.py(lo), self.py(hi)
        if isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
            raise self.error("tensor bounds")
        if lo is None and hi is None:
            raise self.error("clamp needs min or max")
        lo = -F32_MAX if lo is None else float(lo)
        hi = F32_MAX if hi is None else float(hi)
        if lo == 0.0 and hi == 6.0:
            return self.emit("relu6", [self.value(x)])
        return self.emit("clip", [self.value(x)], {"min": lo, "max": hi})

    def axis(self, dim, rank: int) -> int:
        dim = int(self.py(dim))
        return dim + rank if dim < 0 else dim

    def resize(self, x: fx.Node, size, scale_factor, mode: str, align_corners) -> _core.Value:
        in_hw, out_hw = self.shape(x)[2:], self.shape(self.node)[2:]
        if len(in_hw) != 2:
            raise self.error("only 4-D NCHW inputs resize")
        if size is None and scale_factor is not None:
            scales = [float(s) for s in (scale_factor if isinstance(scale_factor, (tuple, list))
                                         else (scale_factor, scale_factor))]
            if any(o != i * s for i, o, s in zip(in_hw, out_hw, scales, strict=True)):
                raise self.error(f"scale_factor {scale_factor} gives a fractional size; pass size= instead")
        if mode == "nearest":
            attrs = {"mode": "nearest", "coordinate_mode": "asymmetric"}
        elif mode == "bilinear":
            attrs = {"mode": "bilinear", "coordinate_mode": "align_corners" if align_corners else "half_pixel"}
        else:
            raise self.error(f"mode '{mode}'; nearest and bilinear are supported")
        return self.emit("resize2d", [self.value(x)], {"size": out_hw, **attrs})

    def pool(self, op: str, x, kernel, stride, padding, ceil_mode, extra: dict) -> _core.Value:
        kernel = _pair(kernel)
        stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) else _pair(stride)
        p = _pair(padding)
        return self.emit(op, [self.value(x)], {"kernel": kernel, "stride": stride,
                                               "padding": [p[0], p[1], p[0], p[1]], "ceil_mode": bool(ceil_mode),
                                               **extra})

    def pad(self, x: fx.Node, pad, mode: str, value) -> _core.Value:
        pad = [int(p) for p in self.py(pad)]
        rank = len(self.shape(x))
        if len(pad) % 2 or len(pad) // 2 > rank or any(p < 0 for p in pad):
            raise self.error(f"pad {pad}: expected non-negative (begin, end) pairs")
        begin, end = [0] * rank, [0] * rank
        for i in range(len(pad) // 2):  # torch lists the last dim first
            begin[rank - 1 - i], end[rank - 1 - i] = pad[2 * i], pad[2 * i + 1]
        modes = {"constant": "constant", "replicate": "edge", "reflect": "reflect"}
        if mode not in modes:
            raise self.error(f"pad mode '{mode}'")
        return self.emit("pad", [self.value(x)], {"pads": begin + end, "mode": modes[mode],
                                                  "value": float(self.py(value) or 0.0)})

    def global_pool(self, x, keepdim: bool = True) -> _core.Value:
        y = self.emit_unchecked("global_avg_pool2d", [self.value(x)], {})
        if keepdim:
            return y
        return self.emit("reshape", [y], {"shape": self.shape(self.node)})

    def emit_unchecked(self, op: str, operands, attrs) -> _core.Value:
        node = self.node
        return self.module.create_op(self.fn, op, operands, attrs, loc=self._loc(node),
                                     names=[f"{node.name}.{op}"]).result()

    # -- quantization scales ---------------------------------------------------------------------

    def annotate(self, v: _core.Value, fq: FakeQuantize | None, owner: str) -> None:
        """Record the scale `fq` holds for value `v` (nothing in float tracing or without `fq`)."""
        if not self.quant or fq is None:
            return
        if fq.ch_axis is not None:
            raise self.error(f"the activation quantizer of '{owner}' is per channel; activations take one scale")
        try:
            scale = fq.calculate_qparams()
        except RuntimeError as e:
            raise self.error(f"the quantizer of '{owner}' has no scale ({e})") from None
        if scale.numel() != 1:
            raise self.error(f"the quantizer of '{owner}' holds {scale.numel()} scales; activations take one")
        entry = (float(scale.reshape(())), fq.dtype, owner)
        if not (entry[0] > 0 and np.isfinite(entry[0])):
            raise self.error(f"the quantizer of '{owner}' holds scale {entry[0]}; recalibrate")
        if v.is_argument and entry[1] != "si8":
            raise self.error(f"model inputs are quantized to si8 but the quantizer of '{owner}' is {entry[1]}")
        old = self.scales.get(v)
        if old is not None and old[:2] != entry[:2]:
            raise self.error(f"value '{v.name}' is quantized twice: {old[1]} scale {old[0]:g} by '{old[2]}' and "
                             f"{entry[1]} scale {entry[0]:g} by '{owner}'; keep one quantizer per tensor")
        self.scales[v] = entry

    def weight(self, t: torch.Tensor, fq: FakeQuantize | None, name: str) -> _core.Value:
        """A weight as the model computes with it: through its fake-quantizer when it has one."""
        if fq is not None:
            with torch.no_grad():
                t = fq(t.detach())
        return self.tensor_const(t, name)

    def complete_scales(self) -> None:
        """Give a scale to every f32 activation no quantizer saw (see the module docstring), then
        write them all onto the types."""
        fn = self.fn
        missing: list[tuple[_core.Op, _core.Value]] = []
        changed = True
        while changed:
            changed = False
            missing = []
            for op in fn.ops:
                if op.name == "constant":
                    continue
                for r in op.results:
                    if r.dtype != "f32" or r in self.scales:
                        continue
                    found = self._inferred_scale(op, r)
                    if found is not None:
                        self.scales[r] = found
                        changed = True
                    else:
                        missing.append((op, r))
        if missing:
            op, r = missing[0]
            loc = op.loc or "<root>"
            raise UnsupportedOpError(
                f"{self.name}: no quantization scale for '{r.name}', the result of HBIR '{op.name}' in module "
                f"'{loc}': no quantizer observes it and none can be inferred; compute it in a module that "
                "prepare_qat quantizes (hbdk_sim.quantization.Add, Concat, a conv or linear) or put a "
                f"FakeQuantize after it ({len(missing)} value(s) without a scale)")
        for arg in fn.arguments:
            if arg not in self.scales:
                raise UnsupportedOpError(
                    f"{self.name}: model input '{arg.name}' has no quantization scale; put a "
                    "hbdk_sim.quantization.QuantStub at the start of the forward")
        for v, (scale, dtype, _) in self.scales.items():
            v.set_type(_core.TensorType(v.shape, "f32", scale=scale))
            if dtype == "si16" and v.owner is not None:
                v.owner.set_attr("quant.dtype", "si16")

    def _inferred_scale(self, op: _core.Op, r: _core.Value):
        activations = [v for v in op.operands if v.owner is None or v.owner.name != "constant"]
        known = [self.scales.get(v) for v in activations]
        if op.name in _KEEPS_SCALE and known and known[0] is not None:
            return known[0]
        if op.name == "concat" and known and all(k is not None for k in known):
            return max(known, key=lambda k: k[0])
        if op.name in ("conv2d", "conv_transpose2d", "linear", "matmul", "add", "sub"):
            uses = self.fn.uses(r)
            if len(uses) == 1 and uses[0][0] is not None and uses[0][0].name in _CLAMPS:
                return self.scales.get(uses[0][0].result())
        return None


# -- module handlers ---------------------------------------------------------------------------------


def _m_conv(b: _Builder, node: fx.Node, m: nn.Conv2d) -> _core.Value:
    if m.padding_mode != "zeros":
        raise b.error(f"padding_mode '{m.padding_mode}'")
    w = b.weight(m.weight, getattr(m, "weight_fake_quant", None), f"{node.target}.weight")
    bias = b.tensor_const(m.bias, f"{node.target}.bias") if m.bias is not None else None
    return b.conv(b.value(node.args[0]), w, bias, m.stride, m.padding, m.dilation, m.groups, m.kernel_size)


def _m_fused_conv(b: _Builder, node: fx.Node, m: _ConvFusion) -> _core.Value:
    """FusedConv2d, ConvBn2d (BN folded as its eval forward folds it) and ConvAdd2d."""
    conv, path = m.conv, str(node.target)
    if conv.padding_mode != "zeros":
        raise b.error(f"padding_mode '{conv.padding_mode}'")
    if m.bn is not None:
        with torch.no_grad():
            weight, bias = _fold_params(conv, m.bn, conv.weight.dtype)
    else:
        weight, bias = conv.weight, conv.bias
    w = b.weight(weight, m.weight_fake_quant, f"{path}.weight")
    bias_v = b.tensor_const(bias, f"{path}.bias") if bias is not None else None
    last = m.act is None and not isinstance(m, ConvAdd2d)
    y = b.conv(b.value(node.args[0]), w, bias_v, conv.stride, conv.padding, conv.dilation, conv.groups,
               conv.kernel_size, suffix="" if last else ".conv")
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


def _m_quant_stub(b: _Builder, node: fx.Node, m: QuantStub) -> _core.Value:
    v = b.value(node.args[0])
    b.annotate(v, m.activation_post_process, str(node.target))
    return v


def _m_fake_quant(b: _Builder, node: fx.Node, m: FakeQuantize) -> _core.Value:
    v = b.value(node.args[0])
    b.annotate(v, m, str(node.target))
    return v


def _m_add(b: _Builder, node: fx.Node, m: Add) -> _core.Value:
    return b.binary("add", node.args[0], node.args[1])


def _m_mul(b: _Builder, node: fx.Node, m: Mul) -> _core.Value:
    return b.binary("mul", node.args[0], node.args[1])


def _m_matmul(b: _Builder, node: fx.Node, m=None) -> _core.Value:
    if len(node.args) != 2 or node.kwargs:
        raise b.error("matmul with out= or other extra arguments")
    for side, a in zip(("lhs", "rhs"), node.args, strict=True):
        if not isinstance(a, fx.Node) or not isinstance(b.env[a], _core.Value):
            raise b.error(f"matmul {side} that is not a tensor")
        if len(b.shape(a)) < 2:
            raise b.error(f"matmul {side} of rank {len(b.shape(a))} (needs rank >= 2)")
    return b.emit("matmul", [b.value(node.args[0]), b.value(node.args[1])])


def _m_concat(b: _Builder, node: fx.Node, m: Concat) -> _core.Value:
    return b.emit("concat", [b.value(t) for t in node.args], {"axis": b.axis(m.dim, len(b.shape(node)))})


def _m_conv_transpose(b: _Builder, node: fx.Node, m: nn.ConvTranspose2d) -> _core.Value:
    if len(node.args) > 1 or node.kwargs:
        raise b.error("output_size argument")
    p = _pair(m.padding)
    # A QATConvTranspose2d's weight as QAT trained it (per channel along axis 1).
    w = b.weight(m.weight, getattr(m, "weight_fake_quant", None), f"{node.target}.weight")
    operands = [b.value(node.args[0]), w]
    if m.bias is not None:
        operands.append(b.tensor_const(m.bias, f"{node.target}.bias"))
    return b.emit("conv_transpose2d", operands, {
        "stride": _pair(m.stride), "padding": [p[0], p[1], p[0], p[1]], "output_padding": _pair(m.output_padding),
        "dilation": _pair(m.dilation), "groups": int(m.groups)})


def _m_linear(b: _Builder, node: fx.Node, m: nn.Linear) -> _core.Value:
    operands = [b.value(node.args[0]), b.weight(m.weight, getattr(m, "weight_fake_quant", None),
                                                 f"{node.target}.weight")]
    if m.bias is not None:
        operands.append(b.tensor_const(m.bias, f"{node.target}.bias"))
    return b.emit("linear", operands)


def _m_batch_norm(b: _Builder, node: fx.Node, m: nn.BatchNorm2d) -> _core.Value:
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


def _m_hardtanh(b: _Builder, node: fx.Node, m: nn.Hardtanh) -> _core.Value:
    return b.clip(node.args[0], m.min_val, m.max_val)


def _m_leaky_relu(b: _Builder, node: fx.Node, m: nn.LeakyReLU) -> _core.Value:
    return b.emit("leaky_relu", [b.value(node.args[0])], {"alpha": float(m.negative_slope)})


def _m_softmax(b: _Builder, node: fx.Node, m: nn.Softmax) -> _core.Value:
    if m.dim is None:
        raise b.error("implicit softmax dim")
    return b.emit("softmax", [b.value(node.args[0])], {"axis": b.axis(m.dim, len(b.shape(node)))})


def _m_flatten(b: _Builder, node: fx.Node, m: nn.Flatten) -> _core.Value:
    return b.emit("flatten", [b.value(node.args[0])], {"start_dim": m.start_dim, "end_dim": m.end_dim})


def _m_max_pool(b: _Builder, node: fx.Node, m: nn.MaxPool2d) -> _core.Value:
    if m.return_indices:
        raise b.error("return_indices=True")
    return b.pool("max_pool2d", node.args[0], m.kernel_size, m.stride, m.padding, m.ceil_mode,
                  {"dilation": _pair(m.dilation)})


def _m_avg_pool(b: _Builder, node: fx.Node, m: nn.AvgPool2d) -> _core.Value:
    if m.divisor_override is not None:
        raise b.error("divisor_override")
    return b.pool("avg_pool2d", node.args[0], m.kernel_size, m.stride, m.padding, m.ceil_mode,
                  {"count_include_pad": bool(m.count_include_pad)})


def _is_one(size) -> bool:
    return size == 1 or (isinstance(size, (tuple, list)) and all(s == 1 for s in size))


def _m_adaptive_avg(b: _Builder, node: fx.Node, m: nn.AdaptiveAvgPool2d) -> _core.Value:
    if not _is_one(m.output_size):
        raise b.error(f"output_size {m.output_size}; only 1 (global average) is supported")
    return b.global_pool(node.args[0])


def _m_upsample(b: _Builder, node: fx.Node, m: nn.Upsample) -> _core.Value:
    return b.resize(node.args[0], m.size, m.scale_factor, m.mode, m.align_corners)


def _m_pad(b: _Builder, node: fx.Node, m) -> _core.Value:
    return b.pad(node.args[0], list(m.padding), "constant", getattr(m, "value", 0.0))


def _alias(b: _Builder, node: fx.Node, m=None) -> _core.Value:
    return b.value(node.args[0])


_MODULE_HANDLERS: dict[type, Callable] = {
    _ConvFusion: _m_fused_conv,
    QuantStub: _m_quant_stub,
    DeQuantStub: _alias,
    FakeQuantize: _m_fake_quant,
    Add: _m_add,
    Mul: _m_mul,
    Matmul: _m_matmul,
    Concat: _m_concat,
    nn.Conv2d: _m_conv,
    nn.ConvTranspose2d: _m_conv_transpose,
    nn.Linear: _m_linear,
    nn.BatchNorm2d: _m_batch_norm,
    nn.ReLU: _m_unary("relu"),
    nn.ReLU6: _m_unary("relu6"),
    nn.Hardtanh: _m_hardtanh,
    nn.LeakyReLU: _m_leaky_relu,
    nn.Sigmoid: _m_unary("sigmoid"),
    nn.Tanh: _m_unary("tanh"),
    nn.Softmax: _m_softmax,
    nn.Flatten: _m_flatten,
    nn.MaxPool2d: _m_max_pool,
    nn.AvgPool2d: _m_avg_pool,
    nn.AdaptiveAvgPool2d: _m_adaptive_avg,
    nn.Upsample: _m_upsample,
    nn.ZeroPad2d: _m_pad,
    nn.ConstantPad2d: _m_pad,
    nn.Dropout: _alias,
    nn.Dropout2d: _alias,
    nn.Identity: _alias,
}

# -- function and method handlers --------------------------------------------------------------------


def _f_unary(op: str) -> Callable:
    return lambda b, node: b.emit(op, [b.value(node.args[0])])


def _f_hardtanh(b: _Builder, node: fx.Node) -> _core.Value:
    return b.clip(node.args[0], _arg(node, 1, "min_val", -1.0), _arg(node, 2, "max_val", 1.0))


def _f_clamp(b: _Builder, node: fx.Node) -> _core.Value:
    return b.clip(node.args[0], _arg(node, 1, "min"), _arg(node, 2, "max"))


def _f_leaky_relu(b: _Builder, node: fx.Node) -> _core.Value:
    return b.emit("leaky_relu", [b.value(node.args[0])], {"alpha": float(b.py(_arg(node, 1, "negative_slope", 0.01)))})


def _f_softmax(b: _Builder, node: fx.Node) -> _core.Value:
    dim = _arg(node, 1, "dim")
    if dim is None:
        raise b.error("implicit softmax dim")
    if _arg(node, 3 if node.op == "call_function" and node.target is F.softmax else 2, "dtype") is not None:
        raise b.error("softmax dtype")
    return b.emit("softmax", [b.value(node.args[0])], {"axis": b.axis(dim, len(b.shape(node)))})


def _f_binary(op: str) -> Callable:
    def handler(b: _Builder, node: fx.Node) -> _core.Value:
        alpha = b.py(node.kwargs.get("alpha", 1))
        if alpha != 1:
            raise b.error(f"alpha={alpha}")
        return b.binary(op, node.args[0], _arg(node, 1, "other"))
    return handler


def _f_div(b: _Builder, node: fx.Node) -> _core.Value:
    rhs = _arg(node, 1, "other")
    if node.kwargs.get("rounding_mode") is not None or (isinstance(rhs, fx.Node) and
                                                        isinstance(b.env[rhs], _core.Value)):
        raise b.error("only division by a number is supported")
    return b.binary("mul", node.args[0], 1.0 / float(b.py(rhs)))


def _f_cat(b: _Builder, node: fx.Node) -> _core.Value:
    tensors = _arg(node, 0, "tensors")
    return b.emit("concat", [b.value(t) for t in tensors],
                  {"axis": b.axis(_arg(node, 1, "dim", 0), len(b.shape(node)))})


def _f_flatten(b: _Builder, node: fx.Node) -> _core.Value:
    return b.emit("flatten", [b.value(node.args[0])], {"start_dim": int(b.py(_arg(node, 1, "start_dim", 0))),
                                                       "end_dim": int(b.py(_arg(node, 2, "end_dim", -1)))})


def _f_reshape(b: _Builder, node: fx.Node) -> _core.Value:
    # the target shape, with any -1 and x.size() arithmetic resolved, is the shape torch produced
    return b.emit("reshape", [b.value(node.args[0])], {"shape": b.shape(node)})


def _f_permute(b: _Builder, node: fx.Node) -> _core.Value:
    dims = list(node.args[1:]) if node.op == "call_method" else [_arg(node, 1, "dims")]
    if len(dims) == 1 and isinstance(b.py(dims[0]), (list, tuple)):
        dims = list(b.py(dims[0]))
    rank = len(b.shape(node))
    return b.emit("transpose", [b.value(node.args[0])], {"perm": [b.axis(d, rank) for d in dims]})


def _f_transpose(b: _Builder, node: fx.Node) -> _core.Value:
    rank = len(b.shape(node))
    d0, d1 = b.axis(_arg(node, 1, "dim0"), rank), b.axis(_arg(node, 2, "dim1"), rank)
    perm = list(range(rank))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return b.emit("transpose", [b.value(node.args[0])], {"perm": perm})


def _f_max_pool(b: _Builder, node: fx.Node) -> _core.Value:
    if b.py(_arg(node, 6, "return_indices", False)):
        raise b.error("return_indices=True")
    return b.pool("max_pool2d", node.args[0], b.py(_arg(node, 1, "kernel_size")), b.py(_arg(node, 2, "stride")),
                  b.py(_arg(node, 3, "padding", 0)), b.py(_arg(node, 5, "ceil_mode", False)),
                  {"dilation": _pair(b.py(_arg(node, 4, "dilation", 1)))})


def _f_avg_pool(b: _Builder, node: fx.Node) -> _core.Value:
    if b.py(_arg(node, 6, "divisor_override")) is not None:
        raise b.error("divisor_override")
    return b.pool("avg_pool2d", node.args[0], b.py(_arg(node, 1, "kernel_size")), b.py(_arg(node, 2, "stride")),
                  b.py(_arg(node, 3, "padding", 0)), b.py(_arg(node, 4, "ceil_mode", False)),
                  {"count_include_pad": bool(b.py(_arg(node, 5, "count_include_pad", True)))})


def _f_adaptive_avg(b: _Builder, node: fx.Node) -> _core.Value:
    size = b.py(_arg(node, 1, "output_size"))
    if not _is_one(size):
        raise b.error(f"output_size {size}; only 1 (global average) is supported")
    return b.global_pool(node.args[0])


def _f_mean(b: _Builder, node: fx.Node) -> _core.Value:
    rank = len(b.shape(node.args[0]))
    dims = b.py(_arg(node, 1, "dim"))
    dims = sorted(b.axis(d, rank) for d in (dims if isinstance(dims, (list, tuple)) else [dims])) \
        if dims is not None else None
    if rank != 4 or dims != [2, 3] or _arg(node, 3, "dtype") is not None:
        raise b.error("only the mean over H and W of an NCHW tensor is supported")
    return b.global_pool(node.args[0], bool(b.py(_arg(node, 2, "keepdim", False))))


def _f_interpolate(b: _Builder, node: fx.Node) -> _core.Value:
    if b.py(_arg(node, 6, "antialias", False)):
        raise b.error("antialias=True")
    return b.resize(node.args[0], b.py(_arg(node, 1, "size")), b.py(_arg(node, 2, "scale_factor")),
                    b.py(_arg(node, 3, "mode", "nearest")), b.py(_arg(node, 4, "align_corners")))


def _f_pad(b: _Builder, node: fx.Node) -> _core.Value:
    return b.pad(node.args[0], _arg(node, 1, "pad"), b.py(_arg(node, 2, "mode", "constant")),
                 _arg(node, 3, "value"))


def _f_conv(b: _Builder, node: fx.Node) -> _core.Value:
    weight = _arg(node, 1, "weight")
    bias = _arg(node, 2, "bias")
    kernel = b.shape(weight)[2:]
    return b.conv(b.value(node.args[0]), b.value(weight), b.value(bias) if bias is not None else None,
                  b.py(_arg(node, 3, "stride", 1)), b.py(_arg(node, 4, "padding", 0)),
                  b.py(_arg(node, 5, "dilation", 1)), b.py(_arg(node, 6, "groups", 1)), kernel)


def _f_linear(b: _Builder, node: fx.Node) -> _core.Value:
    bias = _arg(node, 2, "bias")
    operands = [b.value(node.args[0]), b.value(_arg(node, 1, "weight"))]
    return b.emit("linear", operands + ([b.value(bias)] if bias is not None else []))


def _f_dropout(b: _Builder, node: fx.Node) -> _core.Value:
    if b.py(_arg(node, 2, "training", True)):
        raise b.error("F.dropout with training=True (pass training=self.training and trace in eval)")
    return b.value(node.args[0])


def _f_alias(b: _Builder, node: fx.Node) -> _core.Value:
    return b.value(node.args[0])


def _method(name: str) -> tuple[str, str]:
    return ("method", name)


_FUNCTION_HANDLERS: dict[object, Callable] = {
    F.relu: _f_unary("relu"), torch.relu: _f_unary("relu"), _method("relu"): _f_unary("relu"),
    F.relu6: _f_unary("relu6"),
    F.hardtanh: _f_hardtanh,
    torch.clamp: _f_clamp, torch.clip: _f_clamp, _method("clamp"): _f_clamp, _method("clip"): _f_clamp,
    F.leaky_relu: _f_leaky_relu,
    torch.sigmoid: _f_unary("sigmoid"), F.sigmoid: _f_unary("sigmoid"), _method("sigmoid"): _f_unary("sigmoid"),
    torch.tanh: _f_unary("tanh"), F.tanh: _f_unary("tanh"), _method("tanh"): _f_unary("tanh"),
    torch.exp: _f_unary("exp"), _method("exp"): _f_unary("exp"),
    F.softmax: _f_softmax, torch.softmax: _f_softmax, _method("softmax"): _f_softmax,
    operator.add: _f_binary("add"), operator.iadd: _f_binary("add"), torch.add: _f_binary("add"),
    _method("add"): _f_binary("add"),
    operator.sub: _f_binary("sub"), operator.isub: _f_binary("sub"), torch.sub: _f_binary("sub"),
    _method("sub"): _f_binary("sub"),
    operator.mul: _f_binary("mul"), operator.imul: _f_binary("mul"), torch.mul: _f_binary("mul"),
    _method("mul"): _f_binary("mul"),
    torch.matmul: _m_matmul, operator.matmul: _m_matmul, _method("matmul"): _m_matmul,
    operator.truediv: _f_div, torch.div: _f_div, _method("div"): _f_div,
    torch.cat: _f_cat, torch.concat: _f_cat,
    torch.flatten: _f_flatten, _method("flatten"): _f_flatten,
    torch.reshape: _f_reshape, _method("reshape"): _f_reshape, _method("view"): _f_reshape,
    torch.permute: _f_permute, _method("permute"): _f_permute,
    torch.transpose: _f_transpose, _method("transpose"): _f_transpose,
    F.max_pool2d: _f_max_pool,
    F.avg_pool2d: _f_avg_pool,
    F.adaptive_avg_pool2d: _f_adaptive_avg,
    torch.mean: _f_mean, _method("mean"): _f_mean,
    F.interpolate: _f_interpolate,
    F.pad: _f_pad,
    F.conv2d: _f_conv,
    F.linear: _f_linear,
    F.dropout: _f_dropout,
    _method("contiguous"): _f_alias,
}


def check_finite_weights(model: nn.Module, name: str = "model") -> None:
    """Raise UsageError naming the first parameter or BN statistic that holds a NaN or an infinity:
    such weights would quantize to garbage without a word. A quantizer's own state (an observer's
    running range starts at +-inf) is left to the quantizer."""
    quantizer_prefixes = tuple(f"{n}." for n, m in model.named_modules() if isinstance(m, FakeQuantize) and n)
    tensors = [*model.named_parameters(), *model.named_buffers()]
    for key, t in tensors:
        if not t.is_floating_point() or key.startswith(quantizer_prefixes) or isinstance(model, FakeQuantize):
            continue
        bad = ~torch.isfinite(t.detach())
        if bad.any():
            index = tuple(int(i) for i in bad.nonzero()[0])
            value = float(t.detach()[index]) if index else float(t.detach())
            raise UsageError(f"{name}: {'parameter' if isinstance(t, nn.Parameter) else 'buffer'} '{key}' holds "
                             f"{value} at index {list(index)} ({int(bad.sum())} non-finite of {t.numel()}); "
                             "the weights are corrupt: retrain (a lower learning rate or gradient clipping) or "
                             "load a good checkpoint")


def _trace_module(model: nn.Module, example_inputs, name: str, quant: bool) -> _core.Module:
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    check_finite_weights(model, name)
    was_training = model.training
    quantizers = [m for m in model.modules() if isinstance(m, FakeQuantize)]
    observing = [bool(fq.observer_enabled) for fq in quantizers]
    model.eval()
    try:
        for fq in quantizers:  # tracing must not teach the observers the example inputs
            fq.enable_observer(False)
        def build(record_stack_traces: bool) -> _core.Module:
            gm = _trace(model, name, record_stack_traces)
            recorder = _Recorder(gm)
            with torch.no_grad():
                recorder.propagate(*example_inputs)
            return _Builder(gm, recorder.results, name, quant=quant).build()

        # Source lines only matter in an error message: trace without them first, and again with
        # them when the model turns out to hold something HBIR cannot express.
        try:
            return build(record_stack_traces=False)
        except UnsupportedOpError:
            return build(record_stack_traces=True)
    finally:
        for fq, enabled in zip(quantizers, observing, strict=True):
            fq.enable_observer(enabled)
        model.train(was_training)


def trace_float(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], name: str = "model") -> _core.Module:
    """Trace a float model (run in eval mode) into a verified HBIR module with function `main`, one
    argument per example input (named after the forward's parameters) and one result per output tensor.

    Raises UnsupportedOpError naming the module path, the op and the source line of the first
    construct HBIR cannot express, or the module whose forward torch.fx cannot trace."""
    return _trace_module(model, example_inputs, name, quant=False)


def trace_quant(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], name: str = "model") -> _core.Module:
    """Trace a calibrated or QAT model into a float HBIR module whose every activation carries its
    scale (the input of the compiler's `quantize` pass). The model runs in eval mode with its
    quantizers in their current state and their observers paused; weights are traced through their
    fake-quantizers. Raises UnsupportedOpError as `trace_float` does, and for a value without a scale."""
    if not any(isinstance(m, FakeQuantize) for m in model.modules()):
        raise UsageError(f"{name}: the model has no quantizers; prepare it with hbdk_sim.quantization.prepare_qat "
                         "and calibrate it first, or trace it with trace_float")
    return _trace_module(model, example_inputs, name, quant=True)
