"""A synthetic MOT17: street scenes of walking pedestrians whose boxes, identities and visibilities are
known exactly, written in the raw MOT17 layout (`train/MOT17-XX-SDP/{img1/<frame:06d>.jpg, gt/gt.txt,
det/det.txt, seqinfo.ini}`), so the half split, the packer and the MOTR tracker run offline.

Scene model. Each sequence (MOT17-02-SDP, -04-, -05-, -09-, -10-, -11-, -13-, in that order) is seen
by a static camera. The background is fixed per sequence: above a horizon line at 35% of the height
stand 3-6 building fronts of random widths in muted colours with a lattice of darker windows, below it
lies grey pavement with tile joints, all under a fine static texture; every frame adds its own pixel
noise (standard deviation 2) over the drawn scene.

The objects are persons, each an integer box (left, top, w, h) whose silhouette is a body rectangle,
rows [top + h // 5, top + h) by columns [left, left + w), under a head disc of radius h / 10 centred at
(left + w / 2, top + h / 10) (a pixel belongs to the disc when its centre lies within the radius,
boundary included, decided exactly in integer arithmetic). The upper half of the body is the shirt,
the lower half the trousers (a rider's lower half is the dark vehicle), the head a skin tone; shirt
colours step around the hue circle by the golden angle per object, so identities look distinct.
A person stands on a foot line `foot` (its box bottom, between 55% and 108% of the height: close ones
are cut by the bottom edge); its height is 0.75-0.95 times the foot's distance below the horizon (weak
perspective; at least 10 px), its width 0.34-0.42 times its height (at least 4 px). Over time t
(frame t + 1), from its start frame t0,
    centre x = x0 + vx (t - t0) + a sin(2 pi (t - t0) / P + phi)    foot = foot0 + vy (t - t0)
with a smooth sway a <= 1.5 px of period P 20-40 frames and |vy| <= 0.15 px per frame; the box is
rounded to whole pixels each frame. Per sequence:
    `pedestrians` walkers (class 1, consider 1): the first half (rounded up) start in view at t0 = 0,
        centre x in 5-95% of the width, walking either way (and may leave); the others start just
        outside the left or right edge at t0 in [1, frames / 2] and walk in; |vx| is 0.02-0.06 box
        heights per frame
    1 static person (class 7, consider 0): vx = vy = a = 0, centre x in 5-95% of the width
    1 person on a vehicle (class 2, consider 0): enters from an edge at 0.08-0.12 box heights per frame
Objects are drawn far to near: in ascending (box bottom, id). A walker's row has consider 0 instead of
1 while less than a quarter of its box lies inside the image (heavily truncated).

gt.txt: a row for every frame in which at least one pixel of an object's box lies in the image, sorted
by id, then frame (as MOT17): `frame,id,left,top,w,h,consider,class,visibility`, the box unclipped
(it may reach outside the image), in whole pixels from the image's top-left corner (0-based; MOT17's
own boxes are 1-based, which neither the split nor the packer changes). Ids are 1, 2, ... in the order
of the objects' first rows (ties by creation: walkers, the static person, the rider); an object keeps
its id for all its rows and no id is reused.
visibility = (pixels of the box inside the image and not covered by the silhouette of an object drawn
later) / (w h), written with 5 decimals (trailing zeros dropped).
det.txt: per frame, in gt order, each row with visibility >= 0.25 is detected with probability 0.92
as the box with its centre moved by N(0, 0.04) of its size and its size scaled by exp(N(0, 0.04)),
score clip(0.5 + 0.5 visibility + N(0, 0.05), 0.05, 1); with probability 0.15 a frame also gets one
false positive of person shape scored 0.05-0.4. Rows: `frame,-1,x,y,w,h,score,-1,-1,-1`.
seqinfo.ini: MOT17's keys (frameRate 30). Images: JPEG, quality 90.
The output is a pure function of the arguments: the same seed writes byte-identical files.
"""

from __future__ import annotations

import colorsys
import io
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hbdk_sim.data.datasets.mot17 import SeqInfo, seqinfo_text
from hbdk_sim.errors import UsageError
from hbdk_sim.files import write_file

