"""What the deployment tools share (calops, export_hbir/onnx, model_checker, compile_perf, infer,
validation_hbir): the board graphs of a stage and their example inputs, where their outputs go, an
image file prepared as the board sees it, and the compiled graphs evaluated in the bit-exact
executor over the validation set ("align_bpu").

Every tool goes through the task contract (hbdk_sim.nn.structures.base): a task model has one or
more named board graphs; a tool handles each, and names a graph's files `<task>_<stage>` when the
task has one graph, `<task>_<stage>_<graph>` when it has several.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from hbdk_sim import files
from hbdk_sim.engine.batch_processor import BATCH_PROCESSORS, BatchProcessor
from hbdk_sim.engine.config import Config
from hbdk_sim.engine.memory import check_fits_memory
from hbdk_sim.engine.predictor import metric_results
from hbdk_sim.engine.stages import (
    STAGES,
    build_data_loader,
    build_task_model,
    deploy_input_shape,
    is_load_checkpoint,
    load_config,
    missing_checkpoints,
    pipeline_converters,
    stage_entry,
    stage_task_model,
    untrained_graphs,
)
from hbdk_sim.engine.toolkit import config_parser
from hbdk_sim.errors import ConfigError, InputFileError, UsageError
from hbdk_sim.nn.structures.base import BoardGraph, Runner, TaskModel
from hbdk_sim.registry import METRICS, TRANSFORMS, build_from_cfg

# ---- names and shapes ------------------------------------------------------------------------------


def task_name(cfg: Mapping) -> str:
    """The config's `task_name`, else its file's stem."""
    name = cfg.get("task_name")
    if name:
        return str(name)
    source = cfg.__dict__.get("_source") if isinstance(cfg, Config) else None
    return Path(source).stem if source else "model"


def deploy_dir(cfg: Mapping) -> Path:
    """`<work_dir>/deploy`: where exported graphs and compiled binaries go by default."""
    if "work_dir" not in cfg:
        raise ConfigError("the config has no 'work_dir'; set one (or pass --opts work_dir=DIR)")
    return Path(cfg["work_dir"]) / "deploy"


def graph_stem(cfg: Mapping, stage: str, graph: str, graph_names: Sequence[str]) -> str:
    """The file stem of one board graph: `<task_name>_<stage>`, with `_<graph>` when the task has
    several graphs."""
    stem = f"{task_name(cfg)}_{stage}"
    return stem if list(graph_names) == [graph] else f"{stem}_{graph}"


def default_output(cfg: Mapping, stage: str, suffix: str, graph: str, graph_names: Sequence[str]) -> Path:
    """`<work_dir>/deploy/<graph_stem><suffix>`: where a tool writes a board graph's file by default."""
    return deploy_dir(cfg) / f"{graph_stem(cfg, stage, graph, graph_names)}{suffix}"


def parse_input_shape(text: str, cfg: Mapping) -> list[int]:
    """`--input-shape 1,3,H,W` as ints, checked against the task model: 4 positive dims, the
    channels of `deploy_input_shape`, and H, W multiples of the task model's `max_stride`."""
    parts = [p.strip() for p in text.split(",")]
    try:
        shape = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--input-shape {text!r}: expected comma-separated ints N,C,H,W, e.g. 1,3,512,1024") from None
    if len(shape) != 4 or min(shape) <= 0:
        raise UsageError(f"--input-shape {text!r}: expected 4 positive dims N,C,H,W, e.g. 1,3,512,1024")
    channels = deploy_input_shape(cfg)[1]
    if shape[1] != channels:
        raise UsageError(f"--input-shape {text!r}: the network takes {channels} channels (deploy_input_shape), "
                         f"not {shape[1]}")
    stride = int(getattr(build_task_model(cfg), "max_stride", 1))
    if shape[2] % stride or shape[3] % stride:
        raise UsageError(f"--input-shape {text!r}: H and W must be multiples of the network's stride {stride}")
    return shape


