"""The training engine in one process: registry-built trainers, exact step counts, LR schedules against
torch's own schedulers, EMA and gradient clipping against hand computation, forward-only
(calibration) runs, checkpoints that load with weights_only=True, the predictor and its metric."""

import io
import math

import pytest
import torch
from engine_toy import MSEMetric, ToyData, ToyRegression
from hbdk_sim.engine import (
    EMA,
    BatchProcessor,
    Callback,
    Checkpoint,
    Logger,
    Predictor,
    Trainer,
    Validation,
    build_trainer,
    load_checkpoint,
    load_weights,
    sum_losses,
)
from hbdk_sim.errors import ConfigError, UsageError
from hbdk_sim.registry import CALLBACKS, OPTIMIZERS, SCHEDULERS
from torch import nn
from torch.optim import lr_scheduler
from torch.utils.data import DataLoader


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def loader(n=64, batch_size=8, shuffle=True, **kw):
    return DataLoader(ToyData(n, **kw), batch_size=batch_size, shuffle=shuffle)


class Recorder(Callback):
    """Learning rate used by each step, loss after it, and parameter snapshots after each step."""

    priority = 20

    def __init__(self):
        self.lrs, self.losses, self.params = [], [], []

    def on_step_begin(self, trainer, batch):
        self.lrs.append(trainer.lr)

    def on_step_end(self, trainer, batch, output):
        if isinstance(output, dict):
            self.losses.append(output["loss"])
        self.params.append({k: v.detach().clone() for k, v in trainer.unwrapped_model.named_parameters()})


def test_registry_has_optimizers_schedulers_and_callbacks():
    assert {"SGD", "Adam", "AdamW"} <= set(OPTIMIZERS.names())
    assert {"CosineWithWarmup", "MultiStepLR", "StepLR", "CyclicLR", "OneCycleLR"} <= set(SCHEDULERS.names())
    assert {"Checkpoint", "Validation", "EMA", "Logger"} <= set(CALLBACKS.names())


def test_trainer_built_from_config_dict(tmp_path):
    cfg = dict(type="Trainer", num_epochs=2, device="cpu",
               optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.01),
               lr_scheduler=dict(type="MultiStepLR", milestones=[1], gamma=0.5, interval="epoch"),
               batch_processor=dict(type="BatchProcessor", grad_clip=dict(max_norm=2.0, norm_type=2.0)),
               callbacks=[dict(type="Logger", progress_bar=False),
                          dict(type="Checkpoint", dir=str(tmp_path / "ck")), dict(type="EMA", decay=0.5)])
    trainer = build_trainer(cfg, model=ToyRegression(), data_loader=loader())
    assert isinstance(trainer, Trainer)
    assert isinstance(trainer.optimizer, torch.optim.AdamW) and trainer.optimizer.defaults["weight_decay"] == 0.01
    assert isinstance(trainer.lr_scheduler, lr_scheduler.MultiStepLR) and trainer.lr_interval == "epoch"
    assert trainer.batch_processor.grad_clip == {"max_norm": 2.0, "norm_type": 2.0}
    assert [type(cb) for cb in trainer.callbacks] == [EMA, Checkpoint, Logger]  # by priority
    assert cfg["optimizer"] == dict(type="AdamW", lr=1e-3, weight_decay=0.01)  # the config is not consumed
    with pytest.raises(ConfigError, match="unknown type 'SDG'; closest: SGD"):
        build_trainer(dict(cfg, optimizer=dict(type="SDG", lr=0.1)), model=ToyRegression(), data_loader=loader())


def test_tiny_regression_trains_with_exact_step_count():
    model = ToyRegression(dropout=0.0)
    trainer = Trainer(model, loader(n=60, batch_size=8), optimizer=dict(type="SGD", lr=0.01, momentum=0.9),
                      num_epochs=6, device="cpu", callbacks=[rec := Recorder()])
    steps = []
    trainer.optimizer.register_step_post_hook(lambda opt, args, kwargs: steps.append(1))
    trainer.fit()
    assert len(steps) == 6 * math.ceil(60 / 8) == trainer.global_step == 48
    first, last = sum(rec.losses[:8]) / 8, sum(rec.losses[-8:]) / 8
    assert all(math.isfinite(v) for v in rec.losses)
    assert last < 0.05 * first, (first, last)

    capped = Trainer(ToyRegression(), loader(), optimizer=dict(type="SGD", lr=0.01), num_epochs=3,
                     steps_per_epoch=5, device="cpu")
    capped_steps = []
    capped.optimizer.register_step_post_hook(lambda opt, args, kwargs: capped_steps.append(1))
    capped.fit()
    assert len(capped_steps) == capped.global_step == 15


