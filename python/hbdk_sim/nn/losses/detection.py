"""Detection losses of FCOS (task_models.md §3.1): the sigmoid focal loss over per-class logits, the
GIoU loss on boxes, the FCOS centerness formula and the BCE of the centerness branch. The sigmoid
focal loss is registered as `SigmoidFocalLoss`: `FocalLoss` already names the softmax segmentation loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.registry import LOSSES

_REDUCTIONS = ("none", "sum", "mean")
# Keeps a degenerate (zero-area) union or enclosing box from dividing by zero.
_BOX_EPS = 1e-6


def focal_terms(logits: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The two elementwise halves of the sigmoid focal loss, each shaped like `logits`: the loss of
    every entry as a positive, `alpha * (1-p)^gamma * -log p`, and as a negative,
    `(1-alpha) * p^gamma * -log(1-p)`. The target assignment picks from both to price every (point, gt)."""
    x = logits.float()
    p = torch.sigmoid(x)
    pos = alpha * (1.0 - p).pow(gamma) * -F.logsigmoid(x)
    neg = (1.0 - alpha) * p.pow(gamma) * -F.logsigmoid(-x)
    return pos, neg


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2.0) -> torch.Tensor:
    """Elementwise sigmoid focal loss (N, C) of logits (N, C) against class indices (N,) where C is
    the background: the one-hot has C + 1 columns and the background column is dropped, so a
    background point is a negative of every class."""
    if logits.dim() != 2 or targets.shape != logits.shape[:1]:
        raise UsageError(f"sigmoid_focal_loss: expected logits (N, C) and targets (N,) but got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}")
    num_classes = logits.shape[1]
    targets = targets.long()
    if bool(((targets < 0) | (targets > num_classes)).any()):
        raise UsageError(f"sigmoid_focal_loss: targets must lie in 0..{num_classes} ({num_classes} = background) "
                         f"but got {torch.unique(targets)[:8].tolist()}")
    one_hot = F.one_hot(targets, num_classes + 1)[:, :num_classes].bool()
    pos, neg = focal_terms(logits, alpha, gamma)
    return torch.where(one_hot, pos, neg)


def _check_reduction(owner: str, reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise UsageError(f"{owner}: expected reduction in {_REDUCTIONS} but got {reduction!r}")
    return reduction


@LOSSES.register
class SigmoidFocalLoss(nn.Module):
    """Sigmoid focal loss of (N, C) logits against (N,) labels with C = background, times a weight
    per point (the assignment's label weights). "mean" divides the sum by `avg_factor`, by default
    max(number of positives, 1), as FCOS normalises by its positives rather than by all points."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, loss_weight: float = 1.0,
                 reduction: str = "mean") -> None:
        super().__init__()
        if not gamma >= 0 or not 0 <= alpha <= 1:
            raise UsageError(f"SigmoidFocalLoss: expected gamma >= 0 and 0 <= alpha <= 1 but got "
                             f"gamma={gamma}, alpha={alpha}")
        self.alpha, self.gamma, self.loss_weight = float(alpha), float(gamma), float(loss_weight)
        self.reduction = _check_reduction("SigmoidFocalLoss", reduction)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None,
                avg_factor: float | torch.Tensor | None = None) -> torch.Tensor:
        loss = sigmoid_focal_loss(logits, targets, self.alpha, self.gamma)
        if weight is not None:
            loss = loss * weight.float().reshape(-1, 1)
        loss = self.loss_weight * loss
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        if avg_factor is None:
            avg_factor = (targets < logits.shape[1]).sum().clamp(min=1)
        return loss.sum() / avg_factor


def iou_and_giou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned IoU and generalized IoU (Rezatofighi et al., 2019) of xyxy boxes (..., 4) that
    broadcast against each other; both shaped like the broadcast leading dimensions."""
    b1, b2 = boxes1.float(), boxes2.float()
    area1 = (b1[..., 2] - b1[..., 0]).clamp(min=0) * (b1[..., 3] - b1[..., 1]).clamp(min=0)
    area2 = (b2[..., 2] - b2[..., 0]).clamp(min=0) * (b2[..., 3] - b2[..., 1]).clamp(min=0)
    lt = torch.maximum(b1[..., :2], b2[..., :2])
    rb = torch.minimum(b1[..., 2:], b2[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (area1 + area2 - inter).clamp(min=_BOX_EPS)
    iou = inter / union
    enclose_wh = (torch.maximum(b1[..., 2:], b2[..., 2:]) - torch.minimum(b1[..., :2], b2[..., :2])).clamp(min=0)
    enclose = enclose_wh.prod(-1).clamp(min=_BOX_EPS)
    return iou, iou - (enclose - union) / enclose


def giou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Aligned generalized IoU (N,) of xyxy boxes (N, 4) and (N, 4): IoU - (enclosing - union) / enclosing."""
    if boxes1.shape[-1] != 4 or boxes1.shape != boxes2.shape:
        raise UsageError(f"giou: expected two (N, 4) xyxy boxes but got {tuple(boxes1.shape)} and "
                         f"{tuple(boxes2.shape)}")
    return iou_and_giou(boxes1, boxes2)[1]


@LOSSES.register
class GIoULoss(nn.Module):
    """`loss_weight * (1 - GIoU)` per box pair, times a weight per box; "mean" divides by
    `avg_factor`, by default the sum of the weights (the number of boxes without weights)."""

    def __init__(self, loss_weight: float = 1.0, reduction: str = "mean") -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.reduction = _check_reduction("GIoULoss", reduction)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                avg_factor: float | torch.Tensor | None = None) -> torch.Tensor:
        loss = 1.0 - giou(pred, target)
        weight = torch.ones_like(loss) if weight is None else weight.float().reshape(-1)
        loss = self.loss_weight * loss * weight
        if self.reduction == "none":
            return loss
        if self.reduction == "sum" or loss.numel() == 0:
            return loss.sum()
        if avg_factor is None:
            avg_factor = weight.sum()
        return loss.sum() / avg_factor


def fcos_centerness(ltrb: torch.Tensor) -> torch.Tensor:
    """FCOS centerness (...,) of point-to-side distances (..., 4) = (l, t, r, b):
    sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)); 1 at a box centre, 0 on its border."""
    lr, tb = ltrb[..., 0::2], ltrb[..., 1::2]
    ratio = (lr.min(-1).values / lr.max(-1).values.clamp(min=_BOX_EPS)) * (
        tb.min(-1).values / tb.max(-1).values.clamp(min=_BOX_EPS))
    return ratio.clamp(min=0).sqrt()


@LOSSES.register
class CenternessBCE(nn.Module):
    """Binary cross entropy with logits of the centerness branch against its target (the IoU of the
    predicted and the matched box), averaged over the positives given; 0 (with a graph) when there are none."""

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = float(loss_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.reshape(-1)
        if logits.shape != target.reshape(-1).shape:
            raise UsageError(f"CenternessBCE: expected one target per logit but got {tuple(logits.shape)} "
                             f"logits and {tuple(target.shape)} targets")
        if logits.numel() == 0:
            return logits.sum() * 0.0
        loss = F.binary_cross_entropy_with_logits(logits.float(), target.reshape(-1).float())
        return self.loss_weight * loss
