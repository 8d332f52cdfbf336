"""The integer ops of docs/numerics.md as torch modules, one class per HBIR op kind, for the
quantized torch model (int_model.IntModel): the shared builder vocabulary in base.py, the ops by
family in compute.py, movement.py and spatial.py, each family's OPS table next to its classes.
"""

from hbdk_sim.quantization.int_ops.base import (
    TORCH_DTYPES,
    IntOp,
    OpInfo,
    ValueInfo,
    apply_requant,
    sat_round,
    saturate,
)
from hbdk_sim.quantization.int_ops.compute import OPS as _COMPUTE
from hbdk_sim.quantization.int_ops.compute import Constant
from hbdk_sim.quantization.int_ops.movement import OPS as _MOVEMENT
from hbdk_sim.quantization.int_ops.spatial import OPS as _SPATIAL

# HBIR op name -> its module class: every op int_infer runs.
OP_MODULES: dict[str, type[IntOp]] = {**_COMPUTE, **_MOVEMENT, **_SPATIAL}
SUPPORTED_OPS = tuple(OP_MODULES)

__all__ = ["OP_MODULES", "SUPPORTED_OPS", "TORCH_DTYPES", "Constant", "IntOp", "OpInfo", "ValueInfo",
           "apply_requant", "sat_round", "saturate"]