def graph_inputs(graph: BoardGraph, random_seed: int | None = None) -> tuple[torch.Tensor, ...]:
    """What a board graph is traced with: zeros of its inputs, or with `random_seed` seeded uniform
    values of each input's range (what an untrained graph is calibrated on, where zeros would give
    every activation a zero range)."""
    if random_seed is None:
        return graph.example_inputs()
    return graph.example_inputs(torch.Generator().manual_seed(random_seed))


def stage_model(cfg: Config, stage: str, ckpt: str | os.PathLike | None = None) -> TaskModel:
    """The task model of `stage` (refused first when `deploy_input_shape` cannot fit in memory)."""
    check_fits_memory(cfg, deploy_input_shape(cfg))
    return stage_task_model(cfg, stage, ckpt)


def stage_graphs(cfg: Config, stage: str, ckpt: str | os.PathLike | None = None) -> list[BoardGraph]:
    """The board graphs of `stage` (refused first when `deploy_input_shape` cannot fit in memory)."""
    return stage_model(cfg, stage, ckpt).board_graphs(deploy_input_shape(cfg))


def checked_graphs(cfg: Config, stage: str, ckpt: str | os.PathLike | None = None, *, random_init: bool = False
                   ) -> tuple[list[tuple[BoardGraph, tuple[torch.Tensor, ...]]], str | None]:
    """The board graphs of `stage` with the inputs to trace them with, for the tools that judge an
    architecture (model_checker, compile_perf): ([(graph, inputs)], note).

    With the stage's checkpoints in place (or `ckpt` given), the stage's graphs on zeros and no
    note. With `random_init`, or when the default checkpoints are missing (a config not trained
    yet), the float graphs at random initialization (seeded by the config's `seed`) with seeded
    random inputs to calibrate them on; the note says so, for the tool to print."""
    if not random_init:
        missing = [] if ckpt is not None else missing_checkpoints(cfg, stage)
        if not missing:
            return [(g, graph_inputs(g)) for g in stage_graphs(cfg, stage, ckpt)], None
        reason = f"no checkpoint at {missing[0]} (stage {stage} is not trained yet)"
    else:
        reason = "--random-init"
    seed = int(cfg.get("seed", 0))
    note = (f"{reason}: using the architecture at random initialization (model, seed {seed}), calibrated on "
            f"random inputs of deploy_input_shape {deploy_input_shape(cfg)}")
    check_fits_memory(cfg, deploy_input_shape(cfg))
    return [(g, graph_inputs(g, seed)) for g in untrained_stage_graphs(cfg, stage)], note


def untrained_stage_graphs(cfg: Config, stage: str) -> list[BoardGraph]:
    """The board graphs of `stage` at random initialization (seeded by the config's `seed`). For the
    float stage, the float graphs (the compiler calibrates them on random inputs, every activation
    si8). For a quantized stage, the float model prepared as the calibration predictor prepares it
    (so the model's own choices hold: its `int16_outputs`, graph mode), calibrated on each board
    graph's seeded random inputs and put in the fake-quant state that predictor ends in; a config
    without a calibration predictor falls back to the float graphs."""
    shape = deploy_input_shape(cfg)
    seed = int(cfg.get("seed", 0))
    if stage == "float" or "calibration_predictor" not in cfg:
        return untrained_graphs(cfg)
    converters = pipeline_converters(stage_entry(cfg, "calibration", "predictor"))
    loads = [i for i, c in enumerate(converters) if is_load_checkpoint(c)]
    if not loads:
        raise ConfigError("calibration_predictor: its model_convert_pipeline loads no checkpoint; expected the "
                          "prepare converter, LoadCheckpoint, then the fake-quant state")
    prepare = converters[: loads[0]]
    finish = [c for c in converters[loads[0]:] if not is_load_checkpoint(c)]
    from hbdk_sim.quantization.converters import ModelConvertPipeline

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_task_model(cfg)
    model = ModelConvertPipeline(prepare)(model).eval()  # observers on (the calibration state)
    with torch.no_grad():
        for graph in model.board_graphs(shape):
            graph.module(*graph_inputs(graph, seed))
    model = ModelConvertPipeline(finish)(model) if finish else model
    return model.eval().board_graphs(shape)


