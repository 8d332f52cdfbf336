"""Check that the board graphs of a stage fit a march: prints "This model is supported!" or every
violation (and exits 1).

    python3 tools/model_checker.py --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        [--stage float] [--ckpt PATH] [--march bpu]

Each board graph of the task model is traced on zeros of its inputs at the config's
deploy_input_shape; a float graph is calibrated on them first, a calibration/qat/int_infer one
keeps its own scales. A task with several graphs is supported when every graph is.

Check before you train: when the stage's checkpoint does not exist yet (or with --random-init), the
architecture is checked at random initialization, calibrated on seeded random inputs of
deploy_input_shape, and the first line of the output says so.
"""

from __future__ import annotations

import hbdk_sim
from hbdk_sim.engine.deploy import checked_graphs, graph_stem
from hbdk_sim.engine.stages import STAGES, load_config
from hbdk_sim.engine.toolkit import config_parser, run_tool

SUPPORTED = "This model is supported!"


def main() -> int:
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--stage", default="float", choices=STAGES)
    parser.add_argument("--ckpt", help="the stage's weights (default: the path its predictor pipeline names)")
    parser.add_argument("--march", help="the target march (default: the config's march)")
    parser.add_argument("--random-init", action="store_true",
                        help="check the architecture at random initialization even when checkpoints exist")
    args = parser.parse_args()
    if args.random_init and args.ckpt:
        parser.error("--random-init and --ckpt exclude each other")
    cfg = load_config(args.config, args.opts)
    march = args.march or cfg.get("march", "bpu")
    graphs, note = checked_graphs(cfg, args.stage, args.ckpt, random_init=args.random_init)
    if note:
        print(f"model_checker: {note}")
    names = [g.name for g, _ in graphs]
    failed = []
    for graph, inputs in graphs:
        result = hbdk_sim.check_model(graph.module, inputs, march, name=graph_stem(cfg, args.stage, graph.name, names))
        if not result.ok:
            failed.append((graph.name, result))
    if not failed:
        print(SUPPORTED)
        return 0
    for name, result in failed:
        if len(graphs) > 1:
            print(f"board graph {name!r}:")
        print(result.format())
    return 1


if __name__ == "__main__":
    run_tool("model_checker", main)
