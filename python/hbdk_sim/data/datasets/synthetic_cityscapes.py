"""A synthetic Cityscapes: street scenes with the 19 evaluated classes in plausible places, written in
the real layout (leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png, gtFine/.../<stem>_gtFine_labelIds.png)
with official label ids, so the packer, LabelRemap and the whole flow run offline.

Scene model: a camera looks down a straight street. Rows below the horizon are ground at depth t
(t = 0 at the horizon, 1 at the bottom row), and an object standing at depth t is drawn at scale
t * (H - horizon), so sizes shrink with distance. Sky on top; the road narrows to a vanishing point with
sidewalks beside it and terrain beyond; building facades recede along both sides, with walls, fences
and trees in front; poles with signs and lights stand on the sidewalks, persons walk there; cars,
trucks, buses, trams, riders on bicycles and motorcycles are on the road. Some pixels carry ignored ids
(ego vehicle, rectification border, static, parking, unlabeled) so the id -> train id remap matters.

Every class has its own colour family and texture (windows, slats, foliage noise, tiles, lane
markings), jittered per instance and per image, with pixel noise: learnable, not trivial.
The output is a pure function of the arguments: the same seed writes byte-identical files.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hbdk_sim.data.datasets.cityscapes import IMAGE_SUFFIX, LABEL_SUFFIX, NAME_TO_ID
from hbdk_sim.errors import UsageError
from hbdk_sim.files import write_file

TRAIN_CITIES = ("aachen", "bochum", "bremen", "cologne", "darmstadt")
VAL_CITIES = ("frankfurt", "lindau", "munster")

_ID = NAME_TO_ID
# Base RGB colour per label id (instances jitter around it).
_COLOR = {
    _ID["sky"]: (110, 160, 225), _ID["road"]: (88, 84, 96), _ID["sidewalk"]: (196, 160, 176),
    _ID["building"]: (150, 100, 78), _ID["wall"]: (205, 200, 160), _ID["fence"]: (112, 86, 50),
    _ID["pole"]: (150, 150, 162), _ID["traffic light"]: (28, 28, 24), _ID["traffic sign"]: (235, 205, 10),
    _ID["vegetation"]: (55, 125, 35), _ID["terrain"]: (165, 195, 95), _ID["person"]: (205, 35, 70),
    _ID["rider"]: (245, 125, 20), _ID["car"]: (30, 50, 160), _ID["truck"]: (35, 105, 60),
    _ID["bus"]: (20, 150, 160), _ID["train"]: (125, 60, 150), _ID["motorcycle"]: (0, 215, 235),
    _ID["bicycle"]: (210, 0, 205), _ID["ego vehicle"]: (38, 38, 44), _ID["rectification border"]: (0, 0, 0),
    _ID["static"]: (90, 110, 100), _ID["parking"]: (150, 120, 120), _ID["unlabeled"]: (60, 60, 60),
}
_BUILDING_TINTS = ((150, 100, 78), (175, 135, 95), (140, 80, 70), (165, 120, 110), (185, 150, 115))


@dataclass
class _Canvas:
    """The label-id image, an instance-index image and each instance's colour."""

    height: int
    width: int
    rng: np.random.Generator
    colors: list[tuple[float, float, float]] = field(default_factory=list)
    label: Image.Image = field(init=False)
    inst: Image.Image = field(init=False)

    def __post_init__(self) -> None:
        self.label = Image.new("L", (self.width, self.height), _ID["sky"])
        self.inst = Image.new("I", (self.width, self.height), 0)
        self.colors.append(self._jitter(_COLOR[_ID["sky"]]))
        self._dl, self._di = ImageDraw.Draw(self.label), ImageDraw.Draw(self.inst)

    def _jitter(self, rgb: tuple[int, int, int], amount: float = 14.0) -> tuple[float, float, float]:
        d = self.rng.normal(0, amount, 3)
        return tuple(float(np.clip(c + e, 0, 255)) for c, e in zip(rgb, d, strict=True))

    def _new(self, class_id: int, rgb: tuple[int, int, int] | None, jitter: float) -> int:
        self.colors.append(self._jitter(rgb or _COLOR[class_id], jitter))
        return len(self.colors) - 1

    def polygon(self, pts, class_id: int, rgb=None, jitter: float = 14.0) -> None:
        k = self._new(class_id, rgb, jitter)
        pts = [(float(x), float(y)) for x, y in pts]
        self._dl.polygon(pts, fill=class_id)
        self._di.polygon(pts, fill=k)

    def rect(self, x0, y0, x1, y1, class_id: int, rgb=None, jitter: float = 14.0) -> None:
        x0, x1 = sorted((float(x0), float(x1)))
        y0, y1 = sorted((float(y0), float(y1)))
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], class_id, rgb, jitter)

    def ellipse(self, cx, cy, rx, ry, class_id: int, rgb=None, jitter: float = 14.0, width: int = 0) -> None:
        k = self._new(class_id, rgb, jitter)
        box = [float(cx - rx), float(cy - ry), float(cx + rx), float(cy + ry)]
        if width:
            self._dl.ellipse(box, outline=class_id, width=width)
            self._di.ellipse(box, outline=k, width=width)
        else:
            self._dl.ellipse(box, fill=class_id)
            self._di.ellipse(box, fill=k)

    def line(self, pts, class_id: int, width: int, rgb=None) -> None:
        k = self._new(class_id, rgb, 10.0)
        pts = [(float(x), float(y)) for x, y in pts]
        self._dl.line(pts, fill=class_id, width=width)
        self._di.line(pts, fill=k, width=width)


