"""Write a synthetic MOT17 (walking pedestrians with persistent ids and occlusion) in the raw MOT17 layout.

    python tools/datasets/make_synthetic_mot17.py --out DIR [--sequences N] [--frames F] [--pedestrians P] \
        [--width W] [--height H] [--seed S] [--overwrite]

Writes DIR/train/MOT17-XX-SDP/{img1/, gt/gt.txt, det/det.txt, seqinfo.ini}. The same seed writes
byte-identical files. Split it with tools/dataset_converters/gen_mot_data.py, then pack with
tools/datasets/mot17_packer.py.
"""

from __future__ import annotations

import sys

from hbdk_sim.data.datasets.synthetic_mot17 import SEQUENCE_NUMBERS, make_synthetic_mot17
from hbdk_sim.engine.toolkit import EXIT_USER_ERROR, ToolParser, count_arg, run_tool


def main(argv: list[str] | None = None) -> int:
    ap = ToolParser(prog="make_synthetic_mot17", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="dataset root: train/ is written here")
    ap.add_argument("--sequences", type=count_arg(1, len(SEQUENCE_NUMBERS)), default=3,
                    help="sequences (MOT17-02-SDP, -04-, -05-, ...)")
    ap.add_argument("--frames", type=count_arg(2, 100_000), default=40, help="frames per sequence")
    ap.add_argument("--pedestrians", type=count_arg(1, 200), default=8, help="walkers per sequence")
    ap.add_argument("--width", type=count_arg(64, 8192), default=320)
    ap.add_argument("--height", type=count_arg(48, 8192), default=180)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true", help="replace files of an existing dataset at --out")
    args = ap.parse_args(argv)
    try:
        gt = make_synthetic_mot17(args.out, sequences=args.sequences, frames=args.frames, width=args.width,
                                  height=args.height, pedestrians=args.pedestrians, seed=args.seed,
                                  overwrite=args.overwrite)
    except OSError as e:  # a target that cannot be written (an existing file, a full disk, a read-only folder)
        print(f"make_synthetic_mot17: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    rows = sum(len(g) for g in gt.values())
    tracks = sum(len(set(g[:, 1].tolist())) for g in gt.values())
    print(f"wrote {args.sequences} sequences of {args.frames} frames of {args.width}x{args.height} ({tracks} tracks, "
          f"{rows} gt rows) to {args.out}")
    return 0


if __name__ == "__main__":
    run_tool("make_synthetic_mot17", main)
