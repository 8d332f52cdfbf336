"""The training engine: `Trainer` runs epochs of batches through a `BatchProcessor` (device transfer,
batched on-device transforms, loss, backward, gradient clipping, optimizer step) and calls its
callbacks around every step and epoch. The same engine drives a config's `float_trainer`,
`qat_trainer` and `calibration_trainer` entries; `optimizer=None` makes it forward-only
(calibration: the model runs in eval mode under no_grad while observers record).

    trainer = build_trainer(cfg.float_trainer, model=model, data_loader=loader, config=cfg)
    trainer.fit()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from hbdk_sim.checkpoints import fit_state_dict
from hbdk_sim.engine.batch_processor import BATCH_PROCESSORS, BatchProcessor, num_batches
from hbdk_sim.engine.callbacks import Callback, build_callbacks
from hbdk_sim.engine.distributed import default_device, get_rank, get_world_size, unwrap_model, wrap_model
from hbdk_sim.engine.schedulers import build_optimizer, build_scheduler
from hbdk_sim.errors import CheckpointError, UsageError, UsageTypeError
from hbdk_sim.registry import TRAINERS, build_from_cfg

CHECKPOINT_FORMAT = "hbdk_sim.checkpoint"
CHECKPOINT_VERSION = 1


@TRAINERS.register
class Trainer:
    """Runs `num_epochs` epochs over `data_loader`, one BatchProcessor step per batch.

    Config keys (a `float_trainer` / `qat_trainer` / `calibration_trainer` entry, `type="Trainer"`;
    the model and data loader are usually passed by the tool at build time):
      model: the nn.Module (moved to `device`; wrapped in DistributedDataParallel under several ranks).
      data_loader: an iterable of batches; its sampler and dataset get the epoch number through
        their `set_epoch`, when they have one.
      optimizer: an OPTIMIZERS config (dict(type="SGD", lr=0.1, momentum=0.9, weight_decay=4e-5)),
        built over the model's trainable parameters, or an optimizer object; None = forward only.
      lr_scheduler: a SCHEDULERS config plus `interval` ("step" or "epoch", default "epoch"),
        e.g. dict(type="CosineWithWarmup", warmup_steps=50, interval="step"); see schedulers.py.
      batch_processor: a BatchProcessor (config) — transforms on the device, grad_clip.
      num_epochs: epochs to run (a resumed run continues up to this number).
      steps_per_epoch: at most this many batches per epoch (calibration: the number of batches).
      callbacks: Callback objects or CALLBACKS configs (Checkpoint, Validation, EMA, Logger, ...).
      device: "cpu", "cuda", "cuda:1" ...; default cuda:LOCAL_RANK when a GPU exists, else the CPU.
      model_mode: "train" or "eval" during the epochs; default "train" with an optimizer, "eval"
        without (calibration).
      find_unused_parameters, sync_bn: passed to DistributedDataParallel wrapping (sync_bn default:
        on CUDA only).
      config: the whole resolved Config of the run; Checkpoint saves it beside the checkpoints.

    State the callbacks read and write: `epoch` (0-based, current), `start_epoch`, `global_step`
    (batches done over the run), `metrics` (latest validation results), `ema_model`,
    `stop_training`, `last_output` (the batch processor's result for the latest step).
    """

    def __init__(self, model: nn.Module, data_loader: Iterable,
                 optimizer: Mapping | torch.optim.Optimizer | None = None,
                 batch_processor: BatchProcessor | Callable | None = None, num_epochs: int = 1,
                 callbacks: Sequence[Any] = (), device: str | torch.device | None = None,
                 lr_scheduler: Mapping | torch.optim.lr_scheduler.LRScheduler | None = None,
                 lr_interval: str = "epoch", steps_per_epoch: int | None = None, model_mode: str | None = None,
                 find_unused_parameters: bool = False, sync_bn: bool | None = None, config: Any = None) -> None:
        if not isinstance(model, nn.Module):
            raise UsageTypeError(f"Trainer model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(num_epochs, int) or num_epochs < 1:
            raise UsageError(f"Trainer num_epochs must be a positive integer, got {num_epochs!r}")
        self.device = torch.device(device) if device is not None else default_device()
        self.unwrapped_model = model.to(self.device)
        self.data_loader = data_loader
        self.num_epochs = num_epochs
        self.steps_per_epoch = num_batches(data_loader, steps_per_epoch)
        self.optimizer = build_optimizer(optimizer, model) if optimizer is not None else None
        self.lr_scheduler = None
        self.lr_interval = lr_interval
        if lr_scheduler is not None:
            if self.optimizer is None:
                raise UsageError("Trainer: lr_scheduler needs an optimizer (this trainer is forward-only)")
            if isinstance(lr_scheduler, Mapping):
                if self.steps_per_epoch is None and lr_scheduler.get("interval") == "step":
                    raise UsageError("Trainer: a per-step lr_scheduler needs steps_per_epoch when the data loader "
                                     "has no length")
                self.lr_scheduler, self.lr_interval = build_scheduler(
                    lr_scheduler, self.optimizer, steps_per_epoch=self.steps_per_epoch or 0,
                    num_epochs=num_epochs)
            else:
                self.lr_scheduler = lr_scheduler
        if self.lr_interval not in ("step", "epoch"):
            raise UsageError(f"Trainer lr_interval must be 'step' or 'epoch', got {self.lr_interval!r}")
        self.model_mode = model_mode or ("train" if self.optimizer is not None else "eval")
        if self.model_mode not in ("train", "eval"):
            raise UsageError(f"Trainer model_mode must be 'train' or 'eval', got {self.model_mode!r}")
        self.batch_processor = (build_from_cfg(batch_processor, BATCH_PROCESSORS) if batch_processor
                                else BatchProcessor())
        if getattr(self.batch_processor, "channels_last", False):
            self.unwrapped_model.to(memory_format=torch.channels_last)
        # Forward-only runs need no gradient synchronisation, so only training is wrapped in DDP.
        self.model = (wrap_model(self.unwrapped_model, self.device, find_unused_parameters=find_unused_parameters,
                                 sync_bn=sync_bn) if self.optimizer is not None else self.unwrapped_model)
        self.callbacks: list[Callback] = build_callbacks(callbacks)
        self.config = config
        self.rank = get_rank()
        self.world_size = get_world_size()
        self.epoch = 0
        self.start_epoch = 0
        self.global_step = 0
        self.metrics: dict[str, float] = {}
        self.metrics_epoch: int | None = None  # the epoch whose end last set `metrics` (Validation)
        self.ema_model: nn.Module | None = None
        self.stop_training = False
        self.last_output: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def lr(self) -> float | None:
        return self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else None

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def fit(self) -> Trainer:
        """Run the remaining epochs (all of them, or those after a resumed checkpoint)."""
        self._call("setup")
        self._call("on_train_begin")
        for epoch in range(self.start_epoch, self.num_epochs):
            if self.stop_training:
                break
            self.epoch = epoch
            self._run_epoch()
        self._call("on_train_end")
        return self

    def _run_epoch(self) -> None:
        # Samplers (the shuffle order) and datasets (e.g. ClipDataset's clip length) that change with
        # the epoch; DataLoader workers copy the dataset when the epoch's iteration starts.
        for part in (getattr(self.data_loader, "sampler", None), getattr(self.data_loader, "dataset", None)):
            if hasattr(part, "set_epoch"):
                part.set_epoch(self.epoch)
        self.model.train(self.model_mode == "train")
        self._call("on_epoch_begin")
        for i, batch in enumerate(self.data_loader):
            if self.steps_per_epoch is not None and i >= self.steps_per_epoch:
                break
            self._call("on_step_begin", batch)
            self.last_output = self.batch_processor(self.model, batch, self.device, self.optimizer)
            self.global_step += 1
            if self.lr_scheduler is not None and self.lr_interval == "step":
                self.lr_scheduler.step()
            self._call("on_step_end", batch, self.last_output)
            if self.stop_training:
                break
        if self.lr_scheduler is not None and self.lr_interval == "epoch":
            self.lr_scheduler.step()
        self._call("on_epoch_end")

    def state_dict(self) -> dict[str, Any]:
        """The resumable state after the current epoch: plain tensors, numbers and containers, so
        the checkpoint loads with torch.load(weights_only=True)."""
        state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "epoch": self.epoch + 1,
            "global_step": self.global_step,
            "model": unwrap_model(self.model).state_dict(),
        }
        if self.optimizer is not None:
            state["optimizer"] = self.optimizer.state_dict()
        if self.lr_scheduler is not None:
            state["lr_scheduler"] = self.lr_scheduler.state_dict()
        if self.ema_model is not None:
            state["ema"] = self.ema_model.state_dict()
        state["metrics"] = dict(self.metrics)
        return state

    def load_state_dict(self, state: Mapping[str, Any], source: str = "checkpoint") -> None:
        """Restore what `state_dict` saved; training continues at epoch `state["epoch"]`."""
        if not isinstance(state, Mapping) or state.get("format") != CHECKPOINT_FORMAT:
            found = f"a {type(state).__name__}" if not isinstance(state, Mapping) else "no format entry"
            raise CheckpointError(f"{source} is not an hbdk_sim checkpoint (expected a dict with format="
                                  f"{CHECKPOINT_FORMAT!r}, found {found}); resume from a last.pt the Checkpoint "
                                  "callback wrote")
        fit_state_dict(unwrap_model(self.model), state.get("model"), f"{source} (model)")
        for key, obj in (("optimizer", self.optimizer), ("lr_scheduler", self.lr_scheduler)):
            if obj is None:
                continue
            if key not in state:
                raise CheckpointError(f"{source} holds no {key} state, so training cannot resume from it; start a "
                                      "new run and load its weights with hbdk_sim.engine.load_weights instead")
            obj.load_state_dict(state[key])
        if self.ema_model is not None:
            if "ema" not in state:
                raise CheckpointError(f"{source} holds no EMA weights but this run uses EMA; resume without EMA or "
                                      "start a new run")
            self.ema_model.load_state_dict(state["ema"])
        self.start_epoch = int(state["epoch"])
        self.epoch = self.start_epoch
        self.global_step = int(state["global_step"])
        self.metrics = dict(state.get("metrics", {}))


def build_trainer(cfg: Mapping[str, Any], **runtime: Any) -> Any:
    """Build a `float_trainer` / `calibration_trainer` / `qat_trainer` / predictor config entry
    (default type: Trainer). `runtime` supplies what the config does not hold (model, data_loader,
    metric, config, ...); the optimizer and lr_scheduler configs are handed to the trainer unbuilt,
    since they need the model's parameters and the optimizer."""
    cfg = dict(cfg)
    cfg.setdefault("type", "Trainer")
    lazy = {key: cfg.pop(key) for key in ("optimizer", "lr_scheduler") if key in cfg}
    return build_from_cfg(cfg, TRAINERS, **lazy, **runtime)