class _Street:
    """The scene's geometry: horizon, vanishing point, road and sidewalk edges as functions of depth."""

    def __init__(self, h: int, w: int, rng: np.random.Generator) -> None:
        self.h, self.w = h, w
        self.horizon = h * rng.uniform(0.38, 0.48)
        self.vx = w * rng.uniform(0.4, 0.6)
        self.road_l = self.vx - w * rng.uniform(0.3, 0.5)  # road edges at the bottom row
        self.road_r = self.vx + w * rng.uniform(0.3, 0.5)
        self.walk_l = self.road_l - w * rng.uniform(0.12, 0.25)  # outer sidewalk edges at the bottom row
        self.walk_r = self.road_r + w * rng.uniform(0.12, 0.25)

    @property
    def ground(self) -> float:
        return self.h - self.horizon

    def y(self, t: float) -> float:
        return self.horizon + t * self.ground

    def x(self, bottom_x: float, t: float) -> float:
        return self.vx + (bottom_x - self.vx) * t

    def unit(self, t: float) -> float:
        """Pixels per unit height (about the camera height) of an object standing at depth t."""
        return t * self.ground


def _draw_background(c: _Canvas, s: _Street, rng: np.random.Generator) -> None:
    w, h, hz = s.w, s.h, s.horizon
    far = 0.004
    for side, walk_b in ((-1, s.walk_l), (1, s.walk_r)):
        edge = 0 if side < 0 else w
        ground_cls = _ID["terrain"] if rng.random() < 0.85 else _ID["sidewalk"]
        c.polygon([(s.x(walk_b, far), hz), (walk_b, h), (edge, h), (edge, hz)], ground_cls)
    c.polygon([(s.x(s.walk_l, far), hz), (s.x(s.walk_r, far), hz), (s.walk_r, h), (s.walk_l, h)], _ID["sidewalk"])
    c.polygon([(s.x(s.road_l, far), hz), (s.x(s.road_r, far), hz), (s.road_r, h), (s.road_l, h)], _ID["road"])
    if rng.random() < 0.4:  # a parking strip along one curb (ignored id)
        b0, b1 = (s.road_l, s.road_l + 0.12 * w) if rng.random() < 0.5 else (s.road_r - 0.12 * w, s.road_r)
        t0, t1 = rng.uniform(0.3, 0.5), rng.uniform(0.7, 1.0)
        c.polygon([(s.x(b0, t0), s.y(t0)), (s.x(b1, t0), s.y(t0)), (s.x(b1, t1), s.y(t1)), (s.x(b0, t1), s.y(t1))],
                  _ID["parking"])
    # Dashed centre line and lane lines: road pixels painted white.
    for lane_b in ((s.road_l + s.road_r) / 2, s.road_l + 0.3 * (s.road_r - s.road_l)):
        t = 0.08
        while t < 1.2:
            t1 = t * 1.25
            lw0, lw1 = 0.006 * w * t / 0.5 + 0.5, 0.006 * w * t1 / 0.5 + 0.5
            x0, x1 = s.x(lane_b, t), s.x(lane_b, t1)
            c.polygon([(x0 - lw0, s.y(t)), (x0 + lw0, s.y(t)), (x1 + lw1, s.y(t1)), (x1 - lw1, s.y(t1))],
                      _ID["road"], rgb=(225, 225, 220), jitter=8)
            t = t1 * 1.25


