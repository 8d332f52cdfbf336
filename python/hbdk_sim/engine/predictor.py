"""The predictor: a model over a data loader in eval mode under no_grad, feeding a metric. The tools
use it for every `predict --stage` (float, calibration, qat, int_infer: the stage only decides
which model is passed in); Validation uses it during training.

A metric has `update(preds, batch)` (the batch as prepared on the device) and `compute()` returning
a number or a dict of numbers, optionally `reset()`, and under several ranks `sum_states` (see
distributed.reduce_metric).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from hbdk_sim.engine.batch_processor import BATCH_PROCESSORS, BatchProcessor, num_batches
from hbdk_sim.engine.distributed import default_device, get_rank, reduce_metric
from hbdk_sim.errors import UsageTypeError
from hbdk_sim.registry import METRICS, TRAINERS, build_from_cfg


@TRAINERS.register
class Predictor:
    """Config keys (a `float_predictor`-like entry, `type="Predictor"`; the tool passes the model):
      data_loader: the batches.
      metric: a metric object or METRICS config; None: `run` returns {} (use `predictions()`).
      batch_processor: BatchProcessor (config) whose transforms prepare each batch on the device.
      device: as for Trainer (default cuda:LOCAL_RANK or CPU); the model is moved there.
      max_steps: at most this many batches.
      progress_bar: a tqdm bar on rank 0 (True).
      metric_name: the key for a metric whose compute() returns a single number ("metric").
    """

    def __init__(self, model: nn.Module, data_loader: Iterable, metric: Any = None, batch_processor: Any = None,
                 device: str | torch.device | None = None, max_steps: int | None = None, progress_bar: bool = True,
                 metric_name: str = "metric") -> None:
        if not isinstance(model, nn.Module):
            raise UsageTypeError(f"Predictor model must be an nn.Module, got {type(model).__name__}")
        self.device = torch.device(device) if device is not None else default_device()
        self.model = model.to(self.device)
        self.data_loader = data_loader
        self.metric = build_from_cfg(metric, METRICS)
        if self.metric is not None and not (hasattr(self.metric, "update") and hasattr(self.metric, "compute")):
            raise UsageTypeError(f"Predictor metric {type(self.metric).__name__} needs update(preds, batch) and "
                                 "compute()")
        self.batch_processor = build_from_cfg(batch_processor, BATCH_PROCESSORS) if batch_processor \
            else BatchProcessor()
        self.max_steps = max_steps
        self.progress_bar = progress_bar
        self.metric_name = metric_name

    def predictions(self) -> Iterator[tuple[Any, Any]]:
        """(model outputs, prepared batch) for each batch, in eval mode under no_grad; the model's
        train/eval mode is restored afterwards."""
        was_training = self.model.training
        self.model.eval()
        bar = None
        if self.progress_bar and get_rank() == 0:
            from tqdm import tqdm

            bar = tqdm(total=num_batches(self.data_loader, self.max_steps), desc="predict", dynamic_ncols=True,
                       leave=False)
        try:
            with torch.no_grad():
                for i, batch in enumerate(self.data_loader):
                    if self.max_steps is not None and i >= self.max_steps:
                        break
                    batch = self.batch_processor.prepare(batch, self.device)
                    yield self.model(batch), batch
                    if bar is not None:
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            self.model.train(was_training)

    def run(self) -> dict[str, float]:
        """Feed every batch's predictions to the metric, sum its state over the ranks, and return
        compute() as a dict."""
        if self.metric is None:
            for _ in self.predictions():
                pass
            return {}
        if hasattr(self.metric, "reset"):
            self.metric.reset()
        for preds, batch in self.predictions():
            self.metric.update(preds, batch)
        reduce_metric(self.metric)
        return metric_results(self.metric, self.metric_name)


def metric_results(metric: Any, name: str = "metric") -> dict[str, Any]:
    """`metric.compute()` as a dict (a single number under `name`) of plain numbers and lists: results
    go into checkpoints (loaded with weights_only) and JSON."""
    result = metric.compute()
    if isinstance(result, dict):
        return {str(k): _plain(v) for k, v in result.items()}
    return {name: _plain(result)}


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    return value
