"""Pack the MS COCO detection images of one split into LMDB.

    python tools/datasets/mscoco_packer.py --src-data-dir ROOT --target-data-dir DIR \
        --split-name train|val --pack-type lmdb [--image-codec source|raw] [--num-workers N] [--overwrite] [--resume]

ROOT holds annotations/instances_{train,val}2017.json and {train,val}2017/ (the real COCO 2017 or
tools/datasets/make_synthetic_coco.py's output); writes <target-data-dir>/<split>_lmdb. Re-run with
--resume after an interruption.
"""

from __future__ import annotations

from hbdk_sim.data.datasets.mscoco import pack_coco
from hbdk_sim.data.pack_cli import packer_main
from hbdk_sim.engine.toolkit import run_tool


def main(argv: list[str] | None = None) -> int:
    return packer_main("mscoco_packer", __doc__.splitlines()[0], pack_coco, splits=("train", "val"),
                       src_help="the COCO root (holds annotations/ and {train,val}2017/)",
                       codec_help="store the image files' bytes (source) or decoded pixels (raw: larger, no decoding)",
                       argv=argv)


if __name__ == "__main__":
    run_tool("mscoco_packer", main)
