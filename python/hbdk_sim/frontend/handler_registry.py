"""The registry the tracer's handlers live in: one handler per torch module class, function or
Tensor method, each with the HBIR ops it emits, and the argument helpers they share. torch_ops.py
(compute: convolutions, linear layers, activations, normalization, pooling, arithmetic) and
torch_shape_ops.py (indexing, reshaping, splitting, reductions) register into it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F  # noqa: N812 - the conventional name

# A handler's first argument: the tracer's graph builder (torch_tracer._Builder: emit, value, shape,
# error, ...). Not imported: the tracer imports the handlers.
Builder = Any


@dataclass(frozen=True)
class Handler:
    """Maps one torch target: `fn(builder, node[, module])` returns the HBIR value (or values) of
    the node; `emits` are the HBIR ops it may create besides constants (none: it passes a value
    through or only records a quantization scale)."""

    fn: Callable
    emits: tuple[str, ...]
    target: str


MODULE_HANDLERS: dict[type, Handler] = {}
FUNCTION_HANDLERS: dict[object, Handler] = {}


def target_name(t: object) -> str:
    """How messages and the coverage matrix name a torch target: nn.Conv2d, F.conv2d, Tensor.view."""
    if isinstance(t, tuple) and t[:1] == ("method",):
        return f"Tensor.{t[1]}"
    if isinstance(t, type):
        if t.__module__.startswith("torch.nn"):
            return f"nn.{t.__name__}"
        return t.__name__
    short = getattr(t, "__name__", None) or str(t)
    for namespace, prefix in ((F, "F."), (torch, "torch."), (operator, "operator.")):
        if getattr(namespace, short, None) is t:
            return prefix + short
    return short


def register_modules(rows: Iterable[tuple[tuple[type, ...], Callable, tuple[str, ...]]]) -> None:
    for classes, fn, emits in rows:
        for cls in classes:
            MODULE_HANDLERS[cls] = Handler(fn, emits, target_name(cls))


def register_functions(rows: Iterable[tuple[tuple[object, ...], Callable, tuple[str, ...]]]) -> None:
    for targets, fn, emits in rows:
        for t in targets:
            FUNCTION_HANDLERS[t] = Handler(fn, emits, target_name(t))


def method(name: str) -> tuple[str, str]:
    return ("method", name)


def handler_for(node: fx.Node, modules: dict[str, nn.Module]) -> Handler | None:
    """The handler of an fx call node: for a module, the first class of its MRO with an entry; for
    a function or Tensor method, its registry entry. None when nothing maps it."""
    if node.op == "call_module":
        return next((MODULE_HANDLERS[c] for c in type(modules[node.target]).__mro__ if c in MODULE_HANDLERS), None)
    key = ("method", node.target) if node.op == "call_method" else node.target
    try:
        return FUNCTION_HANDLERS.get(key)
    except TypeError:  # an unhashable target is no registry key
        return None


# -- argument helpers ------------------------------------------------------------------------------


def pair(v) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(x) for x in v]


def arg(node: fx.Node, i: int, name: str, default=None):
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def is_tensor_like(v) -> bool:
    return isinstance(v, torch.Tensor) or (
        isinstance(v, (tuple, list)) and any(isinstance(x, torch.Tensor) for x in v))
