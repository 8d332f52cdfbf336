"""What the deployment tools share (calops, export_hbir/onnx, model_checker, compile_perf, infer,
validation_hbir): where their outputs go, the deploy network's example input, an image file
prepared as the board sees it, the predictions painted in the Cityscapes palette, and the
compiled `.hbm` evaluated in the bit-exact executor over the validation set ("align_bpu").

The deploy network of a stage is `stages.deploy_model`; these helpers only feed and read it.
"""

from __future__ import annotations

import io
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
    deploy_input_shape,
    deploy_model,
    load_config,
    missing_checkpoints,
    stage_entry,
    untrained_network,
)
from hbdk_sim.engine.toolkit import config_parser
from hbdk_sim.errors import ConfigError, InputFileError, UsageError
from hbdk_sim.files import write_file
from hbdk_sim.registry import METRICS, MODELS, TRANSFORMS, build_from_cfg

# Blend weight of the class colours over the image in `<stem>_pred.png`.
OVERLAY_ALPHA = 0.5


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


def default_output(cfg: Mapping, stage: str, suffix: str) -> Path:
    """`<work_dir>/deploy/<task_name>_<stage><suffix>`."""
    return deploy_dir(cfg) / f"{task_name(cfg)}_{stage}{suffix}"


def parse_input_shape(text: str, cfg: Mapping) -> list[int]:
    """`--input-shape 1,3,H,W` as ints, checked against the deploy network: 4 positive dims, the
    channels of `deploy_input_shape`, and H, W multiples of the network's stride."""
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
    stride = int(getattr(build_from_cfg(cfg["deploy_model"], MODELS), "max_stride", 1))
    if shape[2] % stride or shape[3] % stride:
        raise UsageError(f"--input-shape {text!r}: H and W must be multiples of the network's stride {stride}")
    return shape


def example_input(cfg: Mapping) -> torch.Tensor:
    """Zeros of `deploy_input_shape`: what the deploy network is traced with (refused first when
    that size cannot fit in memory)."""
    shape = deploy_input_shape(cfg)
    check_fits_memory(cfg, shape)
    return torch.zeros(shape)


def random_example_input(cfg: Mapping) -> torch.Tensor:
    """Seeded uniform [-1, 1) values of `deploy_input_shape` (the range of a normalized image): what
    an untrained network is calibrated on, where zeros would give every activation a zero range."""
    shape = deploy_input_shape(cfg)
    check_fits_memory(cfg, shape)
    generator = torch.Generator().manual_seed(int(cfg.get("seed", 0)))
    return torch.rand(shape, generator=generator) * 2 - 1


def deploy_network(cfg: Config, stage: str, ckpt: str | os.PathLike | None = None, *,
                   random_init: bool = False) -> tuple[torch.nn.Module, torch.Tensor, str | None]:
    """The board network of `stage` and the input to trace it with, for the tools that judge an
    architecture (model_checker, compile_perf): (network, example input, note).

    With the stage's checkpoints in place (or `ckpt` given), the stage's network on zeros and no
    note. With `random_init`, or when the default checkpoints are missing (a config not trained
    yet), the float deploy network at random initialization (seeded by the config's `seed`) and a
    seeded random input to calibrate it on; the note says so, for the tool to print."""
    if not random_init:
        missing = [] if ckpt is not None else missing_checkpoints(cfg, stage)
        if not missing:
            return deploy_model(cfg, stage, ckpt), example_input(cfg), None
        reason = f"no checkpoint at {missing[0]} (stage {stage} is not trained yet)"
    else:
        reason = "--random-init"
    note = (f"{reason}: using the architecture at random initialization (deploy_model, seed "
            f"{int(cfg.get('seed', 0))}), calibrated on random inputs of deploy_input_shape "
            f"{deploy_input_shape(cfg)}")
    return untrained_network(cfg), random_example_input(cfg), note


def refuse_existing(paths: Iterable[Path], force: bool) -> None:
    """The tools' form of files.refuse_existing: the fix they name is --force."""
    files.refuse_existing(paths, force, hint="pass --force to replace it")


# ---- an image file as the board sees it ---------------------------------------------------------------


