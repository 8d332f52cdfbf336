"""calops: how much work a model is, per layer. The model is traced to HBIR (or given as HBIR) and
every op is charged to its layer, the op's `loc` (for a traced torch model, the module path), with the
MACs the core computes for it (`op.macs`) and the elements of the constants it reads.

    report = hbdk_sim.calops(model, (1, 3, 224, 224))
    print(report.to_table())      # per layer: ops, MACs, parameters; totals: MACs, GMACs, FLOPs, params

FLOPs are counted as 2 x MACs (a multiply and an add per MAC); element-wise ops cost no MACs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hbdk_sim import _core
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.frontend.torch_tracer import trace_float
from hbdk_sim.ir import load

JSON_FORMAT = "hbdk-sim.calops"
JSON_VERSION = 1

Shape = Sequence[int]


@dataclass
class LayerOps:
    """One layer: the HBIR ops with this location, in graph order."""

    layer: str
    ops: list[str] = field(default_factory=list)
    macs: int = 0
    params: int = 0
    output_shape: list[int] = field(default_factory=list)  # of the layer's last op

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "ops": list(self.ops), "macs": self.macs, "flops": self.flops,
                "params": self.params, "output_shape": list(self.output_shape)}


@dataclass
class OpsReport:
    """Per-layer MACs and parameters of one model, in graph order, and their totals."""

    model: str
    input_shapes: list[list[int]]
    layers: list[LayerOps] = field(default_factory=list)

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def gmacs(self) -> float:
        return self.total_macs / 1e9

    @property
    def flops(self) -> int:
        return 2 * self.total_macs

    def to_dict(self) -> dict[str, Any]:
        return {"format": JSON_FORMAT, "version": JSON_VERSION, "model": self.model,
                "input_shapes": [list(s) for s in self.input_shapes],
                "totals": {"macs": self.total_macs, "gmacs": self.gmacs, "flops": self.flops,
                           "params": self.total_params},
                "layers": [layer.to_dict() for layer in self.layers]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent) + "\n"

    def to_table(self) -> str:
        shapes = ", ".join("x".join(str(d) for d in s) for s in self.input_shapes)
        head = ["layer", "ops", "output", "MACs", "params", "share"]
        total = self.total_macs or 1
        rows = [[layer.layer, ", ".join(_dedup(layer.ops)), "x".join(str(d) for d in layer.output_shape),
                 f"{layer.macs:,}", f"{layer.params:,}", f"{100 * layer.macs / total:.1f}%"]
                for layer in self.layers]
        widths = [max([len(h)] + [len(r[j]) for r in rows]) for j, h in enumerate(head)]
        right = {3, 4, 5}

        def line(cells: list[str]) -> str:
            return "  " + "  ".join(f"{c:>{w}}" if j in right else f"{c:<{w}}"
                                    for j, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

        body = [line(r) for r in rows]
        rule = "  " + "-" * (sum(widths) + 2 * (len(widths) - 1))
        return "\n".join([
            f"calops  {self.model}  input {shapes}",
            f"  MACs {self.total_macs:,} ({self.gmacs:.4f} GMACs)   FLOPs {self.flops:,}   "
            f"params {self.total_params:,}",
            "", line(head), rule, *(body or ["  (no layers)"]), rule,
            line(["total", "", "", f"{self.total_macs:,}", f"{self.total_params:,}", "100.0%"])])


def _dedup(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _input_shapes(input_shape: Shape | Sequence[Shape]) -> list[list[int]]:
    """One shape `(1, 3, 224, 224)` or several `[(1, 3, 64, 64), (1, 8)]`."""
    shape_list = list(input_shape) if isinstance(input_shape, (list, tuple, torch.Size)) else None
    if shape_list and all(isinstance(d, int) and not isinstance(d, bool) for d in shape_list):
        shapes = [shape_list]
    elif shape_list and all(isinstance(s, (list, tuple, torch.Size)) for s in shape_list):
        shapes = [list(s) for s in shape_list]
    else:
        raise UsageTypeError(f"calops: expected input_shape as a tuple of ints, e.g. (1, 3, 224, 224), or a list of "
                             f"such shapes for a model with several inputs, but got {input_shape!r}")
    for s in shapes:
        if not s or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in s):
            raise UsageError(f"calops: expected every input dimension to be a positive int but got {list(s)}")
    return shapes


def _trace(model: nn.Module, shapes: list[list[int]], name: str) -> _core.Module:
    modes = [(m, m.training) for m in model.modules()]
    try:
        return trace_float(model, tuple(torch.zeros(s) for s in shapes), name=name)
    finally:
        # trace_float puts the whole model in eval; every submodule gets its own mode back (a
        # model training with frozen BN layers stays that way).
        for m, training in modes:
            m.training = training


def calops(model: nn.Module | _core.Module | str | os.PathLike, input_shape: Shape | Sequence[Shape] | None = None,
           name: str = "model") -> OpsReport:
    """Per-layer MACs and parameters of `model`: a float `nn.Module` (traced on zeros of `input_shape`;
    its train/eval mode is restored afterwards), an HBIR Module, or an `.hbir` path (shapes from the graph).

    A layer is every op sharing a location; parameters are the elements of the constants the
    layer reads, each constant counted once. An untraceable model raises the tracer's
    UnsupportedOpError."""
    if isinstance(model, nn.Module):
        if input_shape is None:
            raise UsageTypeError("calops: a torch model needs input_shape, e.g. calops(model, (1, 3, 224, 224))")
        shapes = _input_shapes(input_shape)
        module = _trace(model, shapes, name)
    elif isinstance(model, _core.Module):
        module = model
    elif isinstance(model, (str, os.PathLike)):
        module = load(Path(model))
    else:
        raise UsageTypeError(f"calops: expected an nn.Module, an HBIR Module or an .hbir path but got "
                             f"{type(model).__name__}")
    if not isinstance(model, nn.Module):
        name = module.name
        shapes = [list(a.shape) for a in module.function("main").arguments]
    return _count(module, name, shapes)


def _count(module: _core.Module, name: str, shapes: list[list[int]]) -> OpsReport:
    layers: dict[str, LayerOps] = {}
    counted: set[tuple[str, str]] = set()
    for fn in module.functions:
        for op in fn.ops:
            if op.name == "constant":
                continue
            loc = op.loc or "<unnamed>"
            layer = layers.setdefault(loc, LayerOps(loc))
            layer.ops.append(op.name)
            layer.macs += int(op.macs)
            if op.results:
                layer.output_shape = list(op.result().shape)
            for v in op.operands:
                owner = None if v.is_argument else v.owner
                if owner is not None and owner.name == "constant" and (fn.name, v.name) not in counted:
                    counted.add((fn.name, v.name))
                    layer.params += int(v.type.numel)
    return OpsReport(model=name, input_shapes=shapes, layers=list(layers.values()))
