"""The PyTorch front end: turn a float `torch.nn.Module` into an HBIR module.

Imported on its own (`from hbdk_sim.frontend import trace_float`) so that `import hbdk_sim` never
pulls in torch.
"""

from hbdk_sim.frontend.torch_tracer import UnsupportedOpError, trace_float, trace_quant

__all__ = ["UnsupportedOpError", "trace_float", "trace_quant"]
