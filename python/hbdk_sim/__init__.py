"""hbdk-sim: from PyTorch perception models to a bit-exact, cycle-estimated NPU binary.

The C++ core lives in ``hbdk_sim._core``; this package re-exports its IR classes and adds the
file-level helpers and the ``hbdk-sim`` command line.
"""

from hbdk_sim._core import (
    Function,
    HbirError,
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
from hbdk_sim.ir import ModuleSummary, load, save, summarize

__all__ = [
    "Function",
    "HbirError",
    "Module",
    "ModuleSummary",
    "Op",
    "ParseError",
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
