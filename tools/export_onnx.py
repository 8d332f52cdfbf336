"""Export the board graphs of one stage as ONNX.

    python3 tools/export_onnx.py --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        [--stage int_infer] [--ckpt PATH] [--out-dir DIR] [--force]

float gives float ONNX; calibration, qat and int_infer (default) give QDQ ONNX of the integer graph.
Each graph is traced on zeros of its inputs at the config's deploy_input_shape. Output:
<DIR>/<task_name>_<stage>.onnx (one file per graph, <task_name>_<stage>_<graph>.onnx, for a task
with several); DIR defaults to <work_dir>/deploy.
"""

from __future__ import annotations

import hbdk_sim
from hbdk_sim.engine.deploy import export_job
from hbdk_sim.engine.toolkit import run_tool


def main() -> int:
    args, cfg, jobs = export_job(__doc__.splitlines()[0], ".onnx")
    kind = "float" if args.stage == "float" else "QDQ"
    for graph, out, name in jobs:
        proto = hbdk_sim.export_onnx(graph.module, graph.example_inputs(), out, overwrite=args.force, name=name)
        print(f"wrote {out} ({args.stage}: {kind} ONNX, {len(proto.graph.node)} nodes)")
    return 0


if __name__ == "__main__":
    run_tool("export_onnx", main)
