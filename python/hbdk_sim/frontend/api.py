"""The API on torch models: export to HBIR and ONNX, check against a march, compile and estimate.

    hbdk_sim.export_hbir(model, (x,), "model.hbir")
    hbdk_sim.export_onnx(model, (x,), "model.onnx")
    hbdk_sim.check_model(model, (x,), march="bpu").ok
    hbdk_sim.compile_perf(model, (x,), march="bpu").fps

A model is one of three kinds, each giving its own HBIR:
- float (no quantizers): the float graph; check/compile calibrate it on the example inputs;
- calibrated or QAT (quantizers from prepare_qat): the float graph with every scale recorded;
- quantized (`IntModel`, from QAT2Quantize): its integer graph as it is.

torch is imported here, not by `import hbdk_sim`: hbdk_sim's top-level functions import this
module on first use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from hbdk_sim import _core, api
from hbdk_sim.calibration import calibrate
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.files import write_file
from hbdk_sim.frontend.torch_tracer import trace_float, trace_quant
from hbdk_sim.quantization.fuse_modules import is_prepared
from hbdk_sim.quantization.stubs import QuantStub

Inputs = torch.Tensor | Sequence[torch.Tensor]


def _inputs(example_inputs: Inputs) -> tuple[torch.Tensor, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    inputs = tuple(example_inputs)
    if not inputs or not all(isinstance(x, torch.Tensor) for x in inputs):
        raise UsageTypeError("expected example_inputs as a tensor or a tuple of tensors (one per model input)")
    return inputs


def model_kind(model: nn.Module) -> str:
    """'quantized' (an IntModel), 'quant' (has quantizers: calibrated or QAT) or 'float'."""
    if not isinstance(model, nn.Module):
        raise UsageTypeError(f"expected a torch nn.Module but got {type(model).__name__}")
    if getattr(model, "hbir_text", None) is not None:
        return "quantized"
    if is_prepared(model):
        return "quant"
    return "float"


def to_hbir(model: nn.Module, example_inputs: Inputs, name: str | None = None) -> _core.Module:
    """The model's HBIR module (see the module docstring for what each kind gives)."""
    name = name or type(model).__name__
    kind = model_kind(model)
    if kind == "quantized":
        return _core.parse(model.hbir_text, f"<{name}>")
    inputs = tuple(x.detach().cpu() for x in _inputs(example_inputs))
    return trace_quant(model, inputs, name) if kind == "quant" else trace_float(model, inputs, name)


def _compilable(model: nn.Module, example_inputs: Inputs, name: str | None) -> _core.Module:
    """A module the compiler takes: float graphs are calibrated on the example inputs."""
    module = to_hbir(model, example_inputs, name)
    if model_kind(model) == "float":
        calibrate(module, [[x.detach().cpu().numpy().astype(np.float32) for x in _inputs(example_inputs)]])
    return module


def export_hbir(model: nn.Module, example_inputs: Inputs, path: str | os.PathLike, *, overwrite: bool = False,
                name: str | None = None) -> _core.Module:
    """Write the model's HBIR text to `path` (refusing an existing file unless `overwrite`) and
    return the module."""
    module = to_hbir(model, example_inputs, name)
    write_file(path, module.print().encode("utf-8"), overwrite=overwrite)
    return module


def export_onnx(model: nn.Module, example_inputs: Inputs, path: str | os.PathLike, *, overwrite: bool = False,
                name: str | None = None):
    """Write the model as ONNX: a float model as float ONNX, a calibrated/QAT/quantized model as
    QDQ ONNX of its integer graph. Returns the onnx ModelProto."""
    from hbdk_sim.onnx_export import hbir_to_onnx, save_onnx
    from hbdk_sim.quantization.int_model import quantize_module

    kind = model_kind(model)
    if kind == "float" and any(isinstance(m, QuantStub) and m.activation_post_process is not None
                               for m in model.modules()):
        raise UsageError(f"{name or type(model).__name__}: the only quantizers are the QuantStubs'; prepare the "
                         "model (hbdk_sim.quantization.prepare_qat or prepare_qat_fx) and calibrate it to export "
                         "QDQ ONNX, or build the stubs without a qconfig to export float ONNX")
    module = to_hbir(model, example_inputs, name)
    if kind == "quant":
        module = quantize_module(module)
    proto = hbir_to_onnx(module)
    save_onnx(proto, path, overwrite=overwrite)
    return proto


def check_model(model: nn.Module, example_inputs: Inputs, march="bpu", name: str | None = None):
    """Every constraint violation of the model on `march` (a CheckResult; `.ok` when supported)."""
    return api.check(_compilable(model, example_inputs, name), march)


def compile_model(model: nn.Module, example_inputs: Inputs, march="bpu", output=None, *, overwrite: bool = False,
                  name: str | None = None):
    """Compile the model to `.hbm` (a CompileResult; writes `output` and its perf reports when given)."""
    module = _compilable(model, example_inputs, name)
    return api.compile(module, march, output, overwrite=overwrite)


def compile_perf_model(model: nn.Module, example_inputs: Inputs, march="bpu", out_dir=None, *,
                       overwrite: bool = False, name: str | None = None):
    """The PerfReport of the compiled model (writes .hbm and perf JSON/HTML into `out_dir` when given)."""
    api.check_march_by_keyword(example_inputs)
    if example_inputs is None:
        raise UsageError("compile_perf of a torch model needs example_inputs (a tensor or a tuple of tensors) "
                         "to trace it")
    module = _compilable(model, example_inputs, name)
    return api.compile_perf(module, march=march, out_dir=out_dir, overwrite=overwrite)