def export_job(description: str, suffix: str) -> tuple[Any, Config, Path, torch.nn.Module]:
    """The export tools' common part: parse `--config --opts --stage --ckpt --out --force`, refuse
    an existing output, and build the stage's deploy network. Returns (args, cfg, out, network)."""
    parser = config_parser(description)
    parser.add_argument("--stage", default="int_infer", choices=STAGES)
    parser.add_argument("--ckpt", help="the stage's weights (default: the path its predictor pipeline names)")
    parser.add_argument("--out", help=f"the {suffix} to write (default: <work_dir>/deploy/<task_name>_<stage>{suffix})")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args()
    cfg = load_config(args.config, args.opts)
    out = Path(args.out) if args.out else default_output(cfg, args.stage, suffix)
    refuse_existing([out], args.force)
    network = deploy_model(cfg, args.stage, args.ckpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    return args, cfg, out, network


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


def prepare_image(rgb: np.ndarray, transforms: Callable[[dict], dict]) -> torch.Tensor:
    """The network input (1, C, H, W) of one RGB image after `transforms` (see image_transforms)."""
    sample = transforms({"img": rgb, "color_space": "rgb"})
    img = sample["img"]
    if not isinstance(img, torch.Tensor) or img.ndim != 3:
        raise ConfigError(f"the validation transforms gave an image of type {type(img).__name__}; they must end "
                          "with ToTensor (and Normalize) so the network gets a CxHxW tensor")
    return img.float().unsqueeze(0)


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


def first_output(outputs: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The finest logits: a deploy network returns them alone, a multi-scale one first."""
    return outputs if isinstance(outputs, torch.Tensor) else outputs[0]


# ---- painting predictions ---------------------------------------------------------------------------


def colorize(class_ids: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """HxW class ids -> HxWx3 uint8 colours; an id outside the palette (e.g. 255, ignore) is black."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8)
    ids = np.asarray(class_ids)
    if ids.min(initial=0) < 0 or ids.max(initial=0) > 255:
        raise UsageError(f"colorize: class ids must be in 0..255 but range {ids.min()}..{ids.max()}")
    return table[ids.astype(np.uint8)]


def overlay(rgb: np.ndarray, color: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """`color` blended over `rgb` with weight `alpha` (both HxWx3 uint8)."""
    mixed = (1.0 - alpha) * rgb.astype(np.float32) + alpha * color.astype(np.float32)
    return np.clip(np.floor(mixed + 0.5), 0, 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def prediction_paths(save_dir: Path, image: Path) -> tuple[Path, Path]:
    """`<save_dir>/<stem>_pred.png` (colours over the image) and `<stem>_color.png` (colours only)."""
    return save_dir / f"{image.stem}_pred.png", save_dir / f"{image.stem}_color.png"


def write_prediction(rgb: np.ndarray, class_ids: np.ndarray, pred_path: Path, color_path: Path,
                     palette: Sequence[Sequence[int]], *, overwrite: bool) -> None:
    color = colorize(class_ids, palette)
    write_file(pred_path, png_bytes(overlay(rgb, color)), overwrite=overwrite)
    write_file(color_path, png_bytes(color), overwrite=overwrite)


# ---- align_bpu: the compiled binary over the validation set ---------------------------------------------


def _to_torch(outputs: Mapping[str, np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(v)) for v in outputs.values()]


def evaluate_binary(cfg: Config, executor: Any, progress_bar: bool = True) -> dict[str, Any]:
    """The config's metric over its validation set, each sample (batch size 1, the validation
    transforms and the int_infer predictor's batch processor) run by `executor` (an
    hbdk_sim.Executor) and post-processed as the int_infer predictor does: the finest logits
    resized to the image and arg-maxed (seg_postprocess)."""
    from hbdk_sim.nn.postprocess import seg_postprocess

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
        for batch in loader:
            batch = processor.prepare(batch, cpu)
            image = batch["img"]
            logits = first_output(_to_torch(executor.run([image.numpy().astype(np.float32)])))
            preds = seg_postprocess(logits, image.shape[-2:])
            metric.update({"preds": preds, "logits": logits}, batch)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return metric_results(metric)
