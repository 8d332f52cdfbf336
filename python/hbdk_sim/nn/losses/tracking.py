"""MOTR's training loss (task_models.md §4.6): the Hungarian matcher of new objects and the clip
criterion that carries track ids from frame to frame.

Per frame (`MotrCriterion.match_for_single_frame`), over the N query slots of the frame (the 256
detect queries, then the track slots: live tracks and padding):
  1. a slot that carries a track (obj_id >= 0) keeps the gt with the same id; if that id is absent
     this frame the track has "disappeared" (matched gt -1) and learns background;
  2. the gts whose ids no track carries are new objects: they are Hungarian-matched only against
     the free slots (obj_id == -1), so a new object never takes a live track's slot; a matched slot
     takes the gt's id and is a track from the next frame on;
  3. losses over the frame: the sigmoid focal loss of every slot's logits against one-hot targets
     (background for the unmatched and the disappeared), summed; L1 and 1 - GIoU of the boxes of
     slots matched to a gt (whose id is not -1); each times its weight (ce 2, bbox 5, giou 2);
  4. the auxiliary decoder layers redo step 2 on their own predictions (tracks keep their gts) and
     get the same losses under `loss_*_frame{i}_aux{j}`.
The clip's losses are then divided by num_samples = the sum over its frames of (number of gts +
number of disappeared tracks), summed over the ranks and divided by the world size, at least 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from hbdk_sim.engine.distributed import all_reduce_sum_, get_world_size
from hbdk_sim.errors import UsageError
from hbdk_sim.nn.losses.detection import focal_terms, iou_and_giou, sigmoid_focal_loss
from hbdk_sim.nn.postprocess.boxes import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh, pairwise_iou_and_giou
from hbdk_sim.nn.postprocess.track_instances import FREE_SLOT, TrackInstances
from hbdk_sim.registry import LOSSES


@dataclass
class TrackTargets:
    """The gts of one frame: boxes (G, 4) normalised (cx, cy, w, h), track ids (G,) stable across
    the clip (-1 = a padding gt that takes part in classification but not in the box losses) and
    class labels (G,) (0 for MOT17's one class)."""

    boxes: torch.Tensor
    obj_ids: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        g = self.boxes.shape[0] if self.boxes.dim() == 2 else -1
        if self.boxes.shape[-1:] != (4,) or self.obj_ids.shape != (g,) or self.labels.shape != (g,):
            raise UsageError(f"TrackTargets: expected boxes (G, 4), obj_ids (G,), labels (G,) but got "
                             f"{tuple(self.boxes.shape)}, {tuple(self.obj_ids.shape)}, {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @classmethod
    def from_xyxy(cls, boxes: torch.Tensor, track_ids: torch.Tensor, image_size: Sequence[int],
                  labels: torch.Tensor | None = None) -> TrackTargets:
        """From the dataset's xyxy pixel boxes (G, 4) of an image of (H, W) (the augmented input)."""
        height, width = float(image_size[0]), float(image_size[1])
        scale = torch.tensor([width, height, width, height], device=boxes.device)
        labels = torch.zeros_like(track_ids, dtype=torch.long) if labels is None else labels.long()
        return cls(box_xyxy_to_cxcywh(boxes.float()) / scale, track_ids.long(), labels)


class HungarianMatcher:
    """One-to-one matching of predictions to gts at the lowest total cost, cost = cost_class *
    (focal positive - focal negative of the gt's class) + cost_bbox * L1 of the normalised
    (cx, cy, w, h) + cost_giou * -GIoU, solved by scipy's `linear_sum_assignment`. The focal terms
    are pos = alpha (1-p)^gamma (-log p) and neg = (1-alpha) p^gamma (-log(1-p)), p = sigmoid(logit)."""

    def __init__(self, cost_class: float = 2.0, cost_bbox: float = 5.0, cost_giou: float = 2.0, alpha: float = 0.25,
                 gamma: float = 2.0) -> None:
        if min(cost_class, cost_bbox, cost_giou) < 0 or max(cost_class, cost_bbox, cost_giou) == 0:
            raise UsageError(f"HungarianMatcher: expected non-negative costs, not all 0, but got "
                             f"cost_class={cost_class}, cost_bbox={cost_bbox}, cost_giou={cost_giou}")
        self.cost_class, self.cost_bbox, self.cost_giou = float(cost_class), float(cost_bbox), float(cost_giou)
        self.alpha, self.gamma = float(alpha), float(gamma)

    @torch.no_grad()
    def cost_matrix(self, pred_logits: torch.Tensor, pred_boxes: torch.Tensor, gt_boxes: torch.Tensor,
                    gt_labels: torch.Tensor) -> torch.Tensor:
        """The (N, G) cost of every prediction (logits (N, C), boxes (N, 4)) against every gt."""
        n, g = pred_logits.shape[0], gt_boxes.shape[0]
        if (pred_logits.dim() != 2 or pred_boxes.shape != (n, 4) or gt_boxes.shape != (g, 4)
                or gt_labels.shape != (g,)):
            raise UsageError(f"HungarianMatcher: expected pred_logits (N, C), pred_boxes (N, 4), gt_boxes (G, 4), "
                             f"gt_labels (G,) but got {tuple(pred_logits.shape)}, {tuple(pred_boxes.shape)}, "
                             f"{tuple(gt_boxes.shape)}, {tuple(gt_labels.shape)}")
        pos, neg = focal_terms(pred_logits, self.alpha, self.gamma)
        labels = gt_labels.long()
        cost_class = pos[:, labels] - neg[:, labels]
        cost_bbox = torch.cdist(pred_boxes.float(), gt_boxes.float(), p=1)
        cost_giou = -pairwise_iou_and_giou(box_cxcywh_to_xyxy(pred_boxes.float()),
                                           box_cxcywh_to_xyxy(gt_boxes.float()))[1]
        return self.cost_class * cost_class + self.cost_bbox * cost_bbox + self.cost_giou * cost_giou

    def __call__(self, pred_logits: torch.Tensor, pred_boxes: torch.Tensor, gt_boxes: torch.Tensor,
                 gt_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction indices, gt indices), min(N, G) pairs each, prediction indices ascending."""
        device = pred_logits.device
        cost = self.cost_matrix(pred_logits, pred_boxes, gt_boxes, gt_labels)
        if cost.numel() == 0:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return empty, empty.clone()
        rows, cols = linear_sum_assignment(cost.cpu().numpy())
        return (torch.as_tensor(rows, dtype=torch.long, device=device),
                torch.as_tensor(cols, dtype=torch.long, device=device))


@dataclass
class FrameLosses:
    """One frame's weighted, not yet normalised losses and its share of num_samples."""

    losses: dict[str, torch.Tensor]
    num_samples: int


@LOSSES.register
class MotrCriterion(nn.Module):
    """The clip loss of MOTR (see the file header). Call `match_for_single_frame` once per frame, in
    order, with the frame's slots, then `forward` with what the frames returned."""

    def __init__(self, num_classes: int = 1, weight_ce: float = 2.0, weight_bbox: float = 5.0,
                 weight_giou: float = 2.0, alpha: float = 0.25, gamma: float = 2.0,
                 matcher: HungarianMatcher | None = None) -> None:
        super().__init__()
        if num_classes < 1:
            raise UsageError(f"MotrCriterion: expected num_classes >= 1 but got {num_classes}")
        self.num_classes = int(num_classes)
        self.weights = {"loss_ce": float(weight_ce), "loss_bbox": float(weight_bbox), "loss_giou": float(weight_giou)}
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.matcher = matcher if matcher is not None else HungarianMatcher(alpha=alpha, gamma=gamma)

    def match_for_single_frame(self, frame_idx: int, instances: TrackInstances, targets: TrackTargets,
                               aux_outputs: Sequence[tuple[torch.Tensor, torch.Tensor]] = ()) -> FrameLosses:
        """Match frame `frame_idx`'s slots to its gts and price the frame. Updates `instances` in
        place: obj_ids (new objects' ids on their slots), matched_gt_idx and iou (of slots holding a
        track matched to a gt; the others keep theirs). `aux_outputs` = (logits (N, C), boxes (N, 4))
        of the decoder layers before the last, in the slots' order."""
        n = len(instances)
        if instances.pred_logits.shape[1] != self.num_classes:
            raise UsageError(f"MotrCriterion: expected pred_logits (N, {self.num_classes}) but got "
                             f"{tuple(instances.pred_logits.shape)}")
        if bool((targets.labels < 0).any() | (targets.labels >= self.num_classes).any()):
            raise UsageError(f"MotrCriterion: gt labels must lie in 0..{self.num_classes - 1} but got "
                             f"{torch.unique(targets.labels)[:8].tolist()}")
        device = instances.obj_ids.device
        gt_ids = targets.obj_ids.to(device).long()

        # 1. tracks keep the gt of their id or have disappeared.
        id_to_gt = {int(i): g for g, i in enumerate(gt_ids.tolist()) if i >= 0}
        matched = torch.full((n,), -1, dtype=torch.long, device=device)
        track_slots = torch.nonzero(instances.obj_ids >= 0).flatten()
        for slot in track_slots.tolist():
            matched[slot] = id_to_gt.get(int(instances.obj_ids[slot]), -1)
        num_disappeared = int((matched[track_slots] < 0).sum())
        track_pairs = (track_slots, matched[track_slots])

        # 2. new gts against the free slots only.
        free_slots = torch.nonzero(instances.obj_ids == FREE_SLOT).flatten()
        is_tracked = torch.zeros(len(targets), dtype=torch.bool, device=device)
        is_tracked[matched[matched >= 0]] = True
        new_gts = torch.nonzero(~is_tracked).flatten()

        def match_new(logits: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            src, tgt = self.matcher(logits[free_slots].detach(), boxes[free_slots].detach(),
                                    targets.boxes[new_gts].to(device), targets.labels[new_gts].to(device))
            return torch.cat([free_slots[src], track_pairs[0]]), torch.cat([new_gts[tgt], track_pairs[1]])

        slots, gts = match_new(instances.pred_logits, instances.pred_boxes)
        num_new = len(slots) - len(track_slots)
        new_slots, new_slot_gts = slots[:num_new], gts[:num_new]
        instances.obj_ids[new_slots] = gt_ids[new_slot_gts]
        matched[new_slots] = new_slot_gts
        instances.matched_gt_idx.copy_(matched)

        with torch.no_grad():
            active = (instances.obj_ids >= 0) & (matched >= 0)
            if bool(active.any()):
                instances.iou[active] = iou_and_giou(
                    box_cxcywh_to_xyxy(instances.pred_boxes[active].float()),
                    box_cxcywh_to_xyxy(targets.boxes.to(device)[matched[active]].float()))[0].to(instances.iou.dtype)

        # 3. the losses of the last layer, 4. of the auxiliary layers.
        losses = {f"{k}_frame{frame_idx}": v for k, v in
                  self._losses(instances.pred_logits, instances.pred_boxes, slots, gts, targets).items()}
        for j, (logits, boxes) in enumerate(aux_outputs):
            if logits.shape != instances.pred_logits.shape or boxes.shape != instances.pred_boxes.shape:
                raise UsageError(f"MotrCriterion: aux layer {j} must predict logits "
                                 f"{tuple(instances.pred_logits.shape)} and boxes {tuple(instances.pred_boxes.shape)} "
                                 f"but got {tuple(logits.shape)} and {tuple(boxes.shape)}")
            aux_slots, aux_gts = match_new(logits, boxes)
            losses.update({f"{k}_frame{frame_idx}_aux{j}": v for k, v in
                           self._losses(logits, boxes, aux_slots, aux_gts, targets).items()})
        return FrameLosses(losses, len(targets) + num_disappeared)

    def _losses(self, logits: torch.Tensor, boxes: torch.Tensor, slots: torch.Tensor, gts: torch.Tensor,
                targets: TrackTargets) -> dict[str, torch.Tensor]:
        """Weighted sums over one layer's slots; `slots[k]` is matched to gt `gts[k]` (-1: disappeared)."""
        device = logits.device
        classes = torch.full((logits.shape[0],), self.num_classes, dtype=torch.long, device=device)
        has_gt = gts >= 0
        classes[slots[has_gt]] = targets.labels.to(device)[gts[has_gt]].long()
        loss_ce = sigmoid_focal_loss(logits, classes, self.alpha, self.gamma).sum()

        keep = has_gt.clone()
        keep[has_gt] = targets.obj_ids.to(device)[gts[has_gt]] != -1
        pred = boxes[slots[keep]].float()
        gt = targets.boxes.to(device)[gts[keep]].float()
        loss_bbox = (pred - gt).abs().sum()
        loss_giou = (1.0 - iou_and_giou(box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(gt))[1]).sum()
        raw = {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss_giou": loss_giou}
        return {k: self.weights[k] * v for k, v in raw.items()}

    def normaliser(self, num_samples: int, device: torch.device | str | None = None) -> torch.Tensor:
        """num_samples summed over the ranks / world size, at least 1."""
        total = torch.tensor(float(num_samples), device=device)
        all_reduce_sum_([total])
        return (total / get_world_size()).clamp(min=1.0)

    def forward(self, frames: Sequence[FrameLosses]) -> dict[str, torch.Tensor]:
        """Every frame's losses divided by the clip's num_samples (see the file header)."""
        if not frames:
            raise UsageError("MotrCriterion: expected the losses of at least one frame")
        device = next(iter(frames[0].losses.values())).device
        num_samples = self.normaliser(sum(f.num_samples for f in frames), device)
        return {k: v / num_samples for f in frames for k, v in f.losses.items()}
