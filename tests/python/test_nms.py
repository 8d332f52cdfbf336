"""Class-aware NMS (C++ core) against an independent NumPy statement of greedy NMS."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hbdk_sim.errors import UsageError
from hbdk_sim.nn.postprocess.nms import batched_nms


def _reference(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, thr: float) -> list[int]:
    """Textbook greedy NMS per class, merged by score: each round keeps the best remaining box of a
    class and drops the rest of that class overlapping it with IoU > thr."""
    keep = []
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        idx = idx[np.lexsort((idx, -scores[idx].astype(np.float64)))]  # score desc, index asc
        while idx.size:
            best, rest = idx[0], idx[1:]
            keep.append(best)
            x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
            y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
            x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
            y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
            inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
            area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
            union = area(boxes[best].astype(np.float64)) + area(boxes[rest].astype(np.float64)) - inter
            iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
            idx = rest[iou <= thr]
    keep = np.asarray(keep, dtype=np.int64)
    return keep[np.lexsort((keep, -scores[keep].astype(np.float64)))].tolist()


@pytest.mark.parametrize(("seed", "n", "classes", "thr"), [(0, 300, 1, 0.5), (1, 1000, 5, 0.6), (2, 2000, 80, 0.3),
                                                          (3, 500, 3, 0.0), (4, 400, 2, 1.0)])
def test_nms_equals_the_reference_on_random_boxes(seed, n, classes, thr):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 200, (n, 2))
    wh = rng.uniform(1, 60, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.choice(rng.uniform(0, 1, n // 3), n).astype(np.float32)  # many equal scores
    labels = rng.integers(0, classes, n)
    want = _reference(boxes.astype(np.float64), scores, labels, thr)
    got = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), thr)
    assert got.dtype == torch.int64 and got.tolist() == want
    assert batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), thr,
                       max_keep=7).tolist() == want[:7]
    one_class = _reference(boxes.astype(np.float64), scores, np.zeros(n, np.int64), thr)
    assert batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), None, thr).tolist() == one_class


def test_nms_by_hand():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [20, 20, 30, 30], [5, 0, 15, 10]],
                         dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.95, 0.5, 0.7])
    # IoU([0,0,10,10], [1,1,11,11]) = 81 / 119 = 0.68; with [5,0,15,10]: 50 / 150 = 0.33.
    assert batched_nms(boxes, scores, None, 0.5).tolist() == [2, 4, 3]
    assert batched_nms(boxes, scores, None, 0.7).tolist() == [2, 1, 4, 3]
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 1, 0, 0]), 0.5).tolist() == [2, 0, 4, 3]
    assert batched_nms(boxes[:0], scores[:0], None, 0.5).tolist() == []


def test_nms_bad_input_is_a_user_error():
    boxes = torch.zeros(2, 4)
    with pytest.raises(UsageError, match="non-finite"):
        batched_nms(boxes, torch.tensor([0.5, float("nan")]), None, 0.5)
    with pytest.raises(UsageError, match="iou_threshold"):
        batched_nms(boxes, torch.ones(2), None, 1.5)
    with pytest.raises(UsageError, match=r"boxes \(N, 4\)"):
        batched_nms(torch.zeros(2, 5), torch.ones(2), None, 0.5)
