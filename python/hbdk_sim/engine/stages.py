"""The stages a task config describes, as the tools run them: build the model of a stage (float,
calibration, qat, int_infer) through its `model_convert_pipeline`, its data loaders, and its
trainer or predictor.

A task config defines (see models/segmentation/unet_mobilenetv1_cityscapes.py):
  model                       the float task model (MODELS config of a TaskModel: its board graphs
                              are what the deployment tools export and compile).
  deploy_input_shape          the board's primary input (N, C, H, W); the task model derives
                              every graph's inputs from it.
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

import ast
import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from hbdk_sim.engine.config import Config
from hbdk_sim.engine.distributed import build_sampler
from hbdk_sim.engine.memory import check_fits_memory
from hbdk_sim.engine.trainer import build_trainer
from hbdk_sim.errors import ConfigError, UsageError
from hbdk_sim.nn.structures.base import BoardGraph, TaskModel
from hbdk_sim.registry import CONVERTERS, DATASETS, METRICS, MODELS, build_from_cfg

STAGES = ("float", "calibration", "qat", "int_infer")
TRAIN_STAGES = ("float", "calibration", "qat")
QUANT_STAGES = ("calibration", "qat", "int_infer")


def _import_task_registries() -> None:
    # Registering happens on import: the models, data and converters a config may name.
    import hbdk_sim.data  # noqa: F401
    import hbdk_sim.nn  # noqa: F401
    import hbdk_sim.quantization  # noqa: F401


# The top-level names the stages and tools read from a task config.
ENGINE_KEYS = frozenset({
    "task_name", "work_dir", "march", "seed", "model", "deploy_input_shape",
    "train_data_loader", "val_data_loader", "metric", "val_transforms",
    *(f"{s}_trainer" for s in TRAIN_STAGES), *(f"{s}_predictor" for s in STAGES),
})


def load_config(path: str | os.PathLike, opts: Sequence[str] = ()) -> Config:
    """The config at `path` with `--opts key=value` overrides applied. A top-level name the file
    assigns that no stage reads and the file itself never uses (`float_trainr = dict(...)`) is an
    error naming the closest name the stages read: a misspelling would otherwise leave the default."""
    _import_task_registries()
    cfg = Config.fromfile(path, opts)
    check_top_level_names(cfg, Path(path).read_text(encoding="utf-8"), str(path))
    return cfg


def check_top_level_names(cfg: Mapping, source: str, where: str) -> None:
    """Raise ConfigError for the first public top-level assignment of `source` that is neither one of
    ENGINE_KEYS nor used anywhere in the file (as a name, or as a string such as a data_loader key)."""
    tree = ast.parse(source, where)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    used |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        for t in targets:
            name = t.id if isinstance(t, ast.Name) else None
            if name is None or name.startswith("_") or name in ENGINE_KEYS or name in used or name not in cfg:
                continue
            close = difflib.get_close_matches(name, sorted(ENGINE_KEYS), n=1, cutoff=0.6)
            fix = (f"did you mean {close[0]!r}?" if close else
                   "remove it, or start its name with '_' to keep it as a private helper")
            raise ConfigError(f"{where}:{node.lineno}: top-level {name!r} is read by no stage and used nowhere in "
                              f"the config; {fix}")


def deploy_input_shape(cfg: Mapping) -> list[int]:
    """`deploy_input_shape` of the config, checked: (N, C, H, W) positive ints."""
    if "deploy_input_shape" not in cfg:
        raise ConfigError("the config has no 'deploy_input_shape'; set it to the board input, e.g. [1, 3, 1024, 2048]")
    shape = list(cfg["deploy_input_shape"])
    if len(shape) != 4 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ConfigError(f"config deploy_input_shape: expected 4 positive ints (N, C, H, W) but got {shape}")
    return shape


def stage_entry(cfg: Mapping, stage: str, kind: str) -> dict:
    """`cfg["<stage>_<kind>"]` (kind: trainer or predictor) as a plain dict."""
    if stage not in STAGES:
        raise UsageError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    key = f"{stage}_{kind}"
    if key not in cfg:
        have = sorted(k for k in cfg if k.endswith(("_trainer", "_predictor")))
        raise ConfigError(f"the config has no {key!r} entry (it has: {', '.join(have) or 'none'})")
    entry = cfg[key]
    return entry.to_dict() if isinstance(entry, Config) else dict(entry)


def pipeline_converters(entry: Mapping) -> list:
    """The converters of a stage entry's model_convert_pipeline (a list, or dict(converters=...))."""
    pipeline = entry.get("model_convert_pipeline")
    return list(pipeline.get("converters", [])) if isinstance(pipeline, Mapping) else list(pipeline or [])


