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

import inspect
import operator
import os
import traceback
from collections.abc import Sequence

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch.fx.passes.shape_prop import ShapeProp

from hbdk_sim import _core
from hbdk_sim.errors import UnsupportedModelError, UsageError
from hbdk_sim.frontend.decompose import decompose
from hbdk_sim.frontend.torch_ops import (
    FUNCTION_HANDLERS,
    MODULE_HANDLERS,
    handler_for,
    is_tensor_like,
    pair,
)
from hbdk_sim.frontend.weights import check_finite_weights
from hbdk_sim.quantization.fake_quantize import FakeQuantize
from hbdk_sim.quantization.fuse_modules import QAT_MODULE_MAPPINGS, keeps_forward_of


def _supported() -> str:
    modules = sorted({h.target for h in MODULE_HANDLERS.values()})
    functions = sorted({h.target for h in FUNCTION_HANDLERS.values()})
    return f"modules {', '.join(modules)}; functions and methods {', '.join(functions)}"


# What the tracer maps, as its messages list it: every target of the handler registry.
SUPPORTED = _supported()
# Modules the tracer maps whole instead of tracing through their forward: the quantization
# package's own modules and the QAT classes prepare_qat makes (torch's own nn modules are leaves
# for torch.fx anyway).
_LEAVES = tuple(c for c in MODULE_HANDLERS if c.__module__.startswith("hbdk_sim.")) + tuple(
    m.qat_class for m in QAT_MODULE_MAPPINGS.values())
_TRAITS = {d["name"]: d["traits"] for d in _core.op_table()}
# Ops whose result, when no quantizer annotates it, keeps the (first) input's scale.
KEEPS_SCALE = frozenset(n for n, t in _TRAITS.items() if t["bounded_by_input"])
_CLAMPS = frozenset(n for n, t in _TRAITS.items() if t["quant_rule"] == "clamp")
# Ops whose result, read only by a quantized clamp, takes the clamp's scale: accumulators and
# elementwise arithmetic, which the clamp saturates anyway.
_TAKES_CLAMP_SCALE = frozenset(
    n for n, t in _TRAITS.items()
    if t["quant_rule"] in ("weighted", "accumulate") or (t["quant_rule"] == "rescale" and t["tile"] == "elementwise"))
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
        # A subclass of a mapped module that keeps its forward (a zoo's `class Conv2d(nn.Conv2d)`
        # adding an attribute) is mapped as its base class; one that overrides forward is traced into.
        return (isinstance(m, _LEAVES) or super().is_leaf_module(m, module_qualified_name)
                or keeps_forward_of(m, MODULE_HANDLERS) is not None)

    def call_module(self, m, forward, args, kwargs):
        path = self.path_of_module(m)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_at is None:
                self.failed_at, self.failed_type = path, type(m).__name__
            raise


