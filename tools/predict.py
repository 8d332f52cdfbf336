"""Evaluate one stage of a task config on its validation set and print the metric.

    python3 tools/predict.py --stage int_infer --config models/segmentation/unet_mobilenetv1_cityscapes.py

Stages: float, calibration (fake-quant, frozen scales), qat (fake-quant) and int_infer (the
integer model the compiler builds, run in torch bit for bit like the board).
"""

from __future__ import annotations

import json

from hbdk_sim.engine.distributed import distributed_session, is_main_process
from hbdk_sim.engine.stages import STAGES, build_stage_predictor, load_config
from hbdk_sim.engine.toolkit import config_parser, run_tool


def main() -> int:
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, choices=STAGES)
    parser.add_argument("--ckpt", help="the stage's weights (default: the path its pipeline names)")
    args = parser.parse_args()
    with distributed_session():
        cfg = load_config(args.config, args.opts)
        results = build_stage_predictor(cfg, args.stage, args.ckpt).run()
        if is_main_process():
            print(json.dumps({"stage": args.stage, **{k: v for k, v in results.items() if not isinstance(v, list)}}))
    return 0


if __name__ == "__main__":
    run_tool("predict", main)
