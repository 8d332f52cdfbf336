"""Write a synthetic CarFusion dataset (street frames with car keypoints) in the raw CarFusion layout.

    python tools/datasets/make_synthetic_carfusion.py --out DIR [--train-sequences N] [--test-sequences M] \
        [--frames F] [--cars C] [--width W] [--height H] [--seed S] [--overwrite]

Writes DIR/{train,test}/<sequence>/{images_jpg,bb,gt}/. The same seed writes byte-identical files.
Crop it with tools/dataset_converters/gen_carfusion_data.py, then pack with tools/datasets/carfusion_packer.py.
"""

from __future__ import annotations

import sys

from hbdk_sim.data.datasets.synthetic_carfusion import make_synthetic_carfusion
from hbdk_sim.engine.toolkit import EXIT_USER_ERROR, ToolParser, count_arg, run_tool


def main(argv: list[str] | None = None) -> int:
    ap = ToolParser(prog="make_synthetic_carfusion", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="dataset root: train/ and test/ are written here")
    ap.add_argument("--train-sequences", type=count_arg(0, 10_000), default=8,
                    help="train sequences (car_butler1, ...)")
    ap.add_argument("--test-sequences", type=count_arg(0, 10_000), default=2, help="test sequences (car_penn1, ...)")
    ap.add_argument("--frames", type=count_arg(1, 100_000), default=8, help="frames per sequence")
    ap.add_argument("--cars", type=count_arg(1, 254), default=4, help="cars per frame")
    # CarFusion's frames are 1920x1080; smaller ones keep the same proportions of car to image.
    ap.add_argument("--width", type=count_arg(128, 8192), default=1920)
    ap.add_argument("--height", type=count_arg(96, 8192), default=1080)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace files of an existing dataset at --out")
    args = ap.parse_args(argv)
    try:
        frames = make_synthetic_carfusion(args.out, train_sequences=args.train_sequences,
                                          test_sequences=args.test_sequences, frames=args.frames, cars=args.cars,
                                          seed=args.seed, overwrite=args.overwrite, width=args.width,
                                          height=args.height)
    except OSError as e:  # a target that cannot be written (a full disk, a read-only folder)
        print(f"make_synthetic_carfusion: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"wrote {len(frames['train'])} train and {len(frames['test'])} test frames of {args.width}x{args.height} "
          f"({args.cars} cars each) to {args.out}")
    return 0


if __name__ == "__main__":
    run_tool("make_synthetic_carfusion", main)
