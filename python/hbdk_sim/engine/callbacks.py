"""Callbacks of the training engine: Checkpoint (last/best, resumable after a kill), Validation
(a Predictor plus metric every N epochs), EMA (torch.optim.swa_utils.AveragedModel) and Logger
(tqdm progress bar and a JSON-lines log on rank 0).

A callback overrides any of setup / on_train_begin / on_epoch_begin / on_step_begin / on_step_end /
on_epoch_end / on_train_end; each receives the Trainer. Within one hook, callbacks run by ascending
`priority` (EMA 10 updates before Validation 50 reads it, Validation before Checkpoint 80 monitors
its value, Logger 90 last).
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from hbdk_sim.checkpoints import fit_state_dict
from hbdk_sim.engine.distributed import all_gather_object, barrier, get_rank, unwrap_model
from hbdk_sim.engine.predictor import Predictor
from hbdk_sim.errors import CheckpointError, UsageError, UsageTypeError
from hbdk_sim.files import write_file
from hbdk_sim.registry import CALLBACKS, build_from_cfg


class Callback:
    """Base class: every hook does nothing."""

    priority = 50

    def setup(self, trainer: Any) -> None: ...

    def on_train_begin(self, trainer: Any) -> None: ...

    def on_epoch_begin(self, trainer: Any) -> None: ...

    def on_step_begin(self, trainer: Any, batch: Any) -> None: ...

    def on_step_end(self, trainer: Any, batch: Any, output: Any) -> None: ...

    def on_epoch_end(self, trainer: Any) -> None: ...

    def on_train_end(self, trainer: Any) -> None: ...


def build_callbacks(callbacks: Sequence[Any]) -> list[Callback]:
    """Callback objects from objects or CALLBACKS configs, ordered by priority (stable)."""
    built = [build_from_cfg(cb, CALLBACKS) for cb in callbacks]
    for cb in built:
        if not isinstance(cb, Callback):
            raise UsageTypeError(f"callbacks must be Callback objects or CALLBACKS configs, got {type(cb).__name__}")
    return sorted(built, key=lambda cb: cb.priority)


# -- random number generator state, as plain tensors and lists (no pickled objects) ----------------

def rng_state() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and Python RNG states of this process."""
    np_state = np.random.get_state(legacy=False)
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "python": {"version": py_version, "internal": list(py_internal), "gauss_next": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state({"bit_generator": np_state["bit_generator"],
                         "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
                         "has_gauss": np_state["has_gauss"], "gauss": np_state["gauss"]})
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike, *, overwrite: bool) -> Path:
    """torch.save `state` to `path` atomically (a crash leaves the previous file intact)."""
    buf = io.BytesIO()
    torch.save(dict(state), buf)
    return write_file(path, buf.getvalue(), overwrite=overwrite)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint written by Checkpoint, loaded with weights_only=True."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a regular file; give the path of a checkpoint (.pt)")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} cannot be loaded with weights_only=True: {e}") from e


def load_weights(model: torch.nn.Module, path: str | os.PathLike, *, use_ema: bool = False,
                 strict: bool = True) -> torch.nn.Module:
    """Load a checkpoint's model weights (or its EMA weights) into `model` (for predict/export)."""
    state = load_checkpoint(path)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint {path}: expected a dict but found a {type(state).__name__}")
    if use_ema:
        if "ema" not in state:
            raise CheckpointError(f"checkpoint {path} holds no EMA weights (train with the EMA callback, or drop "
                                  "use_ema)")
        weights = {k.removeprefix("module."): v for k, v in state["ema"].items() if k != "n_averaged"}
    else:
        weights = state["model"] if "model" in state else state
    fit_state_dict(unwrap_model(model), weights, str(path), strict=strict)
    return model


_CONFIG_MARK = "# Resolved config"


