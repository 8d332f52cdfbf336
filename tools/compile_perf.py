"""Compile the board graphs of a stage for a march and estimate their speed: writes <name>.hbm,
<name>.perf.json and <name>.perf.html per graph and prints latency, FPS and DDR traffic per frame.

    python3 tools/compile_perf.py --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        [--stage int_infer] [--ckpt PATH] [--march bpu] [--out-dir DIR] [--force] [--json]

<name> is <task_name>_<stage> (<task_name>_<stage>_<graph> for a task with several board graphs,
whose per-frame figures are then the sums over its graphs); DIR defaults to <work_dir>/deploy. Each
graph is traced on zeros of its inputs at the config's deploy_input_shape (a float graph is
calibrated on them).

On a config not trained yet (the stage's checkpoint missing), or with --random-init, the estimate is
of the architecture at random initialization, calibrated on seeded random inputs, and the first line
says so: the speed of a network depends on its shapes, not on its weights. A quantized stage is
prepared as the config's calibration prepares it (graph mode, the model's int16 choices), so the
estimate has the deployed data types.
"""

from __future__ import annotations

import json
from pathlib import Path

from hbdk_sim.api import perf_report_paths
from hbdk_sim.engine.deploy import checked_graphs, deploy_dir, graph_stem, refuse_existing
from hbdk_sim.engine.stages import STAGES, build_task_model, load_config
from hbdk_sim.engine.toolkit import config_parser, run_tool
from hbdk_sim.frontend.api import compile_model


def _fps(latency_ms: float) -> float:
    return 1e3 / latency_ms if latency_ms > 0 else float("inf")


def _print_perf(title: str, latency_ms: float, fps: float, ddr_read: int, ddr_write: int) -> None:
    print(title)
    print(f"  latency  {latency_ms:.3f} ms")
    print(f"  FPS      {fps:.1f}")
    print(f"  DDR      {(ddr_read + ddr_write) / 1e6:.3f} MB/frame "
          f"(read {ddr_read / 1e6:.3f}, write {ddr_write / 1e6:.3f})")


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
    names = build_task_model(cfg).graph_names()
    out_dir = Path(args.out_dir) if args.out_dir else deploy_dir(cfg)
    hbms = {name: out_dir / f"{graph_stem(cfg, args.stage, name, names)}.hbm" for name in names}
    refuse_existing([p for hbm in hbms.values() for p in (hbm, *perf_report_paths(hbm))], args.force)
    graphs, note = checked_graphs(cfg, args.stage, args.ckpt, random_init=args.random_init)
    if note:
        print(f"compile_perf: {note}")
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = []
    for graph, inputs in graphs:
        hbm = hbms[graph.name]
        result = compile_model(graph.module, inputs, march, hbm, overwrite=args.force, name=hbm.stem)
        perf = result.perf
        _print_perf(f"{hbm.stem} on march '{result.march}': {result.summary.macs:,} MACs, "
                    f"{result.instructions} instructions", perf.latency_ms, perf.fps, perf.ddr_read_bytes,
                    perf.ddr_write_bytes)
        print(f"  MAC utilization {100 * perf.mac_utilization:.1f}%, {perf.roofline_ratio:.2f}x the roofline bound")
        for path in [result.output, *result.perf_files]:
            print(f"  wrote {path}")
        perf_json, perf_html = (str(p) for p in result.perf_files)
        march_name = result.march
        summaries.append({"graph": graph.name, "macs": result.summary.macs, "instructions": result.instructions,
                          "latency_ms": perf.latency_ms, "fps": perf.fps,
                          "ddr_mb_per_frame": perf.ddr_bytes_per_frame / 1e6,
                          "ddr_read_bytes": perf.ddr_read_bytes, "ddr_write_bytes": perf.ddr_write_bytes,
                          "hbm": str(result.output), "json": perf_json, "html": perf_html})
    latency = sum(s["latency_ms"] for s in summaries)
    if len(summaries) > 1:
        _print_perf(f"per frame, all {len(summaries)} board graphs ({', '.join(names)}):", latency, _fps(latency),
                    sum(s["ddr_read_bytes"] for s in summaries), sum(s["ddr_write_bytes"] for s in summaries))
    if args.json:
        line = {"march": march_name, "macs": sum(s["macs"] for s in summaries),
                "instructions": sum(s["instructions"] for s in summaries), "latency_ms": latency,
                "fps": summaries[0]["fps"] if len(summaries) == 1 else _fps(latency),
                "ddr_mb_per_frame": sum(s["ddr_mb_per_frame"] for s in summaries)}
        if len(summaries) == 1:
            line.update({k: summaries[0][k] for k in ("hbm", "json", "html")})
        else:
            line["graphs"] = summaries
        print(json.dumps(line))
    return 0


if __name__ == "__main__":
    run_tool("compile_perf", main)