SEQUENCE_NUMBERS = (2, 4, 5, 9, 10, 11, 13)  # MOT17's train sequences
JPEG_QUALITY = 90
FRAME_RATE = 30
HORIZON = 0.35  # of the height
FRAME_NOISE = 2.0
TRUNCATED = 0.25  # a walker with less of its box in the image is not considered
DETECTABLE = 0.25  # rows at least this visible may be detected
DETECT_RATE = 0.92
FALSE_POSITIVE_RATE = 0.15
PEDESTRIAN, PERSON_ON_VEHICLE, STATIC_PERSON = 1, 2, 7
_GOLDEN = 0.6180339887
_SKIN = ((224, 172, 140), (198, 134, 96), (141, 85, 56), (240, 200, 170), (110, 70, 50))


def sequence_names(count: int) -> list[str]:
    return [f"MOT17-{n:02d}-SDP" for n in SEQUENCE_NUMBERS[:count]]


def silhouette(left: int, top: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """The (h, w) masks of the body rectangle and the head disc within the box (see the module docstring)."""
    body = np.zeros((h, w), bool)
    body[h // 5:] = True
    ys, xs = np.mgrid[0:h, 0:w]
    # (x + 1/2 - w/2)^2 + (y + 1/2 - h/10)^2 <= (h/10)^2, times 400: exact in integers, boundary included.
    head = (20 * xs + 10 - 10 * w) ** 2 + (20 * ys + 10 - 2 * h) ** 2 <= 4 * h * h
    return body, head & ~body


@dataclass(frozen=True)
class _Person:
    cls: int
    t0: int
    x0: float
    vx: float
    foot0: float
    vy: float
    sway: float
    period: float
    phase: float
    height_scale: float
    aspect: float
    shirt: tuple[int, int, int]
    lower: tuple[int, int, int]
    skin: tuple[int, int, int]

    def box(self, t: int, height: int) -> tuple[int, int, int, int]:
        dt = t - self.t0
        cx = self.x0 + self.vx * dt + self.sway * math.sin(2 * math.pi * dt / self.period + self.phase)
        foot = self.foot0 + self.vy * dt
        h = max(10, round(self.height_scale * (foot - HORIZON * height)))
        w = max(4, round(self.aspect * h))
        return round(cx - w / 2), round(foot) - h, w, h


def _colour(hue: float, sat: float, val: float) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue % 1.0, sat, val))


