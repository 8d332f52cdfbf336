"""HBIR to ONNX: one function of a module becomes an ONNX graph that onnxruntime runs, so the file
shows exactly what the compiler sees. Float ops map one to one onto ONNX ops. Integer graphs (the
output of the `quantize` pass) become QDQ ONNX: every si8/si16 value is an int8/int16 tensor, and
each integer op is DequantizeLinear -> its float ONNX op -> QuantizeLinear at the result's scale.

Value names are the HBIR names (as `Module.print` writes them); every node's name and doc string
carry the HBIR op and its `loc`, so a node maps back to the torch module it came from.

How an HBIR value appears in ONNX:
- f32: a float tensor of that name.
- si8/si16/ui8 with a scale: an integer tensor of that name (zero point 0); ops read it through
  DequantizeLinear (`<name>.dequantized`).
- si32 with a scale (a conv/linear/matmul accumulator): the float tensor of its real value
  `acc * s_acc`, since ONNX's float Conv/Gemm/MatMul compute it (the si32 bias is an int32
  initializer dequantized at `s_in * s_w[c]`); `requantize` then quantizes it at the output scale.
- integers without a scale (indices, lookup tables): plain integer tensors.

The QDQ graph is close to, not bit-exact with, the integer executor: QuantizeLinear rounds half to
even where `requantize` rounds half up, and ONNX's float softmax, average pooling and bilinear resize
stand in for the integer kernels of docs/numerics.md. `lut` is exact: the table is indexed in ONNX.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hbdk_sim import _core
from hbdk_sim.errors import UnsupportedModelError, UsageError
from hbdk_sim.files import write_file
from hbdk_sim.onnx_float_ops import FLOAT_OPS as _FLOAT_OPS
from hbdk_sim.onnx_float_ops import TRAITS as _TRAITS
from hbdk_sim.onnx_float_ops import nearest_indices

# QuantizeLinear/DequantizeLinear take int16 from opset 21 on.
INT16_QDQ_OPSET = 21
DEFAULT_OPSET = 17
__all__ = ["DEFAULT_OPSET", "export_module", "hbir_to_onnx", "nearest_indices", "onnxruntime_session", "save_onnx"]

_ONNX_ELEM = {
    "f32": TensorProto.FLOAT,
    "si8": TensorProto.INT8,
    "si16": TensorProto.INT16,
    "si32": TensorProto.INT32,
    "ui8": TensorProto.UINT8,
    "bool": TensorProto.BOOL,
}
_NUMPY_ELEM = {"si8": np.int8, "si16": np.int16, "si32": np.int32, "ui8": np.uint8}
_QDQ_ELEMS = ("si8", "si16", "ui8")

def _is_real(t: _core.TensorType) -> bool:
    """Values ONNX carries as float: f32 ones, and accumulators (si32 with a scale) as their real value."""
    return t.dtype == "f32" or (t.dtype == "si32" and t.scales is not None)


class _Exporter:
    def __init__(self, module: _core.Module, function: str, opset: int) -> None:
        self.module = module
        self.fn = module.function(function)
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.value_info: dict[str, onnx.ValueInfoProto] = {}
        # HBIR names are reserved up front, so that every value keeps its own name in ONNX and
        # the helper tensors (scales, dequantized copies) take the suffixed ones.
        self.hbir_names = {a.name for a in self.fn.arguments} | {r.name for op in self.fn.ops for r in op.results}
        self.names: set[str] = set()
        self.node_names: set[str] = set()
        self.real: dict[str, str] = {}  # HBIR value -> ONNX float tensor of its real value
        self.stored: dict[str, str] = {}  # HBIR value -> ONNX integer tensor as stored
        self.qparams: dict[tuple, tuple[str, str, int | None]] = {}
        self.outputs: list[onnx.ValueInfoProto] = []
        self.pending: dict[str, _core.Op] = {}  # constants not yet read
        self.op: _core.Op | None = None

    # -- names, tensors, nodes ---------------------------------------------------------------------

    def fresh(self, base: str) -> str:
        name, n = base, 1
        while name in self.names or name in self.hbir_names:
            name, n = f"{base}_{n}", n + 1
        self.names.add(name)
        return name

    def own_name(self, v: _core.Value) -> str:
        """`v`'s HBIR name, for the one ONNX tensor that stands for it."""
        self.names.add(v.name)
        return v.name

    def declare(self, name: str, elem: int, shape) -> None:
        self.value_info[name] = helper.make_tensor_value_info(name, elem, list(shape))

    def initializer(self, array: np.ndarray, base: str) -> str:
        name = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, values, base: str) -> str:
        return self.initializer(np.asarray(values, dtype=np.int64), base)

    def error(self, why: str) -> UnsupportedModelError:
        op = self.op
        loc = f' (loc("{op.loc}"))' if op is not None and op.loc else ""
        what = f"'{op.name}' op{loc} %{op.results[0].name if op.results else ''}" if op is not None else "function"
        return UnsupportedModelError(f"ONNX export of @{self.fn.name}: {what}: {why}")

    def node(self, op_type: str, inputs: list[str], outputs: list[str] | None = None, **attrs) -> list[str]:
        """Appends an ONNX node for the current HBIR op; `outputs` default to one fresh name."""
        op = self.op
        hint = (op.loc or (op.results[0].name if op.results else op.name)) if op is not None else "graph"
        if outputs is None:
            outputs = [self.fresh(f"{hint}/{op_type}")]
        node_name, n = f"{hint}/{op_type}", 1
        while node_name in self.node_names:
            node_name, n = f"{hint}/{op_type}_{n}", n + 1
        self.node_names.add(node_name)
        doc = ""
        if op is not None:
            results = ", ".join(f"%{r.name}" for r in op.results)
            doc = f"hbir: {results} = {op.name}" + (f' loc("{op.loc}")' if op.loc else "")
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=node_name, doc_string=doc, **attrs))
        return outputs

    # -- quantization parameters -------------------------------------------------------------------

    def quant_params(self, t: _core.TensorType, shared: bool = True) -> tuple[str, str, int | None]:
        """(scale, zero point, axis) initializers of an integer type with a scale; zero point 0.
        Shared by every Q/DQ of the same type, unless `shared` is False."""
        if t.scales is None:
            raise self.error(f"operand type {t} has no scale; quantize the graph first")
        key = (t.dtype, tuple(t.scales), t.axis)
        if not shared:
            self.qparams.pop(key, None)
        if key not in self.qparams:
            per_axis = t.axis is not None
            scales = np.asarray(t.scales, dtype=np.float32)
            scale = self.initializer(scales if per_axis else scales.reshape(()), f"scale_{t.dtype}")
            zero = np.zeros(scales.shape if per_axis else (), dtype=_NUMPY_ELEM[t.dtype])
            self.qparams[key] = (scale, self.initializer(zero, f"zero_point_{t.dtype}"), t.axis)
        return self.qparams[key]

    def qdq_attrs(self, axis: int | None) -> dict:
        return {} if axis is None else {"axis": axis}

    # -- values ------------------------------------------------------------------------------------

    def as_float(self, v: _core.Value) -> str:
        """The ONNX float tensor holding `v`'s real value (DequantizeLinear of the stored one). A
        quantized constant gets a DequantizeLinear of its own per reader, with its own copy of the
        data and its own scale and zero-point initializers: onnxruntime's QDQS8ToU8Transformer
        rewrites each constant DQ's initializers into new ones named after the old, and fails
        ("Attempt to replace the existing tensor") when two constant DQs share one."""
        self.materialize(v)
        constant = v.owner is not None and v.owner.name == "constant" and v.type.scales is not None
        if v.name in self.real and not constant:
            return self.real[v.name]
        stored = self.stored[v.name]
        if constant and v.name in self.real:  # a later reader: a copy of the data too
            original = next(t for t in self.initializers if t.name == stored)
            stored = self.initializer(numpy_helper.to_array(original), stored)
        t = v.type
        out = self.fresh(f"{v.name}.dequantized")
        if t.scales is None:  # a plain integer read as a number
            self.node("Cast", [stored], [out], to=TensorProto.FLOAT)
        else:
            scale, zero, axis = self.quant_params(t, shared=not constant)
            self.node("DequantizeLinear", [stored, scale, zero], [out], **self.qdq_attrs(axis))
        self.declare(out, TensorProto.FLOAT, t.shape)
        self.real[v.name] = out
        return out

    def as_stored(self, v: _core.Value) -> str:
        self.materialize(v)
        if v.name not in self.stored:
            raise self.error(f"operand %{v.name} ({v.type}) has no integer tensor in ONNX (an accumulator "
                             "is carried as its real value; requantize it first)")
        return self.stored[v.name]

    def operand(self, v: _core.Value) -> str:
        """An operand of a float ONNX op: real values as float, plain integers (indices) as they are."""
        t = v.type
        if t.dtype == "f32" or t.scales is not None:
            return self.as_float(v)
        return self.as_stored(v)

    def claim(self, v: _core.Value) -> str:
        """The HBIR name for the ONNX tensor that represents `v` (real or stored, as its type says)."""
        name = self.own_name(v)
        t = v.type
        if _is_real(t):
            self.real[v.name] = name
            self.declare(name, TensorProto.FLOAT, t.shape)
        else:
            self.stored[v.name] = name
            self.declare(name, _ONNX_ELEM[t.dtype], t.shape)
        return name

    def quantize_to(self, real: str, v: _core.Value) -> None:
        """QuantizeLinear of a float tensor to `v`'s integer type and scale, named after `v`."""
        t = v.type
        if t.dtype not in _QDQ_ELEMS:
            raise self.error(f"result type {t}: ONNX QuantizeLinear gives int8, uint8 or int16")
        scale, zero, axis = self.quant_params(t)
        self.node("QuantizeLinear", [real, scale, zero], [self.claim(v)], **self.qdq_attrs(axis))

    # -- the walk ------------------------------------------------------------------------------------

    def export(self) -> onnx.ModelProto:
        inputs = []
        for a in self.fn.arguments:
            inputs.append(helper.make_tensor_value_info(self.claim(a), _ONNX_ELEM[a.dtype], list(a.shape)))
        for op in self.fn.ops:
            self.op = op
            if op.name == "constant":
                self.constant(op)
            elif op.name in _INTEGER_OPS:
                _INTEGER_OPS[op.name](self, op)
            elif op.name in _FLOAT_OPS:
                self.generic(op)
            else:
                raise self.error("has no ONNX mapping")
        self.op = None
        for v in self.fn.returns:
            self.output(v)
        outputs = self.outputs
        for name in [i.name for i in inputs] + [o.name for o in outputs]:
            self.value_info.pop(name, None)
        graph = helper.make_graph(self.nodes, self.module.name, inputs, outputs, self.initializers,
                                  doc_string=f"HBIR module @{self.module.name}, function @{self.fn.name}",
                                  value_info=list(self.value_info.values()))
        opset = helper.make_opsetid("", self.opset)
        model = helper.make_model(graph, opset_imports=[opset], producer_name="hbdk-sim",
                                  producer_version=_core.__version__)
        model.ir_version = helper.find_min_ir_version_for([opset])
        onnx.checker.check_model(model)
        return model

    def output(self, v: _core.Value) -> None:
        t = v.type
        if _is_real(t) and t.dtype != "f32":
            raise self.error(f"returns %{v.name} ({t}), an si32 accumulator; requantize or dequantize it "
                             "before returning it")
        name = self.as_float(v) if t.dtype == "f32" else self.as_stored(v)
        taken = {o.name for o in self.outputs} | {a.name for a in self.fn.arguments} | {
            i.name for i in self.initializers}
        if name in taken:
            # ONNX outputs are distinct node outputs: a value returned twice, an argument or a constant
            # gets a copy.
            copy = self.fresh(v.name)
            self.node("Identity", [name], [copy])
            name = copy
        self.outputs.append(helper.make_tensor_value_info(name, _ONNX_ELEM[t.dtype], list(t.shape)))

    def constant(self, op: _core.Op) -> None:
        # Materialized on first use: a lut table becomes its own initializer, and nothing unread is kept.
        self.pending[op.result().name] = op

    def materialize(self, v: _core.Value) -> None:
        """A constant's initializer: f32 as a float tensor, integer ones as stored (si8 weights, si32
        biases); readers dequantize them with the scale of their type."""
        op = self.pending.pop(v.name, None)
        if op is None:
            return
        name = self.own_name(v)
        (self.real if v.dtype == "f32" else self.stored)[v.name] = name
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(self.module.constant_value(op)), name))

    def generic(self, op: _core.Op) -> None:
        """A float ONNX op; integer operands are dequantized and integer results quantized (QDQ)."""
        # A compiler-built table (softmax's exp) is what the integer kernel reads; ONNX's float op
        # computes the function itself.
        operands = op.operands[:1] if _TRAITS[op.name]["quant_rule"] == "rescale_lut" else op.operands
        inputs = [self.operand(v) for v in operands]
        outputs, quantized = [], []
        for r in op.results:
            t = r.type
            if _is_real(t) or t.scales is None:
                outputs.append(self.claim(r))
            else:
                real = self.fresh(f"{r.name}.real")
                self.declare(real, TensorProto.FLOAT, t.shape)
                outputs.append(real)
                quantized.append((real, r))
        _FLOAT_OPS[op.name](self, op, inputs, outputs)
        for real, r in quantized:
            self.quantize_to(real, r)