def _draw_side_structures(c: _Canvas, s: _Street, rng: np.random.Generator) -> None:
    """Facades, walls, fences and hedges receding along both sides of the street."""
    for side, walk_b in ((-1, s.walk_l), (1, s.walk_r)):
        # Facades stand back from the sidewalk, leaving a verge of terrain in front of them.
        walk_b = walk_b + side * s.w * rng.uniform(0.08, 0.3) * (rng.random() < 0.8)
        t = rng.uniform(0.01, 0.03)
        while t < 4.0:
            t1 = t * rng.uniform(1.35, 2.0)
            xa, xb = s.x(walk_b, t), s.x(walk_b, t1)
            ya, yb = s.y(t), s.y(t1)
            height = rng.uniform(1.2, 3.5)
            if rng.random() < 0.82:
                c.polygon([(xa, ya), (xb, yb), (xb, yb - height * s.unit(t1)), (xa, ya - height * s.unit(t))],
                          _ID["building"], rgb=_BUILDING_TINTS[rng.integers(len(_BUILDING_TINTS))], jitter=10)
            else:
                c.polygon([(xa, ya), (xb, yb), (xb, yb - 1.3 * s.unit(t1)), (xa, ya - 1.3 * s.unit(t))],
                          _ID["vegetation"])
            front = rng.random()
            if front < 0.3 or front > 0.85:
                wall = front < 0.3
                cls, hgt = (_ID["wall"], rng.uniform(0.3, 0.6)) if wall else (_ID["fence"], rng.uniform(0.4, 0.7))
                c.polygon([(xa, ya), (xb, yb), (xb, yb - hgt * s.unit(t1)), (xa, ya - hgt * s.unit(t))], cls)
            t = t1


def _draw_tree(c: _Canvas, s: _Street, x: float, t: float, rng: np.random.Generator) -> None:
    u, y = s.unit(t), s.y(t)
    trunk = max(2.0, 0.12 * u)
    c.rect(x - trunk / 2, y, x + trunk / 2, y - 1.5 * u, _ID["vegetation"], rgb=(90, 70, 40), jitter=8)
    c.ellipse(x, y - 1.9 * u, 0.8 * u * rng.uniform(0.8, 1.3), 0.7 * u, _ID["vegetation"])


def _draw_pole(c: _Canvas, s: _Street, x: float, t: float, rng: np.random.Generator) -> None:
    u, y = s.unit(t), s.y(t)
    width = max(3.0, 0.1 * u)
    top = y - 2.4 * u
    c.rect(x - width / 2, y, x + width / 2, top, _ID["pole"])
    kind = rng.random()
    if kind < 0.45:  # traffic light: a dark box with three lamps
        bw, bh = max(4.0, 0.28 * u), max(8.0, 0.7 * u)
        x0 = x + width / 2
        c.rect(x0, top, x0 + bw, top + bh, _ID["traffic light"])
        for i, lamp in enumerate(((220, 30, 20), (230, 180, 0), (30, 200, 60))):
            cy = top + bh * (i + 0.5) / 3
            c.ellipse(x0 + bw / 2, cy, bw * 0.3, bh * 0.12, _ID["traffic light"], rgb=lamp, jitter=10)
    elif kind < 0.9:  # traffic sign: a disc, a triangle or a plate
        r = max(3.5, 0.3 * u)
        cy = top + r
        shape = rng.integers(3)
        if shape == 0:
            c.ellipse(x, cy, r, r, _ID["traffic sign"], rgb=(225, 35, 35), jitter=8)
            c.ellipse(x, cy, 0.65 * r, 0.65 * r, _ID["traffic sign"], rgb=(240, 240, 235), jitter=6)
        elif shape == 1:
            c.polygon([(x - r, cy + 0.8 * r), (x + r, cy + 0.8 * r), (x, cy - r)], _ID["traffic sign"])
        else:
            c.rect(x - r, cy - 0.7 * r, x + r, cy + 0.7 * r, _ID["traffic sign"], rgb=(30, 90, 200), jitter=10)