def refuse_existing(paths: Iterable[Path], force: bool) -> None:
    """The tools' form of files.refuse_existing: the fix they name is --force."""
    files.refuse_existing(paths, force, hint="pass --force to replace it")


# ---- an image file as the board sees it ---------------------------------------------------------------


def export_job(description: str, suffix: str) -> tuple[Any, Config, list[tuple[BoardGraph, Path, str]]]:
    """The export tools' common part: parse `--config --opts --stage --ckpt --out-dir --force`,
    refuse existing outputs, and build the stage's board graphs. Returns (args, cfg, [(graph, output
    path, module name)])."""
    parser = config_parser(description)
    parser.add_argument("--stage", default="int_infer", choices=STAGES)
    parser.add_argument("--ckpt", help="the stage's weights (default: the path its predictor pipeline names)")
    parser.add_argument("--out-dir", help="where the files go (default: <work_dir>/deploy)")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    args = parser.parse_args()
    cfg = load_config(args.config, args.opts)
    names = build_task_model(cfg).graph_names()
    out_dir = Path(args.out_dir) if args.out_dir else deploy_dir(cfg)
    stems = {name: graph_stem(cfg, args.stage, name, names) for name in names}
    refuse_existing([out_dir / f"{stem}{suffix}" for stem in stems.values()], args.force)
    graphs = stage_graphs(cfg, args.stage, args.ckpt)
    out_dir.mkdir(parents=True, exist_ok=True)
    return args, cfg, [(g, out_dir / f"{stems[g.name]}{suffix}", stems[g.name]) for g in graphs]


def val_transform_specs(cfg: Mapping) -> list:
    """The transforms of the config's validation dataset (`val_data_loader.dataset.transforms`, else
    `val_transforms`): what prediction and align_bpu feed the network."""
    loader = cfg.get("val_data_loader")
    dataset = loader.get("dataset") if isinstance(loader, Mapping) else None
    specs = dataset.get("transforms") if isinstance(dataset, Mapping) else None
    if specs is None:
        specs = cfg.get("val_transforms")
    if specs is None:
        raise ConfigError("the config has neither val_data_loader.dataset.transforms nor val_transforms; "
                          "the image preprocessing comes from them")
    specs = specs.to_dict() if isinstance(specs, Config) else specs
    return [t.to_dict() if isinstance(t, Config) else t for t in specs]


def image_transforms(cfg: Mapping) -> Callable[[dict], dict]:
    """The validation transforms without the label-only ones (a transform class declaring
    `label_only = True`, such as LabelRemap): resize, YUV444, normalize. A transform declaring
    `random = True` there is a config error."""
    built = [build_from_cfg(t, TRANSFORMS) for t in val_transform_specs(cfg)]
    random = [type(t).__name__ for t in built if getattr(t, "random", False)]
    if random:
        raise ConfigError(f"the validation transforms hold random ones ({', '.join(random)}); the board "
                          "preprocessing must be deterministic: move them to train_transforms")
    transforms = [t for t in built if not getattr(t, "label_only", False)]

    def apply(sample: dict) -> dict:
        for t in transforms:
            sample = t(sample)
        return sample

    return apply


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file (PNG, JPEG, anything Pillow reads) as HxWx3 uint8 RGB."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except OSError as e:  # Pillow's UnidentifiedImageError is an OSError
        raise InputFileError(path, f"not an image Pillow can read ({e})") from None


