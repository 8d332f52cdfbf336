"""Segmentation post-processing on the host: logits to class ids at the label resolution, the same
for the float model, int_infer and the compiled model's outputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name


def seg_postprocess(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Class ids (N, H, W) at `size` from (N, C, h, w) logits: bilinear resize, then argmax. The same
    step turns a compiled model's output into predictions."""
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = F.interpolate(logits.float(), size=tuple(int(s) for s in size), mode="bilinear",
                               align_corners=False)
    return logits.argmax(1)