def _draw_person(c: _Canvas, s: _Street, x: float, t: float, cls: int, base_y: float | None = None) -> None:
    u = s.unit(t)
    y = s.y(t) if base_y is None else base_y
    hgt = 1.25 * u if cls == _ID["person"] else 0.8 * u
    bw = max(3.0, 0.3 * u)
    if cls == _ID["person"]:
        c.rect(x - bw * 0.45, y, x - bw * 0.05, y - 0.45 * hgt, cls, rgb=(50, 50, 90), jitter=15)  # legs
        c.rect(x + bw * 0.05, y, x + bw * 0.45, y - 0.45 * hgt, cls, rgb=(50, 50, 90), jitter=15)
    c.rect(x - bw / 2, y - 0.42 * hgt, x + bw / 2, y - 0.85 * hgt, cls)
    c.ellipse(x, y - 0.93 * hgt, bw * 0.35, 0.09 * hgt + 0.5, cls, rgb=(225, 180, 150), jitter=10)


def _draw_two_wheeler(c: _Canvas, s: _Street, x: float, t: float, cls: int, rng: np.random.Generator,
                      ridden: bool) -> None:
    u, y = s.unit(t), s.y(t)
    r = max(2.5, 0.22 * u)
    length = 1.0 * u
    stroke = max(1, int(round(0.05 * u)))
    xs = (x - length / 2 + r, x + length / 2 - r)
    for cx in xs:
        c.ellipse(cx, y - r, r, r, cls, width=max(1, stroke) if cls == _ID["bicycle"] else 0)
    if cls == _ID["motorcycle"]:
        c.rect(xs[0], y - 2.2 * r, xs[1], y - 1.1 * r, cls)
    else:
        c.line([(xs[0], y - r), (x, y - 2.1 * r), (xs[1], y - r), (xs[0], y - r)], cls, width=max(2, stroke + 1))
    if ridden:
        _draw_person(c, s, x, t, _ID["rider"], base_y=y - 1.6 * r)


def _draw_vehicle(c: _Canvas, s: _Street, x: float, t: float, cls: int) -> None:
    u, y = s.unit(t), s.y(t)
    if cls == _ID["car"]:
        w, h = 1.3 * u, 0.9 * u
        c.rect(x - w / 2, y - 0.1 * u, x + w / 2, y - 0.6 * h, cls)
        c.polygon([(x - 0.4 * w, y - 0.6 * h), (x + 0.4 * w, y - 0.6 * h), (x + 0.3 * w, y - h), (x - 0.3 * w, y - h)],
                  cls, rgb=(70, 85, 120), jitter=8)
        for cx in (x - 0.35 * w, x + 0.35 * w):
            c.rect(cx - 0.1 * w, y, cx + 0.1 * w, y - 0.15 * u, cls, rgb=(20, 20, 25), jitter=4)
        return
    w, h = {_ID["truck"]: (1.5 * u, 1.9 * u), _ID["bus"]: (1.6 * u, 1.9 * u), _ID["train"]: (2.6 * u, 1.7 * u)}[cls]
    c.rect(x - w / 2, y, x + w / 2, y - h, cls)
    if cls == _ID["truck"]:
        c.rect(x - w / 2, y - 0.75 * h, x + w / 2, y - h, cls, rgb=(190, 190, 180), jitter=10)  # load box
    else:
        c.rect(x - 0.45 * w, y - 0.55 * h, x + 0.45 * w, y - 0.8 * h, cls, rgb=(40, 55, 70), jitter=8)  # windows
        if cls == _ID["train"]:
            c.line([(x - 0.1 * w, y - h), (x, y - 1.25 * h)], cls, width=max(1, int(0.04 * u)))  # pantograph


