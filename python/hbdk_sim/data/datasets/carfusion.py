"""CarFusion car keypoints: the keypoint definitions, a reader of the raw layout, the converter that
crops one image per car (the reference toolkit's gen_carfusion_data) and packing the crops into LMDB.

Raw layout (`<root>/{train,test}/<sequence>/...`, one frame per `<id>`):
    images_jpg/<id>.jpg   the camera frame (its size is read from the JPEG)
    bb/<id>.txt           one car box per line, `[a, b, c, d],cat` (xmin=a, ymin=b, w=d, h=c) or
                          `[a b c d]` (x, y, w, h); the category suffix is optional and unused
    gt/<id>.txt           one keypoint per line, `x,y,keypoint_idx,instance_id,vis`

`keypoint_idx` is CarFusion's 1-based index (1..13 fit the 14-row array; row 0 stays empty, as in the
reference). `instance_id` is the 0-based line number of the car's box in bb/<id>.txt (blank lines not
counted): the reference converter indexes its per-box list with it, and the authors' COCO converter
only groups by it. `vis` 2 means occluded, 1 and 3 visible; a row holds (x, y, 1 if vis == 2 else 2),
so attr 1 = occluded, 2 = visible, 0 = unlabelled.

Converter output (`convert_carfusion`):
    <out>/<split>/<sequence>/crop_imgs/<id>_<box>.jpg     one crop per box
    <out>/simple_anno/keypoints_<split>.json              {crop path relative to <out>: 14x3 list}
The crop is the box grown by 10% of w left, 20% of h up, to 1.2w x 1.4h, clipped to the image and
rounded to whole pixels; keypoints are shifted by the rounded crop origin, so they land on the crop's
pixels exactly (the reference shifts by the unrounded origin, up to half a pixel off). Unlabelled
(0, 0) rows shift to negative coordinates, as in the reference. The JSON keys are relative to
<out>, which the packer finds as the JSON's grandparent, not the current directory.

A packed record (msgpack map, see `hbdk_sim.data.packer` and `hbdk_sim.data.sample`):
    img: bytes          the crop JPEG's bytes (image_codec "source") or HxWx3 uint8 RGB pixels ("raw")
    img_format: str     "jpg" or "raw"
    shape: [h, w]       the crop's size
    gt_keypoints        12x3 float32 (x, y, attr) in crop pixels, KEYPOINT_NAMES order; attr 0 where
                        unlabelled or outside [0, w] x [0, h], 1 occluded, 2 visible
    name: str           the crop's stem, "<id>_<box>"
    sequence: str       e.g. "car_butler1"
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hbdk_sim.data.datasets.text_fields import parse_integer, parse_number
from hbdk_sim.data.packer import PackResult, image_record, pack_image_records
from hbdk_sim.data.sample import encode_array
from hbdk_sim.errors import DatasetError, UsageError
from hbdk_sim.files import write_file

KEYPOINT_NAMES: tuple[str, ...] = (
    "Right_Front_wheel", "Left_Front_wheel", "Right_Back_wheel", "Left_Back_wheel",
    "Right_Front_HeadLight", "Left_Front_HeadLight", "Right_Back_HeadLight", "Left_Back_HeadLight",
    "Right_Front_Top", "Left_Front_Top", "Right_Back_Top", "Left_Back_Top",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
# Right <-> left partners, for a horizontal flip.
FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11))
# A car wireframe over the 12 keypoints (indices into KEYPOINT_NAMES): per side the wheel base, the
# light-to-wheel and light-to-top pillars and the roof edge; across the car the axles, the light bars
# and the roof's front and back edges.
SKELETON: tuple[tuple[int, int], ...] = (
    (0, 2), (1, 3),  # wheel base, right and left
    (0, 1), (2, 3),  # front and back axle
    (4, 5), (6, 7),  # headlights, tail lights
    (0, 4), (1, 5), (2, 6), (3, 7),  # wheel -> light of the same corner
    (4, 8), (5, 9), (6, 10), (7, 11),  # light -> roof corner above it (the pillars)
    (8, 9), (10, 11), (8, 10), (9, 11),  # roof rectangle
)
# Rows of the 14-row converter array the packer keeps: CarFusion 1..8 (wheels, lights) and 10..13
# (roof corners); row 0 is empty (1-based index) and row 9 is the exhaust.
KEPT_ROWS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13)
NUM_ROWS = 14  # the converter's per-box array, indexed by the 1-based CarFusion keypoint index
SPLITS = ("train", "test")
CROP_JPEG_QUALITY = 95  # the crops are re-encoded once; keep the loss small


@dataclass(frozen=True)
class CarFusionFrame:
    split: str
    sequence: str
    image_id: str
    image: str
    bb: str
    gt: str


def parse_bb_line(line: str, where: str) -> tuple[float, float, float, float]:
    """(xmin, ymin, w, h) of one bb line: `[a, b, c, d]` is (a, b, d, c), `[a b c d]` is (a, b, c, d);
    an optional `,category` may follow the bracket."""
    text = line.strip()
    close = text.find("]")
    rest = text[close + 1:].strip() if close >= 0 else ""
    if not text.startswith("[") or close < 0 or (rest and not rest.startswith(",")):
        raise DatasetError(f"{where}: bb line {text!r} is not '[xmin, ymin, h, w],category' or '[x y w h]'; "
                           f"fix the line")
    inner = text[1:close]
    parts = inner.split(",") if "," in inner else inner.split()
    if len(parts) != 4:
        raise DatasetError(f"{where}: bb line {text!r} holds {len(parts)} numbers in its brackets, expected 4; "
                           f"fix the line")
    a, b, c, d = (parse_number(p, where, "bb value") for p in parts)
    xmin, ymin, w, h = (a, b, d, c) if "," in inner else (a, b, c, d)
    if w <= 0 or h <= 0:
        raise DatasetError(f"{where}: bb line {text!r} has width {w:g} and height {h:g}; both must be positive")
    return xmin, ymin, w, h


def read_bb_file(path: str | os.PathLike) -> list[tuple[float, float, float, float]]:
    """The boxes of a bb/<id>.txt file as (xmin, ymin, w, h), in line order (blank lines skipped)."""
    boxes = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            boxes.append(parse_bb_line(line, f"{path}:{lineno}"))
    return boxes


def read_gt_file(path: str | os.PathLike, num_boxes: int) -> np.ndarray:
    """The (num_boxes, 14, 3) float64 keypoint array of a gt/<id>.txt file: row k of box i holds
    (x, y, 1 if vis == 2 else 2) of the line with keypoint_idx k and instance_id i; other rows are 0.
    A later line for the same (box, keypoint) replaces an earlier one."""
    out = np.zeros((num_boxes, NUM_ROWS, 3))
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        fields = line.strip().split(",")
        if len(fields) != 5:
            raise DatasetError(f"{where}: gt line {line.strip()!r} has {len(fields)} fields, expected 5 "
                               f"(x,y,keypoint_idx,instance_id,vis); fix the line")
        x, y = parse_number(fields[0], where, "x"), parse_number(fields[1], where, "y")
        k = parse_integer(fields[2], where, "keypoint_idx")
        inst = parse_integer(fields[3], where, "instance_id")
        vis = parse_integer(fields[4], where, "vis")
        if not 1 <= k < NUM_ROWS:
            raise DatasetError(f"{where}: keypoint_idx {k} is outside 1..{NUM_ROWS - 1} (CarFusion's 1-based "
                               f"indices that the {NUM_ROWS}-row array holds); fix the line")
        if not 0 <= inst < num_boxes:
            raise DatasetError(f"{where}: instance_id {inst} has no box: the frame's bb file has {num_boxes} "
                               f"box line(s), instance ids are their 0-based line numbers; fix the gt or bb file")
        if vis not in (1, 2, 3):
            raise DatasetError(f"{where}: vis {vis} is not 1, 2 (occluded) or 3; fix the line")
        out[inst, k] = (x, y, 1.0 if vis == 2 else 2.0)
    return out


def find_frames(src_dir: str | os.PathLike, split: str) -> list[CarFusionFrame]:
    """Every annotated frame (a gt/<id>.txt) of `split` under the CarFusion root, sorted by sequence
    and id. Every sequence folder must hold gt/, and every gt file its bb file and JPEG."""
    if split not in SPLITS:
        raise UsageError(f"unknown CarFusion split {split!r}; expected one of {', '.join(SPLITS)}")
    split_dir = Path(src_dir) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: no such directory; the CarFusion root must hold "
                                f"{split}/<sequence>/{{images_jpg,bb,gt}}/")
    frames = []
    for seq in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if not (seq / "gt").is_dir():
            raise DatasetError(f"{seq}: a sequence folder without gt/; every {split}/<sequence>/ needs "
                               f"images_jpg/, bb/ and gt/ (move other folders out of {split_dir})")
        for gt in sorted((seq / "gt").glob("*.txt")):
            image, bb = seq / "images_jpg" / f"{gt.stem}.jpg", seq / "bb" / f"{gt.stem}.txt"
            for needed in (image, bb):
                if not needed.is_file():
                    raise DatasetError(f"{needed}: missing for {gt}; every gt/<id>.txt needs images_jpg/<id>.jpg "
                                       f"and bb/<id>.txt")
            frames.append(CarFusionFrame(split, seq.name, gt.stem, str(image), str(bb), str(gt)))
    return frames


def read_frame(frame: CarFusionFrame) -> tuple[list[tuple[float, float, float, float]], np.ndarray, tuple[int, int]]:
    """The frame's boxes (xmin, ymin, w, h), its (N, 14, 3) keypoints and the image's (width, height)."""
    boxes = read_bb_file(frame.bb)
    keypoints = read_gt_file(frame.gt, len(boxes))
    with Image.open(frame.image) as im:  # the header only
        size = im.size
    return boxes, keypoints, size


def crop_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float, float, float]:
    """The reference's crop of a (xmin, ymin, w, h) box in a width x height image, (x0, y0, x1, y1):
    grown by 0.1w left and 0.2h up (clipped at 0) to 1.2w x 1.4h, the far edges clipped to the image."""
    xmin, ymin, w, h = box
    x0, y0 = max(xmin - 0.1 * w, 0.0), max(ymin - 0.2 * h, 0.0)
    return x0, y0, min(x0 + 1.2 * w, float(width)), min(y0 + 1.4 * h, float(height))


def pixel_crop_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """`crop_box` rounded to whole pixels (as Pillow rounds a crop box): the rectangle actually cut."""
    x0, y0, x1, y1 = (int(round(v)) for v in crop_box(box, width, height))
    return x0, y0, x1, y1


def _convert_sequence(task: tuple[str, str, list[CarFusionFrame], bool]) -> list[tuple[str, list]]:
    out_dir, rel_dir, frames, overwrite = task
    crop_dir = Path(out_dir) / rel_dir
    crop_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for frame in frames:
        boxes, keypoints, (width, height) = read_frame(frame)
        with Image.open(frame.image) as im:
            image = im.convert("RGB")
        for i, box in enumerate(boxes):
            x0, y0, x1, y1 = pixel_crop_box(box, width, height)
            if x1 <= x0 or y1 <= y0:
                raise DatasetError(f"{frame.bb}: box {i} {box} lies outside the {width}x{height} image; fix or "
                                   f"remove its line")
            buf = io.BytesIO()
            image.crop((x0, y0, x1, y1)).save(buf, format="JPEG", quality=CROP_JPEG_QUALITY)
            name = f"{frame.image_id}_{i}.jpg"
            write_file(crop_dir / name, buf.getvalue(), overwrite=overwrite)
            shifted = keypoints[i].copy()
            shifted[:, 0] -= x0
            shifted[:, 1] -= y0
            # Rounded so that a 2-decimal source coordinate stays 2 decimals in the JSON.
            entries.append((f"{rel_dir}/{name}", np.round(shifted, 6).tolist()))
    return entries


def annotation_path(out_dir: str | os.PathLike, split: str) -> Path:
    """The converter's keypoint JSON of `split`."""
    return Path(out_dir) / "simple_anno" / f"keypoints_{split}.json"


