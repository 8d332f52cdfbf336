"""A task model from raw images to a bit-exact BPU binary, through the same tools a user runs.

    python3 tools/demo.py [--task segmentation|keypoint|fcos|motr] [--out-dir DIR] [--force]

1. generate a synthetic dataset in the real dataset's layout and bring it to LMDB with the task's
   own converter and packer;
2. train each stage (tools/train.py) and evaluate it (tools/predict.py --stage ...), then the
   integer model (--stage int_infer);
3. export the integer board graph to HBIR, compile it for `bpu` (tools/compile_perf.py) and run
   the binary in the bit-exact executor over the validation set (tools/validation_hbir.py --stage
   align_bpu); where the demo trains at a reduced input size, compile once more at the model's full
   deploy size for the estimate;
4. print one table: the task's metrics per stage, estimated latency and FPS, DDR MB per frame,
   and where every artifact is.
Every step is a subprocess running a tool, so its command line is the one to copy.

segmentation (the main job, `make demo`): UNet-MobileNetV1 on synthetic Cityscapes at 128x256,
float -> calibration -> QAT, about 6 minutes on 2 cores, the estimate at 1024x2048. keypoint
(`make demo TASK=keypoint`): EfficientNet-B0 heatmaps on synthetic CarFusion, float -> calibration
(the model it deploys). fcos (`make demo TASK=fcos`): FCOS on a synthetic COCO at 128x128, float
-> calibration -> QAT, the estimate at 512x512. motr (`make demo TASK=motr`): MOTR on a synthetic
MOT17 at 192x352 with a small network, float -> calibration -> QAT, both board graphs compiled and
run in the loop, the estimate of the config's own architecture at 800x1422.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = ".hbdk-demo"  # a folder holding it was made by this demo and may be replaced with --force


class Step:
    """Runs the tools and times them."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.times: list[tuple[str, float]] = []

    def run(self, title: str, *args: object, json_result: bool = False):
        cmd = [sys.executable, *map(str, args)]
        shown = " ".join(shlex.quote(str(a)) for a in args)  # a command line to copy into a shell
        print(f"\n== {title}\n$ python3 {shown}", flush=True)
        start = time.perf_counter()
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(f"\n$ {' '.join(cmd)}\n")
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            lines = []
            for line in proc.stdout:
                log.write(line)
                text = line.rstrip("\n").split("\r")[-1]  # what a terminal shows after progress-bar redraws
                lines.append(text)
                if text and not text.startswith(("epoch", "predict")):
                    print("   " + text, flush=True)
            code = proc.wait()
        elapsed = time.perf_counter() - start
        self.times.append((title, elapsed))
        if code != 0:
            raise SystemExit(f"demo: step '{title}' failed (exit {code}); see {self.log}")
        print(f"   ({elapsed:.0f} s)", flush=True)
        if json_result:
            for line in reversed(lines):
                if line.startswith("{"):
                    return json.loads(line)
            raise SystemExit(f"demo: step '{title}' printed no JSON result; see {self.log}")
        return None


@dataclass(frozen=True)
class DemoTask:
    """What differs between the task demos: the config and its CPU-sized settings, how the data is
    made, which stages train and which metrics the table shows."""

    title: str
    config: Path
    settings: dict[str, object]
    make_data: Callable[[Step, Path], tuple[Path, Path]]  # (step, data dir) -> (raw dataset, LMDB root)
    metrics: tuple[str, ...]
    train_stages: tuple[str, ...]
    default_out: str
    relative_delta: bool = False  # the "vs float" column: relative (%) or in points of the first metric
    full_input_shape: tuple[int, ...] | None = None  # the deploy size of the estimate, when the demo's is smaller
    raw_root_opt: str | None = None  # the config setting that names the raw dataset (e.g. an annotation file's root)
    # The full-size estimate is of the config's own (reference) architecture at random initialization, where the
    # demo trains a smaller network than the config's: the speed of a network depends on its shapes, not its weights.
    full_size_reference: bool = False