SCHEDULES = [
    (dict(type="CosineWithWarmup", warmup_steps=5, warmup_start_factor=0.1, eta_min=0.001, interval="step"),
     lambda opt: lr_scheduler.SequentialLR(opt, [lr_scheduler.LinearLR(opt, 0.1, 1.0, total_iters=5),
                                                 lr_scheduler.CosineAnnealingLR(opt, T_max=24 - 5, eta_min=0.001)],
                                           milestones=[5]), "step"),
    (dict(type="MultiStepLR", milestones=[1, 2], gamma=0.1, interval="epoch"),
     lambda opt: lr_scheduler.MultiStepLR(opt, [1, 2], gamma=0.1), "epoch"),
    (dict(type="StepLR", step_size=5, gamma=0.5, interval="step"),
     lambda opt: lr_scheduler.StepLR(opt, 5, gamma=0.5), "step"),
    (dict(type="CyclicLR", base_lr=0.01, max_lr=0.1, step_size_up=3, mode="triangular2", interval="step"),
     lambda opt: lr_scheduler.CyclicLR(opt, 0.01, 0.1, step_size_up=3, mode="triangular2"), "step"),
    (dict(type="OneCycleLR", max_lr=0.05, pct_start=0.25, interval="step"),
     lambda opt: lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=24, pct_start=0.25), "step"),
]


@pytest.mark.parametrize("sched_cfg, reference, interval", SCHEDULES, ids=[s[0]["type"] for s in SCHEDULES])
def test_lr_schedule_matches_torch_step_by_step(sched_cfg, reference, interval):
    trainer = Trainer(ToyRegression(), loader(), optimizer=dict(type="SGD", lr=0.1, momentum=0.9), num_epochs=3,
                      lr_scheduler=sched_cfg, device="cpu", callbacks=[rec := Recorder()])
    trainer.fit()
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    ref = reference(opt)
    expected = []
    for _epoch in range(3):
        for _step in range(8):
            expected.append(opt.param_groups[0]["lr"])
            opt.step()
            if interval == "step":
                ref.step()
        if interval == "epoch":
            ref.step()
    assert rec.lrs == expected
    assert len(set(expected)) > 2  # the schedule really moves


def test_cosine_with_warmup_closed_form():
    trainer = Trainer(ToyRegression(), loader(), optimizer=dict(type="SGD", lr=0.1), num_epochs=3, device="cpu",
                      lr_scheduler=dict(type="CosineWithWarmup", warmup_steps=4, warmup_start_factor=0.25,
                                        interval="step"), callbacks=[rec := Recorder()])
    trainer.fit()
    total, warm = 24, 4
    expected = [0.1 * (0.25 + 0.75 * t / warm) if t < warm
                else 0.05 * (1 + math.cos(math.pi * (t - warm) / (total - warm))) for t in range(total)]
    assert rec.lrs == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_ema_equals_hand_computed_average():
    decay = 0.75
    trainer = Trainer(nn.Sequential(nn.Linear(8, 1)), loader(), optimizer=dict(type="SGD", lr=0.1), num_epochs=1,
                      steps_per_epoch=3, device="cpu", callbacks=[EMA(decay=decay), rec := Recorder()],
                      batch_processor=BatchProcessor())
    trainer.unwrapped_model.forward = lambda b: {"loss": ((trainer.unwrapped_model[0](b["x"]).squeeze(-1)
                                                            - b["y"]) ** 2).mean()}
    trainer.fit()
    assert len(rec.params) == 3
    for name in ("0.weight", "0.bias"):
        p1, p2, p3 = (snap[name] for snap in rec.params)
        assert not torch.equal(p1, p3)
        hand = p1  # AveragedModel's first update copies the weights
        hand = decay * hand + (1 - decay) * p2
        hand = decay * hand + (1 - decay) * p3
        ema = dict(trainer.ema_model.module.named_parameters())[name]
        torch.testing.assert_close(ema, hand, rtol=1e-6, atol=1e-7)
    assert int(trainer.ema_model.n_averaged) == 3


