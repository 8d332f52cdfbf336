"""Painting predictions over images, for the task models' `visualize` (what `tools/infer.py`
writes): class maps in a palette, blended over the image."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from hbdk_sim.errors import UsageError

# Blend weight of the class colours over the image.
OVERLAY_ALPHA = 0.5


def colorize(class_ids: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """HxW class ids -> HxWx3 uint8 colours; an id outside the palette (e.g. 255, ignore) is black."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8)
    ids = np.asarray(class_ids)
    if ids.min(initial=0) < 0 or ids.max(initial=0) > 255:
        raise UsageError(f"colorize: class ids must be in 0..255 but range {ids.min()}..{ids.max()}")
    return table[ids.astype(np.uint8)]


def overlay(rgb: np.ndarray, color: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """`color` blended over `rgb` with weight `alpha` (both HxWx3 uint8)."""
    mixed = (1.0 - alpha) * rgb.astype(np.float32) + alpha * color.astype(np.float32)
    return np.clip(np.floor(mixed + 0.5), 0, 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


# Keypoint pictures: confident points filled, the others hollow; skeleton edges between confident
# points solid.
KEYPOINT_COLOR = (255, 64, 64)
SKELETON_COLOR = (64, 220, 255)


def draw_keypoints(rgb: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, skeleton: Sequence[Sequence[int]],
                   threshold: float = 0.5, radius: int | None = None) -> np.ndarray:
    """`rgb` (HxWx3 uint8) with the K keypoints ((K, 2) x, y in its pixels) drawn as discs, filled
    where the score reaches `threshold` and hollow below it, and the `skeleton`'s edges (index
    pairs) as lines: solid between two confident points, thin otherwise."""
    from PIL import ImageDraw

    keypoints = np.asarray(keypoints, np.float64).reshape(-1, 2)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if len(scores) != len(keypoints):
        raise UsageError(f"draw_keypoints: {len(keypoints)} keypoints but {len(scores)} scores")
    image = Image.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(image)
    size = max(rgb.shape[:2])
    r = radius if radius is not None else max(2, size // 80)
    line = max(1, size // 200)
    confident = scores >= threshold
    for a, b in skeleton:
        if max(a, b) >= len(keypoints):
            raise UsageError(f"draw_keypoints: the skeleton names keypoint {max(a, b)} of {len(keypoints)}")
        width = line if confident[a] and confident[b] else max(1, line // 2)
        draw.line([tuple(keypoints[a]), tuple(keypoints[b])], fill=SKELETON_COLOR, width=width)
    for (x, y), sure in zip(keypoints, confident, strict=True):
        box = (x - r, y - r, x + r, y + r)
        if sure:
            draw.ellipse(box, fill=KEYPOINT_COLOR, outline=(255, 255, 255))
        else:
            draw.ellipse(box, outline=KEYPOINT_COLOR, width=max(1, r // 2))
    return np.array(image)


def draw_boxes(rgb: np.ndarray, boxes: np.ndarray, labels: Sequence[str], classes: np.ndarray) -> np.ndarray:
    """`rgb` (HxWx3 uint8) with each box ((K, 4) x1, y1, x2, y2 in its pixels) outlined in its class's
    colour and its label written above it."""
    from PIL import ImageDraw

    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(labels) != len(boxes) or len(classes) != len(boxes):
        raise UsageError(f"draw_boxes: {len(boxes)} boxes but {len(labels)} labels and {len(classes)} classes")
    image = Image.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(image)
    width = max(1, max(rgb.shape[:2]) // 300)
    for (x1, y1, x2, y2), text, k in zip(boxes, labels, classes, strict=True):
        color = tuple(int(v) for v in ((int(k) * 67) % 200 + 55, (int(k) * 131) % 200 + 55, (int(k) * 29) % 200 + 55))
        draw.rectangle([x1, y1, x2, y2], outline=color, width=width)
        draw.text((x1 + 2, max(0.0, y1 - 11)), text, fill=color)
    return np.array(image)