def _pack(step: Step, packer: str, raw: Path, packed: Path, splits: tuple[str, ...], *options: object) -> None:
    for split in splits:
        step.run(f"pack {split} into LMDB", f"tools/datasets/{packer}", "--src-data-dir", raw, "--target-data-dir",
                 packed, "--split-name", split, "--pack-type", "lmdb", *options, "--num-workers", 2)


# ---- segmentation: the main job ------------------------------------------------------------------------------

SEG_TRAIN, SEG_VAL, SEG_HEIGHT, SEG_WIDTH = 240, 60, 128, 256


def _segmentation_data(step: Step, data: Path) -> tuple[Path, Path]:
    raw, packed = data / "cityscapes_synthetic", data / "lmdb"
    step.run("generate a synthetic Cityscapes dataset", "tools/datasets/make_synthetic_cityscapes.py", "--out", raw,
             "--train", SEG_TRAIN, "--val", SEG_VAL, "--height", SEG_HEIGHT, "--width", SEG_WIDTH, "--seed", 0)
    _pack(step, "cityscapes_packer.py", raw, packed, ("train", "val"), "--image-codec", "raw")
    return raw, packed


SEGMENTATION = DemoTask(
    title=f"UNet-MobileNetV1 on synthetic Cityscapes ({SEG_TRAIN} train / {SEG_VAL} val, {SEG_HEIGHT}x{SEG_WIDTH})",
    config=REPO / "models" / "segmentation" / "unet_mobilenetv1_cityscapes.py",
    settings={
        "image_size": f"[{SEG_HEIGHT},{SEG_WIDTH}]",
        "batch_size": 8,
        "val_batch_size": 10,
        "num_workers": 2,
        "float_epochs": 34,  # about 1000 steps
        "float_lr": 5e-3,
        "focal_gamma": 0.5,  # a milder focus converges faster on a short schedule
        "warmup_steps": 30,
        "calibration_batches": 4,
        "qat_epochs": 2,
        "qat_lr": 1e-4,
    },
    make_data=_segmentation_data,
    metrics=("mIoU",),
    train_stages=("float", "calibration", "qat"),
    default_out="out/demo",
    full_input_shape=(1, 3, 1024, 2048),
)

# ---- keypoint: car keypoints on synthetic CarFusion ----------------------------------------------------------

# Many short sequences: every sequence brings new cars (the identity a model must generalize over).
KP_TRAIN_SEQUENCES, KP_TEST_SEQUENCES, KP_FRAMES, KP_CARS = 48, 6, 4, 5


def _keypoint_data(step: Step, data: Path) -> tuple[Path, Path]:
    raw, crops, packed = data / "carfusion_raw", data / "carfusion_crops", data / "lmdb"
    step.run("generate a synthetic CarFusion dataset (1920x1080 scenes)", "tools/datasets/make_synthetic_carfusion.py",
             "--out", raw, "--train-sequences", KP_TRAIN_SEQUENCES, "--test-sequences", KP_TEST_SEQUENCES,
             "--frames", KP_FRAMES, "--cars", KP_CARS, "--seed", 0)
    step.run("crop the cars (gen_carfusion_data)", "tools/dataset_converters/gen_carfusion_data.py",
             "--src-data-path", raw, "--out-dir", crops, "--num-workers", 2)
    _pack(step, "carfusion_packer.py", crops, packed, ("train", "test"))
    return raw, packed


