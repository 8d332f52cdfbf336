"""Export the deploy network of one stage as HBIR text, the compiler's input.

    python3 tools/export_hbir.py --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        [--stage int_infer] [--ckpt PATH] [--out PATH] [--force]

float gives the float graph, calibration and qat the float graph with every scale recorded,
int_infer (default) the integer graph the quantized model runs. The network is traced on zeros of
the config's deploy_input_shape. Default output: <work_dir>/deploy/<task_name>_<stage>.hbir.
"""

from __future__ import annotations

from pathlib import Path

import hbdk_sim
from hbdk_sim.engine.deploy import default_output, example_input, refuse_existing, task_name
from hbdk_sim.engine.stages import STAGES, deploy_model, load_config
from hbdk_sim.engine.toolkit import config_parser, run_tool


def main() -> int:
    parser = config_parser(__doc__.splitlines()[0])
    parser.add_argument("--stage", default="int_infer", choices=STAGES)
    parser.add_argument("--ckpt", help="the stage's weights (default: the path its predictor pipeline names)")
    parser.add_argument("--out", help="the .hbir to write (default: <work_dir>/deploy/<task_name>_<stage>.hbir)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args()
    cfg = load_config(args.config, args.opts)
    out = Path(args.out) if args.out else default_output(cfg, args.stage, ".hbir")
    refuse_existing([out], args.force)
    model = deploy_model(cfg, args.stage, args.ckpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    module = hbdk_sim.export_hbir(model, example_input(cfg), out, overwrite=args.force,
                                  name=f"{task_name(cfg)}_{args.stage}")
    summary = hbdk_sim.summarize(module)
    print(f"wrote {out} ({args.stage}: {summary.num_ops} ops, {summary.parameters:,} parameters)")
    return 0


if __name__ == "__main__":
    run_tool("export_hbir", main)
