"""FCOS losses and dynamic target assignment (task_models.md §3.1) on hand-made cases whose numbers
are worked out in the test: focal loss, GIoU, centerness, centerness BCE, and the assignment of a
tiny two-level scene with two gts, an ignore box and a gt without candidates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hbdk_sim.errors import UsageError
from hbdk_sim.nn.losses.detection import (
    CenternessBCE,
    GIoULoss,
    SigmoidFocalLoss,
    fcos_centerness,
    giou,
    sigmoid_focal_loss,
)
from hbdk_sim.nn.targets.fcos import DynamicFcosTarget, fcos_points
from hbdk_sim.registry import LOSSES

LN2 = math.log(2.0)


def test_sigmoid_focal_loss_elementwise():
    # logit 0 -> p = 0.5: positive 0.25 * 0.5^2 * ln 2, negative 0.75 * 0.5^2 * ln 2.
    pos0, neg0 = 0.25 * 0.25 * LN2, 0.75 * 0.25 * LN2
    x = 2.0
    p = 1.0 / (1.0 + np.exp(-x))
    pos2, neg2 = 0.25 * (1 - p) ** 2 * -np.log(p), 0.75 * p**2 * -np.log(1 - p)
    logits = torch.tensor([[0.0, 2.0], [2.0, 0.0], [0.0, 0.0]])
    targets = torch.tensor([0, 0, 2])  # 2 = background: a negative of both classes
    expected = torch.tensor([[pos0, neg2], [pos2, neg0], [neg0, neg0]], dtype=torch.float32)
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets), expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(UsageError, match="0..2"):
        sigmoid_focal_loss(logits, torch.tensor([0, 3, 1]))


def test_focal_loss_module_weights_and_avg_factor():
    logits = torch.zeros(3, 2)
    targets = torch.tensor([0, 2, 1])
    weight = torch.tensor([1.0, 0.5, 1.0])
    # rows: (pos + neg), 0.5 * (neg + neg), (neg + pos) = 0.25 ln2 + 0.5 * 0.375 ln2 + 0.25 ln2 = 0.6875 ln2;
    # two positives -> avg_factor 2.
    torch.testing.assert_close(SigmoidFocalLoss()(logits, targets, weight), torch.tensor(0.6875 * LN2 / 2))
    torch.testing.assert_close(SigmoidFocalLoss(reduction="sum")(logits, targets, weight),
                               torch.tensor(0.6875 * LN2))
    # No positive: avg_factor is max(0, 1) = 1; 3 rows x 2 negatives.
    torch.testing.assert_close(SigmoidFocalLoss()(logits, torch.tensor([2, 2, 2])), torch.tensor(6 * 0.1875 * LN2))
    assert LOSSES.get("SigmoidFocalLoss") is SigmoidFocalLoss
    with pytest.raises(UsageError, match="reduction"):
        SigmoidFocalLoss(reduction="avg")


def test_giou_exact_values():
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 4, 4], [0, 0, 2, 2]])
    b = torch.tensor([[0.0, 0, 2, 2], [2, 0, 3, 1], [1, 1, 3, 3], [1, 1, 3, 3]])
    # identical 1; disjoint: IoU 0, enclosing 3, union 2 -> -1/3; nested: IoU 4/16, enclosing = union;
    # partial: inter 1, union 7, enclosing 9 -> 1/7 - 2/9 = -5/63.
    expected = torch.tensor([1.0, -1 / 3, 0.25, -5 / 63])
    torch.testing.assert_close(giou(a, b), expected)
    torch.testing.assert_close(giou(b, a), expected)
    weight = torch.tensor([1.0, 2.0, 0.0, 1.0])
    # 2 * (0 * 1 + 4/3 * 2 + 0.75 * 0 + 68/63 * 1) / (1 + 2 + 0 + 1)
    torch.testing.assert_close(GIoULoss(loss_weight=2.0)(a, b, weight), torch.tensor(2 * (8 / 3 + 68 / 63) / 4))
    torch.testing.assert_close(GIoULoss(reduction="none")(a, b), 1 - expected)
    assert GIoULoss()(a[:0], b[:0]).item() == 0.0


def test_centerness_and_bce():
    ltrb = torch.tensor([[1.0, 2, 3, 4], [2, 2, 2, 2], [0, 1, 5, 1]])
    torch.testing.assert_close(fcos_centerness(ltrb), torch.tensor([math.sqrt(1 / 3 * 2 / 4), 1.0, 0.0]))
    # BCE(0, 0.5) = ln 2; BCE(ln 3, 1) = -ln(3/4); mean over the two positives.
    logits = torch.tensor([0.0, math.log(3.0)])
    bce = CenternessBCE()(logits, torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(bce, torch.tensor((LN2 + math.log(4 / 3)) / 2))
    assert CenternessBCE()(torch.zeros(0), torch.zeros(0)).item() == 0.0


def test_gradients_flow_through_the_losses():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, requires_grad=True)
    SigmoidFocalLoss()(logits, torch.tensor([0, 1, 2, 3, 3, 0])).backward()
    boxes = torch.tensor([[0.0, 0, 4, 4], [1, 1, 5, 6], [2, 0, 3, 3]])
    pred = (boxes + torch.tensor([[0.5, -0.5, 1.0, 0.2]])).requires_grad_(True)
    GIoULoss()(pred, boxes, weight=fcos_centerness(torch.tensor([[1.0, 2, 3, 4]] * 3))).backward()
    ctr = torch.randn(4, requires_grad=True)
    CenternessBCE()(ctr, torch.tensor([0.2, 0.9, 0.5, 1.0])).backward()
    for grad in (logits.grad, pred.grad, ctr.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def _scene():
    """Level s8: 1x5 points x = 4, 12, 20, 28, 36 (y 4), p0..p4; level s16: 1x2 points x = 8, 24 (y 8), p5, p6.
    gts: A (0,0,16,16) label 0, B (10,0,32,16) label 1, an ignore box (24,0,40,16), E (0,20,8,24) label 0
    that holds no point. Predicted boxes (as pixel boxes; bbox_pred = ltrb / stride):
    p0 = A, p1 = B, p2 = B, p3 = (10,0,32,14), p4 = B (with a negative r: not a candidate of B),
    p5 = (0,0,16,14), p6 = (20,4,28,12). Logits 0 except p5 = (-4, 4) (confidently class 1)."""
    points, strides = fcos_points([(1, 5), (1, 2)], (8, 16))
    boxes = [(0, 0, 16, 16), (10, 0, 32, 16), (10, 0, 32, 16), (10, 0, 32, 14), (10, 0, 32, 16),
             (0, 0, 16, 14), (20, 4, 28, 12)]
    pts = points.numpy()
    s = strides.numpy()[:, None]
    b = np.array(boxes, dtype=np.float32)
    bbox_pred = torch.from_numpy(np.concatenate([pts - b[:, :2], b[:, 2:] - pts], 1) / s)
    logits = torch.zeros(7, 2)
    logits[5] = torch.tensor([-4.0, 4.0])
    gt_boxes = torch.tensor([[0.0, 0, 16, 16], [10, 0, 32, 16], [24, 0, 40, 16], [0, 20, 8, 24]])
    gt_labels = torch.tensor([0, 1, -1, 0])
    return points, strides, logits, bbox_pred, gt_boxes, gt_labels


def test_fcos_points():
    points, strides = fcos_points([(1, 5), (1, 2)], (8, 16))
    torch.testing.assert_close(points, torch.tensor([[4.0, 4], [12, 4], [20, 4], [28, 4], [36, 4], [8, 8], [24, 8]]))
    torch.testing.assert_close(strides, torch.tensor([8.0, 8, 8, 8, 8, 16, 16]))
    p2, _ = DynamicFcosTarget(strides=(8, 16)).points([(2, 1), (1, 1)])
    torch.testing.assert_close(p2, torch.tensor([[4.0, 4], [4, 12], [8, 8]]))


def test_dynamic_assignment_tiny_scene():
    # Candidates (strictly inside): A: p0, p1, p5. B: p1, p2, p3, p6 (p4 at x 36 > 32; p6 at x 24 is inside B).
    # IoUs with A: p0 1, p1 IoU(B, A) = 96 / 512 = 0.1875, p5 224 / 256 = 0.875 -> sum 2.0625 -> k_A = 2.
    # IoUs with B: p1 1, p2 1, p3 308 / 352 = 0.875, p6 64 / 352 = 0.18 -> sum 3.06 -> k_B = 3 (4 if the
    # non-candidate p4, which predicts B exactly, were counted).
    # Costs: cls of zero logits = 0.25 ln 2 for either label; reg = 2 (1 - GIoU).
    # A: p0 0.173, p1 0.173 + 2 * 0.8125 = 1.798, p5 cls(-4, 4 vs class 0) + 2 * 0.125 (below): A takes p0, p1.
    # B: p1 0.173, p2 0.173, p3 0.173 + 0.25, p6 0.173 + 1.64: B takes p1, p2, p3.
    # p1 is claimed by both and goes to B (0.173 < 1.798). E has no candidate and claims nothing.
    p = 1 / (1 + np.exp(-np.array([-4.0, 4.0])))
    cls_p5_vs_a = 0.25 * (1 - p[0]) ** 2 * -np.log(p[0]) + 0.75 * p[1] ** 2 * -np.log(1 - p[1])
    assert cls_p5_vs_a + 0.25 > 0.25 * LN2 + 1.625  # p5 costs A more than p1 does, thanks to its logits

    t = DynamicFcosTarget(strides=(8, 16), num_classes=2, topk=10, reg_weight=2.0)(*_scene())
    assert t.pos_mask.tolist() == [True, True, True, True, False, False, False]
    assert t.matched_gt.tolist() == [0, 1, 1, 1, -1, -1, -1]
    assert t.labels.tolist() == [0, 1, 1, 1, 2, 2, 2]
    # p3 is inside the ignore box but positive: weight 1; p4 only inside it: 0; p6 on its border (l = 0): 1.
    assert t.label_weights.tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    # (x - x1, y - y1, x2 - x, y2 - y) / 8: p0 to A (4,4,12,12), p1 to B (2,4,20,12), p2 (10,4,12,12), p3 (18,4,4,12).
    expected_bbox = torch.tensor([[4.0, 4, 12, 12], [2, 4, 20, 12], [10, 4, 12, 12], [18, 4, 4, 12]]) / 8
    torch.testing.assert_close(t.bbox_targets[:4], expected_bbox)
    assert (t.bbox_targets[4:] == 0).all()
    torch.testing.assert_close(t.centerness_targets, torch.tensor([1.0, 1, 1, 0.875, 0, 0, 0]))


def test_dynamic_assignment_without_class_cost_prefers_p5():
    # The same scene with p5's logits at 0: p5 costs A 0.173 + 0.25 < p1's 1.798, so A takes p0 and p5
    # and p1 is B's alone.
    points, strides, logits, bbox_pred, gt_boxes, gt_labels = _scene()
    t = DynamicFcosTarget(strides=(8, 16), num_classes=2)(points, strides, torch.zeros_like(logits), bbox_pred,
                                                          gt_boxes, gt_labels)
    assert t.matched_gt.tolist() == [0, 1, 1, 1, -1, 0, -1]
    torch.testing.assert_close(t.centerness_targets, torch.tensor([1.0, 1, 1, 0.875, 0, 0.875, 0]))
    # p5 (8, 8) to A in stride-16 units: (8, 8, 8, 8) / 16.
    torch.testing.assert_close(t.bbox_targets[5], torch.tensor([0.5, 0.5, 0.5, 0.5]))


def test_dynamic_assignment_empty_and_ignore_only():
    points, strides, logits, bbox_pred, gt_boxes, gt_labels = _scene()
    assigner = DynamicFcosTarget(strides=(8, 16), num_classes=2)
    t = assigner(points, strides, logits, bbox_pred, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    assert t.labels.tolist() == [2] * 7 and t.label_weights.tolist() == [1.0] * 7
    assert not t.pos_mask.any() and (t.bbox_targets == 0).all() and (t.centerness_targets == 0).all()
    # Only the ignore box: all background, p3 and p4 (inside it) weigh 0.
    t = assigner(points, strides, logits, bbox_pred, gt_boxes[2:3], gt_labels[2:3])
    assert not t.pos_mask.any()
    assert t.label_weights.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    with pytest.raises(UsageError, match="num_classes=2"):
        assigner(points, strides, logits, bbox_pred, gt_boxes[:1], torch.tensor([2]))
