"""COCO box detection metrics by pycocotools' COCOeval, over every image of the annotation file.

Predictions are per image (K, 6) rows (x1, y1, x2, y2, score, label) in original image pixels, the
label an index into the annotation file's categories sorted by id (`COCO.getCatIds()`: the 80 COCO
categories for instances_val2017.json). The results are COCOeval's twelve summary numbers; "mAP" is
stats[0] (AP at IoU 0.50:0.95, all areas, 100 detections).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hbdk_sim.errors import DatasetError, UsageError
from hbdk_sim.registry import METRICS

STAT_NAMES = ("mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100", "AR_small",
              "AR_medium", "AR_large")


def _quiet():
    """pycocotools prints its progress and tables; the metric returns numbers instead."""
    return contextlib.redirect_stdout(io.StringIO())


@METRICS.register
class COCODetectionMetric:
    """`update(predictions, batch)`: `predictions["detections"]` a list of (K, 6) tensors (or a
    (N, K, 6) tensor), the batch's `image_id` one id per image; `compute()`: COCOeval's summary as
    {"mAP", "AP50", ..., "AR_large"} over all images of `ann_file` (an image without detections
    counts as such)."""

    gather_states = ("results",)

    def __init__(self, ann_file: str | os.PathLike, pred_key: str = "detections", id_key: str = "image_id") -> None:
        from pycocotools.coco import COCO

        path = Path(ann_file)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: COCO annotation file not found")
        try:
            with _quiet():
                self.coco = COCO(str(path))
        except (ValueError, KeyError, TypeError) as e:
            raise DatasetError(f"{path}: not a COCO instances file ({type(e).__name__}: {e})") from None
        self.cat_ids = self.coco.getCatIds()
        self.pred_key, self.id_key = pred_key, id_key
        self.results: list[dict[str, Any]] = []

    def reset(self) -> None:
        self.results = []

    def update(self, preds: Mapping | Sequence[torch.Tensor], batch: Mapping) -> None:
        detections = preds[self.pred_key] if isinstance(preds, Mapping) else preds
        ids = batch[self.id_key] if isinstance(batch, Mapping) else batch
        ids = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]
        if len(ids) != len(detections):
            raise UsageError(f"COCODetectionMetric: {len(detections)} images of detections but {len(ids)} image ids")
        for image_id, det in zip(ids, detections, strict=True):
            rows = torch.as_tensor(det).detach().to("cpu", torch.float64).reshape(-1, 6).numpy()
            for x1, y1, x2, y2, score, label in rows:
                k = int(label)
                if not 0 <= k < len(self.cat_ids):
                    raise UsageError(f"COCODetectionMetric: label {k} outside the {len(self.cat_ids)} categories")
                self.results.append({"image_id": image_id, "category_id": self.cat_ids[k],
                                     "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                                     "score": float(score)})

    def compute(self) -> dict[str, float]:
        from pycocotools.cocoeval import COCOeval

        if not self.results:
            return {name: 0.0 for name in STAT_NAMES}
        with _quiet():
            dt = self.coco.loadRes(list(self.results))
            evaluator = COCOeval(self.coco, dt, "bbox")
            evaluator.params.imgIds = sorted(self.coco.getImgIds())
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return {name: float(v) for name, v in zip(STAT_NAMES, np.asarray(evaluator.stats), strict=True)}
