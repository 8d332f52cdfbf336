"""Evaluate the compiled board graphs on the validation set in the bit-exact executor and print the metric.

    python3 tools/validation_hbir.py --stage align_bpu --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        [--hbm PATH | --hbm GRAPH=PATH,...] [--march bpu] [--ckpt PATH] [--force]

Board preprocessing: batch size 1 and the validation transforms; the task model's host side runs
around the binaries exactly as int_infer runs around its integer torch graphs, so the metric equals
`tools/predict.py --stage int_infer` exactly. Without --hbm, the int_infer board graphs are compiled
into <work_dir>/deploy/<task_name>_int_infer[_<graph>].hbm (with their perf reports); a file there
from tools/compile_perf.py with the same bytes is kept, a different one is replaced only with --force.
A task with several board graphs names each binary: --hbm GRAPH=PATH,GRAPH2=PATH2.
"""

from __future__ import annotations

import json
from pathlib import Path

import hbdk_sim
from hbdk_sim.api import perf_report_paths
from hbdk_sim.engine.deploy import default_output, evaluate_binaries, graph_inputs, refuse_existing, stage_model
from hbdk_sim.engine.stages import build_task_model, deploy_input_shape, load_config
from hbdk_sim.engine.toolkit import config_parser, run_tool
from hbdk_sim.errors import UsageError
from hbdk_sim.files import write_file
from hbdk_sim.frontend.api import compile_model
from hbdk_sim.nn.structures.base import BoardGraph


def _compiled(cfg, march: str, graphs: list[BoardGraph], force: bool, names: list[str]) -> dict[str, Path]:
    """The int_infer board graphs compiled now. An existing default .hbm that holds the same bytes
    (from tools/compile_perf.py) is kept; one that differs is replaced only with --force."""
    paths = {}
    for graph in graphs:
        hbm = default_output(cfg, "int_infer", ".hbm", graph.name, names)
        result = compile_model(graph.module, graph_inputs(graph), march, None, name=hbm.stem)
        paths[graph.name] = hbm
        if hbm.exists() and hbm.read_bytes() == result.hbm:
            continue
        if hbm.exists() and not force:
            raise FileExistsError(f"{hbm} differs from what the int_infer weights compile to now; pass --hbm {hbm} "
                                  "to evaluate it as it is, or --force to replace it")
        json_path, html_path = perf_report_paths(hbm)
        refuse_existing([json_path, html_path], force)
        hbm.parent.mkdir(parents=True, exist_ok=True)
        write_file(hbm, result.hbm, overwrite=force)
        write_file(json_path, result.perf.to_json().encode("utf-8"), overwrite=force)
        write_file(html_path, result.perf.to_html().encode("utf-8"), overwrite=force)
    return paths


def _given(text: str, names: list[str]) -> dict[str, Path]:
    """`--hbm PATH` (a task with one board graph) or `--hbm GRAPH=PATH,...` (one per graph)."""
    if len(names) == 1 and "=" not in text:
        return {names[0]: Path(text)}
    paths = {}
    for item in text.split(","):
        name, sep, path = item.partition("=")
        if not sep or not path or name not in names:
            raise UsageError(f"--hbm {text!r}: expected GRAPH=PATH for each board graph ({', '.join(names)}) but "
                             f"got {item!r}")
        paths[name] = Path(path)
    missing = [n for n in names if n not in paths]
    if missing:
        raise UsageError(f"--hbm {text!r}: no binary for board graph(s) {', '.join(missing)}")
    return paths


def main() -> int:
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, choices=["align_bpu"],
                        help="align_bpu: the compiled .hbm in the bit-exact executor")
    parser.add_argument("--hbm", help="the binaries to evaluate (default: compile the int_infer board graphs)")
    parser.add_argument("--march", help="the march to compile for, or that --hbm must be for (default: the config's)")
    parser.add_argument("--ckpt", help="the int_infer weights when compiling (default: its pipeline's)")
    parser.add_argument("--force", action="store_true", help="replace a different existing default .hbm")
    args = parser.parse_args()
    cfg = load_config(args.config, args.opts)
    march = args.march or cfg.get("march", "bpu")
    names = build_task_model(cfg).graph_names()
    if args.hbm:
        if args.ckpt:
            raise UsageError("--ckpt selects the weights to compile; an --hbm is already compiled: pass one of them")
        paths = _given(args.hbm, names)
        for hbm in paths.values():
            if not hbm.is_file():
                raise FileNotFoundError(f"{hbm}: binary not found; compile one with tools/compile_perf.py or omit "
                                        "--hbm")
    model = stage_model(cfg, "int_infer", args.ckpt)  # what is compiled, and the host side around it
    if not args.hbm:
        paths = _compiled(cfg, march, model.board_graphs(deploy_input_shape(cfg)), args.force, names)
    executors = {}
    for name, hbm in paths.items():
        binary = hbdk_sim.load_hbm(hbm)
        if args.hbm and args.march and binary.march != args.march:
            raise UsageError(f"{hbm} was compiled for march '{binary.march}', not '{args.march}'")
        executors[name] = hbdk_sim.Executor(binary)
    results = evaluate_binaries(cfg, executors, model)
    hbm_field = str(paths[names[0]]) if len(names) == 1 else {n: str(p) for n, p in paths.items()}
    print(json.dumps({"stage": args.stage, **{k: v for k, v in results.items() if not isinstance(v, list)},
                      "hbm": hbm_field}))
    return 0


if __name__ == "__main__":
    run_tool("validation_hbir", main)
