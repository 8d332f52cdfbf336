"""Optimizers and learning-rate schedules a config can name. The schedules are torch.optim.lr_scheduler
classes, plus `CosineWithWarmup` (linear warmup then cosine decay, composed from LinearLR,
CosineAnnealingLR and SequentialLR).

A trainer's `lr_scheduler` entry is a SCHEDULERS config plus `interval` ("step": the schedule advances
after every optimizer step, "epoch": after every epoch). The trainer passes `optimizer` and, to a
schedule whose signature takes it, `total_steps` (the number of scheduler steps in the whole run, in
`interval` units), so `dict(type="CosineWithWarmup", warmup_steps=100, interval="step")` or
`dict(type="OneCycleLR", max_lr=0.1, interval="step")` need no step count; a schedule that takes
`steps_per_epoch` gets it too (`CosineWithWarmup(warmup_epochs=2)`).

An optimizer config may split the parameters into groups by name: `param_groups` maps a substring
of the parameter name to the options of its group, matched in the given order (the first match
wins); the parameters no substring matches form the last group, with the config's own options.
`dict(type="SGD", lr=0.14, momentum=0.937, param_groups={"weight": dict(weight_decay=4e-5)})`
decays every weight (BatchNorm's included) and no bias.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from hbdk_sim.errors import ConfigError, UsageError, UsageTypeError
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
                     warmup_start_factor: float = 1e-3, eta_min: float = 0.0, warmup_epochs: float = 0.0,
                     steps_per_epoch: int = 1) -> lr_scheduler.LRScheduler:
    """Linear warmup from `warmup_start_factor * lr` to `lr` over `warmup_steps` (or `warmup_epochs`
    epochs of `steps_per_epoch` scheduler steps), then cosine decay to `eta_min` at `total_steps`."""
    if warmup_epochs:
        if warmup_steps:
            raise UsageError("CosineWithWarmup: give warmup_steps or warmup_epochs, not both")
        warmup_steps = round(warmup_epochs * steps_per_epoch)
        if warmup_epochs > 0 and warmup_steps == 0:
            raise UsageError(f"CosineWithWarmup: warmup_epochs={warmup_epochs} is less than one scheduler step "
                             f"({steps_per_epoch} per epoch); give whole epochs or schedule per step "
                             "(interval='step')")
    if not 0 <= warmup_steps < total_steps:
        raise UsageError(f"CosineWithWarmup: warmup_steps={warmup_steps} must be in [0, total_steps={total_steps})"
                         + (f" ({warmup_epochs} warm-up epochs of {steps_per_epoch} steps)" if warmup_epochs else ""))
    cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps, eta_min=eta_min)
    if warmup_steps == 0:
        return cosine
    warmup = lr_scheduler.LinearLR(optimizer, start_factor=warmup_start_factor, end_factor=1.0,
                                   total_iters=warmup_steps)
    return lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_steps])


def _grouped(groups: Mapping[str, Any], named: Iterable[tuple[str, nn.Parameter]]) -> list[dict[str, Any]]:
    if not isinstance(groups, Mapping) or not all(isinstance(k, str) and isinstance(v, Mapping)
                                                  for k, v in groups.items()):
        raise ConfigError("optimizer param_groups must map a name substring to a dict of options, e.g. "
                          "{'weight': {'weight_decay': 4e-5}}")
    members: dict[str, list[nn.Parameter]] = {key: [] for key in groups}
    others: list[nn.Parameter] = []
    for name, p in named:
        if not p.requires_grad:
            continue
        key = next((key for key in groups if key in name), None)
        (others if key is None else members[key]).append(p)
    out = [dict(params=members[key], **groups[key]) for key in groups if members[key]]
    return out + ([dict(params=others)] if others else [])


def build_optimizer(cfg: Mapping[str, Any] | torch.optim.Optimizer,
                    params: nn.Module | Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """An optimizer from an OPTIMIZERS config (`dict(type="SGD", lr=0.1, momentum=0.9)`) over the
    trainable parameters of `params` (a module, or the parameters themselves); `param_groups` in the
    config (a module needed) splits them by name. An optimizer object is returned as is."""
    if isinstance(cfg, torch.optim.Optimizer):
        return cfg
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"optimizer must be a config dict with 'type' or a torch optimizer, not {type(cfg).__name__}")
    cfg = dict(cfg)
    groups = cfg.pop("param_groups", None)
    if groups is not None:
        if not isinstance(params, nn.Module):
            raise UsageTypeError("build_optimizer: param_groups select parameters by name; pass the module")
        return build_from_cfg(cfg, OPTIMIZERS, params=_grouped(groups, params.named_parameters()))
    plain = params.parameters() if isinstance(params, nn.Module) else params
    return build_from_cfg(cfg, OPTIMIZERS, params=[p for p in plain if p.requires_grad])


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
    accepted = inspect.signature(factory).parameters
    per_epoch = steps_per_epoch if interval == "step" else 1
    if "total_steps" in accepted and "total_steps" not in cfg:
        defaults["total_steps"] = num_epochs * per_epoch
    if "steps_per_epoch" in accepted and "steps_per_epoch" not in cfg:
        defaults["steps_per_epoch"] = per_epoch
    return build_from_cfg(cfg, SCHEDULERS, **defaults), interval
