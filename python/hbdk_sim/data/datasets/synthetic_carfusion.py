"""A synthetic CarFusion: street frames with cars whose 13 keypoints are known exactly, written in the
raw CarFusion layout (`{train,test}/<sequence>/{images_jpg/<id>.jpg, bb/<id>.txt, gt/<id>.txt}`), so
the converter, the packer and the keypoint model run offline.

Scene model. A static camera per sequence looks down on a street at a pitch of 10-35 degrees: above
a horizon line stand building facades under the sky; below it lies textured asphalt with pavements and
dashed lane markings converging to a vanishing point. Each sequence holds `cars` cars that keep their
identity over its frames and move a few pixels per frame along their heading while their yaw drifts.

A car is a small 3-D model in its own frame (x forward, y left, z up, metres): a lower body box, a
narrower cabin frustum on top (windscreen, rear window, side windows, roof), 4 wheels on the body's
sides, 2 headlights and a grille on the front, 2 tail lights, a number plate and an exhaust on the
back. Most cars drive along the street, towards or away from the camera (yaw within about 25 degrees
of it); one in five (turning, parked, crossing) stands at any yaw. A car is turned by its yaw,
tilted by the camera pitch (jittered per car) and projected orthographically at a scale that grows
towards the bottom of the image (weak perspective), so a car's box is about 150-600 px wide at
1920x1080 (the same fractions of other widths). Cars are drawn far to near (painter's algorithm)
and, within a car, shadow, far wheels, body, cabin, near wheels, then the lights; faces turned away
from the camera are not drawn. Colour families keep the identity learnable: front faces lighter than
the body colour, back faces darker, the windscreen lighter than the rear window, dark tyres with
grey rims, yellow-white headlights, red tail lights, a darker roof, all jittered per car and shaded
by a per-sequence light, with static texture and per-frame pixel noise.

Keypoints (CarFusion's 1-based indices, one gt line each, instance id = the car's bb line):
    1-4   Right_Front, Left_Front, Right_Back, Left_Back wheel centres (on the outer side)
    5-8   Right_Front, Left_Front headlights, Right_Back, Left_Back tail lights
    9     the exhaust (back, low, right)
    10-13 Right_Front, Left_Front, Right_Back, Left_Back corners of the cabin roof
vis is 2 (occluded) when the point's face (the side for a wheel, front or back for a light, the roof
for a corner) turns away from the camera or a car drawn later covers the point; otherwise 1, or 3 for
about one visible point in ten (CarFusion uses both for visible points). The bb line is the car's
tight 2-D box, in the comma form `[xmin, ymin, h, w],car` in the 1st, 3rd, ... sequence of a split and
the space form `[x y w h]` in the 2nd, 4th, ... Frame ids are `<sequence number>_<frame>` (01_00000).
Cars are kept inside the image.
The output is a pure function of the arguments: the same seed writes byte-identical files.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hbdk_sim.errors import UsageError
from hbdk_sim.files import write_file

TRAIN_STREETS = ("butler", "craig", "fifth", "morewood")
TEST_STREETS = ("penn",)
NUM_CARFUSION_KEYPOINTS = 13  # CarFusion indices 1..13 (index 9 is the exhaust)
JPEG_QUALITY = 90
TURNING_CARS = 0.2  # the fraction of cars at any yaw; the others drive along the street
LANE_YAW_SPREAD = math.radians(25)  # standard deviation of a driving car's yaw about the street's direction
_REFERENCE_WIDTH = 1920  # box sizes are stated for this width and scaled with the image

# Body colour families (RGB), jittered per car.
_BODY_COLOURS = ((200, 200, 205), (150, 152, 158), (40, 42, 48), (165, 30, 35), (35, 70, 150), (40, 105, 70),
                 (210, 170, 60), (120, 90, 70), (235, 235, 230), (90, 40, 110))


@dataclass(frozen=True)
class SyntheticFrame:
    """What the generator wrote for one frame, as the txt files hold it."""

    split: str
    sequence: str
    image_id: str
    boxes: np.ndarray  # N x 4 (xmin, ymin, w, h)
    keypoints: np.ndarray  # N x 13 x 3 (x, y, vis); row j is CarFusion index j + 1


def sequence_names(prefix_streets: tuple[str, ...], count: int) -> list[str]:
    """CarFusion-style sequence names: two per street in turn (car_butler1, car_butler2, car_craig1,
    ...), numbered on (car_butler3, ...) when more are asked than the streets hold."""
    n = len(prefix_streets)
    return [f"car_{prefix_streets[(i // 2) % n]}{2 * (i // (2 * n)) + i % 2 + 1}" for i in range(count)]


@dataclass
class _Part:
    verts: np.ndarray  # K x 3 in the car frame
    normal: np.ndarray  # outward, car frame
    colour: tuple[int, int, int]
    layer: int  # painter's order within a car
    solid: bool = True  # counts for the instance map (occlusion of other cars' keypoints)
    always: bool = False  # drawn whichever way it faces (the shadow, far wheels)


def _shade(rgb: np.ndarray, factor: float, towards: tuple[float, float, float] | None = None,
           mix: float = 0.0) -> tuple[int, int, int]:
    c = np.asarray(rgb, np.float64) * factor
    if towards is not None:
        c = (1 - mix) * c + mix * np.asarray(towards, np.float64)
    return tuple(int(v) for v in np.clip(np.round(c), 0, 255))


def _quad_normal(verts: np.ndarray, inside: np.ndarray) -> np.ndarray:
    n = np.cross(verts[1] - verts[0], verts[2] - verts[0])
    n /= np.linalg.norm(n)
    return -n if np.dot(n, verts.mean(0) - inside) < 0 else n


@dataclass
class _CarModel:
    parts: list[_Part]
    keypoints: np.ndarray  # 13 x 3, car frame
    keypoint_normals: np.ndarray  # 13 x 3: the normal of the face each keypoint lies on


def _car_model(rng: np.random.Generator, light: np.ndarray) -> _CarModel:
    length, width = rng.uniform(3.9, 4.9), rng.uniform(1.65, 1.95)
    clearance, body_top = rng.uniform(0.25, 0.32), rng.uniform(0.9, 1.1)
    roof = body_top + rng.uniform(0.42, 0.6)
    hx, hy = length / 2, width / 2
    base_back, base_front = -rng.uniform(0.34, 0.42) * length, rng.uniform(0.15, 0.25) * length
    roof_back, roof_front = base_back + rng.uniform(0.06, 0.12) * length, base_front - rng.uniform(0.12, 0.2) * length
    base_y, roof_y = hy - 0.06, hy - rng.uniform(0.16, 0.24)
    wheel_r = rng.uniform(0.3, 0.36)
    wheel_front, wheel_back = hx - rng.uniform(0.7, 0.9), -hx + rng.uniform(0.7, 0.9)
    light_z = clearance + rng.uniform(0.55, 0.75) * (body_top - clearance)
    light_y, light_w, light_h = hy - rng.uniform(0.18, 0.26), rng.uniform(0.26, 0.36), rng.uniform(0.1, 0.16)

    body = np.asarray(_BODY_COLOURS[rng.integers(len(_BODY_COLOURS))], np.float64)
    body = np.clip(body * rng.uniform(0.85, 1.15) + rng.normal(0, 8, 3), 0, 255)

    def lit(n: np.ndarray) -> float:
        return 0.72 + 0.35 * max(0.0, float(np.dot(n, light)))

    parts: list[_Part] = []
    # Shadow: the footprint, a little larger, on the ground.
    foot = np.array([[hx + 0.25, hy + 0.2, 0], [hx + 0.25, -hy - 0.2, 0], [-hx - 0.25, -hy - 0.2, 0],
                     [-hx - 0.25, hy + 0.2, 0]])
    parts.append(_Part(foot, np.array([0, 0, 1.0]), (0, 0, 0), 0, solid=False, always=True))
    # Body box: (axis, sign) -> colour family.
    x0, x1, y0, y1, z0, z1 = -hx, hx, -hy, hy, clearance, body_top
    corners = np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)])
    faces = {(0, 1): [4, 6, 7, 5], (0, -1): [0, 1, 3, 2], (1, 1): [2, 3, 7, 6], (1, -1): [0, 4, 5, 1],
             (2, 1): [1, 5, 7, 3], (2, -1): [0, 2, 6, 4]}
    for (axis, sign), idx in faces.items():
        n = np.zeros(3)
        n[axis] = sign
        if axis == 0 and sign > 0:  # front: lighter, towards a warm white
            colour = _shade(body, lit(n), (245, 240, 225), 0.3)
        elif axis == 0:  # back: darker
            colour = _shade(body, 0.6 * lit(n))
        elif axis == 1:
            colour = _shade(body, 0.88 * lit(n))
        else:
            colour = _shade(body, lit(n))
        parts.append(_Part(corners[idx], n, colour, 2))
    # Cabin: a frustum from the body top to the roof.
    base = np.array([[base_front, -base_y, z1], [base_front, base_y, z1], [base_back, base_y, z1],
                     [base_back, -base_y, z1]])
    top = np.array([[roof_front, -roof_y, roof], [roof_front, roof_y, roof], [roof_back, roof_y, roof],
                    [roof_back, -roof_y, roof]])
    inside = np.array([(base_front + base_back) / 2, 0, (z1 + roof) / 2])
    glass = rng.uniform(0.85, 1.15)
    cabin_faces = [
        (np.array([base[0], base[1], top[1], top[0]]), _shade(np.array([95, 120, 145]), glass)),  # windscreen
        (np.array([base[2], base[3], top[3], top[2]]), _shade(np.array([30, 34, 44]), glass)),  # rear window
        (np.array([base[1], base[2], top[2], top[1]]), None),  # left side
        (np.array([base[3], base[0], top[0], top[3]]), None),  # right side
        (top.copy(), _shade(body, 0.7)),  # roof: darker than the body
    ]
    for verts, colour in cabin_faces:
        n = _quad_normal(verts, inside)
        parts.append(_Part(verts, n, colour if colour else _shade(body, 0.8 * lit(n)), 3))
        if colour is None:  # a side window inset in the pillar frame
            mid = verts.mean(0)
            window = mid + 0.72 * (verts - mid)
            window[:2, 2] = verts[0, 2] + 0.12 * (roof - z1)
            parts.append(_Part(window, n, _shade(np.array([45, 55, 70]), glass), 3))
    # Wheels: a tyre disc and a rim on each side plane.
    t = np.linspace(0, 2 * math.pi, 20, endpoint=False)
    for wx in (wheel_front, wheel_back):
        for side in (-1, 1):
            n = np.array([0, side, 0.0])
            for radius, colour in ((wheel_r, (24, 24, 27)), (0.55 * wheel_r, (125, 125, 132))):
                disc = np.stack([wx + radius * np.cos(t), np.full_like(t, side * (hy + 0.01)),
                                 wheel_r + radius * np.sin(t)], 1)
                parts.append(_Part(disc, n, colour, 4))
    # Lights, grille, plate, exhaust: flat details on the front and back planes.
    def rect(x: float, y: float, z: float, w: float, h: float) -> np.ndarray:
        return np.array([[x, y - w / 2, z - h / 2], [x, y + w / 2, z - h / 2], [x, y + w / 2, z + h / 2],
                         [x, y - w / 2, z + h / 2]])

    head = _shade(np.array([255, 243, 190]) + rng.normal(0, 5, 3), 1.0)
    tail = _shade(np.array([205, 25, 28]) + rng.normal(0, 8, 3), 1.0)
    front_n, back_n = np.array([1.0, 0, 0]), np.array([-1.0, 0, 0])
    parts.append(_Part(rect(hx + 0.01, 0, light_z - 0.02, 2 * light_y - light_w - 0.1, light_h * 0.8), front_n,
                       _shade(body, 0.35), 5))
    parts.append(_Part(rect(-hx - 0.01, 0, clearance + 0.18, 0.5, 0.12), back_n, (228, 228, 218), 5))
    for side in (-1, 1):
        parts.append(_Part(rect(hx + 0.015, side * light_y, light_z, light_w, light_h), front_n, head, 5))
        parts.append(_Part(rect(-hx - 0.015, side * light_y, light_z, light_w, light_h), back_n, tail, 5))
    exhaust = np.array([-hx - 0.02, -(hy - 0.32), clearance + 0.06])
    disc = np.stack([np.full_like(t, exhaust[0]), exhaust[1] + 0.05 * np.cos(t), exhaust[2] + 0.05 * np.sin(t)], 1)
    parts.append(_Part(disc, back_n, (55, 55, 58), 5))

    side_n = {-1: np.array([0, -1.0, 0]), 1: np.array([0, 1.0, 0])}
    kp, kn = [], []
    for wx in (wheel_front, wheel_back):  # 1-4: right front, left front, right back, left back
        for side in (-1, 1):
            kp.append([wx, side * (hy + 0.01), wheel_r])
            kn.append(side_n[side])
    for x, n in ((hx + 0.015, front_n), (-hx - 0.015, back_n)):  # 5-8: lights
        for side in (-1, 1):
            kp.append([x, side * light_y, light_z])
            kn.append(n)
    kp.append(exhaust)  # 9
    kn.append(back_n)
    for corner in (top[0], top[1], top[3], top[2]):  # 10-13: right front, left front, right back, left back
        kp.append(corner)
        kn.append(np.array([0, 0, 1.0]))
    return _CarModel(parts, np.array(kp, np.float64), np.array(kn, np.float64))


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    """Rows: image right, image down, depth (away from the camera) of a car-frame vector."""
    c, s = math.cos(yaw), math.sin(yaw)
    yaw_m = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    cp, sp = math.cos(pitch), math.sin(pitch)
    view = np.array([[1.0, 0, 0], [0, -sp, -cp], [0, cp, -sp]])
    return view @ yaw_m


@dataclass
class _Track:
    model: _CarModel
    yaw: float
    yaw_rate: float
    pitch_jitter: float
    scale_jitter: float
    u: float
    v: float
    speed: float


def _scale(track: _Track, v: float, horizon: int, width: int, height: int, pitch: float) -> float:
    near = min(max((v - horizon) / max(height - horizon, 1), 0.0), 1.0)
    scale = width / _REFERENCE_WIDTH * (55 + 75 * near) * track.scale_jitter
    rot = _rotation(track.yaw, pitch + track.pitch_jitter)
    pts = np.concatenate([p.verts for p in track.model.parts if p.solid]) @ rot.T
    box_w = float(np.ptp(pts[:, 0])) * scale
    lo, hi = 150 * width / _REFERENCE_WIDTH, 600 * width / _REFERENCE_WIDTH
    scale *= min(max(box_w, lo), hi) / box_w
    box_h = float(np.ptp(pts[:, 1])) * scale
    return scale * min(1.0, 0.8 * height / box_h)


def _background(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, int]:
    horizon = int(height * rng.uniform(0.18, 0.3))
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    sky = np.array([rng.uniform(150, 200), rng.uniform(180, 215), rng.uniform(215, 245)])
    for y in range(horizon):
        draw.line([(0, y), (width, y)], fill=_shade(sky, 1.0 - 0.25 * y / max(horizon, 1)))
    x = 0
    while x < width:  # facades with window rows
        w = int(width * rng.uniform(0.06, 0.16))
        top = int(horizon * rng.uniform(0.05, 0.7))
        facade = np.array([rng.uniform(90, 200), rng.uniform(80, 170), rng.uniform(70, 150)])
        draw.rectangle([x, top, x + w, horizon], fill=_shade(facade, 1.0))
        step = max(4, int(width * 0.012))
        for wy in range(top + step // 2, horizon - step, step):
            for wx in range(x + step // 2, x + w - step // 2, step):
                draw.rectangle([wx, wy, wx + step // 2, wy + step // 2], fill=_shade(facade, 0.45))
        x += w + int(width * rng.uniform(0.0, 0.03))
    asphalt = np.array([1.0, 1.0, 1.0]) * rng.uniform(85, 125) + rng.normal(0, 4, 3)
    draw.rectangle([0, horizon, width, height], fill=_shade(asphalt, 1.0))
    vanish = width * rng.uniform(0.3, 0.7)
    pavement = _shade(asphalt, 1.35)
    draw.polygon([(0, horizon), (vanish - 0.15 * width, horizon), (-0.2 * width, height), (0, height)], fill=pavement)
    draw.polygon([(width, horizon), (vanish + 0.15 * width, horizon), (1.2 * width, height), (width, height)],
                 fill=pavement)
    paint = (235, 235, 225) if rng.random() < 0.6 else (230, 200, 60)
    for lane in np.linspace(-0.5, 1.5, 5):  # dashes along lines from the vanishing point
        bottom = width * lane
        for k in range(12):
            a, b = (k + 0.2) / 12, (k + 0.6) / 12
            ya, yb = horizon + (height - horizon) * a ** 1.5, horizon + (height - horizon) * b ** 1.5
            fa, fb = (ya - horizon) / (height - horizon), (yb - horizon) / (height - horizon)
            xa, xb = vanish + (bottom - vanish) * fa, vanish + (bottom - vanish) * fb
            ha, hb = 1 + 0.006 * width * fa, 1 + 0.006 * width * fb
            draw.polygon([(xa - ha, ya), (xa + ha, ya), (xb + hb, yb), (xb - hb, yb)], fill=paint)
    arr = np.asarray(img, np.float32)
    # Mottling (a coarse noise field upsampled) and fine static grain.
    coarse = rng.normal(0, 9, (height // 24 + 2, width // 24 + 2)).astype(np.float32)
    mottle = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR))
    arr += mottle[:, :, None] + rng.normal(0, 5, (height, width, 1)).astype(np.float32)
    return np.clip(arr, 0, 255), horizon


def _heading(rng: np.random.Generator) -> float:
    """A car's yaw: most drive along the street, towards or away from the camera, within a lane
    change's angle; `TURNING_CARS` of them (turning, parked, crossing) at any yaw."""
    if rng.uniform() < TURNING_CARS:
        return rng.uniform(-math.pi, math.pi)
    along = math.pi / 2 if rng.uniform() < 0.5 else -math.pi / 2
    return along + rng.normal(0, LANE_YAW_SPREAD)


