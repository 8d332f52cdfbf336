"""Write a synthetic MS COCO detection dataset (simple shapes of 8 COCO categories) in the COCO layout.

    python tools/datasets/make_synthetic_coco.py --out DIR [--train N] [--val M] [--height H] [--width W] \
        [--seed S] [--overwrite]

Writes DIR/annotations/instances_{train,val}2017.json and DIR/{train,val}2017/. The same seed writes
byte-identical files. Pack it with tools/datasets/mscoco_packer.py.
"""

from __future__ import annotations

import sys

from hbdk_sim.data.datasets.synthetic_coco import make_synthetic_coco
from hbdk_sim.engine.toolkit import EXIT_USER_ERROR, ToolParser, count_arg, run_tool


def main(argv: list[str] | None = None) -> int:
    ap = ToolParser(prog="make_synthetic_coco", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="dataset root: annotations/, train2017/ and val2017/ are written here")
    ap.add_argument("--train", type=count_arg(0, 1_000_000), default=32, help="train images")
    ap.add_argument("--val", type=count_arg(0, 1_000_000), default=8, help="val images")
    ap.add_argument("--height", type=count_arg(64, 8192), default=480)
    ap.add_argument("--width", type=count_arg(64, 8192), default=640)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace files of an existing dataset at --out")
    args = ap.parse_args(argv)
    try:
        docs = make_synthetic_coco(args.out, train=args.train, val=args.val, height=args.height, width=args.width,
                                   seed=args.seed, overwrite=args.overwrite)
    except OSError as e:  # a target that cannot be written (an existing file, a full disk, a read-only folder)
        print(f"make_synthetic_coco: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    objects = sum(1 for d in docs.values() for a in d["annotations"] if not a["iscrowd"])
    print(f"wrote {args.train} train and {args.val} val images of {args.width}x{args.height} ({objects} objects) "
          f"to {args.out}")
    return 0


if __name__ == "__main__":
    run_tool("make_synthetic_coco", main)
