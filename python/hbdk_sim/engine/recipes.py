"""The stage setup every task config shares, built by functions instead of copied: the float ->
calibration -> QAT trainers, each stage reading the previous stage's checkpoint under `work_dir`,
and the predictors that evaluate every stage (float, calibration, qat, int_infer).

A config calls `quantization_stages(...)` with its own numbers and assigns the entries it keeps:

    stages = quantization_stages(work_dir=work_dir, monitor="mIoU", float_epochs=300, ...)
    float_trainer = stages["float_trainer"]
    ...

Everything returned is plain config dicts, so `--opts float_trainer.num_epochs=3` and
`Config.dump` work on them as on hand-written ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hbdk_sim.errors import ConfigError

STAGE_NAMES = ("float", "calibration", "qat", "int_infer")


def stage_callbacks(work_dir: str, stage: str, monitor: str | None, log_interval: int = 10) -> list[dict]:
    """Checkpointing (resumable; the best by `monitor` when given) and the JSON-lines log of a stage,
    under `<work_dir>/<stage>/`."""
    return [
        dict(type="Checkpoint", dir=f"{work_dir}/{stage}", monitor=monitor, resume=True),
        dict(type="Logger", log_file=f"{work_dir}/{stage}/log.jsonl", interval=log_interval),
    ]


def _fake_quant_predictor(work_dir: str, prepare: dict, checkpoint: str) -> dict:
    """Evaluate a fake-quant stage: prepare the float model the stage's way, load its weights and
    scales, freeze the scales."""
    return dict(
        type="Predictor",
        model_convert_pipeline=[
            prepare,
            dict(type="LoadCheckpoint", path=f"{work_dir}/{checkpoint}"),
            dict(type="SetFakeQuantState", state="validation"),
        ],
    )


def _prepare(kind: str, observer: dict | None, **options: Any) -> dict:
    return dict(type=kind, **{k: (dict(v) if isinstance(v, dict) else v) for k, v in (observer or {}).items()},
                **options)


def _optimizer(spec: str | Mapping[str, Any], lr: float, weight_decay: float) -> dict:
    """An optimizer config: a type name, or a config without lr (its weight_decay, when given,
    wins over the recipe's)."""
    if isinstance(spec, str):
        return dict(type=spec, lr=lr, weight_decay=weight_decay)
    if not isinstance(spec, Mapping) or "type" not in spec or "lr" in spec:
        raise ConfigError(f"quantization_stages: an optimizer is a type name or a config with 'type' and without "
                          f"'lr' (the stage's lr is set from float_lr / qat_lr), not {spec!r}")
    return {"weight_decay": weight_decay, **_plain(spec), "lr": lr}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def quantization_stages(*, work_dir: str, monitor: str, float_epochs: int, float_lr: float,
                        calibration_batches: int, qat_epochs: int, qat_lr: float, deploy_input_shape: Sequence[int],
                        warmup_steps: int = 0, warmup_epochs: float = 0.0,
                        weight_decay: float = 1e-4, grad_clip: float | None = 5.0,
                        float_validate_every: int = 5, qat_validate_every: int = 1,
                        optimizer: str | Mapping[str, Any] = "AdamW",
                        qat_optimizer: str | Mapping[str, Any] | None = None,
                        qat_lr_scheduler: Mapping[str, Any] | None = None, ema: Mapping[str, Any] | None = None,
                        calibration_observer: dict | None = None, qat_activation_scales: str = "follow",
                        prepare: Mapping[str, Any] | None = None,
                        int_infer_from: str = "qat", channels_last: bool = False) -> dict[str, Any]:
    """The trainers and predictors of the four stages:

    - float_trainer: `optimizer` with cosine decay after a linear warm-up of `warmup_steps` steps
      (or `warmup_epochs` epochs), validation every `float_validate_every` epochs, the best
      checkpoint by `monitor`; with `ema` (the EMA callback's options, e.g.
      `dict(decay=0.9999, warmup_steps=2000)`) the weights' moving average is what validation
      evaluates, best.pt keeps it under "ema", and every later stage starts from it;
    - calibration_trainer: `calibration_batches` forward-only steps from float/best.pt;
    - qat_trainer: from float/best.pt with calibration/last.pt's scales, `qat_optimizer` (default:
      `optimizer`) with `qat_lr_scheduler` (default: cosine decay), the best by `monitor`;
      `qat_activation_scales="frozen"` keeps the activation scales at calibration's values while
      the weights' scales follow the weights;
    - float_/calibration_/qat_/int_infer_predictor: each stage's evaluation, int_infer converting
      the board graphs of the `int_infer_from` stage's model ("qat", or "calibration" for a task
      that deploys its calibrated model) at `deploy_input_shape`.

    An optimizer is a type name ("AdamW", "SGD", ...) built with the stage's lr and `weight_decay`,
    or a config without lr, e.g. `dict(type="SGD", momentum=0.9, nesterov=True, param_groups=...)`.
    `calibration_observer` (e.g. `dict(observer="percentile", observer_kwargs=dict(percentile=99.975))`)
    picks calibration's activation observer; the QAT stage then prepares with the same observer,
    so that the calibration checkpoint's statistics load into it and its scales start there.
    `prepare` holds further options of both prepare converters (Float2Calibration, Float2QAT), e.g.
    `dict(graph_mode=True, input_shape=deploy_input_shape)` for a model prepared from its graph.
    `channels_last` trains in the channels-last memory layout (see BatchProcessor).
    """
    if int_infer_from not in ("qat", "calibration"):
        raise ConfigError(f"quantization_stages: int_infer_from must be 'qat' or 'calibration' but got "
                          f"{int_infer_from!r}")
    if qat_activation_scales not in ("follow", "frozen"):
        raise ConfigError(f"quantization_stages: qat_activation_scales must be 'follow' or 'frozen' but got "
                          f"{qat_activation_scales!r}")
    batch_processor = dict(type="BatchProcessor", grad_clip=grad_clip, channels_last=channels_last)
    float_weights = dict(type="LoadCheckpoint", path=f"{work_dir}/float/best.pt",
                         **({"state_dict_key": "ema"} if ema is not None else {}))

    options = _plain(dict(prepare or {}))

    def calibrate() -> dict:
        return _prepare("Float2Calibration", calibration_observer, **options)

    def qat() -> dict:
        return _prepare("Float2QAT", calibration_observer, **options,
                        **({"activation_scales": "frozen"} if qat_activation_scales == "frozen" else {}))

    int_source = (dict(prepare=qat(), checkpoint="qat/best.pt") if int_infer_from == "qat"
                  else dict(prepare=calibrate(), checkpoint="calibration/last.pt"))
    return dict(
        float_trainer=dict(
            type="Trainer",
            num_epochs=float_epochs,
            optimizer=_optimizer(optimizer, float_lr, weight_decay),
            lr_scheduler=dict(type="CosineWithWarmup", interval="step",
                              **({"warmup_epochs": warmup_epochs} if warmup_epochs else
                                 {"warmup_steps": warmup_steps})),
            batch_processor=batch_processor,
            callbacks=[*([dict(type="EMA", **_plain(ema))] if ema is not None else []),
                       dict(type="Validation", every_n_epochs=float_validate_every),
                       *stage_callbacks(work_dir, "float", monitor)],
        ),
        calibration_trainer=dict(
            type="Trainer",
            num_epochs=1,
            steps_per_epoch=calibration_batches,
            optimizer=None,  # forward only: the observers record
            model_convert_pipeline=[dict(float_weights), calibrate()],
            callbacks=stage_callbacks(work_dir, "calibration", None),
        ),
        qat_trainer=dict(
            type="Trainer",
            num_epochs=qat_epochs,
            optimizer=_optimizer(qat_optimizer if qat_optimizer is not None else optimizer, qat_lr, weight_decay),
            lr_scheduler=(_plain(qat_lr_scheduler) if qat_lr_scheduler is not None else
                          dict(type="CosineWithWarmup", warmup_steps=0, interval="step")),
            batch_processor=batch_processor,
            model_convert_pipeline=[
                dict(float_weights),
                qat(),
                dict(type="LoadCheckpoint", path=f"{work_dir}/calibration/last.pt"),
            ],
            callbacks=[dict(type="Validation", every_n_epochs=qat_validate_every),
                       *stage_callbacks(work_dir, "qat", monitor)],
        ),
        float_predictor=dict(type="Predictor", model_convert_pipeline=[dict(float_weights)]),
        calibration_predictor=_fake_quant_predictor(work_dir, calibrate(), "calibration/last.pt"),
        qat_predictor=_fake_quant_predictor(work_dir, qat(), "qat/best.pt"),
        int_infer_predictor=dict(
            type="Predictor",
            model_convert_pipeline=[
                int_source["prepare"],
                dict(type="LoadCheckpoint", path=f"{work_dir}/{int_source['checkpoint']}"),
                dict(type="QAT2Quantize", input_shape=list(deploy_input_shape)),
            ],
        ),
    )
