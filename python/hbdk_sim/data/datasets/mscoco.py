"""MS COCO detection: the 80 categories and their official ids, a reader of the raw COCO layout (stdlib
json, no pycocotools) and packing one split into LMDB for the FCOS detector.

Raw layout:
    <root>/annotations/instances_{train,val}2017.json
    <root>/{train,val}2017/<file_name>

What the reader keeps (as the reference CocoDetectionPacker does): every image of the JSON, sorted by
image id, images without annotations included; annotations with `iscrowd` 0 only, in the JSON's order;
boxes with w < 1 or h < 1 dropped; the category id mapped from COCO's 91-id space to the label 0..79
(`COCO_ID_TO_LABEL`); boxes stored xyxy = (x, y, x + w, y + h) in image pixels.

A packed record (msgpack map, see `hbdk_sim.data.packer` and `hbdk_sim.data.sample`):
    img: bytes          the image file's bytes (image_codec "source") or HxWx3 uint8 RGB pixels ("raw")
    img_format: str     "jpg" (or "png" for a PNG file) or "raw"
    shape: [h, w]       the image's size, read from the file
    gt_boxes            N x 4 float32 (x1, y1, x2, y2)
    gt_classes          N int64 labels 0..79
    image_id: int       the COCO image id
    file_name: str      the image's file name in the JSON
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hbdk_sim.data.packer import PackResult, image_record, pack_image_records
from hbdk_sim.data.sample import encode_array
from hbdk_sim.errors import DatasetError, UsageError

# (official id, name, supercategory). The official list numbers 91 categories; 11 ids were never used
# in the detection annotations (12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91), leaving these 80.
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (5, "airplane", "vehicle"), (6, "bus", "vehicle"), (7, "train", "vehicle"), (8, "truck", "vehicle"),
    (9, "boat", "vehicle"), (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"), (19, "horse", "animal"),
    (20, "sheep", "animal"), (21, "cow", "animal"), (22, "elephant", "animal"), (23, "bear", "animal"),
    (24, "zebra", "animal"), (25, "giraffe", "animal"), (27, "backpack", "accessory"),
    (28, "umbrella", "accessory"), (31, "handbag", "accessory"), (32, "tie", "accessory"),
    (33, "suitcase", "accessory"), (34, "frisbee", "sports"), (35, "skis", "sports"), (36, "snowboard", "sports"),
    (37, "sports ball", "sports"), (38, "kite", "sports"), (39, "baseball bat", "sports"),
    (40, "baseball glove", "sports"), (41, "skateboard", "sports"), (42, "surfboard", "sports"),
    (43, "tennis racket", "sports"), (44, "bottle", "kitchen"), (46, "wine glass", "kitchen"),
    (47, "cup", "kitchen"), (48, "fork", "kitchen"), (49, "knife", "kitchen"), (50, "spoon", "kitchen"),
    (51, "bowl", "kitchen"), (52, "banana", "food"), (53, "apple", "food"), (54, "sandwich", "food"),
    (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"), (58, "hot dog", "food"),
    (59, "pizza", "food"), (60, "donut", "food"), (61, "cake", "food"), (62, "chair", "furniture"),
    (63, "couch", "furniture"), (64, "potted plant", "furniture"), (65, "bed", "furniture"),
    (67, "dining table", "furniture"), (70, "toilet", "furniture"), (72, "tv", "electronic"),
    (73, "laptop", "electronic"), (74, "mouse", "electronic"), (75, "remote", "electronic"),
    (76, "keyboard", "electronic"), (77, "cell phone", "electronic"), (78, "microwave", "appliance"),
    (79, "oven", "appliance"), (80, "toaster", "appliance"), (81, "sink", "appliance"),
    (82, "refrigerator", "appliance"), (84, "book", "indoor"), (85, "clock", "indoor"), (86, "vase", "indoor"),
    (87, "scissors", "indoor"), (88, "teddy bear", "indoor"), (89, "hair drier", "indoor"),
    (90, "toothbrush", "indoor"),
)
COCO_CATEGORY_IDS: tuple[int, ...] = tuple(c[0] for c in COCO_CATEGORIES)
COCO_CLASS_NAMES: tuple[str, ...] = tuple(c[1] for c in COCO_CATEGORIES)
COCO_ID_TO_LABEL: dict[int, int] = {cat_id: label for label, cat_id in enumerate(COCO_CATEGORY_IDS)}
LABEL_TO_COCO_ID: dict[int, int] = dict(enumerate(COCO_CATEGORY_IDS))
NUM_CLASSES = len(COCO_CATEGORIES)
SPLITS = ("train", "val")
MIN_BOX_SIDE = 1.0  # boxes narrower or lower than this are dropped


@dataclass(frozen=True)
class CocoImage:
    """One image of the JSON and its kept annotations (boxes xyxy, labels 0..79)."""
    image_id: int
    file_name: str
    path: str
    boxes: np.ndarray  # N x 4 float32
    classes: np.ndarray  # N int64


def annotation_path(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / "annotations" / f"instances_{split}2017.json"


def image_dir(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / f"{split}2017"


def _entries(doc: dict, key: str, path: Path) -> list:
    value = doc.get(key)
    if not isinstance(value, list):
        raise DatasetError(f"{path}: {key!r} is {'missing' if value is None else type(value).__name__}, expected a "
                           f"list; not a COCO instances file")
    return value


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_instances(json_path: str | os.PathLike, images_dir: str | os.PathLike, *,
                    check_files: bool = True) -> list[CocoImage]:
    """The images of a COCO instances JSON, sorted by id, with their kept annotations (see the module
    docstring); image paths resolve against `images_dir` and must exist when `check_files`."""
    path = Path(json_path)
    try:
        doc = json.loads(path.read_bytes())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not JSON ({e}); re-download or regenerate it") from None
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 JSON ({e}); re-download or regenerate it") from None
    if not isinstance(doc, dict):
        raise DatasetError(f"{path}: the top level is a {type(doc).__name__}, expected a COCO instances object")
    images: dict[int, dict] = {}
    for i, img in enumerate(_entries(doc, "images", path)):
        if not isinstance(img, dict) or not _is_int(img.get("id")) or not isinstance(img.get("file_name"), str) \
                or not img["file_name"]:
            raise DatasetError(f"{path}: images[{i}] needs an integer 'id' and a 'file_name'; fix the entry")
        if img["id"] in images:
            raise DatasetError(f"{path}: images[{i}]: image id {img['id']} appears twice; fix the entry")
        images[img["id"]] = img
    boxes: dict[int, list[tuple[float, float, float, float]]] = {k: [] for k in images}
    classes: dict[int, list[int]] = {k: [] for k in images}
    for i, ann in enumerate(_entries(doc, "annotations", path)):
        where = f"{path}: annotations[{i}]"
        if not isinstance(ann, dict):
            raise DatasetError(f"{where} is a {type(ann).__name__}, expected an object; fix the entry")
        where += f" (id {ann.get('id')})"
        image_id, cat_id, bbox = ann.get("image_id"), ann.get("category_id"), ann.get("bbox")
        if not _is_int(image_id) or image_id not in images:
            raise DatasetError(f"{where}: image_id {image_id!r} is not an image of the file; fix the entry")
        if not _is_int(cat_id) or cat_id not in COCO_ID_TO_LABEL:
            raise DatasetError(f"{where}: category_id {cat_id!r} is not one of the 80 COCO category ids; fix the "
                               f"entry")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
            raise DatasetError(f"{where}: bbox {bbox!r} is not [x, y, w, h] of 4 finite numbers; fix the entry")
        if ann.get("iscrowd", 0):
            continue
        x, y, w, h = (float(v) for v in bbox)
        if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
            continue
        boxes[image_id].append((x, y, x + w, y + h))
        classes[image_id].append(COCO_ID_TO_LABEL[cat_id])
    out = []
    for image_id in sorted(images):
        file_name = images[image_id]["file_name"]
        image_path = Path(images_dir) / file_name
        if check_files and not image_path.is_file():
            raise DatasetError(f"{image_path}: missing, the file of image id {image_id} in {path}; restore it or "
                               f"drop the image from the JSON")
        out.append(CocoImage(image_id, file_name, str(image_path),
                             np.array(boxes[image_id], np.float32).reshape(-1, 4),
                             np.array(classes[image_id], np.int64)))
    return out


def read_coco(root: str | os.PathLike, split: str) -> list[CocoImage]:
    """The images of `split` under the COCO root (see `parse_instances`)."""
    if split not in SPLITS:
        raise UsageError(f"unknown COCO split {split!r}; expected one of {', '.join(SPLITS)}")
    path = annotation_path(root, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; the COCO root must hold annotations/instances_{split}2017.json "
                                f"and {split}2017/")
    return parse_instances(path, image_dir(root, split))


def encode_image(sample: CocoImage, image_codec: str = "source") -> dict:
    """The packed record of one image (runs in the packer's worker processes)."""
    return {**image_record(sample.path, image_codec),
            "gt_boxes": encode_array("gt_boxes", sample.boxes),
            "gt_classes": encode_array("gt_classes", sample.classes),
            "image_id": sample.image_id, "file_name": sample.file_name}


def pack_coco(src_data_dir: str | os.PathLike, target_data_dir: str | os.PathLike, split: str, *,
              num_workers: int = 0, overwrite: bool = False, resume: bool = False, image_codec: str = "source",
              progress: bool = False) -> PackResult:
    """Pack the COCO images of `split` (under the root `src_data_dir`) into `<target_data_dir>/<split>_lmdb`,
    images as the files' bytes (`image_codec="source"`) or decoded pixels ("raw")."""
    samples = read_coco(src_data_dir, split)
    return pack_image_records(samples, encode_image, target_data_dir, split, name="mscoco", image_codec=image_codec,
                              image_paths=[s.path for s in samples], per_record=4096,
                              source_names=[f"{s.image_id}/{s.file_name}" for s in samples],
                              extra_meta={"class_names": list(COCO_CLASS_NAMES)}, num_workers=num_workers,
                              overwrite=overwrite, resume=resume, progress=progress)