def convert_carfusion(src: str | os.PathLike, out_dir: str | os.PathLike, num_workers: int = 0, *,
                      overwrite: bool = False) -> dict[str, int]:
    """Crop every box of the CarFusion tree at `src` into `out_dir` and write the keypoint JSON of each
    split present (see the module docstring). Sequences run in `num_workers` processes (0: here).
    Returns the number of crops per split. Refuses existing output unless `overwrite`."""
    splits = [s for s in SPLITS if (Path(src) / s).is_dir()]
    if not splits:
        raise FileNotFoundError(f"{src}: neither train/ nor test/ found; --src-data-path must be the CarFusion root "
                                f"holding {{train,test}}/<sequence>/{{images_jpg,bb,gt}}/")
    frames = {s: find_frames(src, s) for s in splits}
    tasks = []
    for split in splits:
        sequences = sorted({f.sequence for f in frames[split]})
        for seq in sequences:
            rel_dir = f"{split}/{seq}/crop_imgs"
            if not overwrite and (Path(out_dir) / rel_dir).exists():
                raise FileExistsError(f"{Path(out_dir) / rel_dir} exists; pass overwrite=True (--overwrite) or choose "
                                      f"another --out-dir")
            tasks.append((str(out_dir), rel_dir, [f for f in frames[split] if f.sequence == seq], overwrite))
        if not overwrite and annotation_path(out_dir, split).exists():
            raise FileExistsError(f"{annotation_path(out_dir, split)} exists; pass overwrite=True (--overwrite) or "
                                  f"choose another --out-dir")
    if num_workers > 0 and len(tasks) > 1:
        with multiprocessing.get_context().Pool(min(num_workers, len(tasks))) as pool:
            results = pool.map(_convert_sequence, tasks, chunksize=1)
    else:
        results = [_convert_sequence(t) for t in tasks]
    counts = {}
    for split in splits:
        anno = {key: rows for task, entries in zip(tasks, results, strict=True) if task[1].startswith(split + "/")
                for key, rows in entries}
        path = annotation_path(out_dir, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, json.dumps(anno).encode(), overwrite=overwrite)
        counts[split] = len(anno)
    return counts


