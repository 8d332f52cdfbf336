"""Export the deploy network of one stage as ONNX.

    python3 tools/export_onnx.py --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        [--stage int_infer] [--ckpt PATH] [--out PATH] [--force]

float gives float ONNX; calibration, qat and int_infer (default) give QDQ ONNX of the integer graph.
The network is traced on zeros of the config's deploy_input_shape. Default output:
<work_dir>/deploy/<task_name>_<stage>.onnx.
"""

from __future__ import annotations

import hbdk_sim
from hbdk_sim.engine.deploy import example_input, export_job, task_name
from hbdk_sim.engine.toolkit import run_tool


def main() -> int:
    args, cfg, out, model = export_job(__doc__.splitlines()[0], ".onnx")
    proto = hbdk_sim.export_onnx(model, example_input(cfg), out, overwrite=args.force,
                                 name=f"{task_name(cfg)}_{args.stage}")
    kind = "float" if args.stage == "float" else "QDQ"
    print(f"wrote {out} ({args.stage}: {kind} ONNX, {len(proto.graph.node)} nodes)")
    return 0


if __name__ == "__main__":
    run_tool("export_onnx", main)
