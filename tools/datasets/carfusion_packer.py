"""Pack the CarFusion crops of one split into LMDB.

    python tools/datasets/carfusion_packer.py --src-data-dir DIR --target-data-dir DIR \
        --split-name train|test --pack-type lmdb [--image-codec source|raw] [--num-workers N] [--overwrite] [--resume]

--src-data-dir is the output of tools/dataset_converters/gen_carfusion_data.py (simple_anno/ and the
crops); writes <target-data-dir>/<split>_lmdb. Re-run with --resume after an interruption.
"""

from __future__ import annotations

import os
import sys

import lmdb
from hbdk_sim.data.datasets.carfusion import pack_carfusion
from hbdk_sim.engine.toolkit import EXIT_USER_ERROR, ToolParser, count_arg, run_tool


def main(argv: list[str] | None = None) -> int:
    ap = ToolParser(prog="carfusion_packer", description=__doc__.splitlines()[0])
    ap.add_argument("--src-data-dir", required=True, help="the converter's --out-dir (holds simple_anno/)")
    ap.add_argument("--target-data-dir", required=True, help="where <split>_lmdb is written")
    ap.add_argument("--split-name", required=True, choices=["train", "test"])
    ap.add_argument("--pack-type", default="lmdb", choices=["lmdb"])
    ap.add_argument("--image-codec", default="source", choices=["source", "raw"],
                    help="store the crop JPEGs' bytes (source) or decoded pixels (raw: larger, no decoding)")
    ap.add_argument("--num-workers", type=count_arg(0, 256), default=min(8, os.cpu_count() or 1),
                    help="processes reading and encoding samples (0: in this process)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--overwrite", action="store_true", help="replace an existing database")
    group.add_argument("--resume", action="store_true", help="finish an interrupted pack into the same target")
    args = ap.parse_args(argv)
    try:
        result = pack_carfusion(args.src_data_dir, args.target_data_dir, args.split_name,
                                num_workers=args.num_workers, overwrite=args.overwrite, resume=args.resume,
                                image_codec=args.image_codec, progress=sys.stderr.isatty())
    # A crop Pillow cannot read, a full disk, LMDB's own failures: the user's to fix. The rest of the
    # user's mistakes are UserErrors, which run_tool reports.
    except (OSError, lmdb.Error) as e:
        print(f"carfusion_packer: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    resumed = f", {result.skipped} kept from an earlier run" if result.skipped else ""
    print(f"packed {result.num_samples} samples into {result.path} ({result.written} written{resumed}, "
          f"{result.bytes_written / 2**20:.1f} MiB, {result.samples_per_second:.0f} samples/s)")
    return 0


if __name__ == "__main__":
    run_tool("carfusion_packer", main)
