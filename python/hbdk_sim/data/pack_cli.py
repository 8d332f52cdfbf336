"""The command line every dataset packer shares (tools/datasets/*_packer.py): source and target
folders, the split, the image codec, worker processes, --overwrite or --resume, and one summary line
or one error line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

import lmdb

from hbdk_sim.data.packer import PackResult
from hbdk_sim.engine.toolkit import EXIT_USER_ERROR, ToolParser, count_arg


def packer_main(prog: str, description: str, pack: Callable[..., PackResult], *, splits: Sequence[str],
                src_help: str, codec_help: str, argv: list[str] | None = None) -> int:
    """Parse the packer arguments and run `pack(src, target, split, num_workers=, overwrite=, resume=,
    image_codec=, progress=)`; prints what was packed. A file the reader cannot read, a full disk or
    LMDB's own failure is one error line and exit 2 (the other user errors are UserErrors, which
    `run_tool` reports)."""
    ap = ToolParser(prog=prog, description=description)
    ap.add_argument("--src-data-dir", required=True, help=src_help)
    ap.add_argument("--target-data-dir", required=True, help="where <split>_lmdb is written")
    ap.add_argument("--split-name", required=True, choices=list(splits))
    ap.add_argument("--pack-type", default="lmdb", choices=["lmdb"])
    ap.add_argument("--image-codec", default="source", choices=["source", "raw"], help=codec_help)
    ap.add_argument("--num-workers", type=count_arg(0, 256), default=min(8, os.cpu_count() or 1),
                    help="processes reading and encoding samples (0: in this process)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--overwrite", action="store_true", help="replace an existing database")
    group.add_argument("--resume", action="store_true", help="finish an interrupted pack into the same target")
    args = ap.parse_args(argv)
    try:
        result = pack(args.src_data_dir, args.target_data_dir, args.split_name, num_workers=args.num_workers,
                      overwrite=args.overwrite, resume=args.resume, image_codec=args.image_codec,
                      progress=sys.stderr.isatty())
    except (OSError, lmdb.Error) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    resumed = f", {result.skipped} kept from an earlier run" if result.skipped else ""
    print(f"packed {result.num_samples} samples into {result.path} ({result.written} written{resumed}, "
          f"{result.bytes_written / 2**20:.1f} MiB, {result.samples_per_second:.0f} samples/s)")
    return 0