def test_ramped_ema_equals_hand_computed_average_and_loads_as_weights(tmp_path):
    from hbdk_sim.quantization import LoadCheckpoint

    decay, ramp = 0.9, 2.0
    model = nn.Sequential(nn.Linear(8, 1), nn.BatchNorm1d(1))
    trainer = Trainer(model, loader(), optimizer=dict(type="SGD", lr=0.1), num_epochs=1, steps_per_epoch=4,
                      device="cpu", batch_processor=BatchProcessor(),
                      callbacks=[EMA(decay=decay, warmup_steps=ramp), rec := Recorder(),
                                 Checkpoint(dir=tmp_path / "ck")])
    trainer.unwrapped_model.forward = lambda b: {"loss": ((model[1](model[0](b["x"])).squeeze(-1) - b["y"]) ** 2
                                                          ).mean()}
    trainer.fit()
    for name in ("0.weight", "0.bias"):
        snaps = [snap[name] for snap in rec.params]
        hand = snaps[0]
        for t, p in enumerate(snaps[1:], start=2):  # the t-th update uses d (1 - exp(-t / ramp))
            d = decay * (1 - math.exp(-t / ramp))
            hand = d * hand + (1 - d) * p
        torch.testing.assert_close(dict(trainer.ema_model.module.named_parameters())[name], hand, rtol=1e-6,
                                   atol=1e-7)
    # The batch counter of BatchNorm is copied, not averaged.
    assert int(trainer.ema_model.module[1].num_batches_tracked) == 4
    fresh = LoadCheckpoint(tmp_path / "ck" / "last.pt", state_dict_key="ema")(
        nn.Sequential(nn.Linear(8, 1), nn.BatchNorm1d(1)))
    for (name, got), want in zip(fresh.state_dict().items(), trainer.ema_model.module.state_dict().values(),
                                 strict=True):
        assert torch.equal(got, want), name


def test_optimizer_param_groups_by_name_substring():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1, bias=False))
    trainer = Trainer(model, loader(), num_epochs=1, device="cpu",
                      optimizer=dict(type="SGD", lr=0.1, momentum=0.9, nesterov=True,
                                     param_groups={"weight": dict(weight_decay=4e-5), "1.": dict(lr=0.5)}))
    groups = trainer.optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert [sorted(names[id(p)] for p in g["params"]) for g in groups] == [
        ["0.weight", "1.weight", "2.weight"], ["1.bias"], ["0.bias"]]  # the first matching substring wins
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.1, 4e-5), (0.5, 0.0), (0.1, 0.0)]
    assert all(g["nesterov"] and g["momentum"] == 0.9 for g in groups)
    with pytest.raises(ConfigError, match="param_groups must map"):
        Trainer(model, loader(), device="cpu", optimizer=dict(type="SGD", lr=0.1, param_groups={"weight": 1e-4}))


def test_warmup_in_epochs_counts_the_steps_per_epoch():
    trainer = Trainer(ToyRegression(), loader(), optimizer=dict(type="SGD", lr=0.1), num_epochs=3, device="cpu",
                      lr_scheduler=dict(type="CosineWithWarmup", warmup_epochs=0.5, warmup_start_factor=0.25,
                                        interval="step"), callbacks=[rec := Recorder()])
    trainer.fit()
    assert rec.lrs[:5] == pytest.approx([0.1 * (0.25 + 0.75 * t / 4) for t in range(4)] + [0.1])  # 8 steps / epoch
    with pytest.raises(UsageError, match="not both"):
        Trainer(ToyRegression(), loader(), optimizer=dict(type="SGD", lr=0.1), device="cpu",
                lr_scheduler=dict(type="CosineWithWarmup", warmup_epochs=1, warmup_steps=2, interval="step"))