KEYPOINT = DemoTask(
    title=(f"EfficientNet-B0 keypoints on synthetic CarFusion ({KP_TRAIN_SEQUENCES * KP_FRAMES * KP_CARS} train / "
           f"{KP_TEST_SEQUENCES * KP_FRAMES * KP_CARS} test car crops, 128x128)"),
    config=REPO / "models" / "keypoint" / "keypoint_efficientnetb0_carfusion.py",
    settings={
        "batch_size": 16,
        "val_batch_size": 60,
        "num_workers": 1,
        "float_epochs": 12,
        "float_lr": 2e-3,
        "float_validate_every": 4,
        # From scratch on a short schedule, the reference's 0.1 lets a heatmap hedge between a keypoint
        # and its twin on the far side of the car (docs/keypoint.md); the full loss weight settles it.
        "heatmap_background_weight": 1.0,
        "calibration_batches": 8,
    },
    make_data=_keypoint_data,
    metrics=("PCK@0.1", "mean_dist"),
    train_stages=("float", "calibration"),
    default_out="out/demo_keypoint",
    relative_delta=True,
)

# ---- fcos: object detection on a synthetic COCO ------------------------------------------------------------

DET_TRAIN, DET_VAL, DET_SIZE = 400, 50, 128


def _detection_data(step: Step, data: Path) -> tuple[Path, Path]:
    raw, packed = data / "coco_synthetic", data / "lmdb"
    step.run("generate a synthetic COCO dataset", "tools/datasets/make_synthetic_coco.py", "--out", raw,
             "--train", DET_TRAIN, "--val", DET_VAL, "--height", DET_SIZE, "--width", DET_SIZE, "--seed", 0)
    _pack(step, "mscoco_packer.py", raw, packed, ("train", "val"), "--image-codec", "raw")
    return raw, packed


FCOS = DemoTask(
    title=(f"FCOS EfficientNet-B0 BiFPN on a synthetic COCO ({DET_TRAIN} train / {DET_VAL} val, {DET_SIZE}x{DET_SIZE}, "
           "8 kinds of shapes)"),
    config=REPO / "models" / "detection" / "fcos_efficientnetb0_mscoco.py",
    settings={
        "image_size": f"[{DET_SIZE},{DET_SIZE}]",
        "batch_size": 16,
        "val_batch_size": 25,
        "num_workers": 1,
        "resize_ratio_range": "[0.8,1.25]",
        # From scratch on a short schedule: AdamW converges where the reference's SGD needs its 300 epochs.
        "float_optimizer": "{'type':'AdamW'}",
        "float_lr": 2e-3,
        "float_epochs": 30,
        "warmup_epochs": 1,
        "float_validate_every": 4,
        "ema_warmup_steps": 200,
        "calibration_batches": 8,
        "qat_epochs": 1,
    },
    make_data=_detection_data,
    metrics=("mAP", "AP50"),
    train_stages=("float", "calibration", "qat"),
    default_out="out/demo_fcos",
    full_input_shape=(1, 3, 512, 512),
    raw_root_opt="coco_root",
)

# ---- motr: multi-object tracking on a synthetic MOT17 --------------------------------------------------------

MOT_SEQUENCES, MOT_FRAMES, MOT_WALKERS, MOT_HEIGHT, MOT_WIDTH = 7, 60, 8, 192, 352


def _tracking_data(step: Step, data: Path) -> tuple[Path, Path]:
    raw, split, packed = data / "mot17_synthetic", data / "mot17_split", data / "lmdb"
    step.run("generate a synthetic MOT17 dataset", "tools/datasets/make_synthetic_mot17.py", "--out", raw,
             "--sequences", MOT_SEQUENCES, "--frames", MOT_FRAMES, "--pedestrians", MOT_WALKERS, "--height",
             MOT_HEIGHT, "--width", MOT_WIDTH, "--seed", 0)
    step.run("split the SDP sequences in halves (gen_mot_data)", "tools/dataset_converters/gen_mot_data.py",
             "--src-data-path", raw, "--out-dir", split)
    for name in ("train", "test"):
        step.run(f"pack {name} into LMDB", "tools/datasets/mot17_packer.py", "--src-data-dir", split / name,
                 "--target-data-dir", packed, "--split-name", name, "--pack-type", "lmdb", "--image-codec", "raw",
                 "--num-workers", 2)
    return split, packed


