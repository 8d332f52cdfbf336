"""The stages a task config describes, as the tools run them: build the model of a stage (float,
calibration, qat, int_infer) through its `model_convert_pipeline`, its data loaders, and its
trainer or predictor.

A task config defines (see models/segmentation/unet_mobilenetv1_cityscapes.py):
  model                       the float model (MODELS config).
  deploy_model                the network a board runs (MODELS config), `deploy_input_shape`.
  train_data_loader / val_data_loader
                              dict(dataset=DATASETS config, batch_size, shuffle, num_workers, ...).
  metric                      METRICS config for validation and prediction.
  <stage>_trainer             for float, calibration, qat: a Trainer config plus
                              `model_convert_pipeline` (converter configs applied to the fresh model).
  <stage>_predictor           for float, calibration, qat, int_infer: a Predictor config plus
                              `model_convert_pipeline`.
A `Validation` callback without a data_loader/metric gets the config's val loader and metric.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from torch.utils.data import DataLoader

from hbdk_sim.engine.config import Config
from hbdk_sim.engine.distributed import build_sampler
from hbdk_sim.engine.trainer import build_trainer
from hbdk_sim.registry import CONVERTERS, DATASETS, METRICS, MODELS, build_from_cfg

STAGES = ("float", "calibration", "qat", "int_infer")
TRAIN_STAGES = ("float", "calibration", "qat")
QUANT_STAGES = ("calibration", "qat", "int_infer")


def _import_task_registries() -> None:
    # Registering happens on import: the models, data and converters a config may name.
    import hbdk_sim.data  # noqa: F401
    import hbdk_sim.models  # noqa: F401
    import hbdk_sim.quantization  # noqa: F401


def load_config(path: str | os.PathLike, opts: Sequence[str] = ()) -> Config:
    """The config at `path` with `--opts key=value` overrides applied."""
    _import_task_registries()
    return Config.fromfile(path, opts)


def stage_entry(cfg: Mapping, stage: str, kind: str) -> dict:
    """`cfg["<stage>_<kind>"]` (kind: trainer or predictor) as a plain dict."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    key = f"{stage}_{kind}"
    if key not in cfg:
        have = sorted(k for k in cfg if k.endswith(("_trainer", "_predictor")))
        raise KeyError(f"the config has no {key!r} entry (it has: {', '.join(have) or 'none'})")
    entry = cfg[key]
    return entry.to_dict() if isinstance(entry, Config) else dict(entry)


def _with_checkpoint(converters: list, ckpt: str | os.PathLike | None) -> list:
    """`ckpt` replaces the path of the pipeline's last LoadCheckpoint (the stage's own weights), or
    is appended when the pipeline loads none."""
    if ckpt is None:
        return converters
    converters = [dict(c) if isinstance(c, Mapping) else c for c in converters]
    for c in reversed(converters):
        if isinstance(c, Mapping) and c.get("type") in ("LoadCheckpoint", CONVERTERS.get("LoadCheckpoint")):
            c["path"] = str(ckpt)
            return converters
    quantize = [i for i, c in enumerate(converters)
                if isinstance(c, Mapping) and c.get("type") in ("QAT2Quantize", CONVERTERS.get("QAT2Quantize"))]
    at = quantize[0] if quantize else len(converters)
    return converters[:at] + [dict(type="LoadCheckpoint", path=str(ckpt))] + converters[at:]


def convert(model: torch.nn.Module, entry: Mapping, ckpt: str | os.PathLike | None = None) -> torch.nn.Module:
    """Run the entry's model_convert_pipeline (with `ckpt` as the stage's weights) on `model`."""
    pipeline = entry.get("model_convert_pipeline")
    converters = list(pipeline.get("converters", [])) if isinstance(pipeline, Mapping) else list(pipeline or [])
    converters = _with_checkpoint(converters, ckpt)
    if not converters:
        return model
    from hbdk_sim.quantization.converters import ModelConvertPipeline

    return ModelConvertPipeline(converters)(model)


def build_model(cfg: Mapping, stage: str, kind: str = "predictor", ckpt: str | os.PathLike | None = None,
                model_key: str = "model") -> torch.nn.Module:
    """The model of `stage` as its trainer (kind="trainer") or predictor sees it."""
    entry = stage_entry(cfg, stage, kind)
    model = build_from_cfg(cfg[model_key], MODELS)
    return convert(model, entry, ckpt)


