"""Whether a run fits in this machine's memory, judged before anything of its size is allocated: the
board graphs' activations are counted on torch's meta device and compared with the free memory.
The stages check a batch of their data loader, the deployment tools the board input."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from hbdk_sim.errors import ConfigError, UsageError
from hbdk_sim.nn.structures.base import TaskModel
from hbdk_sim.registry import MODELS, build_from_cfg


def available_memory_bytes() -> int:
    """Memory this process can still allocate: MemAvailable of /proc/meminfo, else physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def activation_bytes(cfg: Mapping, shape: Sequence[int]) -> int:
    """The float32 bytes of every input and activation the board graphs of the config's task model
    compute when the primary input has `shape`, counted on the meta device (no memory is
    allocated): what tracing and calibration hold at least."""
    with torch.device("meta"):
        model = build_from_cfg(cfg["model"], MODELS).eval()
    if not isinstance(model, TaskModel):
        raise ConfigError(f"the config's model is a {type(model).__name__}, not a task model "
                          "(hbdk_sim.nn.structures.TaskModel) whose board graphs the tools deploy")
    total = 0

    def count(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        nonlocal total
        for t in output if isinstance(output, list | tuple) else [output]:
            if isinstance(t, torch.Tensor):
                total += t.numel() * 4

    for graph in model.board_graphs(list(shape)):
        hooks = [m.register_forward_hook(count) for m in graph.module.modules() if not list(m.children())]
        inputs = [torch.empty(x.shape, dtype=x.torch_dtype, device="meta") for x in graph.inputs]
        try:
            with torch.no_grad():
                graph.module(*inputs)
        except RuntimeError as e:  # shapes that do not line up (a size that is no multiple of the stride)
            stride = getattr(model, "max_stride", None)
            hint = f"; H and W must be multiples of the network's stride {stride}" if stride else ""
            raise UsageError(f"input shape {list(shape)}: board graph {graph.name!r} does not run on it "
                             f"({str(e).splitlines()[0]}){hint}") from None
        finally:
            for h in hooks:
                h.remove()
        total += sum(math.prod(x.shape) * 4 for x in graph.inputs)
    return total


def check_fits_memory(cfg: Mapping, shape: Sequence[int], what: str = "deploy_input_shape") -> None:
    """Refuse an input size whose activations alone exceed this machine's free memory, before any
    tensor of that size is allocated (a UsageError naming the size and the fix)."""
    need, have = activation_bytes(cfg, shape), available_memory_bytes()
    if need > have:
        raise UsageError(f"{what} {list(shape)}: the network's activations take {need / 1e9:,.1f} GB at that size "
                         f"(counted without allocating), more than the {have / 1e9:.1f} GB this machine has free; "
                         "use a smaller image_size (or --input-shape)")
