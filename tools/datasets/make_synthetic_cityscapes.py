"""Write a synthetic Cityscapes dataset (street scenes, official label ids) in the real layout.

    python tools/datasets/make_synthetic_cityscapes.py --out DIR [--train N] [--val M] \
        [--height H] [--width W] [--seed S] [--overwrite]

The same seed writes byte-identical files. Pack it with tools/datasets/cityscapes_packer.py.
"""

from __future__ import annotations

import sys

from hbdk_sim.data.datasets.synthetic_cityscapes import make_synthetic_cityscapes
from hbdk_sim.engine.toolkit import EXIT_USER_ERROR, ToolParser, count_arg, run_tool


def main(argv: list[str] | None = None) -> int:
    ap = ToolParser(prog="make_synthetic_cityscapes", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="dataset root: leftImg8bit/ and gtFine/ are written here")
    ap.add_argument("--train", type=count_arg(0, 100_000), default=64, help="number of train images")
    ap.add_argument("--val", type=count_arg(0, 100_000), default=16, help="number of val images")
    # Cityscapes itself is 1024x2048; larger synthetic scenes would only fill the disk.
    ap.add_argument("--height", type=count_arg(16, 4096), default=128)
    ap.add_argument("--width", type=count_arg(16, 8192), default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace files of an existing dataset at --out")
    args = ap.parse_args(argv)
    try:
        counts = make_synthetic_cityscapes(args.out, train=args.train, val=args.val, height=args.height,
                                           width=args.width, seed=args.seed, overwrite=args.overwrite)
    except OSError as e:  # a target that cannot be written (a full disk, a read-only folder)
        print(f"make_synthetic_cityscapes: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"wrote {counts['train']} train and {counts['val']} val images of {args.height}x{args.width} "
          f"to {args.out}")
    return 0


if __name__ == "__main__":
    run_tool("make_synthetic_cityscapes", main)
