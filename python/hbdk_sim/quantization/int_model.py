"""The quantized torch model (`int_infer`): the integer HBIR graph that the C++ `quantize` pass
produces, run op for op as torch modules that implement docs/numerics.md exactly.

    int_module = quantize_module(calibrated_float_module)      # the compiler's own integer graph
    model = IntModel.from_hbir(int_module).to(device)           # batched, CPU or CUDA
    y = model(x)                                                 # bit for bit the C++ executor's

Weights, biases, multipliers/shifts and LUT tables are the compiler's (read from the graph); every
other requantization parameter comes from `_core.compute_requant` / `_core.compute_requant_pair`,
the one implementation the quantize pass and the executors use. The op modules are in the int_ops package;
this file builds and runs the graph of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn as nn

from hbdk_sim import _core
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.quantization.int_ops import OP_MODULES, SUPPORTED_OPS, TORCH_DTYPES, Constant, OpInfo, ValueInfo


def _split_compile_pipeline() -> tuple[list[str], list[str]]:
    """The `compile` pipeline cut after the first `canonicalize` following `quantize`: the passes
    that make the integer graph, and those that take it to a binary."""
    for p in _core.pipelines():
        if p["name"] == "compile":
            passes = list(p["passes"])
            cut = passes.index("canonicalize", passes.index("quantize")) + 1
            return passes[:cut], passes[cut:]
    raise RuntimeError("the C++ core has no 'compile' pipeline")


# QUANTIZE_PASSES makes the integer graph IntModel runs; AFTER_QUANTIZE_PASSES compiles that graph
# (IntModel.hbir_text) to an .hbm, since `compile` itself refuses a graph that is already integer.
QUANTIZE_PASSES, AFTER_QUANTIZE_PASSES = _split_compile_pipeline()


def quantize_module(module: _core.Module) -> _core.Module:
    """The integer module of a calibrated float HBIR module: a private copy run through
    QUANTIZE_PASSES (the input is left untouched)."""
    copy = _core.parse(module.print(), f"<module @{module.name}>")
    copy.run_pipeline(QUANTIZE_PASSES)
    return copy


def _operand_names() -> dict[str, list[tuple[str, str]]]:
    return {d["name"]: [(o["name"], o["arity"]) for o in d["operands"]] for d in _core.op_table()}


_IDENTIFIER = re.compile(r"[^0-9A-Za-z_]")


# ---- the model -------------------------------------------------------------------------------------


class IntModel(nn.Module):
    """The integer graph of one function as torch modules, registered under names from each op's
    `loc` (the torch module path the tracer recorded). `forward(*float_inputs)` quantizes the
    inputs, runs the integer ops and dequantizes the outputs; it returns a tensor, or a tuple when
    the function returns several values. Any batch size works where the graph keeps a leading batch
    dim; put the model on the inputs' device with `.to(device)`."""

    def __init__(self, module: _core.Module | str, function: str = "main") -> None:
        super().__init__()
        if isinstance(module, str):
            module = _core.parse(module, "<int model>")
        self.hbir_text: str = module.print()
        self.function = function
        fn = module.function(function)
        args = fn.arguments
        self.input_names = [a.name for a in args]
        self.output_names = [v.name for v in fn.returns]
        self._input_shapes = [list(a.shape) for a in args]
        self._input_dtypes = [a.dtype for a in args]

        ops = fn.ops
        keys = self._run_all_keys(args, ops)
        slot: dict[_core.Value, int] = {v: i for i, v in enumerate(args)}
        self._keys: list[str] = [keys[("arg", i)] for i in range(len(args))]
        constants = {op.result(): op for op in ops if op.name == "constant"}
        returned = set(fn.returns)
        names = _operand_names()
        used: set[str] = set()
        self._steps: list[tuple[str, list[int], list[int]]] = []
        for k, op in enumerate(ops):
            if op.name == "constant" and op.result() not in returned:
                continue  # read by the ops that use it, as their buffers
            info = self._info(module, op, names, constants)
            if op.name == "constant":
                mod = Constant(info, module.constant_value(op))
            else:
                cls = OP_MODULES.get(op.name)
                if cls is None:
                    raise info.error(f"has no integer torch implementation (supported: {', '.join(SUPPORTED_OPS)})")
                mod = cls(info)
            name = self._module_name(op, used)
            self.add_module(name, mod)
            inputs = [slot[v] for v in op.operands if v not in constants]
            outputs = []
            for r, v in enumerate(op.results):
                slot[v] = len(self._keys)
                outputs.append(slot[v])
                self._keys.append(keys[(k, r)])
            self._steps.append((name, inputs, outputs))
        self._returns = [slot[v] for v in fn.returns]
        # Each computed value's last reader, so forward can drop intermediates early.
        last: dict[int, int] = {}
        for s, (_, inputs, _) in enumerate(self._steps):
            for i in inputs:
                last[i] = s
        keep = set(self._returns) | set(range(len(args)))
        self._release = [[i for i in inputs if last[i] == s and i not in keep] for s, (_, inputs, _) in
                         enumerate(self._steps)]

    @classmethod
    def from_hbir(cls, module: _core.Module | str, function: str = "main") -> IntModel:
        """The model of `function` of an integer HBIR module (see quantize_module), or its text."""
        return cls(module, function)

    # -- building ------------------------------------------------------------------------------

    @staticmethod
    def _run_all_keys(args, ops) -> dict:
        """The names Executor.run_all gives values: the value's name where unique, else
        '<op>#<index>[:<result>]' or 'arg#<index>'."""
        entries = [(("arg", i), v.name, f"arg#{i}") for i, v in enumerate(args)]
        for k, op in enumerate(ops):
            for r, v in enumerate(op.results):
                entries.append(((k, r), v.name, f"{op.name}#{k}" + (f":{r}" if r else "")))
        count: dict[str, int] = {}
        for _, name, _ in entries:
            count[name] = count.get(name, 0) + 1
        return {key: name if name and count[name] == 1 else fallback for key, name, fallback in entries}

    @staticmethod
    def _info(module: _core.Module, op: _core.Op, names: dict, constants: dict) -> OpInfo:
        operand_names = []
        declared = names.get(op.name, [])
        for i in range(len(op.operands)):
            if i < len(declared) and declared[i][1] != "variadic":
                operand_names.append(declared[i][0])
            else:
                base = declared[-1][0] if declared else "operand"
                operand_names.append(f"{base}_{i}")
        info = OpInfo(op.name, op.loc, dict(op.attrs), [ValueInfo.of(v) for v in op.operands],
                      [ValueInfo.of(v) for v in op.results], operand_names)
        for i, v in enumerate(op.operands):
            if v in constants:
                info.constants[i] = module.constant_value(constants[v])
        return info

    def _module_name(self, op: _core.Op, used: set[str]) -> str:
        """From the loc (the torch module path), made a valid, unique attribute name; a requantize
        sharing its conv's loc becomes `<loc>_requantize`."""
        base = _IDENTIFIER.sub("_", op.loc) if op.loc else op.name
        if base[:1].isdigit():
            base = f"op_{base}"
        candidates = [base, f"{base}_{op.name}"] if op.loc else [base]
        n = 1
        while True:
            for c in candidates:
                if c not in used and not hasattr(self, c):
                    used.add(c)
                    return c
            candidates = [f"{base}_{n}"]
            n += 1

    # -- running -------------------------------------------------------------------------------

    def _check_inputs(self, inputs: Sequence[torch.Tensor]) -> None:
        if len(inputs) != len(self.input_names):
            raise UsageError(f"int model @{self.function} takes {len(self.input_names)} input(s) "
                             f"({', '.join(self.input_names)}) but got {len(inputs)}")
        buffer = next(self.buffers(), None)
        for name, shape, x in zip(self.input_names, self._input_shapes, inputs, strict=True):
            if not isinstance(x, torch.Tensor):
                raise UsageTypeError(f"input '{name}' must be a torch.Tensor but is {type(x).__name__}")
            if buffer is not None and x.device != buffer.device:
                raise UsageError(f"input '{name}' is on {x.device} but the model is on {buffer.device}; "
                                 f"move the model with .to({str(x.device)!r})")
            if list(x.shape[1:]) != shape[1:] or x.dim() != len(shape):
                raise UsageError(f"input '{name}' expects shape [N, {', '.join(map(str, shape[1:]))}] "
                                 f"(traced with N = {shape[0] if shape else '-'}) but got {list(x.shape)}")

    def _run(self, inputs: Sequence[torch.Tensor], keep_all: bool) -> list[torch.Tensor | None]:
        self._check_inputs(inputs)
        values: list[torch.Tensor | None] = [None] * len(self._keys)
        for i, (x, dtype) in enumerate(zip(inputs, self._input_dtypes, strict=True)):
            values[i] = x.to(TORCH_DTYPES[dtype])
        for s, (name, ins, outs) in enumerate(self._steps):
            results = getattr(self, name)(*[values[i] for i in ins])
            for o, r in zip(outs, results, strict=True):
                values[o] = r
            if not keep_all:
                for i in self._release[s]:
                    values[i] = None
        return values

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        values = self._run(inputs, keep_all=False)
        outs = tuple(values[i] for i in self._returns)
        return outs[0] if len(outs) == 1 else outs

    def forward_all(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every value by the name Executor.run_all gives it (constants read by ops excepted)."""
        values = self._run(inputs, keep_all=True)
        return {k: v for k, v in zip(self._keys, values, strict=True) if v is not None}