MOTR = DemoTask(
    title=(f"MOTR tracking on a synthetic MOT17 ({MOT_SEQUENCES} sequences x {MOT_FRAMES} frames, halves for train "
           f"and test, {MOT_HEIGHT}x{MOT_WIDTH}; EfficientNet-B0 at stride 16, d 64, 1 + 3 layers, 32 queries)"),
    config=REPO / "models" / "tracking" / "motr_efficientnetb3_mot17.py",
    settings={
        "image_size": f"[{MOT_HEIGHT},{MOT_WIDTH}]",
        "backbone_type": "b0",
        "feature_stride": 16,
        "d_model": 64,
        "num_heads": 4,
        "encoder_layers": 1,
        "decoder_layers": 3,
        "ffn_dim": 128,
        "num_queries": 32,
        "query_width": 16,
        "multi_scale": False,
        "num_workers": 1,
        "slow_lr_factor": 1.0,  # from scratch: the backbone learns at the full rate
        "grad_clip": 1.0,
        "float_lr": 1e-3,
        "float_epochs": 10,
        "float_decay_epochs": "[6]",
        "float_validate_every": 5,
        "clip_lengths": "[2,3]",
        "clip_length_epochs": "[5]",
        "quant_clip_length_epochs": "[1]",
        "calibration_batches": 8,
        "qat_epochs": 1,
    },
    make_data=_tracking_data,
    metrics=("MOTA", "IDF1"),
    train_stages=("float", "calibration", "qat"),
    default_out="out/demo_motr",
    full_input_shape=(1, 3, 800, 1422),
    raw_root_opt="split_root",
    full_size_reference=True,
)

TASKS = {"segmentation": SEGMENTATION, "keypoint": KEYPOINT, "fcos": FCOS, "motr": MOTR}


def binaries(summary: dict) -> dict[str, str]:
    """compile_perf's JSON summary -> {graph: .hbm} ("" for a task's single graph)."""
    if "graphs" in summary:
        return {g["graph"]: g["hbm"] for g in summary["graphs"]}
    return {"": summary["hbm"]}


def estimate_line(summary: dict, at: str) -> str:
    """The estimate as the table prints it; a task with several graphs shows each one's share."""
    parts = "" if "graphs" not in summary else \
        " (" + " + ".join(f"{g['graph']} {g['latency_ms']:.3f}" for g in summary["graphs"]) + ")"
    return (f"bpu estimate{at}: {summary['latency_ms']:.3f} ms{parts}, {summary['fps']:.0f} FPS, "
            f"{summary['ddr_mb_per_frame']:.2f} MB DDR per frame")


