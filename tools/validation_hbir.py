"""Evaluate the compiled binary on the validation set in the bit-exact executor and print the metric.

    python3 tools/validation_hbir.py --stage align_bpu --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        [--hbm PATH] [--march bpu] [--ckpt PATH] [--force]

Board preprocessing: batch size 1 and the validation transforms; each output is post-processed as
the int_infer predictor does, so the metric equals `tools/predict.py --stage int_infer` exactly.
Without --hbm, the int_infer deploy network is compiled into
<work_dir>/deploy/<task_name>_int_infer.hbm (with its perf reports); a file there from
tools/compile_perf.py with the same bytes is kept, a different one is replaced only with --force.
"""

from __future__ import annotations

import json
from pathlib import Path

import hbdk_sim
from hbdk_sim.api import perf_report_paths
from hbdk_sim.engine.deploy import default_output, evaluate_binary, example_input, refuse_existing, task_name
from hbdk_sim.engine.stages import deploy_model, load_config
from hbdk_sim.engine.toolkit import config_parser, run_tool
from hbdk_sim.errors import UsageError
from hbdk_sim.files import write_file
from hbdk_sim.frontend.api import compile_model


def _compiled(cfg, march: str, ckpt: str | None, force: bool) -> Path:
    """The int_infer deploy network compiled now. An existing default .hbm that holds the same bytes
    (from tools/compile_perf.py) is kept; one that differs is replaced only with --force."""
    hbm = default_output(cfg, "int_infer", ".hbm")
    model = deploy_model(cfg, "int_infer", ckpt)
    result = compile_model(model, example_input(cfg), march, None, name=f"{task_name(cfg)}_int_infer")
    if hbm.exists() and hbm.read_bytes() == result.hbm:
        return hbm
    if hbm.exists() and not force:
        raise FileExistsError(f"{hbm} differs from what the int_infer weights compile to now; pass --hbm {hbm} "
                              "to evaluate it as it is, or --force to replace it")
    json_path, html_path = perf_report_paths(hbm)
    refuse_existing([json_path, html_path], force)
    hbm.parent.mkdir(parents=True, exist_ok=True)
    write_file(hbm, result.hbm, overwrite=force)
    write_file(json_path, result.perf.to_json().encode("utf-8"), overwrite=force)
    write_file(html_path, result.perf.to_html().encode("utf-8"), overwrite=force)
    return hbm


def main() -> int:
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, choices=["align_bpu"],
                        help="align_bpu: the compiled .hbm in the bit-exact executor")
    parser.add_argument("--hbm", help="the binary to evaluate (default: compile the int_infer deploy network)")
    parser.add_argument("--march", help="the march to compile for, or that --hbm must be for (default: the config's)")
    parser.add_argument("--ckpt", help="the int_infer weights when compiling (default: its pipeline's)")
    parser.add_argument("--force", action="store_true", help="replace a different existing default .hbm")
    args = parser.parse_args()
    cfg = load_config(args.config, args.opts)
    march = args.march or cfg.get("march", "bpu")
    if args.hbm:
        if args.ckpt:
            raise UsageError("--ckpt selects the weights to compile; an --hbm is already compiled: pass one of them")
        hbm = Path(args.hbm)
        if not hbm.is_file():
            raise FileNotFoundError(f"{hbm}: binary not found; compile one with tools/compile_perf.py or omit --hbm")
        binary = hbdk_sim.load_hbm(hbm)
        if args.march and binary.march != args.march:
            raise UsageError(f"{hbm} was compiled for march '{binary.march}', not '{args.march}'")
    else:
        hbm = _compiled(cfg, march, args.ckpt, args.force)
        binary = hbdk_sim.load_hbm(hbm)
    results = evaluate_binary(cfg, hbdk_sim.Executor(binary))
    print(json.dumps({"stage": args.stage, **{k: v for k, v in results.items() if not isinstance(v, list)},
                      "hbm": str(hbm)}))
    return 0


if __name__ == "__main__":
    run_tool("validation_hbir", main)