# -- float ops: (exporter, op, ONNX input names, ONNX output names) ------------------------------------


def _quantize(e: _Exporter, op: _core.Op) -> None:
    e.quantize_to(e.as_float(op.operands[0]), op.result())


def _dequantize(e: _Exporter, op: _core.Op) -> None:
    x = op.operands[0]
    scale, zero, axis = e.quant_params(x.type)
    (real,) = e.node("DequantizeLinear", [e.as_stored(x), scale, zero], [e.claim(op.result())], **e.qdq_attrs(axis))
    e.real.setdefault(x.name, real)  # later readers of x reuse it


def _requantize(e: _Exporter, op: _core.Op) -> None:
    # The explicit multiplier/shift are computeRequant of the same scale ratio (docs/numerics.md
    # §2); QuantizeLinear applies the ratio in float and rounds half to even.
    e.quantize_to(e.as_float(op.operands[0]), op.result())


def _saturated(values: np.ndarray, dtype: str) -> np.ndarray:
    info = np.iinfo(_NUMPY_ELEM[dtype])
    return np.clip(values.astype(np.int64), info.min, info.max)


def _lut(e: _Exporter, op: _core.Op) -> None:
    """docs/numerics.md §5 in integer ONNX ops, so ORT gives exactly the executor's values."""
    x, table_value = op.operands
    result = op.result()
    if table_value.owner is None or table_value.owner.name != "constant":
        raise e.error("expected the table operand to be a constant")
    table = e.module.constant_value(table_value.owner)
    base = result.name
    (index,) = e.node("Cast", [e.as_stored(x)], to=TensorProto.INT32)
    if x.dtype == "si8":
        entries = e.initializer(_saturated(table, result.dtype).astype(_NUMPY_ELEM[result.dtype]), f"{base}.table")
        (position,) = e.node("Add", [index, e.initializer(np.array(128, np.int32), f"{base}.offset")])
        e.node("Gather", [entries, position], [e.claim(result)], axis=0)
        return
    if x.dtype != "si16" or table.shape != (257,):
        raise e.error(f"expected an si8 input with 256 entries or an si16 input with 257 knots but got {x.type} "
                      f"with {table.shape[0]}")

    def const(v: int, name: str) -> str:
        return e.initializer(np.array(v, np.int32), f"{base}.{name}")

    knots = e.initializer(_saturated(table, result.dtype).astype(np.int32), f"{base}.knots")
    (u,) = e.node("Add", [index, const(32768, "offset")])  # in [0, 65535]: integer Div is floor here
    step = const(256, "step")
    (k,) = e.node("Div", [u, step])
    (r,) = e.node("Sub", [u, e.node("Mul", [k, step])[0]])
    (lo,) = e.node("Gather", [knots, k], axis=0)
    (hi,) = e.node("Gather", [knots, e.node("Add", [k, const(1, "one")])[0]], axis=0)
    (delta,) = e.node("Mul", [e.node("Sub", [hi, lo])[0], r])
    # (delta + 128) >> 8 is a floor; |delta| < 2^24, so shifting by 2^25 keeps Div's dividend >= 0.
    (shifted,) = e.node("Div", [e.node("Add", [delta, const(128 + (1 << 25), "round")])[0], step])
    (y,) = e.node("Add", [lo, e.node("Sub", [shifted, const(1 << 17, "unshift")])[0]])
    info = np.iinfo(_NUMPY_ELEM[result.dtype])
    (y,) = e.node("Max", [e.node("Min", [y, const(int(info.max), "max")])[0], const(int(info.min), "min")])
    e.node("Cast", [y], [e.claim(result)], to=_ONNX_ELEM[result.dtype])


