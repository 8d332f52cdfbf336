"""Export the deploy network of one stage as ONNX.

    python3 tools/export_onnx.py --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        [--stage int_infer] [--ckpt PATH] [--out PATH] [--force]

float gives float ONNX; calibration, qat and int_infer (default) give QDQ ONNX of the integer graph.
The network is traced on zeros of the config's deploy_input_shape. Default output:
<work_dir>/deploy/<task_name>_<stage>.onnx.
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
    parser.add_argument("--out", help="the .onnx to write (default: <work_dir>/deploy/<task_name>_<stage>.onnx)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args()
    cfg = load_config(args.config, args.opts)
    out = Path(args.out) if args.out else default_output(cfg, args.stage, ".onnx")
    refuse_existing([out], args.force)
    model = deploy_model(cfg, args.stage, args.ckpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    proto = hbdk_sim.export_onnx(model, example_input(cfg), out, overwrite=args.force,
                                 name=f"{task_name(cfg)}_{args.stage}")
    kind = "float" if args.stage == "float" else "QDQ"
    print(f"wrote {out} ({args.stage}: {kind} ONNX, {len(proto.graph.node)} nodes)")
    return 0


if __name__ == "__main__":
    run_tool("export_onnx", main)
