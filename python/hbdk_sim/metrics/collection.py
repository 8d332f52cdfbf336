"""Several metrics evaluated as one: what a config names when a task reports more than one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from hbdk_sim.errors import UsageError
from hbdk_sim.registry import METRICS, build_from_cfg


@METRICS.register
class MetricCollection:
    """`metrics`: metric objects or METRICS configs. `update` feeds each, `compute` merges their
    result dicts (a key given by two metrics is an error), `reset` resets each; the summable
    states of all of them reduce across ranks together."""

    def __init__(self, metrics: Sequence[Any | Mapping]) -> None:
        self.metrics = [build_from_cfg(m, METRICS) for m in metrics]
        if not self.metrics:
            raise UsageError("MetricCollection: give at least one metric")
        states = []
        for i, m in enumerate(self.metrics):
            for name in getattr(m, "sum_states", None) or ():
                # Exposed as attributes of the collection so reduce_metric finds them.
                setattr(self, f"_m{i}_{name}", getattr(m, name))
                states.append(f"_m{i}_{name}")
        if all(getattr(m, "sum_states", None) is not None for m in self.metrics):
            self.sum_states = tuple(states)

    def reset(self) -> None:
        for m in self.metrics:
            if hasattr(m, "reset"):
                m.reset()

    def update(self, preds, labels) -> None:
        for m in self.metrics:
            m.update(preds, labels)

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in self.metrics:
            result = m.compute()
            result = result if isinstance(result, dict) else {type(m).__name__: result}
            twice = sorted(set(out) & set(result))
            if twice:
                raise UsageError(f"MetricCollection: two metrics report {', '.join(twice)}")
            out.update({k: (v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v)
                        for k, v in result.items()})
        return out
