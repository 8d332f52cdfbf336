"""Count the work of a task's board graphs: MACs and parameters per layer, and the totals.

    python3 tools/calops.py --config models/segmentation/unet_mobilenetv1_cityscapes.py [--input-shape 1,3,512,1024]

Each float board graph of the config's task model is traced on zeros of its inputs at
`--input-shape` (default: the config's deploy_input_shape); weights do not change the counts, so
none are loaded. A task with several graphs gets a table per graph and their sum.
"""

from __future__ import annotations

from hbdk_sim.engine.deploy import parse_input_shape, task_name
from hbdk_sim.engine.memory import check_fits_memory
from hbdk_sim.engine.stages import build_task_model, deploy_input_shape, load_config
from hbdk_sim.engine.toolkit import config_parser, run_tool
from hbdk_sim.frontend.torch_tracer import trace_float
from hbdk_sim.opcount import calops


def main() -> int:
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--input-shape", metavar="N,C,H,W", help="the input to count for (default: deploy_input_shape)")
    args = parser.parse_args()
    cfg = load_config(args.config, args.opts)
    shape = parse_input_shape(args.input_shape, cfg) if args.input_shape else deploy_input_shape(cfg)
    check_fits_memory(cfg, shape, "--input-shape" if args.input_shape else "deploy_input_shape")
    graphs = build_task_model(cfg).eval().board_graphs(shape)
    total_macs = total_params = 0
    for i, graph in enumerate(graphs):
        if i:
            print()
        name = task_name(cfg) if len(graphs) == 1 else f"{task_name(cfg)}_{graph.name}"
        report = calops(trace_float(graph.module, graph.example_inputs(), name))
        print(report.to_table())
        total_macs += report.total_macs
        total_params += report.total_params
    if len(graphs) > 1:
        print(f"all {len(graphs)} board graphs: {total_macs:,} MACs, {total_params:,} parameters")
    return 0


if __name__ == "__main__":
    run_tool("calops", main)
