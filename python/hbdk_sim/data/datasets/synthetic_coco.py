"""A synthetic MS COCO: images of simple objects whose boxes and outlines are known exactly, written in
the raw COCO layout (`annotations/instances_{train,val}2017.json`, `{train,val}2017/<id>.jpg`), so the
COCO packer and the FCOS detector run offline.

Scene model. The background is a smooth colour field (a coarse random grid of colours, bilinearly
upsampled) of low chroma with a fine static texture. On it stand 2-6 objects, drawn in order (later ones cover
earlier ones), each a flat polygon of one of 8 categories (official COCO ids and names), told apart
by shape and colour, both jittered a little per object:
    person (1)        red upright ellipse, w/h 0.4-0.6
    car (3)           blue wide rectangle, w/h 1.6-2.4
    stop sign (13)    orange regular octagon
    sports ball (37)  yellow disc
    kite (38)         green diamond, w/h 0.6-0.8
    bottle (44)       cyan narrow upright rectangle, w/h 0.25-0.35
    tv (72)           purple wide rectangle, w/h 1.2-1.5
    clock (85)        white disc with a thin dark ring inside its rim (the outline is the disc's)
The shorter side of an object is log-uniform in [16 px, 40% of the image's shorter side]. An object
overlaps an earlier one by an IoU of at most 0.3; one in five is centred near the border and runs off
it. An object's `segmentation` is its polygon clipped to the image, its `bbox` the clipped polygon's
bounds and its `area` the clipped polygon's area; objects whose clipped box is under 8 px on a side
are not drawn. Every sixth image (index 2, 8, 14, ...) is empty. Every fifth (index 1, 6, 11, ...)
holds besides a crowd: 4-6 small persons packed side by side, annotated as one `iscrowd` 1 box with
an uncompressed RLE mask of that box, as COCO annotates crowds (the packer drops them).

Image ids: train 1, 4, 7, ... and val 500000, 500003, ... (gaps, as in COCO); file names are the id
as 12 digits, ".jpg". Annotation ids count from 1 per split. The output is a pure function of the
arguments: the same seed writes byte-identical files.
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hbdk_sim.data.datasets.mscoco import COCO_CATEGORIES, annotation_path, image_dir
from hbdk_sim.errors import UsageError
from hbdk_sim.files import write_file

JPEG_QUALITY = 90
EMPTY_EVERY, EMPTY_AT = 6, 2  # image k is empty when k % 6 == 2
CROWD_EVERY, CROWD_AT = 5, 1  # image k holds a crowd when k % 5 == 1
MIN_SIDE = 16  # px, the shorter side of the smallest object
MAX_SIDE_FRACTION = 0.4  # of the image's shorter side
MIN_VISIBLE = 8  # px: objects clipped below this on a side are not drawn
MAX_IOU = 0.3
BORDER_FRACTION = 0.2
FIRST_ID = {"train": 1, "val": 500000}
ID_STEP = 3


@dataclass(frozen=True)
class _Kind:
    cat_id: int
    shape: str  # "ellipse", "rect", "octagon", "diamond", "ring"
    aspect: tuple[float, float]  # w / h range
    rgb: tuple[int, int, int]


KINDS: tuple[_Kind, ...] = (
    _Kind(1, "ellipse", (0.4, 0.6), (205, 40, 40)),
    _Kind(3, "rect", (1.6, 2.4), (40, 70, 210)),
    _Kind(13, "octagon", (1.0, 1.0), (240, 130, 20)),
    _Kind(37, "ellipse", (1.0, 1.0), (235, 220, 40)),
    _Kind(38, "diamond", (0.6, 0.8), (40, 180, 60)),
    _Kind(44, "rect", (0.25, 0.35), (40, 200, 210)),
    _Kind(72, "rect", (1.2, 1.5), (130, 50, 170)),
    _Kind(85, "ring", (1.0, 1.0), (245, 245, 245)),
)
CATEGORY_IDS = tuple(k.cat_id for k in KINDS)


def _outline(kind: _Kind, cx: float, cy: float, w: float, h: float) -> np.ndarray:
    """The object's polygon (K x 2, counter-clockwise in image coordinates) centred at (cx, cy)."""
    if kind.shape in ("ellipse", "ring"):
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    elif kind.shape == "octagon":
        t = np.linspace(0, 2 * math.pi, 8, endpoint=False) + math.pi / 8
    elif kind.shape == "diamond":
        t = np.linspace(0, 2 * math.pi, 4, endpoint=False)
    else:
        return np.array([[cx - w / 2, cy - h / 2], [cx - w / 2, cy + h / 2], [cx + w / 2, cy + h / 2],
                         [cx + w / 2, cy - h / 2]])
    # The octagon's vertices lie on a circle a little larger than its w x h extent.
    r = 1 / math.cos(math.pi / 8) if kind.shape == "octagon" else 1.0
    return np.stack([cx + r * w / 2 * np.cos(t), cy + r * h / 2 * np.sin(t)], axis=1)


