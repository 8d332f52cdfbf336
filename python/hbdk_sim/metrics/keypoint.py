"""Keypoint metrics: PCK (percentage of correct keypoints) and the mean keypoint distance, in the
network input's pixels, over the keypoints that carry a label.

PCK@alpha: a labelled keypoint is correct when its predicted point lies closer than `alpha * D` to
the ground truth, where D is the larger side of the box around ALL the sample's ground-truth
keypoints (labelled or not, as the reference definition computes it: an unlabelled keypoint keeps
its coordinates, negative ones included), clamped to [0, max(image_size)]. PCK is the correct
count over the labelled count of the whole set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from hbdk_sim.errors import UsageError
from hbdk_sim.registry import METRICS


def _pairs(preds, labels, pred_key: str, label_key: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted (B, K, 2), ground truth (B, K, 3) as (x, y, visibility)) as float64 CPU tensors."""
    pred = preds[pred_key] if isinstance(preds, Mapping) else preds
    gt = labels[label_key] if isinstance(labels, Mapping) else labels
    pred = torch.as_tensor(pred).detach().to("cpu", torch.float64)
    gt = torch.as_tensor(gt).detach().to("cpu", torch.float64)
    if gt.dim() != 3 or gt.shape[-1] != 3 or pred.dim() != 3 or pred.shape[-1] < 2 or pred.shape[:2] != gt.shape[:2]:
        raise UsageError(f"{name}: expected predictions (B, K, 2) and ground truth (B, K, 3) but got "
                         f"{tuple(pred.shape)} and {tuple(gt.shape)}")
    return pred[..., :2], gt


@METRICS.register
class PCKMetric:
    """`update(predictions, batch)` with predicted keypoints (B, K, 2) under `pred_key` and the
    ground truth (B, K, 3) under `label_key`; `compute()` gives `{"PCK@<alpha>": ...}`."""

    sum_states = ("counts",)

    def __init__(self, alpha: float = 0.1, image_size: Sequence[int] = (128, 128), pred_key: str = "keypoints",
                 label_key: str = "gt_keypoints") -> None:
        if not alpha > 0:
            raise UsageError(f"PCKMetric: alpha must be > 0 but got {alpha}")
        self.alpha = float(alpha)
        self.max_size = float(max(image_size))
        self.pred_key, self.label_key = pred_key, label_key
        self.name = f"PCK@{alpha:g}"
        self.counts = torch.zeros(2, dtype=torch.float64)  # correct, labelled

    def reset(self) -> None:
        self.counts.zero_()

    @torch.no_grad()
    def update(self, preds, labels) -> None:
        pred, gt = _pairs(preds, labels, self.pred_key, self.label_key, "PCKMetric")
        extent = (gt[..., :2].amax(dim=1) - gt[..., :2].amin(dim=1)).amax(dim=1)  # (B,)
        norm = extent.clamp(0.0, self.max_size)
        dist = (pred - gt[..., :2]).norm(dim=-1)  # (B, K)
        labelled = gt[..., 2] > 0
        correct = labelled & (dist < self.alpha * norm[:, None])
        self.counts += torch.stack([correct.sum(), labelled.sum()]).to(torch.float64)

    def compute(self) -> dict[str, float]:
        correct, labelled = self.counts.tolist()
        return {self.name: correct / (labelled + 1e-6)}


# MeanKeypointDist sums distances in fixed point (units of 2**-32 pixel, int64): the sum is exact, so
# the result does not depend on how the set is batched or split across ranks.
_DIST_UNIT = 2.0 ** -32


@METRICS.register
class MeanKeypointDist:
    """The mean Euclidean distance between predicted and labelled ground-truth keypoints (input
    pixels): `compute()` gives `{"mean_dist": ...}` (NaN before any labelled keypoint). Each
    distance is rounded to 2**-32 pixel and summed exactly, so batching does not change the result."""

    sum_states = ("totals",)

    def __init__(self, pred_key: str = "keypoints", label_key: str = "gt_keypoints") -> None:
        self.pred_key, self.label_key = pred_key, label_key
        self.totals = torch.zeros(2, dtype=torch.int64)  # distance sum in _DIST_UNITs, labelled count

    def reset(self) -> None:
        self.totals.zero_()

    @torch.no_grad()
    def update(self, preds, labels) -> None:
        pred, gt = _pairs(preds, labels, self.pred_key, self.label_key, "MeanKeypointDist")
        labelled = gt[..., 2] > 0
        dist = (pred - gt[..., :2]).norm(dim=-1)[labelled]
        if not bool(torch.isfinite(dist).all()):
            raise UsageError("MeanKeypointDist: a predicted keypoint is not finite")
        fixed = torch.round(dist / _DIST_UNIT).to(torch.int64)
        self.totals += torch.stack([fixed.sum(), labelled.sum()])

    def compute(self) -> dict[str, float]:
        total, count = self.totals.tolist()
        return {"mean_dist": total * _DIST_UNIT / count if count else float("nan")}
