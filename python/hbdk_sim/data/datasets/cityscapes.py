"""Cityscapes: the label definitions (id -> train id, class names, palette), the on-disk layout
(`leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png` paired by stem with
`gtFine/<split>/<city>/<stem>_gtFine_labelIds.png`) and packing a split into LMDB.

A packed record (msgpack map, see `hbdk_sim.data.packer`):
    img: bytes        image_codec "source" (default): the image file's bytes as read from disk, not decoded;
                      image_codec "raw": the decoded HxWx3 uint8 RGB pixels, row-major
    img_format: str   the file's suffix ("png") or "raw"
    gt_seg: bytes     the labelIds file's bytes (or HxW uint8 raw pixels): official label ids, not train ids
    gt_format: str    as img_format
    name: str         the stem, e.g. "aachen_000000_000019"
    city: str
    shape: [h, w]     image height and width (the label has the same)
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hbdk_sim.data.packer import PackResult, check_image_codec, lmdb_path, pack_lmdb
from hbdk_sim.errors import DatasetError, UsageError

# The official Cityscapes label definitions: (id, name, trainId); every id not listed here (and
# trainId 255) is ignored in training and evaluation.
LABELS: tuple[tuple[int, str, int], ...] = (
    (0, "unlabeled", 255), (1, "ego vehicle", 255), (2, "rectification border", 255), (3, "out of roi", 255),
    (4, "static", 255), (5, "dynamic", 255), (6, "ground", 255), (7, "road", 0), (8, "sidewalk", 1),
    (9, "parking", 255), (10, "rail track", 255), (11, "building", 2), (12, "wall", 3), (13, "fence", 4),
    (14, "guard rail", 255), (15, "bridge", 255), (16, "tunnel", 255), (17, "pole", 5), (18, "polegroup", 255),
    (19, "traffic light", 6), (20, "traffic sign", 7), (21, "vegetation", 8), (22, "terrain", 9), (23, "sky", 10),
    (24, "person", 11), (25, "rider", 12), (26, "car", 13), (27, "truck", 14), (28, "bus", 15),
    (29, "caravan", 255), (30, "trailer", 255), (31, "train", 16), (32, "motorcycle", 17), (33, "bicycle", 18),
)
IGNORE_INDEX = 255
NUM_CLASSES = 19
ID_TO_TRAIN_ID: dict[int, int] = {i: t for i, _, t in LABELS}
CLASS_NAMES: tuple[str, ...] = tuple(n for _, n, t in sorted(LABELS, key=lambda x: x[2]) if t != IGNORE_INDEX)
TRAIN_ID_TO_ID: tuple[int, ...] = tuple(i for i, _, t in sorted(LABELS, key=lambda x: x[2]) if t != IGNORE_INDEX)
NAME_TO_ID: dict[str, int] = {n: i for i, n, _ in LABELS}
# The official colours of the 19 train classes, in train id order (for drawing predictions).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CityscapesPair:
    image: str
    label: str
    city: str
    name: str  # the stem shared by image and label, e.g. "aachen_000000_000019"


def find_pairs(src_dir: str | os.PathLike, split: str) -> list[CityscapesPair]:
    """Every (image, labelIds) pair of `split` under the Cityscapes root `src_dir`, sorted by city then
    stem. Raises FileNotFoundError naming the path for a missing split folder, an empty split or an
    image without its label."""
    root = Path(src_dir)
    if split not in SPLITS:
        raise UsageError(f"unknown Cityscapes split {split!r}; expected one of {', '.join(SPLITS)}")
    img_root, gt_root = root / "leftImg8bit" / split, root / "gtFine" / split
    if not img_root.is_dir():
        raise FileNotFoundError(f"{img_root}: no such directory; --src-data-dir must hold leftImg8bit/{split}/<city>/")
    pairs, missing = [], []
    for city_dir in sorted(p for p in img_root.iterdir() if p.is_dir()):
        for img in sorted(city_dir.glob("*" + IMAGE_SUFFIX)):
            stem = img.name[: -len(IMAGE_SUFFIX)]
            label = gt_root / city_dir.name / (stem + LABEL_SUFFIX)
            if not label.is_file():
                missing.append(label)
            pairs.append(CityscapesPair(str(img), str(label), city_dir.name, stem))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"{missing[0]}: label missing for its image{more}; every *{IMAGE_SUFFIX} needs "
                                f"gtFine/{split}/<city>/<stem>{LABEL_SUFFIX}")
    if not pairs:
        raise FileNotFoundError(f"{img_root}: no *{IMAGE_SUFFIX} images in any city folder")
    return pairs




def encode_pair(pair: CityscapesPair, image_codec: str = "source") -> dict:
    """The packed record of one pair (runs in the packer's worker processes). "raw" stores decoded
    pixels: about 1.5x the PNG's size here, but no decompression when training reads it."""
    img_bytes = Path(pair.image).read_bytes()
    gt_bytes = Path(pair.label).read_bytes()
    with Image.open(pair.image) as im:  # reads the header only
        size = im.size
    with Image.open(pair.label) as gt:
        gt_size, gt_mode = gt.size, gt.mode
    if gt_size != size:
        raise DatasetError(f"{pair.label}: label is {gt_size[0]}x{gt_size[1]} but its image is {size[0]}x{size[1]}")
    if gt_mode not in ("L", "P"):
        raise DatasetError(f"{pair.label}: label image mode {gt_mode!r}, expected 8-bit label ids (mode 'L')")
    record = {"img": img_bytes, "img_format": Path(pair.image).suffix[1:].lower(), "gt_seg": gt_bytes,
              "gt_format": Path(pair.label).suffix[1:].lower(), "name": pair.name, "city": pair.city,
              "shape": [size[1], size[0]]}
    if image_codec == "raw":
        with Image.open(io.BytesIO(img_bytes)) as im:
            record["img"] = np.asarray(im.convert("RGB")).tobytes()
        with Image.open(io.BytesIO(gt_bytes)) as gt:
            record["gt_seg"] = np.asarray(gt).tobytes()
        record["img_format"] = record["gt_format"] = "raw"
    return record


def pack_cityscapes(src_dir: str | os.PathLike, target_dir: str | os.PathLike, split: str, *, num_workers: int = 0,
                    overwrite: bool = False, resume: bool = False, image_codec: str = "source",
                    progress: bool = False) -> PackResult:
    """Pack `split` of the Cityscapes tree at `src_dir` into `<target_dir>/<split>_lmdb`, images as
    their files' bytes (`image_codec="source"`) or as decoded pixels ("raw")."""
    check_image_codec(image_codec)
    pairs = find_pairs(src_dir, split)
    source_bytes = sum(os.path.getsize(p.image) + os.path.getsize(p.label) for p in pairs)
    if image_codec == "raw":
        source_bytes *= 4
    # Records are the file bytes plus a few names: start the map with room to spare; it grows if not.
    map_size = max(1 << 24, int(source_bytes * 1.25) + (1 << 22))
    return pack_lmdb(pairs, functools.partial(encode_pair, image_codec=image_codec), lmdb_path(target_dir, split),
                     name="cityscapes", split=split, extra_meta={"image_codec": image_codec},
                     source_names=[f"{p.city}/{p.name}" for p in pairs], num_workers=num_workers,
                     overwrite=overwrite, resume=resume, map_size=map_size, progress=progress)
