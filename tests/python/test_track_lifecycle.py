"""MOTR's host-side tracking (task_models.md §4.2, §4.5): the eval lifecycle over scripted scores
(birth, misses, death, ids), the board layout of the slots and graph inputs, the top-256 cut, the
reported boxes, a whole eval loop on synthetic board outputs, and the training-time selection
(IoU gate, random drop and false-positive insertion with a seeded generator)."""

from __future__ import annotations

import pytest
import torch
from hbdk_sim.errors import UsageError
from hbdk_sim.nn.postprocess.track_instances import TrackInstances
from hbdk_sim.nn.postprocess.tracking import (
    MotrTrackPostProcess,
    RuntimeTracker,
    apply_qim_output,
    board_tokens,
    frame_instances,
    qim_inputs,
    report_tracks,
    select_active_tracks,
    select_training_tracks,
    slot_map,
    track_inputs,
)


def _with_scores(scores: list[float], obj_ids: list[int] | None = None) -> TrackInstances:
    inst = TrackInstances.empty(len(scores), embed_dim=4)
    inst.scores = torch.tensor(scores)
    if obj_ids is not None:
        inst.obj_ids = torch.tensor(obj_ids)
    return inst


def test_lifecycle_over_a_scripted_score_sequence():
    tracker = RuntimeTracker()
    slot = _with_scores([0.0])
    script = [  # (score, obj_id after, disappear_time after)
        (0.65, -1, 0),  # between 0.6 and 0.7: no birth
        (0.69, -1, 0),
        (0.70, 0, 0),  # born at exactly 0.7 with the first id
        (0.50, 0, 1),  # a miss
        (0.65, 0, 1),  # in [0.6, 0.7): neither a miss nor a reset
        (0.59, 0, 2),
        (0.30, 0, 3),
        (0.90, 0, 0),  # confident again: misses reset
        (0.1, 0, 1), (0.1, 0, 2), (0.1, 0, 3), (0.1, 0, 4),
        (0.1, -1, 5),  # the fifth miss in a row kills it
        (0.1, -1, 5),  # a free slot does not count misses
        (0.8, 1, 0),  # born again, with a new id
    ]
    for score, obj_id, misses in script:
        slot.scores = torch.tensor([score])
        tracker.update(slot)
        assert (slot.obj_ids.item(), slot.disappear_time.item()) == (obj_id, misses), score


def test_ids_are_given_in_slot_order_and_restart_with_a_sequence():
    tracker = RuntimeTracker()
    inst = _with_scores([0.9, 0.2, 0.75, 0.8], [-1, -1, -1, 5])
    tracker.update(inst)
    assert inst.obj_ids.tolist() == [0, -1, 1, 5] and tracker.next_id == 2
    later = _with_scores([0.95])
    tracker.update(later)
    assert later.obj_ids.tolist() == [2]
    tracker.reset()
    fresh = _with_scores([0.95])
    tracker.update(fresh)
    assert fresh.obj_ids.tolist() == [0]
    with pytest.raises(UsageError, match="filter_score_thresh"):
        RuntimeTracker(score_thresh=0.5, filter_score_thresh=0.6)


