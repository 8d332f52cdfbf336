"""Pack a Cityscapes split (the real layout, or the synthetic one) into LMDB.

    python tools/datasets/cityscapes_packer.py --src-data-dir DIR --target-data-dir DIR \
        --split-name train|val --pack-type lmdb [--image-codec source|raw] [--num-workers N] [--overwrite] [--resume]

Reads leftImg8bit/<split>/<city>/*_leftImg8bit.png and gtFine/<split>/<city>/*_gtFine_labelIds.png
and writes <target-data-dir>/<split>_lmdb. Re-run with --resume after an interruption.
"""

from __future__ import annotations

from hbdk_sim.data.datasets.cityscapes import pack_cityscapes
from hbdk_sim.data.pack_cli import packer_main
from hbdk_sim.engine.toolkit import run_tool


def main(argv: list[str] | None = None) -> int:
    return packer_main("cityscapes_packer", __doc__.splitlines()[0], pack_cityscapes, splits=("train", "val"),
                       src_help="the Cityscapes root (holds leftImg8bit/ and gtFine/)",
                       codec_help="store the image files' bytes (source) or decoded pixels (raw: larger, no decoding)",
                       argv=argv)


if __name__ == "__main__":
    run_tool("cityscapes_packer", main)