def _clip(poly: np.ndarray, width: int, height: int) -> np.ndarray:
    """The convex polygon `poly` clipped to [0, width] x [0, height] (Sutherland-Hodgman)."""
    pts = [tuple(p) for p in poly]
    for axis, bound, keep_below in ((0, 0.0, False), (0, float(width), True), (1, 0.0, False),
                                    (1, float(height), True)):
        def inside(p: tuple[float, float], axis: int = axis, bound: float = bound, below: bool = keep_below) -> bool:
            return p[axis] <= bound if below else p[axis] >= bound
        out = []
        for i, cur in enumerate(pts):
            prev = pts[i - 1]
            if inside(cur) != inside(prev):
                s = (bound - prev[axis]) / (cur[axis] - prev[axis])
                cross = [prev[0] + s * (cur[0] - prev[0]), prev[1] + s * (cur[1] - prev[1])]
                cross[axis] = bound
                out.append(tuple(cross))
            if inside(cur):
                out.append(cur)
        pts = out
        if not pts:
            break
    return np.array(pts, np.float64).reshape(-1, 2)


def _area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _r(v: float) -> float:
    return round(float(v), 2)


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    # Greyish (low chroma), so that the saturated object colours stand out on every background.
    base = rng.uniform(70, 170) + rng.normal(0, 10, (1, 1, 3))
    grid = np.clip(base + rng.normal(0, 30, (4, 5, 1)) + rng.normal(0, 8, (4, 5, 3)), 0, 255).astype(np.uint8)
    field = np.asarray(Image.fromarray(grid).resize((width, height), Image.BILINEAR), np.float64)
    texture = rng.normal(0, 8, (height, width, 1))
    return Image.fromarray(np.clip(np.round(field + texture), 0, 255).astype(np.uint8))


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-20, 21), 0, 255)) for c in rgb)


def _rle_of_box(x0: int, y0: int, x1: int, y1: int, width: int, height: int) -> dict:
    """COCO's uncompressed RLE (column-major runs, starting with background) of the box mask."""
    mask = np.zeros((height, width), np.uint8)
    mask[y0:y1, x0:x1] = 1
    flat = mask.ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    return {"counts": counts, "size": [height, width]}