@CALLBACKS.register
class Checkpoint(Callback):
    """Saves `last.pt` after every `every_n_epochs` epochs (and the final one) and `best.pt` whenever
    the monitored metric improves, in `dir`, on rank 0. A checkpoint holds the model, optimizer and
    LR-scheduler state, epoch, global step, the RNG states of every rank (torch, CUDA, numpy,
    Python), the EMA weights and the best value so far, as plain tensors/lists/dicts: it loads with
    torch.load(weights_only=True). Files are written atomically. The run's resolved config
    (`trainer.config`) is written to `dir/config.py`.

    Config keys:
      dir: the checkpoint folder (created).
      monitor: a key of `trainer.metrics` (set by Validation) that decides best.pt; None: no best.pt.
      mode: "max" or "min" for `monitor`.
      resume: True continues from `dir/last.pt` when it exists (else starts fresh); a path resumes
        from that checkpoint. Training continues at the epoch after the saved one, with the same
        data order and random numbers as an uninterrupted run.
      overwrite: a fresh run (resume=False) refuses a folder that already holds last.pt/best.pt
        unless this is True.
      every_n_epochs: save last.pt every this many epochs (1).
    """

    priority = 80

    def __init__(self, dir: str | os.PathLike, monitor: str | None = None, mode: str = "max",
                 resume: bool | str | os.PathLike = False, overwrite: bool = False, every_n_epochs: int = 1) -> None:
        if mode not in ("max", "min"):
            raise UsageError(f"Checkpoint mode must be 'max' or 'min', got {mode!r}")
        if every_n_epochs < 1:
            raise UsageError(f"Checkpoint every_n_epochs must be >= 1, got {every_n_epochs}")
        self.dir = Path(dir)
        self.monitor = monitor
        self.mode = mode
        self.resume = resume
        self.overwrite = overwrite
        self.every_n_epochs = every_n_epochs
        self.best_value: float | None = None
        self.resumed_from: Path | None = None

    @property
    def last_path(self) -> Path:
        return self.dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.dir / "best.pt"

    def _resume_path(self) -> Path | None:
        if self.resume is False or self.resume is None:
            return None
        if self.resume is True:
            return self.last_path if self.last_path.exists() else None
        path = Path(self.resume)
        if not path.is_file():
            raise FileNotFoundError(f"Checkpoint resume={str(path)!r}: no such checkpoint file")
        return path

    def on_train_begin(self, trainer: Any) -> None:
        path = self._resume_path()
        if path is None and not self.overwrite:
            taken = [p for p in (self.last_path, self.best_path) if p.exists()]
            if taken:
                fix = (f"resume from one with resume='{taken[0]}'" if self.resume else
                       "pass resume=True to continue that run") + " or overwrite=True to start over"
                raise FileExistsError(f"{self.dir} already holds checkpoints ({', '.join(p.name for p in taken)}); "
                                      f"{fix}")
        if trainer.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._save_config(trainer)
        if path is not None:
            state = load_checkpoint(path, map_location=trainer.device)
            trainer.load_state_dict(state, source=str(path))
            rngs = state.get("rng", [])
            if rngs:
                set_rng_state(rngs[get_rank() % len(rngs)])
            best = state.get("best", {})
            if best.get("monitor") == self.monitor:
                self.best_value = best.get("value")
            self.resumed_from = path
        barrier()

    def _save_config(self, trainer: Any) -> None:
        config = getattr(trainer, "config", None)
        if config is None:
            return
        target = self.dir / "config.py"
        if target.exists() and not target.read_text(encoding="utf-8", errors="replace").startswith(_CONFIG_MARK):
            raise FileExistsError(f"{target} exists and is not a config this engine wrote; move it or choose "
                                  "another checkpoint dir")
        from hbdk_sim.engine.config import Config

        cfg = config if isinstance(config, Config) else Config(config)
        cfg.dump(target, overwrite=True)

    def _improved(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value > self.best_value if self.mode == "max" else value < self.best_value

    def on_epoch_end(self, trainer: Any) -> None:
        final = trainer.epoch + 1 == trainer.num_epochs
        save_last = final or (trainer.epoch + 1) % self.every_n_epochs == 0
        is_best = False
        if self.monitor is not None and self.monitor in trainer.metrics:
            value = float(trainer.metrics[self.monitor])
            is_best = self._improved(value)
            if is_best:
                self.best_value = value
        if not (save_last or is_best):
            return
        # Every rank contributes its RNG state (a collective call), rank 0 writes.
        rngs = all_gather_object(rng_state())
        if trainer.is_main:
            state = trainer.state_dict()
            state["rng"] = rngs
            state["best"] = {"monitor": self.monitor, "mode": self.mode, "value": self.best_value}
            if save_last:
                save_checkpoint(state, self.last_path, overwrite=True)
            if is_best:
                save_checkpoint(state, self.best_path, overwrite=True)
        barrier()


@torch.no_grad()
def _ema_update(decay: float, warmup_steps: float, averaged: list[torch.Tensor], current: list[torch.Tensor],
                num_averaged: torch.Tensor) -> None:
    """One EMA step over a group of same-dtype tensors (AveragedModel's multi_avg_fn): the t-th
    update (t = num_averaged + 1; the first, which copies the weights, is t = 1) uses the decay
    `decay * (1 - exp(-t / warmup_steps))` (constant without warm-up). Integer buffers
    (BatchNorm's batch counter) take the current value."""
    if not torch.is_floating_point(averaged[0]):
        torch._foreach_copy_(averaged, current)
        return
    t = float(num_averaged) + 1.0
    d = decay * (1.0 - math.exp(-t / warmup_steps)) if warmup_steps else decay
    torch._foreach_lerp_(averaged, current, 1.0 - d)


@CALLBACKS.register
class EMA(Callback):
    """An exponential moving average of the weights, `ema = d * ema + (1 - d) * w` after every
    optimizer step (torch.optim.swa_utils.AveragedModel; the first update copies the weights), with
    `d = decay`, or with `warmup_steps` the ramp `d = decay * (1 - exp(-t / warmup_steps))` at the
    t-th update (step t of training), so that the average forgets the random start early in training. Available as
    `trainer.ema_model` (Validation evaluates it, Checkpoint saves it under "ema"; LoadCheckpoint
    with `state_dict_key="ema"` loads it as a model's weights).

    Config keys: decay (0.9998), warmup_steps (0: constant decay), use_buffers (True: BatchNorm
    statistics are averaged too).
    """

    priority = 10

    def __init__(self, decay: float = 0.9998, warmup_steps: float = 0, use_buffers: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise UsageError(f"EMA decay must be in [0, 1), got {decay}")
        if warmup_steps < 0:
            raise UsageError(f"EMA warmup_steps must be >= 0, got {warmup_steps}")
        self.decay = decay
        self.warmup_steps = warmup_steps
        self.use_buffers = use_buffers

    def setup(self, trainer: Any) -> None:
        if trainer.optimizer is None:
            raise UsageError("EMA needs a training run (this trainer has no optimizer)")
        trainer.ema_model = AveragedModel(unwrap_model(trainer.model), device=trainer.device,
                                          multi_avg_fn=functools.partial(_ema_update, self.decay, self.warmup_steps),
                                          use_buffers=self.use_buffers)

    def on_step_end(self, trainer: Any, batch: Any, output: Any) -> None:
        trainer.ema_model.update_parameters(unwrap_model(trainer.model))


@CALLBACKS.register
class Validation(Callback):
    """Runs a Predictor with a metric every `every_n_epochs` epochs (and after the final one) and
    stores the results in `trainer.metrics`, where Checkpoint's `monitor` and Logger find them.

    Config keys:
      data_loader: the validation batches (use a ShardSampler under several ranks so the metric
        state, summed over the ranks, covers every sample once).
      metric: an object with update(preds, batch) and compute() (and reset(); `sum_states` for
        several ranks) or a METRICS config.
      every_n_epochs: 1.
      use_ema: evaluate the EMA weights when the EMA callback is on (True).
      batch_processor: for the validation batches (transforms); default BatchProcessor().
      max_steps: evaluate at most this many batches.
      metric_name: the key for a metric whose compute() returns a number ("metric").
    """

    priority = 50

    def __init__(self, data_loader: Any, metric: Any, every_n_epochs: int = 1, use_ema: bool = True,
                 batch_processor: Any = None, max_steps: int | None = None, metric_name: str = "metric") -> None:
        if every_n_epochs < 1:
            raise UsageError(f"Validation every_n_epochs must be >= 1, got {every_n_epochs}")
        if not hasattr(metric, "reset") and not isinstance(metric, Mapping):
            raise UsageTypeError(f"Validation metric {type(metric).__name__} needs reset() (it is reused every epoch)")
        self.data_loader = data_loader
        self.metric = metric
        self.every_n_epochs = every_n_epochs
        self.use_ema = use_ema
        self.batch_processor = batch_processor
        self.max_steps = max_steps
        self.metric_name = metric_name
        self.history: list[dict[str, Any]] = []

    def on_epoch_end(self, trainer: Any) -> None:
        if (trainer.epoch + 1) % self.every_n_epochs and trainer.epoch + 1 != trainer.num_epochs:
            return
        model = trainer.ema_model.module if self.use_ema and trainer.ema_model is not None \
            else unwrap_model(trainer.model)
        predictor = Predictor(model, self.data_loader, metric=self.metric, batch_processor=self.batch_processor,
                              device=trainer.device, max_steps=self.max_steps, progress_bar=False,
                              metric_name=self.metric_name)
        results = predictor.run()
        trainer.metrics.update(results)
        trainer.metrics_epoch = trainer.epoch + 1  # what the Logger reports with this epoch
        self.history.append({"epoch": trainer.epoch + 1, **results})
        model.train(trainer.model_mode == "train")


def _number(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


@CALLBACKS.register
class Logger(Callback):
    """Loss and metric logging on rank 0: a tqdm progress bar per epoch (loss and learning rate while
    it runs; the epoch's mean loss and the validation metrics when it ends) and a JSON-lines file,
    appended to (a resumed run continues the same log).

    Records: {"event": "start", "epoch", "step"}, every `interval` steps {"event": "step", "epoch",
    "step", "lr", "loss", <each loss entry>, "grad_norm"}, and after each epoch {"event": "epoch",
    "epoch", "step", "loss" (the epoch's mean), <trainer.metrics> when validated in that epoch}.

    Config keys: log_file (None: no file), interval (10 steps), progress_bar (True).
    """

    priority = 90

    def __init__(self, log_file: str | os.PathLike | None = None, interval: int = 10,
                 progress_bar: bool = True) -> None:
        if interval < 1:
            raise UsageError(f"Logger interval must be >= 1, got {interval}")
        self.log_file = Path(log_file) if log_file is not None else None
        self.interval = interval
        self.progress_bar = progress_bar
        self._bar = None
        self._loss_sum = 0.0
        self._steps = 0

    def _write(self, trainer: Any, record: dict[str, Any]) -> None:
        if self.log_file is None or not trainer.is_main:
            return
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a", encoding="utf-8") as f:
            f.write(json.dumps({k: _number(v) for k, v in record.items()}, default=str) + "\n")

    def on_train_begin(self, trainer: Any) -> None:
        self._write(trainer, {"event": "start", "epoch": trainer.start_epoch, "step": trainer.global_step,
                              "num_epochs": trainer.num_epochs, "world_size": trainer.world_size})

    def on_epoch_begin(self, trainer: Any) -> None:
        self._loss_sum, self._steps = 0.0, 0
        if self.progress_bar and trainer.is_main:
            from tqdm import tqdm

            self._bar = tqdm(total=trainer.steps_per_epoch, desc=f"epoch {trainer.epoch + 1}/{trainer.num_epochs}",
                             dynamic_ncols=True, leave=True)

    def on_step_end(self, trainer: Any, batch: Any, output: Any) -> None:
        loss = output.get("loss") if isinstance(output, Mapping) else None
        if loss is not None:
            self._loss_sum += loss
            self._steps += 1
        if self._bar is not None:
            self._bar.update(1)
            if loss is not None:
                post = {"loss": f"{loss:.4f}"}
                if trainer.lr is not None:
                    post["lr"] = f"{trainer.lr:.3g}"
                self._bar.set_postfix(post, refresh=False)
        if loss is not None and trainer.global_step % self.interval == 0:
            self._write(trainer, {"event": "step", "epoch": trainer.epoch + 1, "step": trainer.global_step,
                                  "lr": trainer.lr, "loss": loss, **output.get("losses", {}),
                                  "grad_norm": output.get("grad_norm")})

    def on_epoch_end(self, trainer: Any) -> None:
        if self._bar is not None:
            # The bar stays on screen as the epoch's summary line: mean loss and validation metrics.
            summary = {"loss": f"{self._loss_sum / self._steps:.4f}"} if self._steps else {}
            if getattr(trainer, "metrics_epoch", None) == trainer.epoch + 1:
                summary.update({k: f"{v:.4g}" for k, v in trainer.metrics.items() if isinstance(v, int | float)})
            self._bar.set_postfix(summary, refresh=False)
            self._bar.close()
            self._bar = None
        record = {"event": "epoch", "epoch": trainer.epoch + 1, "step": trainer.global_step}
        if self._steps:
            record["loss"] = self._loss_sum / self._steps
        if getattr(trainer, "metrics_epoch", None) == trainer.epoch + 1:  # validated in this epoch, not earlier
            record.update(trainer.metrics)
        self._write(trainer, record)
