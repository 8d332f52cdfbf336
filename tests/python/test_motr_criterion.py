"""MOTR's training loss (task_models.md §4.6): the Hungarian matcher against a brute-force minimum
and a hand-written focal cost, and the clip criterion on hand-made frames: a track keeping its gt,
one disappearing, a new object matched only among the free slots, the loss values of a 2-query
frame worked out by hand, and the clip's num_samples normalisation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hbdk_sim.errors import UsageError
from hbdk_sim.nn.losses import tracking as tracking_losses
from hbdk_sim.nn.losses.tracking import HungarianMatcher, MotrCriterion, TrackTargets
from hbdk_sim.nn.postprocess.track_instances import TrackInstances
from hbdk_sim.nn.postprocess.tracking import select_training_tracks
from hbdk_sim.registry import LOSSES


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _focal_pos(x: float) -> float:
    p = _sigmoid(x)
    return 0.25 * (1 - p) ** 2 * -math.log(p)


def _focal_neg(x: float) -> float:
    p = _sigmoid(x)
    return 0.75 * p**2 * -math.log(1 - p)


def _giou_xyxy(a: list[float], b: list[float]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    enclose = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / union - (enclose - union) / enclose


def _xyxy(b: list[float]) -> list[float]:
    return [b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2]


def _random_boxes(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.cat([0.2 + 0.6 * torch.rand(n, 2, generator=g), 0.05 + 0.3 * torch.rand(n, 2, generator=g)], 1)


def _slots(logits: list[float], boxes: list[list[float]], obj_ids: list[int]) -> TrackInstances:
    inst = TrackInstances.empty(len(logits), embed_dim=8)
    inst.pred_logits = torch.tensor(logits).reshape(-1, 1)
    inst.pred_boxes = torch.tensor(boxes)
    inst.obj_ids = torch.tensor(obj_ids)
    return inst


def _targets(boxes: list[list[float]], ids: list[int]) -> TrackTargets:
    return TrackTargets(torch.tensor(boxes).reshape(-1, 4), torch.tensor(ids, dtype=torch.long),
                        torch.zeros(len(ids), dtype=torch.long))


def test_focal_class_cost_matches_the_hand_formula():
    logits = [-3.0, -0.5, 0.0, 1.2, 4.0]
    matcher = HungarianMatcher(cost_class=1.0, cost_bbox=0.0, cost_giou=0.0)
    cost = matcher.cost_matrix(torch.tensor(logits).reshape(-1, 1), torch.full((5, 4), 0.3),
                               torch.full((2, 4), 0.3), torch.zeros(2, dtype=torch.long))
    expected = torch.tensor([[_focal_pos(x) - _focal_neg(x)] * 2 for x in logits])
    torch.testing.assert_close(cost, expected, rtol=1e-5, atol=1e-6)


def test_full_cost_is_the_weighted_sum_of_focal_l1_and_giou():
    gen = torch.Generator().manual_seed(3)
    logits, boxes, gts = torch.randn(3, 1, generator=gen), _random_boxes(3, gen), _random_boxes(2, gen)
    cost = HungarianMatcher().cost_matrix(logits, boxes, gts, torch.zeros(2, dtype=torch.long))
    for i, j in itertools.product(range(3), range(2)):
        x, b, t = float(logits[i, 0]), boxes[i].tolist(), gts[j].tolist()
        want = (2 * (_focal_pos(x) - _focal_neg(x)) + 5 * sum(abs(u - v) for u, v in zip(b, t, strict=True))
                - 2 * _giou_xyxy(_xyxy(b), _xyxy(t)))
        assert cost[i, j].item() == pytest.approx(want, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("seed", range(12))
def test_matcher_reaches_the_brute_force_minimum(seed):
    gen = torch.Generator().manual_seed(seed)
    n, g = (int(v) for v in torch.randint(1, 6, (2,), generator=gen))
    logits, boxes, gts = torch.randn(n, 1, generator=gen), _random_boxes(n, gen), _random_boxes(g, gen)
    labels = torch.zeros(g, dtype=torch.long)
    matcher = HungarianMatcher()
    src, tgt = matcher(logits, boxes, gts, labels)
    assert len(src) == len(tgt) == min(n, g)
    assert len(set(src.tolist())) == len(src) and len(set(tgt.tolist())) == len(tgt)
    cost = matcher.cost_matrix(logits, boxes, gts, labels)
    got = cost[src, tgt].sum().item()
    if n >= g:  # every gt gets a distinct prediction
        best = min(sum(cost[p, j].item() for j, p in enumerate(perm)) for perm in itertools.permutations(range(n), g))
    else:  # every prediction gets a distinct gt
        best = min(sum(cost[i, q].item() for i, q in enumerate(perm)) for perm in itertools.permutations(range(g), n))
    assert got == pytest.approx(best, abs=1e-5)


def test_matcher_without_gts_or_predictions_matches_nothing():
    src, tgt = HungarianMatcher()(torch.zeros(3, 1), torch.full((3, 4), 0.2), torch.zeros(0, 4),
                                  torch.zeros(0, dtype=torch.long))
    assert src.numel() == tgt.numel() == 0
    with pytest.raises(UsageError, match="non-negative"):
        HungarianMatcher(cost_class=-1.0)


def test_two_query_frame_losses_by_hand():
    # Slot 0 (logit 0, p = 0.5) sits near the gt; slot 1 (logit 2) is far: slot 0 is matched.
    gt = [0.2, 0.2, 0.2, 0.2]
    inst = _slots([0.0, 2.0], [[0.25, 0.2, 0.2, 0.3], [0.8, 0.8, 0.2, 0.2]], [-1, -1])
    crit = MotrCriterion()
    frame = crit.match_for_single_frame(0, inst, _targets([gt], [5]))
    assert inst.obj_ids.tolist() == [5, -1] and inst.matched_gt_idx.tolist() == [0, -1]
    assert frame.num_samples == 1
    # slot 0 xyxy (0.15, 0.05, 0.35, 0.35), gt (0.1, 0.1, 0.3, 0.3): inter 0.15 * 0.2 = 0.03,
    # union 0.06 + 0.04 - 0.03 = 0.07, enclosing 0.25 * 0.3 = 0.075.
    iou = 0.03 / 0.07
    giou = iou - (0.075 - 0.07) / 0.075
    assert inst.iou[0].item() == pytest.approx(iou, rel=1e-5) and inst.iou[1].item() == 0.0
    losses = crit([frame])
    assert set(losses) == {"loss_ce_frame0", "loss_bbox_frame0", "loss_giou_frame0"}
    assert losses["loss_ce_frame0"].item() == pytest.approx(2 * (_focal_pos(0.0) + _focal_neg(2.0)), rel=1e-5)
    assert losses["loss_bbox_frame0"].item() == pytest.approx(5 * (0.05 + 0.1), rel=1e-5)
    assert losses["loss_giou_frame0"].item() == pytest.approx(2 * (1 - giou), rel=1e-5)


def test_aux_layers_redo_the_new_object_matching():
    gt = [0.2, 0.2, 0.2, 0.2]
    inst = _slots([0.0, 0.0, 3.0], [gt, [0.7, 0.7, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1]], [-1, -1, 4])
    inst.pred_logits.requires_grad_(True)
    # The aux layer predicts the gt on slot 1 instead: it is matched there, ids come from the last layer.
    aux = (torch.zeros(3, 1), torch.tensor([[0.7, 0.7, 0.2, 0.2], gt, [0.5, 0.5, 0.1, 0.1]]))
    frame = MotrCriterion().match_for_single_frame(2, inst, _targets([gt, [0.5, 0.5, 0.1, 0.1]], [8, 4]), [aux])
    assert inst.obj_ids.tolist() == [8, -1, 4]
    assert set(frame.losses) == {f"loss_{k}_frame2{p}" for p in ("", "_aux0") for k in ("ce", "bbox", "giou")}
    # aux: slots 1 (new) and 2 (track) are exact, so no box loss; ce = 2 positives at 0 and one negative at 0.
    assert frame.losses["loss_bbox_frame2_aux0"].item() == pytest.approx(0.0, abs=1e-6)
    assert frame.losses["loss_ce_frame2_aux0"].item() == pytest.approx(
        2 * (2 * _focal_pos(0.0) + _focal_neg(0.0)), rel=1e-5)
    sum(frame.losses.values()).backward()
    assert inst.pred_logits.grad is not None
    with pytest.raises(UsageError, match="aux layer 0"):
        MotrCriterion().match_for_single_frame(0, inst, _targets([gt], [8]), [(torch.zeros(2, 1), torch.zeros(2, 4))])


def test_tracks_keep_their_gt_disappear_and_new_objects_take_only_free_slots():
    # Slots 0-2 detect queries, 3 = track 7, 4 = track 9, 5 = padding. The new gt (id 11) sits exactly on
    # the live tracks' predicted boxes and far from every free slot: it must still go to a free slot.
    new_box = [0.5, 0.5, 0.2, 0.2]
    boxes = [[0.1, 0.1, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1], [0.45, 0.5, 0.2, 0.2], new_box, new_box, [0.0, 0.0, 0.0, 0.0]]
    inst = _slots([-2.0, -2.0, -2.0, 5.0, 5.0, -9.0], boxes, [-1, -1, -1, 7, 9, -1])
    targets = _targets([[0.3, 0.3, 0.1, 0.1], new_box], [7, 11])  # id 9 is absent: track 9 disappears
    frame = MotrCriterion().match_for_single_frame(1, inst, targets)
    assert inst.obj_ids.tolist() == [-1, -1, 11, 7, 9, -1]
    assert inst.matched_gt_idx.tolist() == [-1, -1, 1, 0, -1, -1]
    assert frame.num_samples == 2 + 1  # two gts and one disappeared track
    # Track 7 matched gt 0: IoU of its box with gt 0's is 0 (disjoint) and was written; track 9's stays 0.
    assert inst.iou.tolist()[3] == 0.0 and inst.iou[2].item() > 0.5
    # ce: slots 2, 3 positive; 0, 1, 4 (disappeared), 5 background.
    want_ce = _focal_pos(-2.0) + _focal_pos(5.0) + 2 * _focal_neg(-2.0) + _focal_neg(5.0) + _focal_neg(-9.0)
    assert frame.losses["loss_ce_frame1"].item() == pytest.approx(2 * want_ce, rel=1e-5)
    # boxes: slot 2 against gt 1 (L1 0.05) and slot 3 against gt 0 (L1 0.2 + 0.2 + 0.1 + 0.1).
    assert frame.losses["loss_bbox_frame1"].item() == pytest.approx(5 * (0.05 + 0.6), rel=1e-5)


@pytest.mark.parametrize("seed", range(8))
def test_new_objects_never_take_a_live_track_slot(seed):
    gen = torch.Generator().manual_seed(seed)
    n = 10
    ids = torch.full((n,), -1)
    live = torch.randperm(n, generator=gen)[:4]
    ids[live] = torch.arange(100, 104)
    boxes = _random_boxes(n, gen)
    gt_boxes = torch.cat([boxes[live[:2]], _random_boxes(3, gen)])  # gts 0, 1 are tracks 100, 101's
    gt_ids = torch.tensor([100, 101, 200, 201, 202])
    inst = TrackInstances.empty(n, 8)
    inst.pred_logits, inst.pred_boxes, inst.obj_ids = torch.randn(n, 1, generator=gen), boxes, ids.clone()
    # The live tracks predict the new gts best of all; tracks 102, 103 have disappeared.
    inst.pred_boxes[live[2:]] = gt_boxes[2:4]
    frame = MotrCriterion().match_for_single_frame(0, inst, TrackTargets(gt_boxes, gt_ids, torch.zeros(5).long()))
    assert inst.obj_ids[live].tolist() == [100, 101, 102, 103]
    born = (ids == -1) & (inst.obj_ids >= 0)
    assert sorted(inst.obj_ids[born].tolist()) == [200, 201, 202]
    assert frame.num_samples == 5 + 2


def test_fp_slots_marked_minus_two_are_not_matched_to_new_objects():
    inst = _slots([0.0, 0.0, 0.0], [[0.5, 0.5, 0.2, 0.2]] * 3, [-1, -1, 3])
    inst.iou = torch.tensor([0.0, 0.0, 0.9])
    carried = select_training_tracks(inst, random_drop=0.0, fp_ratio=1.0, mark_fp=True)
    assert carried.obj_ids.tolist() == [3, -2]  # the track and one FP (the first of two equal IoUs)
    # Next frame: track 3 is gone and a new object sits on the FP slot: only the free detect slot takes it.
    nxt = TrackInstances.cat([_slots([0.0], [[0.9, 0.9, 0.1, 0.1]], [-1]), carried])
    frame = MotrCriterion().match_for_single_frame(1, nxt, _targets([[0.5, 0.5, 0.2, 0.2]], [6]))
    assert nxt.obj_ids.tolist() == [6, 3, -2] and frame.num_samples == 1 + 1


def test_box_losses_skip_padding_gts_and_labels_are_checked():
    inst = _slots([0.0, 0.0], [[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]], [-1, -1])
    frame = MotrCriterion().match_for_single_frame(0, inst, _targets([[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2]],
                                                                     [4, -1]))
    assert inst.obj_ids.tolist() == [4, -1]  # a padding gt matched a slot but gave it no id
    assert frame.losses["loss_bbox_frame0"].item() == pytest.approx(0.0, abs=1e-6)
    assert frame.losses["loss_ce_frame0"].item() == pytest.approx(2 * 2 * _focal_pos(0.0), rel=1e-5)
    bad = TrackTargets(torch.zeros(1, 4), torch.tensor([1]), torch.tensor([1]))
    with pytest.raises(UsageError, match="labels must lie in 0..0"):
        MotrCriterion().match_for_single_frame(0, inst, bad)
    with pytest.raises(UsageError, match="TrackTargets"):
        TrackTargets(torch.zeros(2, 4), torch.zeros(1), torch.zeros(2))


def test_clip_normalisation_carries_ids_and_counts_gts_plus_disappeared(monkeypatch):
    crit = MotrCriterion()
    inst = _slots([1.0, 1.0, 1.0], [[0.2, 0.2, 0.1, 0.1], [0.6, 0.6, 0.1, 0.1], [0.9, 0.9, 0.1, 0.1]], [-1, -1, -1])
    f0 = crit.match_for_single_frame(0, inst, _targets([[0.2, 0.2, 0.1, 0.1], [0.6, 0.6, 0.1, 0.1]], [1, 2]))
    assert inst.obj_ids.tolist() == [1, 2, -1]
    # Frame 1: id 1 is gone (disappeared), id 2 stays, no new object.
    f1 = crit.match_for_single_frame(1, inst, _targets([[0.6, 0.6, 0.1, 0.1]], [2]))
    assert (f0.num_samples, f1.num_samples) == (2, 2)
    raw = {**f0.losses, **f1.losses}
    losses = crit([f0, f1])
    assert set(losses) == set(raw)
    for k, v in losses.items():
        torch.testing.assert_close(v, raw[k] / 4)
    # Three ranks with the same count: summed over the ranks, divided by the world size -> unchanged.
    monkeypatch.setattr(tracking_losses, "all_reduce_sum_", lambda ts: [t.mul_(3) for t in ts])
    monkeypatch.setattr(tracking_losses, "get_world_size", lambda: 3)
    torch.testing.assert_close(crit([f0, f1])["loss_ce_frame1"], raw["loss_ce_frame1"] / 4)
    # An empty clip is normalised by 1, not 0.
    empty = crit.match_for_single_frame(0, _slots([0.0], [[0.5, 0.5, 0.1, 0.1]], [-1]), _targets([], []))
    assert empty.num_samples == 0
    assert crit([empty])["loss_ce_frame0"].item() == pytest.approx(2 * _focal_neg(0.0), rel=1e-5)


def test_targets_from_pixel_boxes():
    t = TrackTargets.from_xyxy(torch.tensor([[100.0, 50.0, 300.0, 250.0]]), torch.tensor([3]), (500, 1000))
    torch.testing.assert_close(t.boxes, torch.tensor([[0.2, 0.3, 0.2, 0.4]]))
    assert t.obj_ids.tolist() == [3] and t.labels.tolist() == [0]
    assert LOSSES.get("MotrCriterion") is MotrCriterion
