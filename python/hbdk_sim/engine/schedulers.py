"""Optimizers and learning-rate schedules a config can name. The schedules are torch.optim.lr_scheduler
classes, plus `CosineWithWarmup` (linear warmup then cosine decay, composed from LinearLR,
CosineAnnealingLR and SequentialLR).

A trainer's `lr_scheduler` entry is a SCHEDULERS config plus `interval` ("step": the schedule advances
after every optimizer step, "epoch": after every epoch). The trainer passes `optimizer` and, to a
schedule whose signature takes it, `total_steps` (the number of scheduler steps in the whole run, in
`interval` units), so `dict(type="CosineWithWarmup", warmup_steps=100, interval="step")` or
`dict(type="OneCycleLR", max_lr=0.1, interval="step")` need no step count.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch.optim import lr_scheduler

from hbdk_sim.errors import ConfigError, UsageError
from hbdk_sim.registry import OPTIMIZERS, SCHEDULERS, build_from_cfg

for _cls in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop):
    OPTIMIZERS.register(_cls)

for _cls in (lr_scheduler.StepLR, lr_scheduler.MultiStepLR, lr_scheduler.ExponentialLR, lr_scheduler.LinearLR,
             lr_scheduler.ConstantLR, lr_scheduler.CosineAnnealingLR, lr_scheduler.CosineAnnealingWarmRestarts,
             lr_scheduler.CyclicLR, lr_scheduler.OneCycleLR, lr_scheduler.PolynomialLR):
    SCHEDULERS.register(_cls)

INTERVALS = ("step", "epoch")


@SCHEDULERS.register
def CosineWithWarmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                     warmup_start_factor: float = 1e-3, eta_min: float = 0.0) -> lr_scheduler.LRScheduler:
    """Linear warmup from `warmup_start_factor * lr` to `lr` over `warmup_steps`, then cosine decay
    to `eta_min` at `total_steps`."""
    if not 0 <= warmup_steps < total_steps:
        raise UsageError(f"CosineWithWarmup: warmup_steps={warmup_steps} must be in [0, total_steps={total_steps})")
    cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps, eta_min=eta_min)
    if warmup_steps == 0:
        return cosine
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=warmup_start_factor, end_factor=1.0,
                                   total_iters=warmup_steps)
    return lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def build_optimizer(cfg: Mapping[str, Any] | torch.optim.Optimizer, params: Iterable[torch.nn.Parameter]
                    ) -> torch.optim.Optimizer:
    """An optimizer from an OPTIMIZERS config (`dict(type="SGD", lr=0.1, momentum=0.9)`) over
    `params`; an optimizer object is returned as is."""
    if isinstance(cfg, torch.optim.Optimizer):
        return cfg
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"optimizer must be a config dict with 'type' or a torch optimizer, not {type(cfg).__name__}")
    return build_from_cfg(cfg, OPTIMIZERS, params=[p for p in params if p.requires_grad])


def build_scheduler(cfg: Mapping[str, Any], optimizer: torch.optim.Optimizer, *, steps_per_epoch: int,
                    num_epochs: int) -> tuple[lr_scheduler.LRScheduler, str]:
    """The schedule `cfg` describes and its interval ("step" or "epoch")."""
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise ConfigError(f"lr_scheduler must be a config dict with 'type' (and optional interval), got {cfg!r}")
    cfg = dict(cfg)
    interval = cfg.pop("interval", "epoch")
    if interval not in INTERVALS:
        raise ConfigError(f"lr_scheduler interval must be one of {INTERVALS}, got {interval!r}")
    kind = cfg["type"]
    factory = SCHEDULERS.get(kind) if isinstance(kind, str) else kind
    defaults: dict[str, Any] = {"optimizer": optimizer}
    if "total_steps" in inspect.signature(factory).parameters and "total_steps" not in cfg:
        defaults["total_steps"] = num_epochs * (steps_per_epoch if interval == "step" else 1)
    return build_from_cfg(cfg, SCHEDULERS, **defaults), interval
