"""FCOS's dynamic (SimOTA-style) target assignment for one image (task_models.md §3.1 "targets"),
and the points of the FCOS levels it assigns.

The algorithm, on coordinates divided by each point's stride:
  1. candidates of a gt = points strictly inside it (min(l, t, r, b) > 0); gts with label < 0 are
     ignore boxes: they match nothing, and a point inside one that ends up background gets label weight 0;
  2. IoU and GIoU between every point's decoded predicted box and every gt;
  3. cost = sum over classes of the focal loss of the point's logits against the gt label
     + reg_weight * (1 - GIoU); 1e8 outside the candidates;
  4. dynamic_k of a gt = max(int(sum of its top-`topk` candidate IoUs), 1); it claims its dynamic_k
     lowest-cost candidates;
  5. a point claimed by several gts keeps the one of lowest cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from hbdk_sim.errors import UsageError
from hbdk_sim.nn.losses.detection import focal_terms, iou_and_giou

# The cost of a (point, gt) pair that is not a candidate: never the k lowest of a gt with candidates.
_NOT_CANDIDATE = 1e8


class FcosTargets(NamedTuple):
    """Per-point training targets of one image, P points."""

    labels: torch.Tensor  # (P,) long: the matched gt's label, num_classes for background
    label_weights: torch.Tensor  # (P,) float: 0 for a background point inside an ignore box, else 1
    bbox_targets: torch.Tensor  # (P, 4) float: (l, t, r, b) to the matched gt / stride; 0 for background
    centerness_targets: torch.Tensor  # (P,) float: IoU(decoded predicted box, matched gt); 0 for background
    pos_mask: torch.Tensor  # (P,) bool
    matched_gt: torch.Tensor  # (P,) long: index into the given gt boxes, -1 for background


def fcos_points(feature_sizes: Sequence[tuple[int, int]], strides: Sequence[int],
                device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (P, 2) = (w * s + s // 2, h * s + s // 2) of every level's (H, W) feature map, level
    after level and row-major within a level (the order of a flattened NCHW head output), with the
    stride (P,) of each point."""
    if len(feature_sizes) != len(strides):
        raise UsageError(f"fcos_points: got {len(feature_sizes)} feature sizes for {len(strides)} strides")
    points, point_strides = [], []
    for (h, w), s in zip(feature_sizes, strides, strict=True):
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        points.append(torch.stack([xs.reshape(-1) * s + s // 2, ys.reshape(-1) * s + s // 2], -1).float())
        point_strides.append(torch.full((h * w,), float(s), device=device))
    return torch.cat(points), torch.cat(point_strides)


class DynamicFcosTarget:
    """Assigns each point of one image a class, box and centerness target (see the file header)."""

    def __init__(self, strides: Sequence[int] = (8, 16, 32, 64, 128), num_classes: int = 80, topk: int = 10,
                 reg_weight: float = 2.0, alpha: float = 0.25, gamma: float = 2.0) -> None:
        if num_classes < 1 or topk < 1:
            raise UsageError(f"DynamicFcosTarget: expected num_classes >= 1 and topk >= 1 but got "
                             f"num_classes={num_classes}, topk={topk}")
        self.strides = tuple(int(s) for s in strides)
        self.num_classes, self.topk = int(num_classes), int(topk)
        self.reg_weight, self.alpha, self.gamma = float(reg_weight), float(alpha), float(gamma)

    def points(self, feature_sizes: Sequence[tuple[int, int]],
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The points and their strides of feature maps of these (H, W), one per stride."""
        return fcos_points(feature_sizes, self.strides, device)

    @torch.no_grad()
    def __call__(self, points: torch.Tensor, point_strides: torch.Tensor, cls_logits: torch.Tensor,
                 bbox_pred: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor) -> FcosTargets:
        """points (P, 2) in pixels, point_strides (P,), cls_logits (P, C), bbox_pred (P, 4) as
        (l, t, r, b) in stride units, gt_boxes (G, 4) xyxy pixels, gt_labels (G,) (< 0 = ignore box)."""
        num_points = points.shape[0]
        if (points.shape != (num_points, 2) or point_strides.shape != (num_points,)
                or cls_logits.shape != (num_points, self.num_classes) or bbox_pred.shape != (num_points, 4)
                or gt_boxes.dim() != 2 or gt_boxes.shape[1] != 4 or gt_labels.shape != gt_boxes.shape[:1]):
            raise UsageError(f"DynamicFcosTarget: expected points (P, 2), point_strides (P,), cls_logits "
                             f"(P, {self.num_classes}), bbox_pred (P, 4), gt_boxes (G, 4), gt_labels (G,) but got "
                             f"{tuple(points.shape)}, {tuple(point_strides.shape)}, {tuple(cls_logits.shape)}, "
                             f"{tuple(bbox_pred.shape)}, {tuple(gt_boxes.shape)}, {tuple(gt_labels.shape)}")
        if bool((gt_labels >= self.num_classes).any()):
            raise UsageError(f"DynamicFcosTarget: gt labels must be < num_classes={self.num_classes} "
                             f"(or < 0 for an ignore box) but got {torch.unique(gt_labels).tolist()[:8]}")
        device = points.device
        labels = torch.full((num_points,), self.num_classes, dtype=torch.long, device=device)
        label_weights = torch.ones(num_points, device=device)
        bbox_targets = torch.zeros(num_points, 4, device=device)
        centerness = torch.zeros(num_points, device=device)
        matched_gt = torch.full((num_points,), -1, dtype=torch.long, device=device)
        if gt_boxes.shape[0] == 0 or num_points == 0:
            return FcosTargets(labels, label_weights, bbox_targets, centerness, matched_gt >= 0, matched_gt)

        stride = point_strides.float().reshape(-1, 1)
        centers = points.float() / stride  # (P, 2)
        gts = gt_boxes.float().unsqueeze(0) / stride.unsqueeze(-1)  # (P, G, 4)
        ltrb = torch.cat([centers.unsqueeze(1) - gts[..., :2], gts[..., 2:] - centers.unsqueeze(1)], -1)
        inside = ltrb.min(-1).values > 0  # (P, G)
        is_ignore = gt_labels < 0
        candidate = inside & ~is_ignore

        pred_boxes = torch.cat([centers - bbox_pred[:, :2].float(), centers + bbox_pred[:, 2:].float()], -1)
        iou, giou = iou_and_giou(pred_boxes.unsqueeze(1), gts)  # (P, G)
        pos_cost, neg_cost = focal_terms(cls_logits, self.alpha, self.gamma)  # (P, C)
        # Against gt label g, class g is the positive and every other class a negative.
        label_index = gt_labels.clamp(min=0).long()
        cls_cost = neg_cost.sum(1, keepdim=True) + (pos_cost - neg_cost)[:, label_index]
        cost = torch.where(candidate, cls_cost + self.reg_weight * (1.0 - giou),
                           torch.full_like(giou, _NOT_CANDIDATE))

        candidate_iou = torch.where(candidate, iou, torch.zeros_like(iou))
        top_ious = candidate_iou.topk(min(self.topk, num_points), dim=0).values
        dynamic_k = top_ious.sum(0).long().clamp(min=1)  # (G,)
        max_k = min(int(dynamic_k.max()), num_points)
        lowest = cost.topk(max_k, dim=0, largest=False).indices  # (max_k, G)
        within_k = torch.arange(max_k, device=device).unsqueeze(1) < dynamic_k.unsqueeze(0)
        claimed = torch.zeros_like(candidate).scatter_(0, lowest, within_k) & candidate

        claimed_cost = torch.where(claimed, cost, torch.full_like(cost, float("inf")))
        best_cost, best_gt = claimed_cost.min(1)
        pos = torch.isfinite(best_cost)
        matched_gt = torch.where(pos, best_gt, matched_gt)
        pos_gt = best_gt[pos]
        labels[pos] = gt_labels.long()[pos_gt]
        bbox_targets[pos] = ltrb[pos, pos_gt]
        centerness[pos] = iou[pos, pos_gt]
        label_weights[(inside & is_ignore).any(1) & ~pos] = 0.0
        return FcosTargets(labels, label_weights, bbox_targets, centerness, pos, matched_gt)