def test_slot_layout_token_i_at_row_i_div_128_col_i_mod_128():
    rows = torch.arange(200 * 3, dtype=torch.float32).reshape(200, 3)
    m = slot_map(rows)
    assert m.shape == (1, 3, 2, 128)
    for i in (0, 1, 127, 128, 199):
        assert m[0, :, i // 128, i % 128].tolist() == rows[i].tolist()
    assert m[0, :, 1, 200 - 128:].abs().sum().item() == 0.0  # padding slots are zero
    torch.testing.assert_close(board_tokens(m)[:200], rows)
    board = torch.randn(1, 5, 4, 128)
    tokens = board_tokens(board)
    assert tokens.shape == (512, 5)
    for i in (0, 255, 256, 383, 511):
        assert tokens[i].tolist() == board[0, :, i // 128, i % 128].tolist()
    with pytest.raises(UsageError, match="slot_map"):
        slot_map(torch.zeros(257, 3))


def _tracks(n: int, dim: int = 256) -> TrackInstances:
    t = TrackInstances.empty(n, dim)
    t.obj_ids = torch.arange(n)
    t.query_pos = torch.randn(n, dim)
    t.output_embedding = torch.randn(n, dim)
    t.ref_pts = torch.randn(n, 4)
    return t


def test_graph_inputs_have_the_board_shapes_and_padding():
    tracks = _tracks(130)
    base = track_inputs(tracks)
    assert {k: tuple(v.shape) for k, v in base.items()} == {
        "query_pos": (1, 256, 2, 128), "mask_query": (1, 1, 1, 256), "ref_pts": (1, 4, 2, 128)}
    assert base["mask_query"].sum().item() == 130 and base["mask_query"][0, 0, 0, :130].min().item() == 1.0
    assert base["query_pos"][0, :, 1, 1].tolist() == tracks.query_pos[129].tolist()
    assert base["ref_pts"][0, :, 1, 1].tolist() == tracks.ref_pts[129].tolist()
    assert base["query_pos"][0, :, 1, 2:].abs().sum().item() == 0.0 and base["ref_pts"][0, :, 1, 2:].abs().sum() == 0
    qim = qim_inputs(tracks)
    assert {k: tuple(v.shape) for k, v in qim.items()} == {
        "output_embedding": (1, 1, 256, 256), "query_pos": (1, 1, 256, 256), "mask_query": (1, 1, 1, 256)}
    torch.testing.assert_close(qim["output_embedding"][0, 0, :130], tracks.output_embedding)
    assert qim["query_pos"][0, 0, 130:].abs().sum().item() == 0.0
    # The QIM graph returns (1, C, 1, N): column i is track i's new content query; padding columns are dropped.
    qim_out = torch.randn(1, 256, 1, 256)
    updated = apply_qim_output(tracks, qim_out)
    torch.testing.assert_close(updated.query_pos, qim_out[0, :, 0, :130].t())
    assert updated.obj_ids.tolist() == tracks.obj_ids.tolist()
    empty = track_inputs(TrackInstances.empty(0, 256))
    assert all(v.abs().sum().item() == 0.0 for v in empty.values())
    with pytest.raises(UsageError, match="QIM output"):
        apply_qim_output(tracks, torch.zeros(1, 256, 1, 100))


def test_top_256_cut_keeps_the_best_scored_tracks_in_slot_order():
    gen = torch.Generator().manual_seed(0)
    inst = TrackInstances.empty(400, 8)
    inst.scores = torch.rand(400, generator=gen)
    inst.obj_ids = torch.where(torch.arange(400) % 4 == 3, -1, torch.arange(400))  # 300 tracks, 100 free
    kept = select_active_tracks(inst)
    assert len(kept) == 256
    track_scores = inst.scores[inst.obj_ids >= 0]
    assert kept.scores.min().item() >= track_scores.sort(descending=True).values[255].item()
    assert bool((kept.obj_ids >= 0).all()) and kept.obj_ids.tolist() == sorted(kept.obj_ids.tolist())
    few = select_active_tracks(inst[:40])
    assert few.obj_ids.tolist() == [i for i in range(40) if i % 4 != 3]


def test_reported_boxes_thresholds_and_pixels():
    # Input 800 x 1400 (H x W), resized from the original by 0.5: pixels = normalised * (W, H) / 0.5.
    inst = TrackInstances.empty(6, 4)
    inst.obj_ids = torch.tensor([0, 1, 2, -1, 4, 5])
    inst.scores = torch.tensor([0.9, 0.7, 0.71, 0.99, 0.9, 0.9])
    inst.pred_boxes = torch.tensor([[0.5, 0.5, 0.1, 0.2], [0.5, 0.5, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1],
                                    [0.5, 0.5, 0.1, 0.1],
                                    [0.5, 0.5, 5 / 2800, 10 / 1600],  # 5 x 10 = 50 px^2 in original pixels
                                    [0.5, 0.5, 10 / 2800, 10.5 / 1600]])  # 10 x 10.5 = 105 px^2
    rows = report_tracks(inst, (800, 1400), 0.5)
    assert rows[:, 5].tolist() == [0.0, 2.0, 5.0]  # 0.7 is not > 0.7; free slot and 50 px^2 are dropped
    torch.testing.assert_close(rows[0], torch.tensor([1260.0, 640.0, 1540.0, 960.0, 0.9, 0.0]))
    xy = report_tracks(inst, (800, 1400), (0.5, 0.25))
    torch.testing.assert_close(xy[0, :4], torch.tensor([1260.0, 1280.0, 1540.0, 1920.0]))
    with pytest.raises(UsageError, match="scale_factor"):
        report_tracks(inst, (800, 1400), 0.0)


def _board(detect_logits: dict[int, float], track_logits: dict[int, float], box: float = 0.0):
    classes = torch.full((1, 1, 4, 128), -5.0)
    for i, v in {**detect_logits, **{256 + k: v for k, v in track_logits.items()}}.items():
        classes[0, 0, i // 128, i % 128] = v
    coords = torch.full((1, 4, 4, 128), box)
    hs = torch.arange(512, dtype=torch.float32).reshape(1, 1, 4, 128).expand(1, 8, 4, 128).clone()
    return classes, coords, hs


def test_eval_loop_births_carries_and_kills_tracks():
    post = MotrTrackPostProcess(embed_dim=8)
    detect_query_pos = torch.randn(256, 8)
    inputs = post.next_inputs()
    assert inputs["mask_query"].sum().item() == 0  # the first frame: fake tracks only
    # Frame 1: detect tokens 3 and 200 are confident -> tracks 0 and 1 (slots 0, 1); token 7 at 0.65 is not born.
    report, qim = post.frame(*_board({3: 2.0, 200: 3.0, 7: 0.62}, {}), detect_query_pos, (800, 1422))
    assert report[:, 5].tolist() == [0.0, 1.0]
    assert post.tracks.query_pos.tolist() == detect_query_pos[[3, 200]].tolist()
    torch.testing.assert_close(qim["output_embedding"][0, 0, :2, 0], torch.tensor([3.0, 200.0]))
    qim_out = torch.randn(1, 8, 1, 256)
    inputs = post.next_inputs(qim_out)
    assert inputs["mask_query"][0, 0, 0].tolist()[:3] == [1.0, 1.0, 0.0]
    torch.testing.assert_close(inputs["query_pos"][0, :, 0, 1], qim_out[0, :, 0, 1])
    # Frame 2: track slot 0 (id 0) misses, slot 1 (id 1) stays; the padding slots are ignored even when confident.
    report, qim = post.frame(*_board({}, {0: -1.0, 1: 2.0, 5: 4.0}), detect_query_pos, (800, 1422))
    assert post.tracks.obj_ids.tolist() == [0, 1] and post.tracks.disappear_time.tolist() == [1, 0]
    assert report[:, 5].tolist() == [1.0]
    torch.testing.assert_close(post.tracks.query_pos, qim_out[0, :, 0, :2].t())
    # Four more misses kill track 0; track 1 moves to slot 0.
    for _ in range(4):
        post.next_inputs(torch.randn(1, 8, 1, 256))
        post.frame(*_board({}, {0: -1.0, 1: 2.0}), detect_query_pos, (800, 1422))
    assert post.tracks.obj_ids.tolist() == [1]
    post.reset()
    assert len(post.tracks) == 0 and post.tracker.next_id == 0
    report, qim = post.frame(*_board({}, {}), detect_query_pos, (800, 1422))
    assert qim is None and report.shape == (0, 6)
    with pytest.raises(UsageError, match="at most"):
        frame_instances(*_board({}, {}), detect_query_pos, _tracks(257, 8))


def test_training_instances_keep_the_padding_slots_as_free():
    tracks = _tracks(3, 8)
    inst = frame_instances(*_board({}, {}), torch.zeros(256, 8), tracks, keep_padding=True)
    assert len(inst) == 512
    assert inst.obj_ids[256:259].tolist() == [0, 1, 2] and bool((inst.obj_ids[259:] == -1).all())
    assert inst.query_pos[259:].abs().sum().item() == 0.0


def _training_slots(n_tracks: int, n_free: int, gen: torch.Generator) -> TrackInstances:
    inst = TrackInstances.empty(n_tracks + n_free, 4)
    inst.obj_ids = torch.cat([torch.arange(n_tracks), torch.full((n_free,), -1)])
    inst.iou = torch.cat([0.6 + 0.3 * torch.rand(n_tracks, generator=gen), torch.zeros(n_free)])
    inst.pred_boxes = torch.cat([0.3 + 0.4 * torch.rand(n_tracks + n_free, 2, generator=gen),
                                 torch.full((n_tracks + n_free, 2), 0.1)], 1)
    return inst


def test_training_selection_gates_on_iou():
    inst = TrackInstances.empty(5, 4)
    inst.obj_ids = torch.tensor([0, 1, 2, -1, 3])
    inst.iou = torch.tensor([0.51, 0.5, 0.9, 0.9, 0.2])
    kept = select_training_tracks(inst, random_drop=0.0, fp_ratio=0.0)
    assert kept.obj_ids.tolist() == [0, 2]  # IoU must exceed 0.5; free slots are never active


def test_random_drop_follows_the_seeded_generator():
    inst = _training_slots(1000, 0, torch.Generator().manual_seed(1))
    kept = select_training_tracks(inst, random_drop=0.1, fp_ratio=0.0, generator=torch.Generator().manual_seed(7))
    want = torch.nonzero(torch.rand(1000, generator=torch.Generator().manual_seed(7)) > 0.1).flatten()
    assert kept.obj_ids.tolist() == want.tolist()
    assert 850 < len(kept) < 950
    again = select_training_tracks(inst, random_drop=0.1, fp_ratio=0.0, generator=torch.Generator().manual_seed(7))
    assert again.obj_ids.tolist() == kept.obj_ids.tolist()


def test_fp_insertion_adds_the_best_overlapping_free_slot_once():
    inst = TrackInstances.empty(6, 4)
    inst.obj_ids = torch.tensor([0, 1, 2, -1, -1, -1])
    inst.iou = torch.full((6,), 0.9)
    # Tracks 0 and 1 overlap free slot 4 most, track 2 free slot 5; free slot 3 overlaps nothing.
    inst.pred_boxes = torch.tensor([[0.3, 0.3, 0.1, 0.1], [0.32, 0.3, 0.1, 0.1], [0.7, 0.7, 0.1, 0.1],
                                    [0.1, 0.9, 0.05, 0.05], [0.31, 0.3, 0.1, 0.1], [0.71, 0.7, 0.1, 0.1]])
    every = select_training_tracks(inst, random_drop=0.0, fp_ratio=1.0)
    # 3 draws >= 3 free slots: like the reference, every free slot comes in.
    assert every.obj_ids.tolist() == [0, 1, 2, -1, -1, -1]
    two = select_training_tracks(inst[[0, 1, 3, 4, 5]], random_drop=0.0, fp_ratio=1.0)
    assert two.obj_ids.tolist() == [0, 1, -1]  # tracks 0, 1 both pick free slot 4: deduplicated
    assert two.pred_boxes[2].tolist() == inst.pred_boxes[4].tolist()
    marked = select_training_tracks(inst[[0, 1, 3, 4, 5]], random_drop=0.0, fp_ratio=1.0, mark_fp=True)
    assert marked.obj_ids.tolist() == [0, 1, -2]
    assert inst.obj_ids.tolist() == [0, 1, 2, -1, -1, -1]  # the frame's own slots are untouched


def test_fp_draws_follow_the_seeded_generator():
    gen = torch.Generator().manual_seed(2)
    inst = _training_slots(40, 200, gen)
    out = select_training_tracks(inst, random_drop=0.1, fp_ratio=0.3, generator=torch.Generator().manual_seed(11))
    ref = torch.Generator().manual_seed(11)
    kept = torch.nonzero(torch.rand(40, generator=ref) > 0.1).flatten()
    chosen = kept[torch.rand(len(kept), generator=ref) < 0.3]
    num_tracks = len(kept)
    assert out.obj_ids[:num_tracks].tolist() == kept.tolist()
    fp = out[num_tracks:]
    assert bool((fp.obj_ids == -1).all()) and 1 <= len(fp) <= len(chosen)
    # Each chosen track's best-overlapping free slot is among the inserted ones, each once.
    free_boxes = inst.pred_boxes[40:]
    fp_rows = {tuple(b) for b in fp.pred_boxes.tolist()}
    assert len(fp_rows) == len(fp)
    for t in chosen.tolist():
        # Equal 0.1 x 0.1 boxes: the IoU grows with the intersection (0.1 - |dx|)+ (0.1 - |dy|)+.
        overlap = (0.1 - (free_boxes[:, :2] - inst.pred_boxes[t, :2]).abs()).clamp(min=0).prod(1)
        best = overlap.argmax()
        assert tuple(free_boxes[best].tolist()) in fp_rows