def is_load_checkpoint(converter: Any) -> bool:
    """Whether a pipeline step is a LoadCheckpoint config (by name or class)."""
    return isinstance(converter, Mapping) and converter.get("type") in ("LoadCheckpoint",
                                                                         CONVERTERS.get("LoadCheckpoint"))


def _with_checkpoint(converters: list, ckpt: str | os.PathLike | None) -> list:
    """`ckpt` replaces the path of the pipeline's last LoadCheckpoint (the stage's own weights), or
    is appended when the pipeline loads none."""
    if ckpt is None:
        return converters
    converters = [dict(c) if isinstance(c, Mapping) else c for c in converters]
    for c in reversed(converters):
        if is_load_checkpoint(c):
            c["path"] = str(ckpt)
            return converters
    quantize = [i for i, c in enumerate(converters)
                if isinstance(c, Mapping) and c.get("type") in ("QAT2Quantize", CONVERTERS.get("QAT2Quantize"))]
    at = quantize[0] if quantize else len(converters)
    return converters[:at] + [dict(type="LoadCheckpoint", path=str(ckpt))] + converters[at:]


def convert(model: torch.nn.Module, entry: Mapping, ckpt: str | os.PathLike | None = None) -> torch.nn.Module:
    """Run the entry's model_convert_pipeline (with `ckpt` as the stage's weights) on `model`."""
    converters = _with_checkpoint(pipeline_converters(entry), ckpt)
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
    """A DataLoader from `cfg[key]` = dict(dataset=..., batch_size, shuffle, num_workers, ...,
    collate="objects" for per-object fields kept as lists: hbdk_sim.data.collate), with a distributed
    sampler under torchrun."""
    if key not in cfg:
        raise ConfigError(f"the config has no {key!r} entry")
    spec = dict(cfg[key].to_dict() if isinstance(cfg[key], Config) else cfg[key])
    dataset = build_from_cfg(spec.pop("dataset"), DATASETS)
    shuffle = bool(spec.pop("shuffle", train))
    if batch_size is not None:
        spec["batch_size"] = batch_size
    collate = spec.pop("collate", None)
    if collate is not None:
        from hbdk_sim.data.collate import collate_function

        spec["collate_fn"] = collate_function(collate)
    seed = int(cfg.get("seed", 0))
    sampler = build_sampler(dataset, shuffle=shuffle, seed=seed, drop_last=spec.get("drop_last", False),
                            sequence_lengths=None if shuffle else _sequence_lengths(dataset))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, shuffle=shuffle if sampler is None else False, sampler=sampler,
                      generator=generator, persistent_workers=False, **spec)


def _sequence_lengths(dataset: object) -> list[int] | None:
    """Frames per sequence of a video dataset (a per-frame LMDB whose metadata holds
    `sequence_lengths`, as the MOT17 packer writes), else None: evaluation on several ranks then
    gives each rank whole sequences."""
    meta = getattr(dataset, "meta", None)
    if not isinstance(meta, Mapping) or "sequence_lengths" not in meta:
        return None
    from hbdk_sim.data.datasets.clips import sequence_runs

    return [count for _, count in sequence_runs(dataset)]