def _draw_objects(c: _Canvas, s: _Street, rng: np.random.Generator) -> None:
    """Every standing object, drawn from far to near so nearer ones occlude."""
    items: list[tuple[float, int, tuple]] = []

    def add(t: float, what: str, *args) -> None:
        items.append((t, len(items), (what, *args)))

    walks = ((s.walk_l, s.road_l), (s.road_r, s.walk_r))

    def on_walk(t: float, side: int, frac: float) -> float:
        a, b = walks[side]
        return s.x(a + (b - a) * frac, t)

    for _ in range(rng.integers(2, 5)):
        side = int(rng.integers(2))
        t = rng.uniform(0.2, 0.9)
        add(t, "pole", on_walk(t, side, 0.85 if side == 0 else 0.15))
    for _ in range(rng.integers(1, 4)):
        side = int(rng.integers(2))
        t = rng.uniform(0.15, 0.7)
        add(t, "tree", on_walk(t, side, 0.2 if side == 0 else 0.8))
    for _ in range(rng.integers(1, 4)):
        t = rng.uniform(0.25, 0.95)
        add(t, "person", on_walk(t, int(rng.integers(2)), rng.uniform(0.2, 0.8)))
    if rng.random() < 0.35:
        t = rng.uniform(0.3, 0.9)
        add(t, "static", on_walk(t, int(rng.integers(2)), rng.uniform(0.2, 0.8)))

    def on_road(t: float, lane: float) -> float:
        return s.x(s.road_l + (s.road_r - s.road_l) * lane, t)

    for _ in range(rng.integers(1, 4)):
        t = rng.uniform(0.15, 0.8)
        add(t, "vehicle", on_road(t, rng.uniform(0.2, 0.8)), _ID["car"])
    for cls, p in ((_ID["truck"], 0.5), (_ID["bus"], 0.45), (_ID["train"], 0.35)):
        if rng.random() < p:
            t = rng.uniform(0.12, 0.5)
            add(t, "vehicle", on_road(t, rng.uniform(0.25, 0.75)), cls)
    for cls, p in ((_ID["bicycle"], 0.7), (_ID["motorcycle"], 0.55)):
        if rng.random() < p:
            t = rng.uniform(0.3, 0.9)
            ridden = rng.random() < 0.75
            x = on_road(t, rng.choice([0.1, 0.9])) if ridden else on_walk(t, int(rng.integers(2)), 0.5)
            add(t, "two_wheeler", x, cls, ridden)

    for t, _, (what, *args) in sorted(items):
        if what == "pole":
            _draw_pole(c, s, args[0], t, rng)
        elif what == "tree":
            _draw_tree(c, s, args[0], t, rng)
        elif what == "person":
            _draw_person(c, s, args[0], t, _ID["person"])
        elif what == "static":
            u = s.unit(t)
            c.rect(args[0] - 0.2 * u, s.y(t), args[0] + 0.2 * u, s.y(t) - 0.5 * u, _ID["static"])
        elif what == "vehicle":
            _draw_vehicle(c, s, args[0], t, args[1])
        else:
            _draw_two_wheeler(c, s, args[0], t, args[1], rng, args[2])