def _people(rng: np.random.Generator, pedestrians: int, frames: int, width: int, height: int) -> list[_Person]:
    people = []
    hue0 = rng.uniform()
    kinds = [PEDESTRIAN] * pedestrians + [STATIC_PERSON, PERSON_ON_VEHICLE]
    for k, cls in enumerate(kinds):
        foot = rng.uniform(0.55, 1.08) * height
        height_scale, aspect = rng.uniform(0.75, 0.95), rng.uniform(0.34, 0.42)
        h = height_scale * (foot - HORIZON * height)
        direction = 1.0 if rng.random() < 0.5 else -1.0
        in_view = cls == STATIC_PERSON or (cls == PEDESTRIAN and k < (pedestrians + 1) // 2)
        if in_view:
            t0, x0 = 0, rng.uniform(0.05, 0.95) * width
        else:  # just outside the edge it walks in from
            t0 = int(rng.integers(1, max(2, frames // 2 + 1)))
            x0 = -aspect * h / 2 - 1 if direction > 0 else width + aspect * h / 2 + 1
        speed = {PEDESTRIAN: rng.uniform(0.02, 0.06), STATIC_PERSON: 0.0,
                 PERSON_ON_VEHICLE: rng.uniform(0.08, 0.12)}[cls] * h
        moving = cls != STATIC_PERSON
        lower = _colour(rng.uniform(), rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.45))
        if cls == PERSON_ON_VEHICLE:
            lower = (35, 35, 40)
        people.append(_Person(
            cls, t0, float(x0), direction * speed, float(foot), rng.uniform(-0.15, 0.15) if moving else 0.0,
            rng.uniform(0, 1.5) if moving else 0.0, rng.uniform(20, 40), rng.uniform(0, 2 * math.pi),
            height_scale, aspect, _colour(hue0 + k * _GOLDEN, rng.uniform(0.55, 0.85), rng.uniform(0.6, 0.9)),
            lower, _SKIN[int(rng.integers(len(_SKIN)))]))
    return people


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    horizon = int(HORIZON * height)
    img = np.empty((height, width, 3), np.float64)
    # Facades: blocks of muted colour, each with a lattice of darker windows.
    blocks = int(rng.integers(3, 7))
    edges = np.sort(rng.choice(np.arange(1, width), blocks - 1, replace=False)) if width > blocks else []
    bounds = [0, *edges, width]
    for x0, x1 in zip(bounds[:-1], bounds[1:], strict=True):
        img[:horizon, x0:x1] = _colour(rng.uniform(), rng.uniform(0.1, 0.35), rng.uniform(0.45, 0.8))
        step = int(rng.integers(6, 12))
        for y in range(3, max(3, horizon - 4), step):
            for x in range(x0 + 2, x1 - 4, step):
                img[y:y + step // 2, x:x + step // 2] *= 0.6
    # Pavement: grey with a vertical gradient and tile joints.
    ground = rng.uniform(95, 140) + np.linspace(0, 30, height - horizon)[:, None, None]
    img[horizon:] = ground + rng.normal(0, 4, (1, 1, 3))
    tile = int(rng.integers(10, 18))
    img[horizon::tile] *= 0.8
    img[horizon:, ::tile * 2] *= 0.85
    img += rng.normal(0, 6, (height, width, 1))
    return img


def _fmt(v: float, decimals: int) -> str:
    text = f"{v:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _sequence(out: Path, name: str, rng: np.random.Generator, seed: int, index: int, frames: int, width: int,
              height: int, pedestrians: int, overwrite: bool) -> np.ndarray:
    people = _people(rng, pedestrians, frames, width, height)
    background = _background(rng, width, height)
    seq = out / "train" / name
    for sub in ("img1", "gt", "det"):
        (seq / sub).mkdir(parents=True, exist_ok=True)
    # Which objects are in view in which frames: their ids follow the first frame in view.
    boxes: list[list[tuple[int, int, int, int, int]]] = []
    for t in range(frames):
        boxes.append([])
        for p, person in enumerate(people):
            if t < person.t0:
                continue
            left, top, w, h = person.box(t, height)
            if min(left + w, width) > max(left, 0) and min(top + h, height) > max(top, 0):
                boxes[t].append((p, left, top, w, h))
    first: dict[int, int] = {}
    for t, live in enumerate(boxes):
        for p, *_ in live:
            first.setdefault(p, t)
    ids = {p: i for i, p in enumerate(sorted(first, key=lambda p: (first[p], p)), 1)}
    gt = []
    for t, live in enumerate(boxes):
        live = sorted(live, key=lambda o: (o[2] + o[4], ids[o[0]]))  # far to near
        img = background.copy()
        covered = np.zeros((height, width), bool)
        visibility = {}
        for p, left, top, w, h in reversed(live):  # near to far: what nearer objects cover
            x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + w, width), min(top + h, height)
            visibility[p] = round(float((~covered[y0:y1, x0:x1]).sum()) / (w * h), 5)
            body, head = silhouette(left, top, w, h)
            covered[y0:y1, x0:x1] |= (body | head)[y0 - top:y1 - top, x0 - left:x1 - left]
        for p, left, top, w, h in live:
            person = people[p]
            body, head = silhouette(left, top, w, h)
            waist = np.zeros((h, w), bool)
            waist[h // 5 + (h - h // 5) // 2:] = True
            x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + w, width), min(top + h, height)
            view = img[y0:y1, x0:x1]
            cut = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
            view[(body & ~waist)[cut]] = person.shirt
            view[(body & waist)[cut]] = person.lower
            view[head[cut]] = person.skin
            inside = (x1 - x0) * (y1 - y0) / (w * h)
            consider = 1 if person.cls == PEDESTRIAN and inside >= TRUNCATED else 0
            gt.append((t + 1, ids[p], left, top, w, h, consider, person.cls, visibility[p]))
        img += np.random.default_rng([seed, index, 1, t]).normal(0, FRAME_NOISE, (height, width, 3))
        buf = io.BytesIO()
        Image.fromarray(np.clip(np.round(img), 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=JPEG_QUALITY)
        write_file(seq / "img1" / f"{t + 1:06d}.jpg", buf.getvalue(), overwrite=overwrite)
    gt.sort(key=lambda r: (r[1], r[0]))  # by id, then frame, as MOT17
    write_file(seq / "gt" / "gt.txt", "".join(f"{f},{i},{x},{y},{w},{h},{c},{k},{_fmt(v, 5)}\n"
                                              for f, i, x, y, w, h, c, k, v in gt).encode(), overwrite=overwrite)
    det_rng = np.random.default_rng([seed, index, 2])
    det = []
    for frame in range(1, frames + 1):
        for _, _, x, y, w, h, _, _, v in sorted((r for r in gt if r[0] == frame), key=lambda r: r[1]):
            if v < DETECTABLE or det_rng.random() >= DETECT_RATE:
                continue
            cx, cy = x + w / 2 + det_rng.normal(0, 0.04) * w, y + h / 2 + det_rng.normal(0, 0.04) * h
            dw, dh = w * math.exp(det_rng.normal(0, 0.04)), h * math.exp(det_rng.normal(0, 0.04))
            score = float(np.clip(0.5 + 0.5 * v + det_rng.normal(0, 0.05), 0.05, 1.0))
            det.append((frame, cx - dw / 2, cy - dh / 2, dw, dh, score))
        if det_rng.random() < FALSE_POSITIVE_RATE:
            h = det_rng.uniform(0.15, 0.5) * height
            w = 0.38 * h
            det.append((frame, det_rng.uniform(0, width - w), det_rng.uniform(HORIZON * height, height - h), w, h,
                        det_rng.uniform(0.05, 0.4)))
    write_file(seq / "det" / "det.txt", "".join(f"{f},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},{s:.5f},-1,-1,-1\n"
                                                for f, x, y, w, h, s in det).encode(), overwrite=overwrite)
    info = SeqInfo(name, "img1", FRAME_RATE, frames, width, height, ".jpg")
    write_file(seq / "seqinfo.ini", seqinfo_text(info).encode(), overwrite=overwrite)
    return np.array(gt, np.float64).reshape(-1, 9)


def make_synthetic_mot17(out: str | os.PathLike, *, sequences: int = 3, frames: int = 40, width: int = 320,
                         height: int = 180, pedestrians: int = 8, seed: int = 0,
                         overwrite: bool = False) -> dict[str, np.ndarray]:
    """Write a synthetic MOT17 (see the module docstring) under `out`/train; returns each sequence's gt
    rows as written, an (N, 9) float64 array in gt.txt's order. Refuses existing sequence folders unless
    `overwrite` (then replaces them)."""
    if not 1 <= sequences <= len(SEQUENCE_NUMBERS):
        raise UsageError(f"sequences must be 1..{len(SEQUENCE_NUMBERS)} (MOT17's train sequences), got {sequences}")
    if frames < 2:
        raise UsageError(f"frames must be >= 2 (the half split needs a frame per half), got {frames}")
    if width < 64 or height < 48:
        raise UsageError(f"images must be at least 64x48 (got {width}x{height})")
    if not 1 <= pedestrians <= 200:
        raise UsageError(f"pedestrians must be 1..200 per sequence, got {pedestrians}")
    out = Path(out)
    for name in sequence_names(sequences):
        if (out / "train" / name).exists():
            if not overwrite:
                raise FileExistsError(f"{out / 'train' / name} exists; pass overwrite=True (--overwrite) or choose "
                                      f"another --out")
            shutil.rmtree(out / "train" / name)  # no stale frames of a longer earlier run
    return {name: _sequence(out, name, np.random.default_rng([seed, i]), seed, i, frames, width, height, pedestrians,
                            overwrite)
            for i, name in enumerate(sequence_names(sequences))}