def check_batch_fits_memory(cfg: Mapping, loader_key: str) -> None:
    """Refuse a run whose batches cannot fit in memory before the first one is loaded: the board
    graphs' activations on a batch of `deploy_input_shape` inputs (counted on the meta device) must
    fit in the free memory. A config without a deploy input shape is not checked."""
    if "deploy_input_shape" not in cfg or loader_key not in cfg:
        return
    batch = int(dict(cfg[loader_key]).get("batch_size", 1) or 1)
    shape = [batch, *deploy_input_shape(cfg)[1:]]
    check_fits_memory(cfg, shape, f"a batch of {loader_key} (batch_size x deploy_input_shape)")


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
        raise UsageError(f"stage {stage!r} does not train; expected one of {', '.join(TRAIN_STAGES)}")
    entry = stage_entry(cfg, stage, "trainer")
    check_batch_fits_memory(cfg, entry.get("data_loader", "train_data_loader"))
    model = convert(build_from_cfg(cfg["model"], MODELS), entry, ckpt)
    entry.pop("model_convert_pipeline", None)
    entry["callbacks"] = _fill_validation(list(entry.get("callbacks", [])), cfg)
    loader = build_data_loader(cfg, entry.pop("data_loader", "train_data_loader"), train=True)
    return build_trainer(entry, model=model, data_loader=loader, config=cfg)


def build_stage_predictor(cfg: Config, stage: str, ckpt: str | os.PathLike | None = None,
                          model: torch.nn.Module | None = None):
    """The Predictor of any stage over the validation loader, with the config's metric."""
    entry = stage_entry(cfg, stage, "predictor")
    check_batch_fits_memory(cfg, entry.get("data_loader", "val_data_loader"))
    if model is None:
        model = convert(build_from_cfg(cfg["model"], MODELS), entry, ckpt)
    entry.pop("model_convert_pipeline", None)
    loader = build_data_loader(cfg, entry.pop("data_loader", "val_data_loader"), train=False)
    metric = entry.pop("metric", cfg.get("metric"))
    return build_trainer({"type": "Predictor", **entry}, model=model, data_loader=loader,
                         metric=build_from_cfg(metric, METRICS))


def missing_checkpoints(cfg: Mapping, stage: str) -> list[Path]:
    """The checkpoint files the predictor pipeline of `stage` loads that do not exist."""
    entry = stage_entry(cfg, stage, "predictor")
    pipeline = entry.get("model_convert_pipeline")
    converters = list(pipeline.get("converters", [])) if isinstance(pipeline, Mapping) else list(pipeline or [])
    paths = [Path(c["path"]) for c in converters if isinstance(c, Mapping) and "path" in c
             and c.get("type") in ("LoadCheckpoint", CONVERTERS.get("LoadCheckpoint"))]
    return [p for p in paths if not p.is_file()]


def build_task_model(cfg: Mapping) -> TaskModel:
    """The config's float `model` at its initialization, refused unless it is a task model."""
    model = build_from_cfg(cfg["model"], MODELS)
    if not isinstance(model, TaskModel):
        raise ConfigError(f"the config's model is a {type(model).__name__}, not a task model: the deployment tools "
                          "need its board graphs (wrap the network in a structure such as Segmentor, or subclass "
                          "hbdk_sim.nn.structures.TaskModel)")
    return model


def untrained_graphs(cfg: Mapping) -> list[BoardGraph]:
    """The float board graphs at random initialization, seeded by the config's `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.get("seed", 0)))
        return build_task_model(cfg).eval().board_graphs(deploy_input_shape(cfg))


def stage_task_model(cfg: Config, stage: str, ckpt: str | os.PathLike | None = None) -> TaskModel:
    """The task model of `stage` in eval mode: through the stage predictor's pipeline (whose
    QAT2Quantize makes int_infer's graphs integer), its host side with the stage's weights."""
    model = build_model(cfg, stage, "predictor", ckpt)
    if not isinstance(model, TaskModel):
        build_task_model(cfg)  # names the problem
        raise ConfigError(f"the {stage}_predictor's model_convert_pipeline gives a {type(model).__name__}, not the "
                          "task model; its converters must convert the model in place")
    return model.eval()


def deploy_graphs(cfg: Config, stage: str, ckpt: str | os.PathLike | None = None) -> list[BoardGraph]:
    """The board graphs of `stage` at `deploy_input_shape` (see stage_task_model)."""
    return stage_task_model(cfg, stage, ckpt).board_graphs(deploy_input_shape(cfg))
