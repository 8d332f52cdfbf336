"""Split the SDP sequences of a MOT17 tree (the real one, or the synthetic one) in halves, train and
test, with per-frame labels: the input of tools/datasets/mot17_packer.py.

    python tools/dataset_converters/gen_mot_data.py --src-data-path ROOT --out-dir DIR [--overwrite]

Reads ROOT/train/MOT17-XX-SDP/{img1/, gt/gt.txt, seqinfo.ini} and writes
DIR/{train,test}/MOT17-XX-SDP/{img1/, gt/gt.txt, seqinfo.ini, labels_with_ids/}: frames up to
int(seqLength / 2) in train, the rest in test (test gt frames renumbered from 1). The rules are in
hbdk_sim/data/datasets/mot17.py's docstring.
"""

from __future__ import annotations

import sys
import time

from hbdk_sim.data.datasets.mot17 import split_mot17_half
from hbdk_sim.engine.toolkit import EXIT_USER_ERROR, ToolParser, run_tool


def main(argv: list[str] | None = None) -> int:
    ap = ToolParser(prog="gen_mot_data", description=__doc__.splitlines()[0])
    ap.add_argument("--src-data-path", required=True, help="the MOT17 root (holds train/MOT17-XX-SDP/)")
    ap.add_argument("--out-dir", required=True, help="where train/ and test/ are written")
    ap.add_argument("--overwrite", action="store_true", help="replace the sequence folders of an earlier run")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    try:
        summary = split_mot17_half(args.src_data_path, args.out_dir, overwrite=args.overwrite)
    # An unreadable image, a full disk: the user's to fix. The dataset's own faults are UserErrors.
    except OSError as e:
        print(f"gen_mot_data: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    done = "; ".join(f"{split} {s.frames} frames, {s.boxes} boxes, {s.tracks} tracks" for split, s in summary.items())
    print(f"split {summary['train'].sequences} SDP sequences into {args.out_dir} ({done}) in "
          f"{time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    run_tool("gen_mot_data", main)
