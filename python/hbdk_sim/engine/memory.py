"""Whether a run fits in this machine's memory, judged before anything of its size is allocated: the
deploy network's activations are counted on torch's meta device and compared with the free memory.
The stages check a batch of their data loader, the deployment tools the board input."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from hbdk_sim.errors import UsageError
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
    """The float32 bytes of every activation the deploy network computes on an input of `shape`,
    counted on the meta device (no memory is allocated): what tracing and calibration hold at least."""
    with torch.device("meta"):
        network = build_from_cfg(cfg["deploy_model"], MODELS).eval()
    total = 0

    def count(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        nonlocal total
        for t in output if isinstance(output, list | tuple) else [output]:
            if isinstance(t, torch.Tensor):
                total += t.numel() * 4

    hooks = [m.register_forward_hook(count) for m in network.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            network(torch.empty(list(shape), device="meta"))
    except RuntimeError as e:  # shapes that do not line up (a size that is no multiple of the stride)
        stride = getattr(network, "max_stride", None)
        hint = f"; H and W must be multiples of the network's stride {stride}" if stride else ""
        raise UsageError(f"input shape {list(shape)}: the deploy network does not run on it "
                         f"({str(e).splitlines()[0]}){hint}") from None
    finally:
        for h in hooks:
            h.remove()
    return total + math.prod(shape) * 4


def check_fits_memory(cfg: Mapping, shape: Sequence[int], what: str = "deploy_input_shape") -> None:
    """Refuse an input size whose activations alone exceed this machine's free memory, before any
    tensor of that size is allocated (a UsageError naming the size and the fix)."""
    need, have = activation_bytes(cfg, shape), available_memory_bytes()
    if need > have:
        raise UsageError(f"{what} {list(shape)}: the network's activations take {need / 1e9:,.1f} GB at that size "
                         f"(counted without allocating), more than the {have / 1e9:.1f} GB this machine has free; "
                         "use a smaller image_size (or --input-shape)")