def test_gradient_clipping_bounds_the_norm():
    torch.manual_seed(3)
    model = nn.Linear(8, 1)
    batch = {"x": torch.randn(16, 8) * 10, "y": torch.randn(16) * 100}

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, b):
            return {"loss": ((self.m(b["x"]).squeeze(-1) - b["y"]) ** 2).mean()}

    wrapped = Wrapped()
    wrapped(batch)["loss"].backward()
    raw_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()
    model.zero_grad()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    out = BatchProcessor(grad_clip=0.5)(wrapped, batch, torch.device("cpu"), opt)
    assert raw_norm > 100 and out["grad_norm"] == pytest.approx(raw_norm, rel=1e-6)
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()
    assert clipped == pytest.approx(0.5, rel=1e-5)
    step = torch.linalg.vector_norm(torch.cat([(b - p.detach()).flatten() for b, p in zip(before, model.parameters(),
                                                                                           strict=True)])).item()
    assert step == pytest.approx(0.5, rel=1e-5)  # SGD with lr 1 moves by exactly the clipped gradient


def test_loss_is_the_sum_of_loss_entries_and_errors_are_clear():
    total, parts = sum_losses({"loss_a": torch.tensor(1.5), "loss_scales": [torch.tensor(0.25), torch.tensor(0.25)],
                               "pred": torch.ones(3), "loss": torch.tensor(1.0)})
    assert float(total) == 3.0 and parts == {"loss_a": 1.5, "loss_scales": 0.5, "loss": 1.0}
    with pytest.raises(UsageError, match="no loss: expected keys starting with 'loss', got \\['pred'\\]"):
        sum_losses({"pred": torch.ones(2)})
    with pytest.raises(ValueError, match="'loss_x' has shape \\(2,\\)"):
        sum_losses({"loss_x": torch.ones(2)})
    with pytest.raises(TypeError, match="must return a dict"):
        sum_losses(torch.ones(()))


