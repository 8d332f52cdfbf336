"""The COCO detection metric against pycocotools' COCOeval called directly, on a hand-made
annotation file with known detections."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from hbdk_sim.errors import UsageError
from hbdk_sim.metrics.detection import STAT_NAMES, COCODetectionMetric

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

# Categories deliberately not contiguous (as COCO's ids are not): label k is the k-th by id.
CATEGORIES = [{"id": 3, "name": "car", "supercategory": "vehicle"}, {"id": 18, "name": "dog", "supercategory": "animal"}]
GT = {  # image id -> [(category id, x, y, w, h)]
    1: [(3, 10, 10, 50, 40), (18, 100, 80, 60, 60)],
    2: [(3, 0, 0, 200, 100)],
    3: [],  # no objects
    4: [(18, 30, 30, 20, 20), (18, 60, 60, 40, 30), (3, 120, 10, 70, 90)],
}


@pytest.fixture
def ann_file(tmp_path):
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "height": 240, "width": 320} for i in GT]
    anns, n = [], 0
    for image_id, objects in GT.items():
        for cat, x, y, w, h in objects:
            n += 1
            anns.append({"id": n, "image_id": image_id, "category_id": cat, "bbox": [x, y, w, h], "area": w * h,
                         "iscrowd": 0})
    path = tmp_path / "instances_val.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATEGORIES}))
    return path


def _label(cat):
    return [c["id"] for c in CATEGORIES].index(cat)


def _perfect():
    return {i: [(x, y, x + w, y + h, 0.9, _label(c)) for c, x, y, w, h in objs] for i, objs in GT.items()}


def _direct(ann_file, dets):
    """COCOeval on the same detections, written as COCO results by hand."""
    results = [{"image_id": i, "category_id": [c["id"] for c in CATEGORIES][int(k)], "bbox": [x1, y1, x2 - x1, y2 - y1],
                "score": s} for i, rows in dets.items() for x1, y1, x2, y2, s, k in rows]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def _run(metric, dets, batch_size=2):
    ids = list(dets)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start:start + batch_size]
        metric.update({"detections": [torch.tensor(dets[i], dtype=torch.float32).reshape(-1, 6) for i in chunk]},
                      {"image_id": torch.tensor(chunk)})
    return metric.compute()


def test_perfect_detections_score_one(ann_file):
    got = _run(COCODetectionMetric(ann_file), _perfect())
    assert got["mAP"] == pytest.approx(1.0) and got["AP50"] == pytest.approx(1.0)


def test_metric_equals_cocoeval_on_known_detections(ann_file):
    rng = np.random.default_rng(0)
    dets = _perfect()
    dets[1] = [(12, 11, 58, 52, 0.8, 0), (100, 80, 150, 130, 0.7, 1), (200, 150, 260, 200, 0.95, 0)]  # an FP on top
    dets[2] = [(5, 3, 190, 98, 0.6, 0), (0, 0, 200, 100, 0.3, 1)]  # right box, wrong class second
    dets[3] = [(10, 10, 30, 30, 0.5, 1)]  # on an empty image
    dets[4] = [tuple(list(r[:4] + rng.normal(0, 3, 4)) + [r[4] - 0.1 * k, r[5]]) for k, r in
               enumerate(np.asarray(dets[4]))]
    want = _direct(ann_file, dets)
    got = _run(COCODetectionMetric(ann_file), dets, batch_size=3)
    assert [got[n] for n in STAT_NAMES] == pytest.approx(list(want), abs=1e-12)
    assert 0.2 < got["mAP"] < 0.95  # the case is neither perfect nor empty


def test_reset_bad_labels_and_no_detections(ann_file):
    metric = COCODetectionMetric(ann_file)
    assert metric.compute()["mAP"] == 0.0
    with pytest.raises(UsageError, match="label 2 outside the 2 categories"):
        metric.update({"detections": [torch.tensor([[0, 0, 1, 1, 0.5, 2.0]])]}, {"image_id": [1]})
    with pytest.raises(UsageError, match="image ids"):
        metric.update({"detections": [torch.zeros(0, 6)]}, {"image_id": [1, 2]})
    with pytest.raises(FileNotFoundError):
        COCODetectionMetric(ann_file.parent / "missing.json")
