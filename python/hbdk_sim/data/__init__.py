"""Data for training and evaluation: the LMDB packer and dataset, the Cityscapes layout and label
definitions, a synthetic Cityscapes generator, and the segmentation transforms (per sample and per
batch). Importing this package registers the datasets in DATASETS and the transforms in TRANSFORMS."""

from hbdk_sim.data import transforms as transforms
from hbdk_sim.data.datasets.cityscapes import CLASS_NAMES, NUM_CLASSES, PALETTE, find_pairs, pack_cityscapes
from hbdk_sim.data.datasets.lmdb import CityscapesFromFolder, LmdbDataset
from hbdk_sim.data.datasets.synthetic_cityscapes import make_synthetic_cityscapes
from hbdk_sim.data.packer import PackResult, pack_lmdb, read_meta, verify_lmdb

__all__ = [
    "CLASS_NAMES", "NUM_CLASSES", "PALETTE", "CityscapesFromFolder", "LmdbDataset", "PackResult",
    "find_pairs", "make_synthetic_cityscapes", "pack_cityscapes", "pack_lmdb", "read_meta", "transforms",
    "verify_lmdb",
]
