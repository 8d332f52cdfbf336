"""Train one stage of a task config: float training, calibration, or quantization-aware training.

    python3 tools/train.py --stage float --config models/segmentation/unet_mobilenetv1_cityscapes.py
    torchrun --nproc_per_node=2 tools/train.py --stage qat --config ... --opts qat_epochs=3

Checkpoints (last.pt, best.pt), the resolved config and a JSON-lines log go to the stage's
Checkpoint dir (under the config's work_dir); a killed run resumes from last.pt when started again.
"""

from __future__ import annotations

import json
import random

import numpy as np
import torch
from hbdk_sim.engine.distributed import distributed_session, is_main_process
from hbdk_sim.engine.stages import TRAIN_STAGES, build_stage_trainer, load_config
from hbdk_sim.engine.toolkit import config_parser, run_tool


def main() -> int:
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--stage", required=True, choices=TRAIN_STAGES)
    parser.add_argument("--ckpt", help="start from these weights instead of the ones the stage's pipeline names")
    args = parser.parse_args()
    with distributed_session() as info:
        cfg = load_config(args.config, args.opts)
        seed = int(cfg.get("seed", 0)) + info.rank
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        trainer = build_stage_trainer(cfg, args.stage, args.ckpt)
        trainer.fit()
        if is_main_process():
            summary = {"stage": args.stage, "epochs": trainer.num_epochs, "steps": trainer.global_step,
                       **{k: v for k, v in trainer.metrics.items() if isinstance(v, (int, float))}}
            print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    run_tool("train", main)