_INTEGER_OPS: dict[str, Callable] = {
    "quantize": _quantize,
    "dequantize": _dequantize,
    "requantize": _requantize,
    "lut": _lut,
}


def _needs_int16_qdq(fn: _core.Function) -> bool:
    values = list(fn.arguments) + [r for op in fn.ops for r in op.results]
    return any(v.dtype == "si16" and v.type.scales is not None for v in values)


def hbir_to_onnx(module: _core.Module, function: str = "main", opset: int | None = None) -> onnx.ModelProto:
    """The ONNX model of one function of an HBIR module (float, or integer as QDQ), checked by
    `onnx.checker`. Inputs and outputs keep the HBIR argument and result names.

    `opset` defaults to 17, or to 21 when the graph holds si16 values (int16 QuantizeLinear needs
    it). Raises UnsupportedModelError naming the op and its loc for an op ONNX cannot express."""
    # The printed form names every value (unnamed ones %0, %1, ...; duplicates name_1): parsing it
    # back gives a private copy whose names are exactly those a user sees in `hbdk-sim dump`.
    copy = _core.parse(module.print(), f"<module @{module.name}>")
    fn = copy.function(function)
    int16 = _needs_int16_qdq(fn)
    if opset is None:
        opset = INT16_QDQ_OPSET if int16 else DEFAULT_OPSET
    if int16 and opset < INT16_QDQ_OPSET:
        raise UnsupportedModelError(f"ONNX export of @{function}: the graph holds si16 values, whose QuantizeLinear/"
                                    f"DequantizeLinear need opset >= {INT16_QDQ_OPSET} but opset {opset} was asked for")
    if opset < 13:
        raise UsageError(f"ONNX export of @{function}: opset {opset} is too old; use 13 or later")
    return _Exporter(copy, function, opset).export()


def save_onnx(model: onnx.ModelProto, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write an ONNX model atomically; refuses to replace an existing file unless `overwrite`."""
    onnx.checker.check_model(model)
    return write_file(path, model.SerializeToString(), overwrite=overwrite)


def export_module(module: _core.Module, path: str | os.PathLike, *, function: str = "main",
                  opset: int | None = None, overwrite: bool = False) -> Path:
    """`hbir_to_onnx` then `save_onnx`: the file a user opens in Netron or runs in onnxruntime."""
    return save_onnx(hbir_to_onnx(module, function, opset), path, overwrite=overwrite)


def onnxruntime_session(model: onnx.ModelProto | str | os.PathLike,
                        providers: tuple[str, ...] = ("CPUExecutionProvider",)):
    """An onnxruntime InferenceSession that computes the exported QDQ graph faithfully.

    On x86 CPUs without VNNI, onnxruntime's fused u8s8 int8 kernels saturate 16-bit pair sums
    (VPMADDUBSW) when weights use the full int8 range, as ours do: conv and linear results can be
    off by tens of steps. `session.x64quantprecision` makes it multiply in u8u8 instead."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.x64quantprecision", "1")
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, options, providers=list(providers))