def build_data_loader(cfg: Mapping, key: str, *, train: bool, batch_size: int | None = None) -> DataLoader:
    """A DataLoader from `cfg[key]` = dict(dataset=..., batch_size, shuffle, num_workers, ...), with a
    distributed sampler under torchrun."""
    if key not in cfg:
        raise KeyError(f"the config has no {key!r} entry")
    spec = dict(cfg[key].to_dict() if isinstance(cfg[key], Config) else cfg[key])
    dataset = build_from_cfg(spec.pop("dataset"), DATASETS)
    shuffle = bool(spec.pop("shuffle", train))
    if batch_size is not None:
        spec["batch_size"] = batch_size
    seed = int(cfg.get("seed", 0))
    sampler = build_sampler(dataset, shuffle=shuffle, seed=seed, drop_last=spec.get("drop_last", False))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, shuffle=shuffle if sampler is None else False, sampler=sampler,
                      generator=generator, persistent_workers=False, **spec)


def _fill_validation(callbacks: list, cfg: Mapping) -> list:
    out = []
    for cb in callbacks:
        if isinstance(cb, Mapping) and cb.get("type") == "Validation":
            cb = dict(cb)
            if "data_loader" not in cb:
                cb["data_loader"] = build_data_loader(cfg, "val_data_loader", train=False)
            if "metric" not in cb:
                cb["metric"] = build_from_cfg(cfg["metric"], METRICS)
        out.append(cb)
    return out


def build_stage_trainer(cfg: Config, stage: str, ckpt: str | os.PathLike | None = None):
    """The Trainer of a training stage, model converted and data loaders built."""
    if stage not in TRAIN_STAGES:
        raise ValueError(f"stage {stage!r} does not train; expected one of {', '.join(TRAIN_STAGES)}")
    entry = stage_entry(cfg, stage, "trainer")
    model = convert(build_from_cfg(cfg["model"], MODELS), entry, ckpt)
    entry.pop("model_convert_pipeline", None)
    entry["callbacks"] = _fill_validation(list(entry.get("callbacks", [])), cfg)
    loader = build_data_loader(cfg, entry.pop("data_loader", "train_data_loader"), train=True)
    return build_trainer(entry, model=model, data_loader=loader, config=cfg)


def build_stage_predictor(cfg: Config, stage: str, ckpt: str | os.PathLike | None = None,
                          model: torch.nn.Module | None = None):
    """The Predictor of any stage over the validation loader, with the config's metric."""
    entry = stage_entry(cfg, stage, "predictor")
    if model is None:
        model = convert(build_from_cfg(cfg["model"], MODELS), entry, ckpt)
    entry.pop("model_convert_pipeline", None)
    loader = build_data_loader(cfg, entry.pop("data_loader", "val_data_loader"), train=False)
    metric = entry.pop("metric", cfg.get("metric"))
    return build_trainer({"type": "Predictor", **entry}, model=model, data_loader=loader,
                         metric=build_from_cfg(metric, METRICS))


def deploy_model(cfg: Config, stage: str, ckpt: str | os.PathLike | None = None) -> torch.nn.Module:
    """The board network of `stage`: `deploy_model` through the stage predictor's pipeline, its
    converters applied to the network itself (a `submodule` of QAT2Quantize is dropped)."""
    entry = stage_entry(cfg, stage, "predictor")
    pipeline = entry.get("model_convert_pipeline")
    converters = list(pipeline.get("converters", [])) if isinstance(pipeline, Mapping) else list(pipeline or [])
    prefix = cfg.get("deploy_weights_prefix", "network.")
    fixed = []
    for c in converters:
        if isinstance(c, Mapping) and c.get("type") == "QAT2Quantize":
            c = {k: v for k, v in c.items() if k != "submodule"}
            c["input_shape"] = list(cfg["deploy_input_shape"])
        if isinstance(c, Mapping) and c.get("type") == "LoadCheckpoint":
            c = dict(c, prefix=prefix)  # the task model's checkpoint, into its network
        fixed.append(c)
    entry["model_convert_pipeline"] = fixed
    network = build_from_cfg(cfg["deploy_model"], MODELS)
    return convert(network, entry, ckpt).eval()