def _place(rng: np.random.Generator, model: _CarModel, boxes: list, horizon: int, width: int, height: int,
           pitch: float) -> _Track:
    best = None
    for _ in range(30):  # prefer spots that overlap earlier cars little (some overlap gives occlusion)
        track = _Track(model, _heading(rng), rng.normal(0, 0.01), rng.normal(0, math.radians(2)),
                       rng.uniform(0.9, 1.1), rng.uniform(0.1, 0.9) * width,
                       horizon + rng.uniform(0.25, 0.85) * (height - horizon), rng.uniform(0, 10) * width / 1920)
        box = _project_track(track, 0, horizon, width, height, pitch)[1]
        overlap = max((_iou(box, b) for b in boxes), default=0.0)
        if best is None or overlap < best[0]:
            best = (overlap, track, box)
        if overlap < 0.15:
            break
    boxes.append(best[2])
    return best[1]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _project_track(track: _Track, frame: int, horizon: int, width: int, height: int,
                   pitch: float) -> tuple[np.ndarray, np.ndarray, float, float, np.ndarray]:
    """(rotation, tight box x0 y0 x1 y1, anchor u, anchor v, scale folded into the rotation) at `frame`."""
    yaw = track.yaw + track.yaw_rate * frame
    heading = _rotation(yaw, pitch)[:2, 0]
    u = track.u + track.speed * frame * heading[0]
    v = track.v + track.speed * frame * heading[1]
    moved = _Track(**{**track.__dict__, "yaw": yaw})
    scale = _scale(moved, v, horizon, width, height, pitch)
    rot = _rotation(yaw, pitch + track.pitch_jitter) * np.array([[scale], [scale], [1.0]])
    pts = np.concatenate([p.verts for p in track.model.parts if p.solid]) @ rot.T
    lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
    # Keep the whole car inside the image: shift the anchor by what sticks out.
    margin = 1.0
    u += max(0.0, margin - (u + lo[0])) - max(0.0, u + hi[0] - (width - 1 - margin))
    v += max(0.0, margin - (v + lo[1])) - max(0.0, v + hi[1] - (height - 1 - margin))
    box = np.array([u + lo[0], v + lo[1], u + hi[0], v + hi[1]])
    return rot, box, u, v, np.array([u, v])


