"""Data for training and evaluation: the LMDB packer and dataset, the dataset layouts (Cityscapes,
CarFusion, COCO, MOT17) with their converters and synthetic generators, and the transforms (per sample and per
batch). Importing this package registers the datasets in DATASETS and the transforms in TRANSFORMS."""

from hbdk_sim.data import transforms as transforms
from hbdk_sim.data.datasets.carfusion import convert_carfusion, pack_carfusion
from hbdk_sim.data.datasets.cityscapes import CLASS_NAMES, NUM_CLASSES, PALETTE, find_pairs, pack_cityscapes
from hbdk_sim.data.datasets.clips import ClipDataset
from hbdk_sim.data.datasets.lmdb import CityscapesFromFolder, LmdbDataset
from hbdk_sim.data.datasets.mot17 import pack_mot17, split_mot17_half
from hbdk_sim.data.datasets.mscoco import pack_coco
from hbdk_sim.data.datasets.synthetic_carfusion import make_synthetic_carfusion
from hbdk_sim.data.datasets.synthetic_cityscapes import make_synthetic_cityscapes
from hbdk_sim.data.datasets.synthetic_coco import make_synthetic_coco
from hbdk_sim.data.datasets.synthetic_mot17 import make_synthetic_mot17
from hbdk_sim.data.packer import PackResult, pack_lmdb, read_meta, verify_lmdb

__all__ = [
    "CLASS_NAMES", "NUM_CLASSES", "PALETTE", "ClipDataset", "CityscapesFromFolder", "LmdbDataset", "PackResult",
    "convert_carfusion", "find_pairs", "make_synthetic_carfusion", "make_synthetic_cityscapes", "make_synthetic_coco",
    "make_synthetic_mot17", "pack_carfusion", "pack_cityscapes", "pack_coco", "pack_lmdb", "pack_mot17", "read_meta",
    "split_mot17_half", "transforms", "verify_lmdb",
]
