"""Class-aware non-maximum suppression on the host, by the C++ core (csrc/host/nms.h)."""

from __future__ import annotations

import numpy as np
import torch

from hbdk_sim import _core
from hbdk_sim.errors import UsageError


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None, iou_threshold: float,
                max_keep: int = -1) -> torch.Tensor:
    """Greedy NMS of `boxes` (N, 4) x1, y1, x2, y2 with `scores` (N,): the indices of the kept boxes
    (int64, by descending score; equal scores by index), at most `max_keep` when >= 0. A box is
    suppressed by a kept box of the same label (all one class when `labels` is None) overlapping it
    with IoU > `iou_threshold`."""
    if boxes.dim() != 2 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:1]:
        raise UsageError(f"batched_nms: expected boxes (N, 4) and scores (N,) but got {tuple(boxes.shape)} and "
                         f"{tuple(scores.shape)}")
    if labels is not None and labels.shape != scores.shape:
        raise UsageError(f"batched_nms: expected one label per box but got {tuple(labels.shape)}")
    b = np.ascontiguousarray(boxes.detach().cpu().numpy(), dtype=np.float32)
    s = np.ascontiguousarray(scores.detach().cpu().numpy(), dtype=np.float32)
    c = None if labels is None else np.ascontiguousarray(labels.detach().cpu().numpy(), dtype=np.int64)
    try:
        keep = _core.nms(b, s, c, float(iou_threshold), int(max_keep))
    except ValueError as e:
        raise UsageError(str(e)) from None
    return torch.from_numpy(np.asarray(keep, dtype=np.int64)).to(boxes.device)