def _image(rng: np.random.Generator, index: int, width: int, height: int,
           next_ann_id: int, image_id: int) -> tuple[bytes, list[dict]]:
    img = _background(rng, width, height)
    draw = ImageDraw.Draw(img)
    anns: list[dict] = []
    placed: list[tuple[float, ...]] = []
    if index % CROWD_EVERY == CROWD_AT:
        person = KINDS[0]
        n = int(rng.integers(4, 7))
        h = float(rng.uniform(20, 32))
        w = h * 0.5
        x0 = float(rng.uniform(0, max(1.0, width - n * w - 1)))
        y0 = float(rng.uniform(0, max(1.0, height - h - 1)))
        for j in range(n):
            poly = _outline(person, x0 + (j + 0.5) * w, y0 + h / 2, w * 0.9, h)
            draw.polygon([tuple(p) for p in poly], fill=_jitter(rng, person.rgb))
        bx0, by0, bx1, by1 = (math.floor(x0), math.floor(y0), min(width, math.ceil(x0 + n * w)),
                              min(height, math.ceil(y0 + h)))
        anns.append({"id": next_ann_id, "image_id": image_id, "category_id": person.cat_id,
                     "segmentation": _rle_of_box(bx0, by0, bx1, by1, width, height),
                     "area": float((bx1 - bx0) * (by1 - by0)), "bbox": [bx0, by0, bx1 - bx0, by1 - by0], "iscrowd": 1})
        placed.append((bx0, by0, bx1, by1))
    count = 0 if index % EMPTY_EVERY == EMPTY_AT else int(rng.integers(2, 7))
    max_side = max(MIN_SIDE + 1.0, MAX_SIDE_FRACTION * min(width, height))
    for _ in range(count):
        for _attempt in range(20):
            kind = KINDS[int(rng.integers(len(KINDS)))]
            side = math.exp(rng.uniform(math.log(MIN_SIDE), math.log(max_side)))
            aspect = rng.uniform(*kind.aspect)
            w, h = (side * aspect, side) if aspect >= 1 else (side, side / aspect)
            if rng.random() < BORDER_FRACTION:  # centred near an edge: runs off it
                edge = int(rng.integers(4))
                cx = float(rng.uniform(0, width)) if edge < 2 else (0.0 if edge == 2 else float(width))
                cy = float(rng.uniform(0, height)) if edge >= 2 else (0.0 if edge == 0 else float(height))
                cx += rng.uniform(-0.25, 0.25) * w
                cy += rng.uniform(-0.25, 0.25) * h
            else:
                cx = float(rng.uniform(w / 2, max(w / 2 + 1, width - w / 2)))
                cy = float(rng.uniform(h / 2, max(h / 2 + 1, height - h / 2)))
            poly = _outline(kind, cx, cy, w, h)
            clipped = _clip(poly, width, height)
            if len(clipped) < 3:
                continue
            box = (*clipped.min(axis=0), *clipped.max(axis=0))
            if box[2] - box[0] < MIN_VISIBLE or box[3] - box[1] < MIN_VISIBLE:
                continue
            if any(_iou(box, other) > MAX_IOU for other in placed):
                continue
            colour = _jitter(rng, kind.rgb)
            draw.polygon([tuple(p) for p in poly], fill=colour)
            if kind.shape == "ring":
                inner = _outline(kind, cx, cy, w * 0.8, h * 0.8)
                draw.polygon([tuple(p) for p in inner], fill=(30, 30, 30))
                draw.polygon([tuple(p) for p in _outline(kind, cx, cy, w * 0.7, h * 0.7)], fill=colour)
            placed.append(box)
            x0, y0, x1, y1 = (_r(v) for v in box)
            anns.append({"id": next_ann_id + len(anns), "image_id": image_id, "category_id": kind.cat_id,
                         "segmentation": [[_r(v) for v in clipped.ravel()]], "area": _r(_area(clipped)),
                         "bbox": [x0, y0, _r(x1 - x0), _r(y1 - y0)], "iscrowd": 0})
            break
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), anns


def _split(out: Path, split: str, split_index: int, count: int, seed: int, width: int, height: int,
           overwrite: bool) -> dict:
    folder = image_dir(out, split)
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for k in range(count):
        rng = np.random.default_rng([seed, split_index, k])
        image_id = FIRST_ID[split] + ID_STEP * k
        file_name = f"{image_id:012d}.jpg"
        jpeg, anns = _image(rng, k, width, height, len(annotations) + 1, image_id)
        write_file(folder / file_name, jpeg, overwrite=overwrite)
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width, "license": 1,
                       "date_captured": "2017-01-01 00:00:00"})
        annotations.extend(anns)
    doc = {"info": {"description": "hbdk-sim synthetic COCO", "version": "1.0", "year": 2017,
                    "contributor": "hbdk_sim.data.datasets.synthetic_coco", "date_created": "2017/01/01"},
           "licenses": [{"id": 1, "name": "synthetic", "url": ""}],
           "images": images, "annotations": annotations,
           "categories": [{"id": i, "name": n, "supercategory": s} for i, n, s in COCO_CATEGORIES]}
    path = annotation_path(out, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, json.dumps(doc).encode(), overwrite=overwrite)
    return doc


def make_synthetic_coco(out: str | os.PathLike, *, train: int = 32, val: int = 8, height: int = 480,
                        width: int = 640, seed: int = 0, overwrite: bool = False) -> dict[str, dict]:
    """Write a synthetic COCO (see the module docstring) under `out`; returns the instances document
    of each split. Refuses existing files unless `overwrite`."""
    if train < 0 or val < 0:
        raise UsageError(f"image counts must be >= 0 (train={train}, val={val})")
    if height < 64 or width < 64:
        raise UsageError(f"images must be at least 64x64 (got {width}x{height})")
    return {split: _split(Path(out), split, i, n, seed, width, height, overwrite)
            for i, (split, n) in enumerate((("train", train), ("val", val)))}
