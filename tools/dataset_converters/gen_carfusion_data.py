"""Crop every car of a CarFusion tree (the real one, or the synthetic one) into its own image with its
keypoints, the input of tools/datasets/carfusion_packer.py.

    python tools/dataset_converters/gen_carfusion_data.py --src-data-path DIR --out-dir DIR \
        [--num-workers N] [--overwrite]

Reads DIR/{train,test}/<sequence>/{images_jpg,bb,gt}/ and writes
<out-dir>/<split>/<sequence>/crop_imgs/<id>_<box>.jpg and <out-dir>/simple_anno/keypoints_<split>.json
(keys relative to <out-dir>, so the output can be moved or packed from any directory).
"""

from __future__ import annotations

import os
import sys
import time

from hbdk_sim.data.datasets.carfusion import convert_carfusion
from hbdk_sim.engine.toolkit import EXIT_USER_ERROR, ToolParser, count_arg, run_tool


def main(argv: list[str] | None = None) -> int:
    ap = ToolParser(prog="gen_carfusion_data", description=__doc__.splitlines()[0])
    ap.add_argument("--src-data-path", required=True, help="the CarFusion root (holds train/ and test/)")
    ap.add_argument("--out-dir", required=True, help="where the crops and simple_anno/ are written")
    ap.add_argument("--num-workers", type=count_arg(0, 256), default=min(8, os.cpu_count() or 1),
                    help="processes converting sequences (0: in this process)")
    ap.add_argument("--overwrite", action="store_true", help="replace the crops and JSON of an earlier run")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    try:
        counts = convert_carfusion(args.src_data_path, args.out_dir, args.num_workers, overwrite=args.overwrite)
    # An image Pillow cannot read, a full disk: the user's to fix. The dataset's own faults are UserErrors.
    except OSError as e:
        print(f"gen_carfusion_data: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    done = ", ".join(f"{n} {split}" for split, n in counts.items())
    print(f"cropped {done} cars into {args.out_dir} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    run_tool("gen_carfusion_data", main)