def _render_frame(base: np.ndarray, tracks: list[_Track], frame: int, horizon: int, pitch: float,
                  rng: np.random.Generator) -> tuple[bytes, np.ndarray, np.ndarray]:
    height, width = base.shape[:2]
    img = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(img, "RGBA")
    inst = Image.new("L", (width, height), 0)
    inst_draw = ImageDraw.Draw(inst)
    placed = [(_project_track(t, frame, horizon, width, height, pitch), i) for i, t in enumerate(tracks)]
    # Far to near: a lower anchor is nearer the camera.
    order = sorted(range(len(tracks)), key=lambda i: (placed[i][0][3], i))
    boxes = np.zeros((len(tracks), 4))
    keypoints = np.zeros((len(tracks), NUM_CARFUSION_KEYPOINTS, 3))
    facing_kp = np.zeros((len(tracks), NUM_CARFUSION_KEYPOINTS), bool)
    for rank, i in enumerate(order):
        (rot, box, u, v, _), _ = placed[i]
        model = tracks[i].model
        toward = -rot[2] / np.linalg.norm(rot[2])  # car-frame direction to the camera

        def facing(n: np.ndarray, toward: np.ndarray = toward) -> bool:
            return float(np.dot(n, toward)) > 1e-6

        layered = []
        for part in model.parts:
            layer = part.layer
            if part.layer == 4 and not facing(part.normal):
                layer = 1  # a far wheel: below the body, drawn before it
            elif not (part.always or facing(part.normal)):
                continue
            layered.append((layer, part))
        for layer, part in sorted(layered, key=lambda lp: lp[0]):
            pts = part.verts @ rot.T
            poly = [(float(x + u), float(y + v)) for x, y in pts[:, :2]]
            if layer == 0:
                draw.polygon(poly, fill=(0, 0, 0, 90))
            else:
                draw.polygon(poly, fill=part.colour + (255,))
            if part.solid:
                inst_draw.polygon(poly, fill=rank + 1)
        kp = model.keypoints @ rot.T
        keypoints[i, :, 0], keypoints[i, :, 1] = kp[:, 0] + u, kp[:, 1] + v
        facing_kp[i] = [facing(n) for n in model.keypoint_normals]
        boxes[i] = box
    ids = np.asarray(inst)
    ranks = {i: rank for rank, i in enumerate(order)}
    for i in range(len(tracks)):
        for k in range(NUM_CARFUSION_KEYPOINTS):
            x, y = keypoints[i, k, :2]
            px, py = min(max(int(x), 0), width - 1), min(max(int(y), 0), height - 1)
            covered = ids[py, px] > ranks[i] + 1
            keypoints[i, k, 2] = 2 if (covered or not facing_kp[i, k]) else (3 if rng.random() < 0.1 else 1)
    arr = np.asarray(img, np.float32) + rng.normal(0, 3, (height, width, 3)).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), boxes, keypoints


