"""Count the work of a task's deploy network: MACs and parameters per layer, and the totals.

    python3 tools/calops.py --config models/segmentation/unet_mobilenetv1_cityscapes.py [--input-shape 1,3,512,1024]

The float deploy network (`deploy_model` of the config) is traced on zeros of `--input-shape`
(default: the config's deploy_input_shape); weights do not change the counts, so none are loaded.
"""

from __future__ import annotations

from hbdk_sim.engine.deploy import parse_input_shape, task_name
from hbdk_sim.engine.memory import check_fits_memory
from hbdk_sim.engine.stages import deploy_input_shape, load_config
from hbdk_sim.engine.toolkit import config_parser, run_tool
from hbdk_sim.opcount import calops
from hbdk_sim.registry import MODELS, build_from_cfg


def main() -> int:
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--input-shape", metavar="N,C,H,W", help="the input to count for (default: deploy_input_shape)")
    args = parser.parse_args()
    cfg = load_config(args.config, args.opts)
    shape = parse_input_shape(args.input_shape, cfg) if args.input_shape else deploy_input_shape(cfg)
    check_fits_memory(cfg, shape, "--input-shape" if args.input_shape else "deploy_input_shape")
    network = build_from_cfg(cfg["deploy_model"], MODELS).eval()
    print(calops(network, shape, name=task_name(cfg)).to_table())
    return 0


if __name__ == "__main__":
    run_tool("calops", main)
