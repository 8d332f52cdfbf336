"""Semantic segmentation metrics: a confusion-matrix mIoU over train ids, accumulated batch by batch
and summable across ranks.

IoU per class is `tp / (tp + fp + fn)` over the pixels whose label is not `ignore_index`; a class
that is neither in the labels nor in the predictions of the whole set has no IoU (NaN) and is left
out of the mean, as cityscapesscripts' evaluation does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.distributed as dist

from hbdk_sim.errors import UsageError
from hbdk_sim.registry import METRICS


@METRICS.register
class MeanIoU:
    """`update(preds, labels)` with class-index predictions (N, H, W) or logits (N, C, H, W) and
    labels (N, H, W) (a list of label maps is accepted: the one of the predictions' size is used);
    `compute()` gives `{"mIoU", "IoU" (per class, NaN when absent), "pixel_acc"}`.

    `confusion_matrix` (int64, rows are labels, columns predictions) is the whole state:
    `all_reduce()` sums it over the ranks of torch.distributed.
    """

    def __init__(self, num_classes: int = 19, ignore_index: int = 255,
                 class_names: Sequence[str] | None = None, pred_key: str = "preds", label_key: str = "gt_seg") -> None:
        if num_classes < 1:
            raise UsageError(f"MeanIoU: expected num_classes >= 1 but got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise UsageError(f"MeanIoU: expected {num_classes} class_names but got {len(class_names)}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.pred_key, self.label_key = pred_key, label_key
        self.class_names = tuple(class_names) if class_names is not None else tuple(map(str, range(num_classes)))
        self.confusion_matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def reset(self) -> None:
        self.confusion_matrix.zero_()

    def _pick_labels(self, labels, shape: torch.Size) -> torch.Tensor:
        if isinstance(labels, (list, tuple)):
            same = [t for t in labels if tuple(t.shape) == tuple(shape)]
            if len(same) != 1:
                raise UsageError(f"MeanIoU: expected exactly one label map of the predictions' shape {tuple(shape)} "
                                 f"but got shapes {[tuple(t.shape) for t in labels]}")
            return same[0]
        return labels

    sum_states = ("confusion_matrix",)  # summed over the ranks by hbdk_sim.engine.reduce_metric

    @torch.no_grad()
    def update(self, preds: torch.Tensor | Mapping, labels: torch.Tensor | Sequence[torch.Tensor] | Mapping) -> None:
        # The engine's Predictor passes (model outputs, batch): a Segmentor's {"preds": ...} and the
        # batch dict with its labels under `label_key`.
        if isinstance(preds, Mapping):
            preds = preds[self.pred_key]
        if isinstance(labels, Mapping):
            labels = labels[self.label_key]
        if preds.is_floating_point():
            if preds.dim() < 2 or preds.shape[1] != self.num_classes:
                raise UsageError(f"MeanIoU: expected logits (N, {self.num_classes}, H, W) or class indices "
                                 f"but got a float tensor of shape {tuple(preds.shape)}")
            preds = preds.argmax(1)
        labels = self._pick_labels(labels, preds.shape)
        if preds.shape != labels.shape:
            raise UsageError(f"MeanIoU: predictions {tuple(preds.shape)} and labels {tuple(labels.shape)} differ "
                             "in shape; resize the predictions to the labels")
        preds = preds.reshape(-1).long()
        labels = labels.reshape(-1).to(preds.device).long()
        valid = labels != self.ignore_index
        preds, labels = preds[valid], labels[valid]
        c = self.num_classes
        for name, t in (("labels", labels), ("predictions", preds)):
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= c):
                bad = torch.unique(t[(t < 0) | (t >= c)])[:8].tolist()
                raise UsageError(f"MeanIoU: {name} hold values {bad} outside 0..{c - 1}"
                                 + (f" (ignore_index is {self.ignore_index})" if name == "labels" else ""))
        counts = torch.bincount(labels * c + preds, minlength=c * c).reshape(c, c)
        self.confusion_matrix += counts.to(self.confusion_matrix.device)

    def all_reduce(self, group=None) -> None:
        """Sum the confusion matrix over all ranks (a no-op without an initialized process group)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.confusion_matrix, op=dist.ReduceOp.SUM, group=group)

    def compute(self) -> dict:
        cm = self.confusion_matrix.double()
        tp = cm.diagonal()
        denom = cm.sum(0) + cm.sum(1) - tp
        iou = torch.where(denom > 0, tp / denom.clamp(min=1), torch.full_like(tp, float("nan")))
        present = ~torch.isnan(iou)
        total = cm.sum()
        return {
            "mIoU": float(iou[present].mean()) if bool(present.any()) else float("nan"),
            "IoU": iou.tolist(),
            "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
        }

    def per_class(self) -> dict[str, float]:
        """IoU by class name."""
        return dict(zip(self.class_names, self.compute()["IoU"], strict=True))
