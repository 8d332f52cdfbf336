"""Pack one half split of MOT17 into LMDB, one record per frame with its pedestrian boxes and track ids.

    python tools/datasets/mot17_packer.py --src-data-dir DIR/train --target-data-dir DIR \
        --split-name train|test --pack-type lmdb [--image-codec source|raw] [--num-workers N] [--overwrite] [--resume]

--src-data-dir is one split folder written by tools/dataset_converters/gen_mot_data.py (<out-dir>/train
or <out-dir>/test, holding MOT17-XX-SDP/{img1/, seqinfo.ini, labels_with_ids/}); writes
<target-data-dir>/<split>_lmdb. Re-run with --resume after an interruption.
"""

from __future__ import annotations

from hbdk_sim.data.datasets.mot17 import SPLITS, pack_mot17
from hbdk_sim.data.pack_cli import packer_main
from hbdk_sim.engine.toolkit import run_tool


def main(argv: list[str] | None = None) -> int:
    return packer_main("mot17_packer", __doc__.splitlines()[0], pack_mot17, splits=SPLITS,
                       src_help="a split folder of gen_mot_data.py's output (<out-dir>/train or <out-dir>/test)",
                       codec_help="store the image files' bytes (source) or decoded pixels (raw: larger, no decoding)",
                       argv=argv)


if __name__ == "__main__":
    run_tool("mot17_packer", main)
