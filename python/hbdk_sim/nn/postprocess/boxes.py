"""Box conversions and pairwise overlaps shared by the tracker's host code and its training loss:
normalised (cx, cy, w, h) boxes, as the MOTR head predicts them, to corners, and the IoU / GIoU of
every pair of two box sets (the aligned formulas live in `nn.losses.detection`)."""

from __future__ import annotations

import torch

from hbdk_sim.errors import UsageError
from hbdk_sim.nn.losses.detection import iou_and_giou


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) boxes (cx, cy, w, h) -> (..., 4) corners (cx - w/2, cy - h/2, cx + w/2, cy + h/2)."""
    if boxes.shape[-1:] != (4,):
        raise UsageError(f"box_cxcywh_to_xyxy: expected (..., 4) boxes but got {tuple(boxes.shape)}")
    center, half = boxes[..., :2], boxes[..., 2:] / 2
    return torch.cat([center - half, center + half], -1)


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) corners (x1, y1, x2, y2) -> (..., 4) boxes (centre x, centre y, width, height)."""
    if boxes.shape[-1:] != (4,):
        raise UsageError(f"box_xyxy_to_cxcywh: expected (..., 4) boxes but got {tuple(boxes.shape)}")
    return torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], -1)


def pairwise_iou_and_giou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and GIoU (N, M) of every pair of xyxy boxes (N, 4) x (M, 4)."""
    if boxes1.dim() != 2 or boxes2.dim() != 2 or boxes1.shape[1] != 4 or boxes2.shape[1] != 4:
        raise UsageError(f"pairwise_iou_and_giou: expected (N, 4) and (M, 4) xyxy boxes but got "
                         f"{tuple(boxes1.shape)} and {tuple(boxes2.shape)}")
    return iou_and_giou(boxes1.unsqueeze(1), boxes2.unsqueeze(0))