def prepare_out_dir(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise SystemExit(f"demo: {out} exists and was not made by this demo; choose another --out-dir")
        if not force:
            raise SystemExit(f"demo: {out} holds an earlier demo run; pass --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by tools/demo.py; --force replaces this folder\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="segmentation", choices=sorted(TASKS), help="which task model")
    ap.add_argument("--out-dir", type=Path, help="where everything goes (default: out/demo, out/demo_<task>)")
    ap.add_argument("--force", action="store_true", help="replace an earlier demo run in --out-dir")
    args = ap.parse_args()
    task = TASKS[args.task]
    out = (args.out_dir or REPO / task.default_out).resolve()
    prepare_out_dir(out, args.force)
    step = Step(out / "demo.log")
    total = time.perf_counter()

    raw, packed = task.make_data(step, out / "data")
    work = out / "work"
    opts = ["--opts", f"data_root={packed}", f"work_dir={work}", *(f"{k}={v}" for k, v in task.settings.items()),
            *([f"{task.raw_root_opt}={raw}"] if task.raw_root_opt else [])]
    cfg = ["--config", task.config]
    results: dict[str, dict] = {}
    for stage in task.train_stages:
        step.run(f"train: {stage}", "tools/train.py", "--stage", stage, *cfg, *opts)
        results[stage] = step.run(f"predict: {stage}", "tools/predict.py", "--stage", stage, *cfg, *opts,
                                  json_result=True)
    results["int_infer"] = step.run("predict: int_infer", "tools/predict.py", "--stage", "int_infer", *cfg, *opts,
                                    json_result=True)
    deploy = work / "deploy"
    step.run("export the integer network to HBIR", "tools/export_hbir.py", "--stage", "int_infer", "--out-dir", deploy,
             *cfg, *opts)
    perf = step.run("compile for bpu and estimate", "tools/compile_perf.py", "--stage", "int_infer", "--march", "bpu",
                    "--out-dir", deploy, "--json", *cfg, *opts, json_result=True)
    results["align_bpu"] = step.run("align_bpu: the .hbm in the bit-exact executor", "tools/validation_hbir.py",
                                    "--stage", "align_bpu", "--hbm",
                                    ",".join(f"{k}={v}" if k else v for k, v in binaries(perf).items()), *cfg, *opts,
                                    json_result=True)
    estimate, estimate_shape = perf, "x".join(map(str, task.full_input_shape or ()))
    if task.full_size_reference:
        estimate = step.run(f"compile the config's architecture for bpu at {estimate_shape} and estimate",
                            "tools/compile_perf.py", "--random-init", "--march", "bpu", "--out-dir",
                            work / "deploy_full", "--json", *cfg, "--opts", f"work_dir={work / 'full_size'}",
                            json_result=True)
    elif task.full_input_shape:
        shape = "[" + ",".join(map(str, task.full_input_shape)) + "]"
        estimate = step.run(f"compile for bpu at the full deploy size {estimate_shape} and estimate",
                            "tools/compile_perf.py", "--stage", "int_infer", "--march", "bpu", "--out-dir",
                            work / "deploy_full", "--json", *cfg, *opts, f"deploy_input_shape={shape}",
                            json_result=True)
    elapsed = time.perf_counter() - total

    first = task.metrics[0]
    print("\n" + "=" * 78)
    print(f"{task.title}, {elapsed / 60:.1f} min")
    widths = [max(8, len(m) + 2) for m in task.metrics]
    print(f"{'stage':<14}" + "".join(f"{m:>{w}}" for m, w in zip(task.metrics, widths, strict=True))
          + f"   {'vs float':>9}")
    base = results[task.train_stages[0]][first]
    for stage, values in results.items():
        delta = ""
        if stage != task.train_stages[0]:
            delta = f"{100 * (values[first] - base) / base:+7.2f} %" if task.relative_delta else \
                f"{100 * (values[first] - base):+8.2f} pt"
        print(f"{stage:<14}" + "".join(f"{values[m]:>{w}.4f}" for m, w in zip(task.metrics, widths, strict=True))
              + f"   {delta:>9}")
    exact = "equal" if all(results["align_bpu"][m] == results["int_infer"][m] for m in task.metrics) else "DIFFERENT"
    print(f"align_bpu vs int_infer: {exact}")
    at = f" at {estimate_shape}" if estimate_shape else ""
    if task.full_size_reference:
        at += " (the config's architecture)"
    print(estimate_line(estimate, at))
    print("artifacts:")

    def hbms(summary: dict, where: str = "") -> list[tuple[str, str]]:
        return [(" ".join(w for w in (".hbm", k, where) if w), v) for k, v in binaries(summary).items()]

    reports = [g["html"] for g in estimate["graphs"]] if "graphs" in estimate else [estimate["html"]]
    full = hbms(estimate, f"at {estimate_shape}") if estimate is not perf else []
    rows = [("dataset (raw layout)", raw), ("LMDB", packed), ("checkpoints and logs", work), ("HBIR", deploy),
            *hbms(perf), *full, *(("perf report", r) for r in reports), ("log", out / "demo.log")]
    width = max(len(name) for name, _ in rows) + 2
    for name, path in rows:
        print(f"  {name:<{width}}{path}")
    return 0 if exact == "equal" else 1


if __name__ == "__main__":
    sys.exit(main())