def _draw_ignored_frame(c: _Canvas, s: _Street, rng: np.random.Generator) -> None:
    if rng.random() < 0.7:  # the ego vehicle's bonnet along the bottom
        rise = s.h * rng.uniform(0.04, 0.08)
        c.ellipse(s.w / 2, s.h + s.h * 0.02, s.w * 0.7, rise + s.h * 0.02, _ID["ego vehicle"])
    if rng.random() < 0.3:
        b = max(1, s.w // 100)
        c.rect(0, 0, b, s.h, _ID["rectification border"], jitter=0)
        c.rect(s.w - b, 0, s.w, s.h, _ID["rectification border"], jitter=0)
    if rng.random() < 0.3:  # an odd unlabeled blob in the sky
        c.ellipse(rng.uniform(0, s.w), rng.uniform(0, s.horizon * 0.5), s.w * 0.03, s.h * 0.02, _ID["unlabeled"])


def _render(c: _Canvas, s: _Street, rng: np.random.Generator) -> np.ndarray:
    """The RGB image: instance colours, class textures, lighting and noise."""
    h, w = s.h, s.w
    label = np.asarray(c.label)
    inst = np.asarray(c.inst)
    img = np.asarray(c.colors, dtype=np.float64)[inst]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    n_inst = len(c.colors)
    phase = rng.uniform(0, 64, size=(n_inst, 2))

    def where(name: str) -> np.ndarray:
        return label == _ID[name]

    # Sky brightens towards the horizon.
    m = where("sky")
    img[m] *= (0.85 + 0.3 * yy[m] / max(1.0, s.horizon))[:, None]
    # Facades: a grid of dark windows, period and phase per building.
    m = where("building")
    period = max(4.0, w / 40)
    px, py = xx + phase[inst, 0], yy + phase[inst, 1]
    windows = m & ((px % period) < 0.5 * period) & ((py % (1.3 * period)) < 0.55 * period)
    img[windows] = img[windows] * 0.45 + np.array([20.0, 25.0, 35.0])
    # Fences: vertical slats.
    m = where("fence") & ((xx % 3) < 1)
    img[m] *= 0.55
    # Sidewalk tiles.
    m = where("sidewalk") & (((xx + yy * 0.3) % max(4.0, w / 48)) < 1)
    img[m] *= 0.85
    # Foliage and grass: blotchy low-frequency noise times fine grain.
    coarse = np.asarray(Image.fromarray(rng.uniform(0, 255, (max(2, h // 6), max(2, w // 6))).astype(np.uint8))
                        .resize((w, h), Image.BILINEAR), dtype=np.float64) / 255.0
    for name, amount in (("vegetation", 0.5), ("terrain", 0.25)):
        m = where(name)
        img[m] *= (1 - amount / 2 + amount * coarse[m])[:, None]
    img *= rng.uniform(0.8, 1.15)  # overall exposure
    img += rng.normal(0, 5.0, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_scene(height: int, width: int, seed: int | np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic street scene: (HxWx3 uint8 RGB image, HxW uint8 Cityscapes label ids)."""
    if height < 16 or width < 16:
        raise UsageError(f"synthetic scene size must be at least 16x16 but got {height}x{width}")
    rng = np.random.default_rng(seed)
    s = _Street(height, width, rng)
    c = _Canvas(height, width, rng)
    _draw_background(c, s, rng)
    _draw_side_structures(c, s, rng)
    _draw_objects(c, s, rng)
    _draw_ignored_frame(c, s, rng)
    return _render(c, s, rng), np.asarray(c.label).copy()


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # Fixed compression settings so the same seed gives the same bytes.
    Image.fromarray(array).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def make_synthetic_cityscapes(out: str | os.PathLike, *, train: int = 64, val: int = 16, height: int = 128,
                              width: int = 256, seed: int = 0, overwrite: bool = False) -> dict[str, int]:
    """Write `train` and `val` synthetic scenes of `height`x`width` under `out` in the Cityscapes layout.
    Returns the number of images per split. Refuses to write into an existing dataset unless `overwrite`."""
    out = Path(out)
    for n, what in ((train, "train"), (val, "val")):
        if n < 0:
            raise UsageError(f"the number of {what} images must be >= 0 but got {n}")
    if not overwrite and any((out / d).exists() for d in ("leftImg8bit", "gtFine")):
        raise FileExistsError(f"{out} already holds a dataset (leftImg8bit/ or gtFine/); pass overwrite=True "
                              f"(--overwrite) or choose another --out")
    counts = {}
    for split_index, (split, n, cities) in enumerate((("train", train, TRAIN_CITIES), ("val", val, VAL_CITIES))):
        for i in range(n):
            city = cities[i % len(cities)]
            stem = f"{city}_{i // len(cities):06d}_000019"
            img, label = render_scene(height, width, np.random.SeedSequence([seed, split_index, i]))
            for root, suffix, data in (("leftImg8bit", IMAGE_SUFFIX, img), ("gtFine", LABEL_SUFFIX, label)):
                folder = out / root / split / city
                folder.mkdir(parents=True, exist_ok=True)
                write_file(folder / (stem + suffix), _png(data), overwrite=overwrite)
        counts[split] = n
    return counts