class CountingObserver(nn.Module):
    """Stands in for a calibration observer: records the running max |x| and the number of forwards."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 1)
        self.register_buffer("amax", torch.zeros(()))
        self.register_buffer("forwards", torch.zeros((), dtype=torch.int64))

    def forward(self, batch):
        self.amax = torch.maximum(self.amax, batch["x"].abs().max())
        self.forwards += 1
        out = self.lin(batch["x"])
        assert not out.requires_grad and not self.training
        return out


def test_forward_only_trainer_calibrates_without_changing_weights(tmp_path):
    model = CountingObserver()
    before = model.lin.weight.detach().clone()
    trainer = Trainer(model, loader(shuffle=False), optimizer=None, num_epochs=1, steps_per_epoch=3, device="cpu",
                      callbacks=[Checkpoint(dir=tmp_path / "calib")])
    trainer.fit()
    data = ToyData(64)
    assert int(model.forwards) == trainer.global_step == 3
    assert float(model.amax) == float(data.x[:24].abs().max())
    assert torch.equal(model.lin.weight, before)
    state = load_checkpoint(tmp_path / "calib" / "last.pt")
    assert "optimizer" not in state and float(state["model"]["amax"]) == float(model.amax)
    with pytest.raises(ValueError, match="lr_scheduler needs an optimizer"):
        Trainer(model, loader(), optimizer=None, lr_scheduler=dict(type="StepLR", step_size=1), device="cpu")


def test_checkpoint_is_plain_state_loadable_with_weights_only(tmp_path):
    ckdir = tmp_path / "run"
    trainer = Trainer(ToyRegression(), loader(), optimizer=dict(type="Adam", lr=1e-2), num_epochs=2, device="cpu",
                      lr_scheduler=dict(type="CosineWithWarmup", warmup_steps=3, interval="step"),
                      callbacks=[EMA(decay=0.9), Checkpoint(dir=ckdir)], config=dict(lr=1e-2, model=dict(type=nn.Linear)))
    trainer.fit()
    state = torch.load(ckdir / "last.pt", weights_only=True)
    assert state["format"] == "hbdk_sim.checkpoint" and state["epoch"] == 2 and state["global_step"] == 16
    assert set(state) >= {"model", "optimizer", "lr_scheduler", "ema", "rng", "best"}
    rng = state["rng"][0]
    assert isinstance(rng["torch"], torch.Tensor) and isinstance(rng["numpy"]["key"], torch.Tensor)
    assert isinstance(rng["python"]["internal"], list) and len(rng["python"]["internal"]) == 625
    assert state["lr_scheduler"]["last_epoch"] == 16
    assert not (ckdir / "best.pt").exists()  # nothing monitored
    assert "'type': 'torch.nn.modules.linear.Linear'" in (ckdir / "config.py").read_text()
    fresh = ToyRegression()
    load_weights(fresh, ckdir / "last.pt", use_ema=True)
    for a, b in zip(fresh.parameters(), trainer.ema_model.module.parameters(), strict=True):
        assert torch.equal(a, b)

    with pytest.raises(FileExistsError, match="already holds checkpoints \\(last.pt\\); pass resume=True"):
        Trainer(ToyRegression(), loader(), optimizer=dict(type="SGD", lr=0.1), device="cpu",
                callbacks=[Checkpoint(dir=ckdir)]).fit()
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    (user_dir / "config.py").write_text("my_setting = 1\n")
    with pytest.raises(FileExistsError, match="is not a config this engine wrote"):
        Trainer(ToyRegression(), loader(), optimizer=dict(type="SGD", lr=0.1), device="cpu", config={"a": 1},
                callbacks=[Checkpoint(dir=user_dir)]).fit()
    assert (user_dir / "config.py").read_text() == "my_setting = 1\n"


@pytest.mark.parametrize("sched_cfg", [s[0] for s in SCHEDULES], ids=[s[0]["type"] for s in SCHEDULES])
def test_every_scheduler_state_survives_weights_only(sched_cfg):
    trainer = Trainer(ToyRegression(), loader(), optimizer=dict(type="SGD", lr=0.1, momentum=0.9), num_epochs=3,
                      lr_scheduler=sched_cfg, device="cpu", steps_per_epoch=2)
    trainer.fit()
    buf = io.BytesIO()
    torch.save(trainer.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    again = Trainer(ToyRegression(), loader(), optimizer=dict(type="SGD", lr=0.1, momentum=0.9), num_epochs=3,
                    lr_scheduler=sched_cfg, device="cpu", steps_per_epoch=2)
    again.load_state_dict(state)
    assert again.lr_scheduler.state_dict() == trainer.lr_scheduler.state_dict()
    assert again.lr_scheduler.get_last_lr() == trainer.lr_scheduler.get_last_lr() == [trainer.lr]
    assert again.global_step == 6 and again.start_epoch == 3


def test_validation_feeds_best_checkpoint_and_predictor_metric(tmp_path):
    val_loader = DataLoader(ToyData(20, seed=5, noise=0.0), batch_size=6)
    validation = Validation(val_loader, MSEMetric(), every_n_epochs=2)
    trainer = Trainer(ToyRegression(dropout=0.0), loader(), optimizer=dict(type="SGD", lr=0.02), num_epochs=5,
                      device="cpu", callbacks=[Checkpoint(dir=tmp_path, monitor="mse", mode="min"), validation,
                                               Logger(log_file=tmp_path / "log.jsonl", interval=4, progress_bar=False)])
    trainer.fit()
    assert [h["epoch"] for h in validation.history] == [2, 4, 5]
    assert all(h["count"] == 20 for h in validation.history)
    best = load_checkpoint(tmp_path / "best.pt")
    best_epoch = min(validation.history, key=lambda h: h["mse"])["epoch"]
    assert best["epoch"] == best_epoch and best["best"]["value"] == min(h["mse"] for h in validation.history)
    model = trainer.unwrapped_model
    result = Predictor(model, val_loader, metric=MSEMetric(), device="cpu", progress_bar=False).run()
    data = val_loader.dataset
    with torch.no_grad():
        model.eval()
        hand = float(((model({"x": data.x}) - data.y) ** 2).double().mean())
    assert result["count"] == 20 and result["mse"] == pytest.approx(hand, rel=1e-6)
    assert result["mse"] == validation.history[-1]["mse"]
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == 1 + 40 // 4 + 5  # start, every 4th step, each epoch


def test_batch_transforms_run_on_the_device_batch_and_progress_bar_shows(capfd):
    seen = []

    class Standardize:
        def __call__(self, batch):
            seen.append(batch["x"].device)
            return {**batch, "x": batch["x"] * 0.0}

    model = ToyRegression(dropout=0.0)
    trainer = Trainer(model, loader(), optimizer=dict(type="SGD", lr=0.1), num_epochs=2, device="cpu",
                      batch_processor=BatchProcessor(transforms=[Standardize()]), callbacks=[Logger(interval=100)])
    first_layer = model.net[0].weight.detach().clone()
    trainer.fit()
    assert len(seen) == 16 and all(d.type == "cpu" for d in seen)
    # With every input zeroed, the first layer's weights get no gradient (only weight decay could move them).
    assert torch.equal(model.net[0].weight, first_layer)
    err = capfd.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "loss=" in err
    with pytest.raises(TypeError, match="transforms must be callables"):
        BatchProcessor(transforms=["Normalize"])
    with pytest.raises(UsageError, match="grad_clip accepts max_norm and norm_type"):
        BatchProcessor(grad_clip=dict(max_nrom=1.0))


def test_trainers_from_a_config_file_with_overrides(tmp_path):
    from hbdk_sim.engine import Config, apply_overrides

    path = tmp_path / "toy_cfg.py"
    path.write_text(
        "work_dir = 'WORK'\n"
        "float_trainer = dict(type='Trainer', num_epochs=10, device='cpu',\n"
        "    optimizer=dict(type='SGD', lr=0.01, momentum=0.9),\n"
        "    lr_scheduler=dict(type='StepLR', step_size=1, gamma=0.5),\n"
        "    callbacks=[dict(type='Checkpoint', dir=work_dir + '/float'), dict(type='Logger', progress_bar=False)])\n"
        "calibration_trainer = dict(type='Trainer', num_epochs=1, steps_per_epoch=2, device='cpu', optimizer=None)\n"
        "predictor = dict(type='Predictor', device='cpu', progress_bar=False, max_steps=1)\n".replace("WORK", str(tmp_path)))
    cfg = apply_overrides(Config.fromfile(path), ["float_trainer.num_epochs=2", "float_trainer.optimizer.lr=0.02"])
    trainer = build_trainer(cfg.float_trainer, model=ToyRegression(), data_loader=loader(), config=cfg)
    trainer.fit()
    assert trainer.global_step == 16 and trainer.lr == 0.02 * 0.25
    dumped = Config.fromfile(tmp_path / "float" / "config.py")
    assert dumped.float_trainer.num_epochs == 2 and dumped.float_trainer.optimizer.lr == 0.02
    calib = build_trainer(cfg.calibration_trainer, model=CountingObserver(), data_loader=loader())
    calib.fit()
    assert calib.optimizer is None and int(calib.unwrapped_model.forwards) == 2
    predictor = build_trainer(cfg.predictor, model=trainer.unwrapped_model, data_loader=loader(shuffle=False),
                              metric=MSEMetric())
    assert isinstance(predictor, Predictor) and predictor.run()["count"] == 8


class _ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, batch):
        y = self.bn(self.conv(batch["img"]))
        self.seen_channels_last = batch["img"].is_contiguous(memory_format=torch.channels_last)
        return {"loss": ((y - batch["target"]) ** 2).mean()}


def test_channels_last_trains_the_same_model_in_the_other_layout():
    g = torch.Generator().manual_seed(0)
    batches = [{"img": torch.randn(4, 3, 8, 8, generator=g), "target": torch.randn(4, 4, 8, 8, generator=g),
                "ids": torch.arange(4)} for _ in range(3)]
    results = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = _ConvNet()
        trainer = Trainer(model, batches, num_epochs=2, optimizer=dict(type="SGD", lr=0.1),
                          batch_processor=dict(type="BatchProcessor", channels_last=channels_last), device="cpu")
        trainer.fit()
        assert model.seen_channels_last is channels_last
        assert model.conv.weight.is_contiguous(memory_format=torch.channels_last) is channels_last
        results.append(model.conv.weight.detach().contiguous())
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)
    prepared = BatchProcessor(channels_last=True).prepare(batches[0], torch.device("cpu"))
    assert prepared["ids"].dtype == torch.int64 and torch.equal(prepared["img"], batches[0]["img"])
