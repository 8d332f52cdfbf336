"""Export the deploy network of one stage as HBIR text, the compiler's input.

    python3 tools/export_hbir.py --config models/segmentation/unet_mobilenetv1_cityscapes.py \
        [--stage int_infer] [--ckpt PATH] [--out PATH] [--force]

float gives the float graph, calibration and qat the float graph with every scale recorded,
int_infer (default) the integer graph the quantized model runs. The network is traced on zeros of
the config's deploy_input_shape. Default output: <work_dir>/deploy/<task_name>_<stage>.hbir.
"""

from __future__ import annotations

import hbdk_sim
from hbdk_sim.engine.deploy import example_input, export_job, task_name
from hbdk_sim.engine.toolkit import run_tool


def main() -> int:
    args, cfg, out, model = export_job(__doc__.splitlines()[0], ".hbir")
    module = hbdk_sim.export_hbir(model, example_input(cfg), out, overwrite=args.force,
                                  name=f"{task_name(cfg)}_{args.stage}")
    summary = hbdk_sim.summarize(module)
    print(f"wrote {out} ({args.stage}: {summary.num_ops} ops, {summary.parameters:,} parameters)")
    return 0


if __name__ == "__main__":
    run_tool("export_hbir", main)
