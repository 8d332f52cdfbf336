"""A tiny regression task for the engine tests, also runnable as a script (the resume-after-kill and
torchrun tests start it in fresh processes): a small MLP with dropout on noisy linear data, whose
samples draw numpy and Python random numbers, so that resuming bit for bit needs every RNG state."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys

import numpy as np
import torch
from hbdk_sim.engine import Callback, Checkpoint, Logger, Validation, build_trainer, distributed_session
from hbdk_sim.engine.distributed import ShardSampler, is_distributed
from torch import nn
from torch.utils.data import DataLoader, Dataset


class ToyRegression(nn.Module):
    def __init__(self, in_features: int = 8, hidden: int = 16, dropout: float = 0.1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, batch):
        pred = self.net(batch["x"]).squeeze(-1)
        if self.training:
            return {"loss_mse": nn.functional.mse_loss(pred, batch["y"])}
        return pred


class ToyData(Dataset):
    """`n` samples of y = x . w + 0.5 (the same w for every seed) with per-sample noise from numpy
    and Python's random."""

    def __init__(self, n: int = 64, in_features: int = 8, seed: int = 0, noise: float = 0.05) -> None:
        w = torch.randn(in_features, generator=torch.Generator().manual_seed(99))
        self.x = torch.randn(n, in_features, generator=torch.Generator().manual_seed(seed))
        self.y = self.x @ w + 0.5
        self.noise = noise

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        jitter = self.noise * (float(np.random.standard_normal()) + random.uniform(-1.0, 1.0))
        return {"x": self.x[i], "y": self.y[i] + jitter}


class MSEMetric:
    sum_states = ("sse", "count")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sse = torch.zeros((), dtype=torch.float64)
        self.count = torch.zeros((), dtype=torch.float64)

    def update(self, preds, batch) -> None:
        self.sse += ((preds - batch["y"]) ** 2).sum().double().cpu()
        self.count += preds.numel()

    def compute(self):
        return {"mse": float(self.sse / self.count), "count": int(self.count)}


class KillAt(Callback):
    """Ends the process abruptly (no cleanup, like a kill -9) after global step `step`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, batch, output) -> None:
        if trainer.global_step == self.step:
            sys.stdout.flush()
            os._exit(3)


class LossRecorder(Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_step_end(self, trainer, batch, output) -> None:
        self.losses.append(output["loss"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--work-dir", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--kill-at-step", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--out", required=True)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--noise", type=float, default=0.05)
    p.add_argument("--no-shuffle", action="store_true")
    args = p.parse_args(argv)
    with distributed_session() as info:
        seed_everything(1234 + info.rank)
        data = ToyData(64, noise=args.noise)
        if args.no_shuffle and not is_distributed():
            loader = DataLoader(data, batch_size=args.batch_size, shuffle=False)
        elif is_distributed():
            sampler = torch.utils.data.DistributedSampler(data, shuffle=False)
            loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler)
        else:
            loader = DataLoader(data, batch_size=args.batch_size, shuffle=True)
        val = DataLoader(ToyData(20, seed=1, noise=args.noise), batch_size=6, sampler=ShardSampler(range(20)))
        recorder = LossRecorder()
        callbacks = [Checkpoint(dir=args.work_dir, monitor="mse", mode="min", resume=args.resume),
                     Validation(val, MSEMetric()), Logger(log_file=os.path.join(args.work_dir, "log.jsonl"),
                                                         interval=1, progress_bar=False), recorder]
        if args.kill_at_step is not None:
            callbacks.append(KillAt(args.kill_at_step))
        cfg = dict(type="Trainer", num_epochs=args.epochs, device="cpu",
                   optimizer=dict(type="SGD", lr=0.05, momentum=0.9, weight_decay=1e-4),
                   lr_scheduler=dict(type="CosineWithWarmup", warmup_steps=4, interval="step"),
                   batch_processor=dict(type="BatchProcessor", grad_clip=5.0),
                   callbacks=[dict(type="EMA", decay=0.9), *callbacks])
        trainer = build_trainer(cfg, model=ToyRegression(dropout=args.dropout), data_loader=loader, config=dict(cfg, data=dict(n=64)))
        trainer.fit()
        weights = {k: v.clone() for k, v in trainer.unwrapped_model.state_dict().items()}
        ema = {k: v.clone() for k, v in trainer.ema_model.state_dict().items()}
        torch.save({"model": weights, "ema": ema, "losses": torch.tensor(recorder.losses, dtype=torch.float64),
                    "metrics": json.dumps(trainer.metrics), "global_step": trainer.global_step},
                   args.out.replace("RANK", str(info.rank)))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
