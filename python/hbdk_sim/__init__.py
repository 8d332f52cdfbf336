"""hbdk-sim: from PyTorch perception models to a bit-exact, cycle-estimated NPU binary.

The C++ core lives in ``hbdk_sim._core``; this package re-exports its IR classes and adds the
file-level helpers and the ``hbdk-sim`` command line.
"""

import importlib
import sys

from hbdk_sim import api as _api
from hbdk_sim._core import (
    ConstraintError,
    DataError,
    Function,
    HbirError,
    HbmError,
    HbmModel,
    March,
    MarchError,
    Module,
    Op,
    ParseError,
    PassError,
    TensorType,
    Value,
    VerifyError,
    op_table,
    parse,
    passes,
    pipelines,
)
from hbdk_sim._core import __version__ as __version__
from hbdk_sim.api import CheckResult, CompileResult, Executor, check, compile, load_hbm
from hbdk_sim.calibration import calibrate
from hbdk_sim.ir import ModuleSummary, load, save, summarize
from hbdk_sim.march import list_marches, load_march
from hbdk_sim.perf_report import LayerPerf, PerfReport


# The torch-facing API imports torch on first use, so that `import hbdk_sim` stays light.
def export_hbir(model, example_inputs, path, *, overwrite=False, name=None):
    """Write a torch model's HBIR (float, with its scales when calibrated/QAT, or its integer
    graph when quantized) to `path`; returns the module. See hbdk_sim.frontend.api."""
    from hbdk_sim.frontend.api import export_hbir as impl

    return impl(model, example_inputs, path, overwrite=overwrite, name=name)


def export_onnx(model, example_inputs, path, *, overwrite=False, name=None):
    """Write a torch model as ONNX (float, or QDQ for a calibrated/QAT/quantized model)."""
    from hbdk_sim.frontend.api import export_onnx as impl

    return impl(model, example_inputs, path, overwrite=overwrite, name=name)


def compile_perf(model_or_path, example_inputs=None, march="bpu", out_dir=None, *, overwrite=False):
    """The cycle estimate (a PerfReport) of a torch model (float, calibrated, QAT or quantized;
    traced with `example_inputs`, a tensor or tuple of tensors, a float model calibrated on them),
    an `.hbm`, an `.hbir` or a Module. See hbdk_sim.api.compile_perf for the HBIR side."""
    torch = sys.modules.get("torch")  # a torch model implies torch is imported already
    if torch is not None and isinstance(model_or_path, torch.nn.Module):
        from hbdk_sim.frontend.api import compile_perf_model

        return compile_perf_model(model_or_path, example_inputs, march, out_dir, overwrite=overwrite)
    return _api.compile_perf(model_or_path, example_inputs, march, out_dir, overwrite=overwrite)


def check_model(model, example_inputs, march="bpu", name=None):
    """Every constraint violation of a torch model on `march` (a CheckResult)."""
    from hbdk_sim.frontend.api import check_model as impl

    return impl(model, example_inputs, march, name=name)


def calops(model, input_shape, name="model"):
    """Per-layer MACs and parameters of a float torch model (or an HBIR module)."""
    from hbdk_sim.opcount import calops as impl

    return impl(model, input_shape, name=name)


def __getattr__(name: str):
    """`hbdk_sim.<submodule>` (onnx_export, quantization, nn, engine, ...) imports it on first use,
    as `import hbdk_sim.<submodule>` would: the torch side stays unloaded until asked for."""
    if name.startswith("_"):
        raise AttributeError(f"module 'hbdk_sim' has no attribute {name!r}")
    try:
        return importlib.import_module(f"hbdk_sim.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"hbdk_sim.{name}":
            raise  # the submodule exists but something it imports is missing
        raise AttributeError(f"module 'hbdk_sim' has no attribute {name!r}") from None


__all__ = [
    "CheckResult",
    "CompileResult",
    "ConstraintError",
    "DataError",
    "Executor",
    "Function",
    "HbirError",
    "HbmError",
    "HbmModel",
    "March",
    "MarchError",
    "calibrate",
    "calops",
    "check",
    "check_model",
    "compile",
    "compile_perf",
    "export_hbir",
    "export_onnx",
    "list_marches",
    "load_hbm",
    "load_march",
    "Module",
    "ModuleSummary",
    "Op",
    "ParseError",
    "PerfReport",
    "LayerPerf",
    "PassError",
    "TensorType",
    "Value",
    "VerifyError",
    "load",
    "op_table",
    "parse",
    "passes",
    "pipelines",
    "save",
    "summarize",
]
