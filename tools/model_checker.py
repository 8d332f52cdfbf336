"""Check that the deploy network of a stage fits a march: prints "This model is supported!" or every
violation (and exits 1).

    python3 tools/model_checker.py --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        [--stage float] [--ckpt PATH] [--march bpu]

The network is traced on zeros of the config's deploy_input_shape; a float network is calibrated
on that input first, a calibration/qat/int_infer one keeps its own scales.

Check before you train: when the stage's checkpoint does not exist yet (or with --random-init), the
architecture is checked at random initialization, calibrated on seeded random inputs of
deploy_input_shape, and the first line of the output says so.
"""

from __future__ import annotations

import hbdk_sim
from hbdk_sim.engine.deploy import deploy_network, task_name
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
    model, example, note = deploy_network(cfg, args.stage, args.ckpt, random_init=args.random_init)
    if note:
        print(f"model_checker: {note}")
    result = hbdk_sim.check_model(model, example, march, name=f"{task_name(cfg)}_{args.stage}")
    if result.ok:
        print(SUPPORTED)
        return 0
    print(result.format())
    return 1


if __name__ == "__main__":
    run_tool("model_checker", main)
