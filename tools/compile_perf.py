"""Compile the deploy network of a stage for a march and estimate its speed: writes <name>.hbm,
<name>.perf.json and <name>.perf.html and prints latency, FPS and DDR traffic per frame.

    python3 tools/compile_perf.py --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        [--stage int_infer] [--ckpt PATH] [--march bpu] [--out-dir DIR] [--force] [--json]

<name> is <task_name>_<stage>; DIR defaults to <work_dir>/deploy. The network is traced on zeros of
the config's deploy_input_shape (a float network is calibrated on them).

On a config not trained yet (the stage's checkpoint missing), or with --random-init, the estimate is
of the architecture at random initialization, calibrated on seeded random inputs, and the first line
says so: the speed of a network depends on its shapes, not on its weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from hbdk_sim.api import perf_report_paths
from hbdk_sim.engine.deploy import deploy_dir, deploy_network, refuse_existing, task_name
from hbdk_sim.engine.stages import STAGES, load_config
from hbdk_sim.engine.toolkit import config_parser, run_tool
from hbdk_sim.frontend.api import compile_model


def main() -> int:
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--stage", default="int_infer", choices=STAGES)
    parser.add_argument("--ckpt", help="the stage's weights (default: the path its predictor pipeline names)")
    parser.add_argument("--march", help="the target march (default: the config's march)")
    parser.add_argument("--out-dir", help="where the .hbm and reports go (default: <work_dir>/deploy)")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    parser.add_argument("--json", action="store_true", help="also print the summary as one JSON line")
    parser.add_argument("--random-init", action="store_true",
                        help="estimate the architecture at random initialization even when checkpoints exist")
    args = parser.parse_args()
    if args.random_init and args.ckpt:
        parser.error("--random-init and --ckpt exclude each other")
    cfg = load_config(args.config, args.opts)
    march = args.march or cfg.get("march", "bpu")
    name = f"{task_name(cfg)}_{args.stage}"
    hbm = (Path(args.out_dir) if args.out_dir else deploy_dir(cfg)) / f"{name}.hbm"
    refuse_existing([hbm, *perf_report_paths(hbm)], args.force)
    model, example, note = deploy_network(cfg, args.stage, args.ckpt, random_init=args.random_init)
    if note:
        print(f"compile_perf: {note}")
    hbm.parent.mkdir(parents=True, exist_ok=True)
    result = compile_model(model, example, march, hbm, overwrite=args.force, name=name)
    perf = result.perf
    print(f"{name} on march '{result.march}': {result.summary.macs:,} MACs, {result.instructions} instructions")
    print(f"  latency  {perf.latency_ms:.3f} ms")
    print(f"  FPS      {perf.fps:.1f}")
    print(f"  DDR      {perf.ddr_bytes_per_frame / 1e6:.3f} MB/frame "
          f"(read {perf.ddr_read_bytes / 1e6:.3f}, write {perf.ddr_write_bytes / 1e6:.3f})")
    print(f"  MAC utilization {100 * perf.mac_utilization:.1f}%, {perf.roofline_ratio:.2f}x the roofline bound")
    for path in [result.output, *result.perf_files]:
        print(f"  wrote {path}")
    if args.json:
        perf_json, perf_html = (str(p) for p in result.perf_files)
        print(json.dumps({"march": result.march, "macs": result.summary.macs, "instructions": result.instructions,
                          "latency_ms": perf.latency_ms, "fps": perf.fps,
                          "ddr_mb_per_frame": perf.ddr_bytes_per_frame / 1e6, "hbm": str(result.output),
                          "json": perf_json, "html": perf_html}))
    return 0


if __name__ == "__main__":
    run_tool("compile_perf", main)
