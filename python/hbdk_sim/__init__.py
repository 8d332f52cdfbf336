"""hbdk-sim: from PyTorch perception models to a bit-exact, cycle-estimated NPU binary.

The C++ core lives in ``hbdk_sim._core``; this package re-exports its IR classes and adds the
file-level helpers and the ``hbdk-sim`` command line.
"""

from hbdk_sim._core import (
    ConstraintError,
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
from hbdk_sim.api import CheckResult, CompileResult, Executor, check, compile, compile_perf, load_hbm
from hbdk_sim.calibration import calibrate
from hbdk_sim.ir import ModuleSummary, load, save, summarize
from hbdk_sim.march import list_marches, load_march
from hbdk_sim.perf_report import LayerPerf, PerfReport

__all__ = [
    "CheckResult",
    "CompileResult",
    "ConstraintError",
    "Executor",
    "Function",
    "HbirError",
    "HbmError",
    "HbmModel",
    "March",
    "MarchError",
    "calibrate",
    "check",
    "compile",
    "compile_perf",
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