def _fmt(v: float) -> str:
    return f"{v:.2f}"


def _sequence(out: Path, split: str, seq_index: int, name: str, frames: int, cars: int, seed: int, width: int,
              height: int, overwrite: bool) -> list[SyntheticFrame]:
    rng = np.random.default_rng([seed, 0 if split == "train" else 1, seq_index])
    pitch = math.radians(rng.uniform(10, 35))
    light = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1.0])
    light /= np.linalg.norm(light)
    base, horizon = _background(rng, width, height)
    boxes: list = []
    tracks = [_place(rng, _car_model(rng, light), boxes, horizon, width, height, pitch) for _ in range(cars)]
    comma_form = seq_index % 2 == 0
    folder = out / split / name
    for sub in ("images_jpg", "bb", "gt"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    written = []
    for f in range(frames):
        jpeg, car_boxes, kps = _render_frame(base, tracks, f, horizon, pitch, rng)
        image_id = f"{seq_index + 1:02d}_{f:05d}"
        bb_lines, gt_lines = [], []
        xywh = np.zeros((cars, 4))
        truth = np.zeros((cars, NUM_CARFUSION_KEYPOINTS, 3))
        for i in range(cars):
            x0, y0, x1, y1 = (_fmt(v) for v in car_boxes[i])
            w, h = _fmt(float(x1) - float(x0)), _fmt(float(y1) - float(y0))
            bb_lines.append(f"[{x0}, {y0}, {h}, {w}],car" if comma_form else f"[{x0} {y0} {w} {h}]")
            xywh[i] = [float(x0), float(y0), float(w), float(h)]
            for k in range(NUM_CARFUSION_KEYPOINTS):
                x, y, vis = _fmt(kps[i, k, 0]), _fmt(kps[i, k, 1]), int(kps[i, k, 2])
                gt_lines.append(f"{x},{y},{k + 1},{i},{vis}")
                truth[i, k] = [float(x), float(y), vis]
        write_file(folder / "images_jpg" / f"{image_id}.jpg", jpeg, overwrite=overwrite)
        write_file(folder / "bb" / f"{image_id}.txt", ("\n".join(bb_lines) + "\n").encode(), overwrite=overwrite)
        write_file(folder / "gt" / f"{image_id}.txt", ("\n".join(gt_lines) + "\n").encode(), overwrite=overwrite)
        written.append(SyntheticFrame(split, name, image_id, xywh, truth))
    return written


def make_synthetic_carfusion(out: str | os.PathLike, *, train_sequences: int = 8, test_sequences: int = 2,
                             frames: int = 8, cars: int = 4, seed: int = 0, overwrite: bool = False,
                             width: int = 1920, height: int = 1080) -> dict[str, list[SyntheticFrame]]:
    """Write `train_sequences` and `test_sequences` sequences of `frames` frames with `cars` cars each
    under `out` in the raw CarFusion layout. Returns, per split, what each frame's txt files hold.
    Refuses to write into an existing dataset unless `overwrite`."""
    out = Path(out)
    for value, what, low in ((train_sequences, "train_sequences", 0), (test_sequences, "test_sequences", 0),
                             (frames, "frames", 1), (cars, "cars", 1), (width, "width", 128), (height, "height", 96)):
        if value < low:
            raise UsageError(f"{what} must be at least {low}, got {value}")
    if cars > 254:
        raise UsageError(f"cars must be at most 254, got {cars}")
    if not overwrite and any((out / s).exists() for s in ("train", "test")):
        raise FileExistsError(f"{out} already holds a dataset (train/ or test/); pass overwrite=True (--overwrite) "
                              f"or choose another --out")
    result: dict[str, list[SyntheticFrame]] = {}
    for split, count, streets in (("train", train_sequences, TRAIN_STREETS), ("test", test_sequences, TEST_STREETS)):
        result[split] = []
        for s, name in enumerate(sequence_names(streets, count)):
            result[split] += _sequence(out, split, s, name, frames, cars, seed, width, height, overwrite)
    return result
