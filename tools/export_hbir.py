"""Export the board graphs of one stage as HBIR text, the compiler's input.

    python3 tools/export_hbir.py --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        [--stage int_infer] [--ckpt PATH] [--out-dir DIR] [--force]

float gives the float graph, calibration and qat the float graph with every scale recorded,
int_infer (default) the integer graph the quantized model runs. Each graph is traced on zeros of
its inputs at the config's deploy_input_shape. Output: <DIR>/<task_name>_<stage>.hbir (one file per
graph, <task_name>_<stage>_<graph>.hbir, for a task with several); DIR defaults to <work_dir>/deploy.
"""

from __future__ import annotations

import hbdk_sim
from hbdk_sim.engine.deploy import export_job
from hbdk_sim.engine.toolkit import run_tool


def main() -> int:
    args, cfg, jobs = export_job(__doc__.splitlines()[0], ".hbir")
    for graph, out, name in jobs:
        module = hbdk_sim.export_hbir(graph.module, graph.example_inputs(), out, overwrite=args.force, name=name)
        summary = hbdk_sim.summarize(module)
        print(f"wrote {out} ({args.stage}: {summary.num_ops} ops, {summary.parameters:,} parameters)")
    return 0


if __name__ == "__main__":
    run_tool("export_hbir", main)