def packed_keypoints(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """The 12x3 float32 (x, y, attr) of a crop from its 14x3 converter rows: the KEPT_ROWS, attr 0
    where the point lies outside [0, width] x [0, height]."""
    k = np.asarray(rows, np.float64)[list(KEPT_ROWS)]
    outside = (k[:, 0] < 0) | (k[:, 0] > width) | (k[:, 1] < 0) | (k[:, 1] > height)
    k[outside, 2] = 0
    return k.astype(np.float32)


@dataclass(frozen=True)
class CropSample:
    path: str
    rows: list
    name: str
    sequence: str


def encode_crop(sample: CropSample, image_codec: str = "source") -> dict:
    """The packed record of one crop (runs in the packer's worker processes)."""
    image = image_record(sample.path, image_codec)
    height, width = image["shape"]
    return {**image,
            "gt_keypoints": encode_array("gt_keypoints", packed_keypoints(sample.rows, width, height)),
            "name": sample.name, "sequence": sample.sequence}


def find_crops(src_data_dir: str | os.PathLike, split: str) -> list[CropSample]:
    """The crops of `split` listed in the converter's JSON under `src_data_dir`, in the JSON's order;
    each key is resolved against `src_data_dir` (the JSON's grandparent)."""
    if split not in SPLITS:
        raise UsageError(f"unknown CarFusion split {split!r}; expected one of {', '.join(SPLITS)}")
    path = annotation_path(src_data_dir, split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; --src-data-dir must be the output of "
                                f"tools/dataset_converters/gen_carfusion_data.py")
    try:
        anno = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not JSON ({e}); re-run the converter") from None
    if not isinstance(anno, dict) or not anno:
        raise DatasetError(f"{path}: expected a non-empty map of crop path -> 14x3 keypoints; re-run the converter")
    root = path.parent.parent
    samples = []
    for key, rows in anno.items():
        rel = Path(key)
        if rel.is_absolute() or ".." in rel.parts or len(rel.parts) < 2:
            raise DatasetError(f"{path}: key {key!r} is not a crop path relative to {root} "
                               f"(<split>/<sequence>/crop_imgs/<name>.jpg); re-run the converter")
        ok = isinstance(rows, list) and len(rows) == NUM_ROWS and all(
            isinstance(r, list) and len(r) == 3 and all(isinstance(v, int | float) for v in r) for r in rows)
        if not ok:
            raise DatasetError(f"{path}: the keypoints of {key!r} are not a {NUM_ROWS}x3 list of numbers; re-run "
                               f"the converter")
        crop = root / rel
        if not crop.is_file():
            raise FileNotFoundError(f"{crop}: crop listed in {path} is missing; re-run the converter")
        samples.append(CropSample(str(crop), rows, rel.stem, rel.parts[1] if len(rel.parts) > 2 else ""))
    return samples


def pack_carfusion(src_data_dir: str | os.PathLike, target_data_dir: str | os.PathLike, split: str, *,
                   num_workers: int = 0, overwrite: bool = False, resume: bool = False, image_codec: str = "source",
                   progress: bool = False) -> PackResult:
    """Pack the converter's crops of `split` (under `src_data_dir`) into `<target_data_dir>/<split>_lmdb`,
    images as the crop files' bytes (`image_codec="source"`) or decoded pixels ("raw")."""
    samples = find_crops(src_data_dir, split)
    return pack_image_records(samples, encode_crop, target_data_dir, split, name="carfusion", image_codec=image_codec,
                              image_paths=[s.path for s in samples], per_record=1024,
                              source_names=[f"{s.sequence}/{s.name}" for s in samples],
                              extra_meta={"keypoint_names": list(KEYPOINT_NAMES)}, num_workers=num_workers,
                              overwrite=overwrite, resume=resume, progress=progress)