def _unbound_defaults(model: nn.Module, num_inputs: int, name: str) -> dict[str, object]:
    """The forward's parameters after the first `num_inputs` that have defaults, bound to them: an
    optional argument the example inputs leave out (`mask=None`) is a constant of the graph, so code
    such as `if mask is not None` traces as it runs. One without a default is a usage error."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # a builtin or C forward: nothing to bind
        return {}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    bound = {}
    for p in positional[num_inputs:]:
        if p.default is p.empty:
            raise UsageError(f"{name}: forward parameter '{p.name}' has no default and no example input; give one "
                             f"example input per parameter ({num_inputs} given for "
                             f"{', '.join(q.name for q in positional)})")
        bound[p.name] = p.default
    return bound


def _trace(model: nn.Module, name: str, record_stack_traces: bool = True, num_inputs: int | None = None
           ) -> fx.GraphModule:
    tracer = _PathTracer(record_stack_traces)
    concrete = _unbound_defaults(model, num_inputs, name) if num_inputs is not None else {}
    try:
        graph = tracer.trace(model, concrete_args=concrete or None)
    except Exception as e:  # fx raises TraceError, TypeError, RuntimeError... for untraceable code
        path = tracer.failed_at or "<root>"
        kind = tracer.failed_type or type(model).__name__
        where = _user_frame(traceback.extract_tb(e.__traceback__))
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UnsupportedOpError(
            f"{name}: cannot trace module '{path}' ({kind}){' at ' + where if where else ''}: {reason}; "
            "the tracer needs a forward without data-dependent control flow (torch.fx symbolic tracing)"
        ) from e
    gm = fx.GraphModule(model, graph, name)
    decompose(gm)
    # The graph is what reaches the outputs: work nothing reads (the coarser outputs of a network
    # whose board graph keeps the finest) is not exported.
    if gm.graph.eliminate_dead_code():
        gm.recompile()
    return gm


class _Recorder(ShapeProp):
    """ShapeProp that also keeps every node's concrete result."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.results: dict[fx.Node, object] = {}

    def run_node(self, n: fx.Node):
        result = super().run_node(n)
        self.results[n] = result
        return result


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
        self.emitted: list[str] = []  # the HBIR op names emit() created, in order (constants aside)
        self.origin: dict[_core.Value, fx.Node] = {}  # an emitted value -> the fx node it came from

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
        if isinstance(a, slice):
            return slice(self.py(a.start), self.py(a.stop), self.py(a.step))
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
        self.emitted.append(op)
        result = self.module.create_op(self.fn, op, operands, attrs or {}, loc=self._loc(node),
                                       names=[node.name + suffix]).result()
        self.origin[result] = node
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
                if not isinstance(t, torch.Tensor):  # an optional argument bound to its default
                    self.env[node] = t
                    continue
                if not t.is_floating_point():
                    raise self.error(f"model input '{node.name}' is {t.dtype}; board inputs must be float tensors")
                self.env[node] = self.fn.add_argument(_core.TensorType(self.shape(node), "f32"), node.name)
            elif node.op == "get_attr":
                t = self.results[node]
                # a float tensor is a constant of the graph; an integer one (an index) stays a Python
                # value for the op that reads it to take or refuse
                float_tensor = isinstance(t, torch.Tensor) and t.is_floating_point()
                self.env[node] = self.tensor_const(t, str(node.target)) if float_tensor else t
            elif node.op == "output":
                outputs = self._outputs(node.args[0])
            elif not is_tensor_like(self.results[node]):
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
        handler = handler_for(node, self.modules)
        mod = self.modules[node.target] if node.op == "call_module" else None
        if handler is None:
            raise self.error()
        before = len(self.emitted)
        result = handler.fn(self, node, mod) if node.op == "call_module" else handler.fn(self, node)
        emitted = set(self.emitted[before:])
        if not emitted <= set(handler.emits):
            raise RuntimeError(f"tracer handler of {handler.target} emitted {sorted(emitted)} but declares "
                               f"{list(handler.emits)}; fix its row in frontend/torch_ops.py")
        post = getattr(mod, "activation_post_process", None) if mod is not None else None
        if isinstance(post, FakeQuantize) and isinstance(result, _core.Value):
            self.annotate(result, post, str(node.target))
        return result

    # -- shared emitters -----------------------------------------------------------------------------

    def conv(self, x, weight, bias, stride, padding, dilation, groups, kernel, suffix: str = "") -> _core.Value:
        dilation = pair(dilation)
        if isinstance(padding, str):
            if padding == "valid":
                pads = [0, 0, 0, 0]
            else:  # "same": torch puts the odd extra row/column at the end
                total = [d * (k - 1) for d, k in zip(dilation, kernel, strict=True)]
                pads = [total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2]
        else:
            p = pair(padding)
            pads = [p[0], p[1], p[0], p[1]]
        operands = [x, weight] + ([bias] if bias is not None else [])
        return self.emit("conv2d", operands, {"stride": pair(stride), "padding": pads, "dilation": dilation,
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
        kernel = pair(kernel)
        stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) else pair(stride)
        p = pair(padding)
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

    def emit_pieces(self, op: str, operands: list[_core.Value], attrs: dict, pieces) -> list[_core.Value]:
        """Create a multi-result `op` (split) for the current node, whose torch result is the
        tuple of tensors `pieces`; each result must have its piece's shape."""
        node = self.node
        self.emitted.append(op)
        results = self.module.create_op(self.fn, op, operands, attrs, loc=self._loc(node),
                                        names=[f"{node.name}.{i}" for i in range(len(pieces))]).results
        for i, (r, t) in enumerate(zip(results, pieces, strict=True)):
            if list(r.shape) != list(t.shape):
                raise self.error(f"maps to HBIR '{op}' whose result #{i} has shape {list(r.shape)} but torch gives "
                                 f"{list(t.shape)}")
        return list(results)

    def emit_unchecked(self, op: str, operands, attrs) -> _core.Value:
        node = self.node
        self.emitted.append(op)
        result = self.module.create_op(self.fn, op, operands, attrs, loc=self._loc(node),
                                       names=[f"{node.name}.{op}"]).result()
        self.origin[result] = node
        return result

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
            node = self.origin.get(r)
            src = _parse_stack_trace(node.stack_trace) if node is not None else ""
            raise UnsupportedOpError(
                f"{self.name}: no quantization scale for '{r.name}', the result of HBIR '{op.name}' in module "
                f"'{loc}'{' at ' + src if src else ''}: no quantizer observes it and none can be inferred; prepare "
                "the float model in graph mode (hbdk_sim.quantization.prepare_qat_fx), which quantizes every such "
                "value, or compute it in a module that prepare_qat quantizes (hbdk_sim.quantization.Add, Mul, "
                f"Concat, a conv or linear) or put a FakeQuantize after it ({len(missing)} value(s) without a "
                "scale)")
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
        # A constant is a weight, except one a quantizer observed (a QuantStub on a learned query, a
        # position table): that one is an activation with its own scale.
        activations = [v for v in op.operands if v in self.scales or v.owner is None or v.owner.name != "constant"]
        known = [self.scales.get(v) for v in activations]
        if op.name in KEEPS_SCALE and known and known[0] is not None:
            return known[0]
        if op.name == "concat" and known and all(k is not None for k in known):
            return max(known, key=lambda k: k[0])
        if op.name in _TAKES_CLAMP_SCALE:
            uses = self.fn.uses(r)
            if len(uses) == 1 and uses[0][0] is not None and uses[0][0].name in _CLAMPS:
                return self.scales.get(uses[0][0].result())
        return None


def trace_graph(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], name: str = "model"
                ) -> tuple[fx.GraphModule, dict[fx.Node, object]]:
    """The torch.fx graph the tracer reads (hbdk_sim's modules and the mapped ones as leaves,
    optional arguments left out bound to their defaults) and each node's value on the example
    inputs, run in eval mode: what graph-mode preparation rewrites."""
    was_training = model.training
    model.eval()
    try:
        gm = _trace(model, name, record_stack_traces=False, num_inputs=len(example_inputs))
        recorder = _Recorder(gm)
        with torch.no_grad():
            recorder.propagate(*example_inputs)
    finally:
        model.train(was_training)
    return gm, recorder.results


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
            gm = _trace(model, name, record_stack_traces, len(example_inputs))
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
