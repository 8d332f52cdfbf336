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
