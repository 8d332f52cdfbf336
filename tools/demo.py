"""The main job: UNet-MobileNetV1 segmentation from raw images to a bit-exact BPU binary, through
the same tools a user runs for every task.

    python3 tools/demo.py [--out-dir out/demo] [--force]

1. generate a synthetic Cityscapes dataset (the real layout) and pack it into LMDB;
2. train float, calibrate, train QAT (tools/train.py), evaluate every stage and the integer
   model (tools/predict.py --stage float|calibration|qat|int_infer);
3. export the integer network to HBIR, compile it for `bpu` (tools/compile_perf.py) and run the
   binary in the bit-exact executor over the validation set (tools/validation_hbir.py --stage
   align_bpu);
4. print one table: mIoU per stage, estimated latency and FPS, DDR MB per frame, and where every
   artifact is.
Every step is a subprocess running a tool, so its command line is the one to copy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "models" / "segmentation" / "unet_mobilenetv1_cityscapes.py"
MARKER = ".hbdk-demo"  # a folder holding it was made by this demo and may be replaced with --force

# The CPU-sized run: 128x256 synthetic street scenes.
TRAIN_IMAGES, VAL_IMAGES = 240, 60
HEIGHT, WIDTH = 128, 256
SETTINGS = {
    "image_size": f"[{HEIGHT},{WIDTH}]",
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
}


class Step:
    """Runs the tools and times them."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.times: list[tuple[str, float]] = []

    def run(self, title: str, *args: object, json_result: bool = False):
        cmd = [sys.executable, *map(str, args)]
        shown = " ".join(str(a) for a in args)
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
    ap.add_argument("--out-dir", type=Path, default=Path("out/demo"), help="where everything goes")
    ap.add_argument("--force", action="store_true", help="replace an earlier demo run in --out-dir")
    args = ap.parse_args()
    out = args.out_dir.resolve()
    prepare_out_dir(out, args.force)
    raw, packed, work = out / "data" / "cityscapes_synthetic", out / "data" / "lmdb", out / "work"
    opts = ["--opts", f"data_root={packed}", f"work_dir={work}", *(f"{k}={v}" for k, v in SETTINGS.items())]
    cfg = ["--config", CONFIG]
    step = Step(out / "demo.log")
    total = time.perf_counter()

    step.run("generate a synthetic Cityscapes dataset", "tools/datasets/make_synthetic_cityscapes.py", "--out", raw,
             "--train", TRAIN_IMAGES, "--val", VAL_IMAGES, "--height", HEIGHT, "--width", WIDTH, "--seed", 0)
    for split in ("train", "val"):
        step.run(f"pack {split} into LMDB", "tools/datasets/cityscapes_packer.py", "--src-data-dir", raw,
                 "--target-data-dir", packed, "--split-name", split, "--pack-type", "lmdb", "--image-codec", "raw",
                 "--num-workers", 2)
    miou = {}
    for stage in ("float", "calibration", "qat"):
        step.run(f"train: {stage}", "tools/train.py", "--stage", stage, *cfg, *opts)
        miou[stage] = step.run(f"predict: {stage}", "tools/predict.py", "--stage", stage, *cfg, *opts,
                               json_result=True)["mIoU"]
    miou["int_infer"] = step.run("predict: int_infer", "tools/predict.py", "--stage", "int_infer", *cfg, *opts,
                                 json_result=True)["mIoU"]
    deploy = work / "deploy"
    hbir = deploy / "unet_mobilenetv1_cityscapes_int_infer.hbir"
    step.run("export the integer network to HBIR", "tools/export_hbir.py", "--stage", "int_infer", "--out-dir", deploy,
             *cfg, *opts)
    perf = step.run("compile for bpu and estimate", "tools/compile_perf.py", "--stage", "int_infer", "--march", "bpu",
                    "--out-dir", deploy, "--json", *cfg, *opts, json_result=True)
    miou["align_bpu"] = step.run("align_bpu: the .hbm in the bit-exact executor", "tools/validation_hbir.py",
                                 "--stage", "align_bpu", "--hbm", perf["hbm"], *cfg, *opts, json_result=True)["mIoU"]
    elapsed = time.perf_counter() - total

    print("\n" + "=" * 78)
    print(f"UNet-MobileNetV1 on synthetic Cityscapes ({TRAIN_IMAGES} train / {VAL_IMAGES} val, {HEIGHT}x{WIDTH}), "
          f"{elapsed / 60:.1f} min")
    print(f"{'stage':<14}{'mIoU':>8}   {'vs float':>9}")
    for stage, value in miou.items():
        delta = "" if stage == "float" else f"{100 * (value - miou['float']):+8.2f} pt"
        print(f"{stage:<14}{value:>8.4f}   {delta:>9}")
    exact = "equal" if miou["align_bpu"] == miou["int_infer"] else "DIFFERENT"
    print(f"align_bpu vs int_infer: {exact}")
    print(f"bpu estimate: {perf['latency_ms']:.3f} ms, {perf['fps']:.0f} FPS, "
          f"{perf['ddr_mb_per_frame']:.2f} MB DDR per frame")
    print("artifacts:")
    for name, path in (("dataset (PNG tree)", raw), ("LMDB", packed), ("checkpoints and logs", work),
                       ("HBIR", hbir), (".hbm", perf["hbm"]), ("perf report", perf["html"]), ("log", out / "demo.log")):
        print(f"  {name:<22}{path}")
    return 0 if exact == "equal" else 1


if __name__ == "__main__":
    sys.exit(main())
