"""Pack the CarFusion crops of one split into LMDB.

    python tools/datasets/carfusion_packer.py --src-data-dir DIR --target-data-dir DIR \
        --split-name train|test --pack-type lmdb [--image-codec source|raw] [--num-workers N] [--overwrite] [--resume]

--src-data-dir is the output of tools/dataset_converters/gen_carfusion_data.py (simple_anno/ and the
crops); writes <target-data-dir>/<split>_lmdb. Re-run with --resume after an interruption.
"""

from __future__ import annotations

from hbdk_sim.data.datasets.carfusion import pack_carfusion
from hbdk_sim.data.pack_cli import packer_main
from hbdk_sim.engine.toolkit import run_tool


def main(argv: list[str] | None = None) -> int:
    return packer_main("carfusion_packer", __doc__.splitlines()[0], pack_carfusion, splits=("train", "test"),
                       src_help="the converter's --out-dir (holds simple_anno/)",
                       codec_help="store the crop JPEGs' bytes (source) or decoded pixels (raw: larger, no decoding)",
                       argv=argv)


if __name__ == "__main__":
    run_tool("carfusion_packer", main)