def prepare_image(rgb: np.ndarray, transforms: Callable[[dict], dict]) -> dict[str, Any]:
    """A batch of one RGB image after `transforms` (see image_transforms): `img` (1, C, H, W), and
    the resize's `scale_factor` (1, 2) when the transforms record one (a detector's host side maps
    its boxes back to the original pixels with it)."""
    sample = transforms({"img": rgb, "color_space": "rgb"})
    img = sample["img"]
    if not isinstance(img, torch.Tensor) or img.ndim != 3:
        raise ConfigError(f"the validation transforms gave an image of type {type(img).__name__}; they must end "
                          "with ToTensor (and Normalize) so the network gets a CxHxW tensor")
    batch = {"img": img.float().unsqueeze(0)}
    if "scale_factor" in sample:
        batch["scale_factor"] = torch.as_tensor(np.asarray(sample["scale_factor"], np.float32)).reshape(1, -1)
    return batch


def parse_model_inputs(text: str) -> list[Path]:
    """`--model-inputs img:PATH[,img:PATH2...]` -> the image paths."""
    paths = []
    for item in (p.strip() for p in text.split(",")):
        name, sep, path = item.partition(":")
        if not sep or name != "img" or not path:
            raise UsageError(f"--model-inputs {text!r}: expected img:PATH[,img:PATH2...] but got {item!r}")
        paths.append(Path(path))
    stems = [p.stem for p in paths]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise UsageError(f"--model-inputs: several images are named {', '.join(twice)}; their outputs would "
                         "collide in --save-path")
    return paths


def prediction_paths(save_dir: Path, image: Path, names: Iterable[str]) -> list[Path]:
    """`<save_dir>/<stem>_<name>.png` for each picture the task model's `visualize` draws."""
    return [save_dir / f"{image.stem}_{name}.png" for name in names]


def first_of_batch(prediction: Mapping[str, Any]) -> dict[str, Any]:
    """The first sample of a batch's predictions (each value a batched tensor or a per-sample list)."""
    return {k: v[0] for k, v in prediction.items()}


# ---- align_bpu: the compiled binary over the validation set ---------------------------------------------


def executor_runner(executor: Any) -> Runner:
    """A compiled graph as a runner: torch tensors in, the executor's outputs (in order) out."""

    def run(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = executor.run([np.ascontiguousarray(x.detach().cpu().numpy()) for x in inputs])
        return tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in outputs.values())

    return run


def evaluate_binaries(cfg: Config, executors: Mapping[str, Any], model: TaskModel,
                      progress_bar: bool = True) -> dict[str, Any]:
    """The config's metric over its validation set, each sample (batch size 1, the validation
    transforms and the int_infer predictor's batch processor) predicted by the host side of
    `model`, the int_infer task model (stage_model), around the compiled graphs: `executors` maps
    each board graph to an hbdk_sim.Executor. The host code and its weights are int_infer's (a
    host side may read learned values, such as the tracker's detect queries that start each new
    track)."""
    missing = sorted(set(model.graph_names()) - set(executors))
    if missing:
        raise UsageError(f"no compiled binary for board graph(s) {', '.join(missing)} of {type(model).__name__}")
    runners = {name: executor_runner(executors[name]) for name in model.graph_names()}
    entry = stage_entry(cfg, "int_infer", "predictor")
    processor = build_from_cfg(entry["batch_processor"], BATCH_PROCESSORS) if entry.get("batch_processor") \
        else BatchProcessor()
    metric = build_from_cfg(entry.get("metric", cfg.get("metric")), METRICS)
    if metric is None:
        raise ConfigError("the config has no 'metric' to evaluate align_bpu with")
    if hasattr(metric, "reset"):
        metric.reset()
    loader = build_data_loader(cfg, entry.get("data_loader", "val_data_loader"), train=False, batch_size=1)
    bar = None
    if progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=len(loader), desc="align_bpu", dynamic_ncols=True, leave=False)
    cpu = torch.device("cpu")
    try:
        with torch.no_grad():
            for batch in loader:
                batch = processor.prepare(batch, cpu)
                metric.update(model.predict(batch, runners), batch)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return metric_results(metric)
