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

from collections.abc import Sequence
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


def _prepare(kind: str, observer: dict | None) -> dict:
    return dict(type=kind, **{k: (dict(v) if isinstance(v, dict) else v) for k, v in (observer or {}).items()})


def quantization_stages(*, work_dir: str, monitor: str, float_epochs: int, float_lr: float, warmup_steps: int,
                        calibration_batches: int, qat_epochs: int, qat_lr: float, deploy_input_shape: Sequence[int],
                        weight_decay: float = 1e-4, grad_clip: float | None = 5.0,
                        float_validate_every: int = 5, qat_validate_every: int = 1,
                        optimizer: str = "AdamW", calibration_observer: dict | None = None,
                        int_infer_from: str = "qat", channels_last: bool = False) -> dict[str, Any]:
    """The trainers and predictors of the four stages:

    - float_trainer: `optimizer` with cosine decay after `warmup_steps` linear warm-up steps,
      validation every `float_validate_every` epochs, the best checkpoint by `monitor`;
    - calibration_trainer: `calibration_batches` forward-only steps from float/best.pt;
    - qat_trainer: from float/best.pt with calibration/last.pt's scales, cosine decay, the best by
      `monitor`;
    - float_/calibration_/qat_/int_infer_predictor: each stage's evaluation, int_infer converting
      the board graphs of the `int_infer_from` stage's model ("qat", or "calibration" for a task
      that deploys its calibrated model) at `deploy_input_shape`.

    `calibration_observer` (e.g. `dict(observer="percentile", observer_kwargs=dict(percentile=99.975))`)
    picks calibration's activation observer; the QAT stage then prepares with the same observer,
    so that the calibration checkpoint's statistics load into it and its scales start there.
    `channels_last` trains in the channels-last memory layout (see BatchProcessor).
    """
    if int_infer_from not in ("qat", "calibration"):
        raise ConfigError(f"quantization_stages: int_infer_from must be 'qat' or 'calibration' but got "
                          f"{int_infer_from!r}")
    batch_processor = dict(type="BatchProcessor", grad_clip=grad_clip, channels_last=channels_last)

    def calibrate() -> dict:
        return _prepare("Float2Calibration", calibration_observer)

    def qat() -> dict:
        return _prepare("Float2QAT", calibration_observer)

    int_source = (dict(prepare=qat(), checkpoint="qat/best.pt") if int_infer_from == "qat"
                  else dict(prepare=calibrate(), checkpoint="calibration/last.pt"))
    return dict(
        float_trainer=dict(
            type="Trainer",
            num_epochs=float_epochs,
            optimizer=dict(type=optimizer, lr=float_lr, weight_decay=weight_decay),
            lr_scheduler=dict(type="CosineWithWarmup", warmup_steps=warmup_steps, interval="step"),
            batch_processor=batch_processor,
            callbacks=[dict(type="Validation", every_n_epochs=float_validate_every),
                       *stage_callbacks(work_dir, "float", monitor)],
        ),
        calibration_trainer=dict(
            type="Trainer",
            num_epochs=1,
            steps_per_epoch=calibration_batches,
            optimizer=None,  # forward only: the observers record
            model_convert_pipeline=[
                dict(type="LoadCheckpoint", path=f"{work_dir}/float/best.pt"),
                calibrate(),
            ],
            callbacks=stage_callbacks(work_dir, "calibration", None),
        ),
        qat_trainer=dict(
            type="Trainer",
            num_epochs=qat_epochs,
            optimizer=dict(type=optimizer, lr=qat_lr, weight_decay=weight_decay),
            lr_scheduler=dict(type="CosineWithWarmup", warmup_steps=0, interval="step"),
            batch_processor=batch_processor,
            model_convert_pipeline=[
                dict(type="LoadCheckpoint", path=f"{work_dir}/float/best.pt"),
                qat(),
                dict(type="LoadCheckpoint", path=f"{work_dir}/calibration/last.pt"),
            ],
            callbacks=[dict(type="Validation", every_n_epochs=qat_validate_every),
                       *stage_callbacks(work_dir, "qat", monitor)],
        ),
        float_predictor=dict(
            type="Predictor",
            model_convert_pipeline=[dict(type="LoadCheckpoint", path=f"{work_dir}/float/best.pt")],
        ),
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
