"""MOTR's host code between the two board graphs (task_models.md §4.1, §4.2, §4.5): reading a
frame's decoder outputs into slots, the track lifecycle, the selection and padding of the tracks
carried to the next frame, the inputs of the QIM and base graphs, the reported boxes, and the
training-time track selection (random drop, false-positive insertion).

Board layout: the decoder sees its 512 queries as a C x 4 x 128 map, token i at (row i // 128,
column i % 128); the first 256 are the detect queries (rows 0-1), the last 256 the track slots (rows
2-3), live tracks packed first, then padding (query_pos 0, ref_pts 0, mask 0). The base graph's
track inputs are C x 2 x 128 maps of the 256 slots (same rule); the QIM graph takes (1, 1, 256, C)
rows and returns (1, C, 1, 256).

Eval, per frame (`MotrTrackPostProcess.frame`):
  1. slots = the detect tokens and the live track slots (padding dropped), score = sigmoid of the
     largest class logit;
  2. `RuntimeTracker.update`: births, misses and deaths;
  3. tracks = slots with obj_id >= 0, the 256 best scored if more (kept in slot order);
  4. reported: tracks with score > 0.7 and box area > 100 px in original pixels;
  5. QIM updates the tracks' content queries (when there is at least one), which become the next
     frame's track slots.

Decisions on the reference's quirks (task_models.md §8):
  * the id counter restarts at 0 with every sequence (`reset`); HAT's never resets. Ids are scored
    per sequence, so MOTA and IDF1 are unchanged, while a sequence's ids no longer depend on which
    sequences the same process (rank) evaluated before it;
  * false-positive slots inserted in training keep obj_id -1 by default, as in HAT (the published
    model was trained so): they stay free slots that new objects may be matched to.
    `mark_fp=True` marks them -2 as the reference's comment intends: neither a track nor free, so
    the criterion only teaches them background.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hbdk_sim.errors import UsageError
from hbdk_sim.nn.postprocess.boxes import box_cxcywh_to_xyxy, pairwise_iou_and_giou
from hbdk_sim.nn.postprocess.track_instances import FREE_SLOT, TrackInstances

NUM_TRACK_SLOTS = 256  # track slots of the base graph (and rows of the QIM graph)
ROW_WIDTH = 128  # tokens per row of the decoder's 2-D query map
FP_SLOT = -2  # obj_ids of an inserted false-positive slot when `mark_fp`


def board_tokens(x: torch.Tensor) -> torch.Tensor:
    """A (1, K, R, W) board map -> (R * W, K) rows, token i from (i // W, i % W)."""
    if x.dim() != 4 or x.shape[0] != 1:
        raise UsageError(f"board_tokens: expected a (1, K, R, W) map but got {tuple(x.shape)}")
    return x[0].reshape(x.shape[1], -1).t()


def slot_map(rows: torch.Tensor, num_slots: int = NUM_TRACK_SLOTS, row_width: int = ROW_WIDTH) -> torch.Tensor:
    """(n, K) slot rows, n <= num_slots -> the (1, K, num_slots // row_width, row_width) board map,
    slot i at (i // row_width, i % row_width), slots n.. zero (the inverse of `board_tokens`)."""
    if rows.dim() != 2 or rows.shape[0] > num_slots or num_slots % row_width:
        raise UsageError(f"slot_map: expected (n <= {num_slots}, K) rows and num_slots a multiple of {row_width} "
                         f"but got {tuple(rows.shape)}")
    padded = rows.new_zeros(num_slots, rows.shape[1])
    padded[: rows.shape[0]] = rows
    return padded.t().reshape(1, rows.shape[1], num_slots // row_width, row_width)


def slot_mask(num_live: int, num_slots: int = NUM_TRACK_SLOTS, device: torch.device | str | None = None
              ) -> torch.Tensor:
    """`mask_query` (1, 1, 1, num_slots): 1 for the first `num_live` slots, 0 for the padding."""
    mask = torch.zeros(1, 1, 1, num_slots, device=device)
    mask[..., :num_live] = 1.0
    return mask


def frame_instances(classes: torch.Tensor, coords: torch.Tensor, hs: torch.Tensor, detect_query_pos: torch.Tensor,
                    tracks: TrackInstances | None = None, *, keep_padding: bool = False) -> TrackInstances:
    """The slots of one frame from the decoder's last layer: class logits `classes` (1, C, R, W), box
    logits `coords` (1, 4, R, W), embeddings `hs` (1, D, R, W); the first Q tokens are the detect
    queries, whose content queries are `detect_query_pos` (Q, D), the rest the track slots, fed
    with `tracks` (their n live tracks packed first; None for none). The slots keep the tracks' ids,
    disappear times and content queries; the detect slots are free. The padding slots are dropped
    (eval) or, with `keep_padding` (training), kept as free slots with query_pos 0."""
    logits, box_logits, embedding = board_tokens(classes), board_tokens(coords), board_tokens(hs)
    total, dim = logits.shape[0], embedding.shape[1]
    num_detect = detect_query_pos.shape[0]
    num_live = 0 if tracks is None else len(tracks)
    if (box_logits.shape != (total, 4) or embedding.shape[0] != total or detect_query_pos.shape != (num_detect, dim)
            or num_detect + num_live > total):
        raise UsageError(f"frame_instances: expected classes (1, C, R, W), coords (1, 4, R, W), hs (1, D, R, W), "
                         f"detect_query_pos (Q, D) and at most R*W - Q tracks but got {tuple(classes.shape)}, "
                         f"{tuple(coords.shape)}, {tuple(hs.shape)}, {tuple(detect_query_pos.shape)}, "
                         f"{num_live} tracks")
    keep = total if keep_padding else num_detect + num_live
    out = TrackInstances.empty(keep, dim, logits.shape[1], logits.device)
    out.pred_logits, out.ref_pts, out.output_embedding = logits[:keep], box_logits[:keep], embedding[:keep]
    out.pred_boxes = box_logits[:keep].sigmoid()
    out.scores = logits[:keep].sigmoid().max(1).values
    out.query_pos = out.query_pos.to(detect_query_pos.dtype)
    out.query_pos[:num_detect] = detect_query_pos
    if tracks is not None and num_live:
        live = slice(num_detect, num_detect + num_live)
        out.query_pos[live] = tracks.query_pos
        out.obj_ids[live] = tracks.obj_ids
        out.disappear_time[live] = tracks.disappear_time
        out.iou[live] = tracks.iou
    return out


class RuntimeTracker:
    """The eval-time track lifecycle of one sequence (HAT's `RuntimeTrackerBase`). `update`, per
    frame, in slot order:
      * disappear_time = 0 where score >= score_thresh;
      * a free slot (obj_id -1) with score >= score_thresh is born: it takes the next id;
      * a live track (obj_id >= 0) with score < filter_score_thresh misses: disappear_time + 1, and
        at miss_tolerance it dies (obj_id -1).
    A track scoring in [filter_score_thresh, score_thresh) neither misses nor resets its misses, and
    a free slot there is not born. The id counter starts at 0 and `reset` (a new sequence) restarts it."""

    def __init__(self, score_thresh: float = 0.7, filter_score_thresh: float = 0.6, miss_tolerance: int = 5) -> None:
        if not 0 <= filter_score_thresh <= score_thresh <= 1 or miss_tolerance < 1:
            raise UsageError(f"RuntimeTracker: expected 0 <= filter_score_thresh <= score_thresh <= 1 and "
                             f"miss_tolerance >= 1 but got {filter_score_thresh}, {score_thresh}, {miss_tolerance}")
        self.score_thresh, self.filter_score_thresh = float(score_thresh), float(filter_score_thresh)
        self.miss_tolerance = int(miss_tolerance)
        self.next_id = 0

    def reset(self) -> None:
        self.next_id = 0

    def update(self, instances: TrackInstances) -> None:
        """Births, misses and deaths of one frame's slots, in place (obj_ids, disappear_time)."""
        scores, ids = instances.scores, instances.obj_ids
        confident = scores >= self.score_thresh
        instances.disappear_time[confident] = 0
        born = (ids == FREE_SLOT) & confident
        num_born = int(born.sum())
        ids[born] = torch.arange(self.next_id, self.next_id + num_born, dtype=ids.dtype, device=ids.device)
        self.next_id += num_born
        missed = (ids >= 0) & (scores < self.filter_score_thresh)
        instances.disappear_time[missed] += 1
        ids[missed & (instances.disappear_time >= self.miss_tolerance)] = FREE_SLOT


def select_active_tracks(instances: TrackInstances, max_track: int = NUM_TRACK_SLOTS) -> TrackInstances:
    """The slots holding a track (obj_id >= 0); if more than `max_track`, the `max_track` best
    scored. The kept slots stay in their order (the decoder does not depend on a slot's position)."""
    index = torch.nonzero(instances.obj_ids >= 0).flatten()
    if len(index) > max_track:
        index = index[instances.scores[index].topk(max_track).indices].sort().values
    return instances[index]


def qim_inputs(tracks: TrackInstances, num_slots: int = NUM_TRACK_SLOTS) -> dict[str, torch.Tensor]:
    """The QIM graph's inputs for `tracks` (<= num_slots): `output_embedding` and `query_pos`
    (1, 1, num_slots, D), one row per track then zero rows, and `mask_query` (1, 1, 1, num_slots)."""
    if len(tracks) > num_slots:
        raise UsageError(f"qim_inputs: at most {num_slots} tracks fit the QIM graph but got {len(tracks)}")

    def rows(x: torch.Tensor) -> torch.Tensor:
        padded = x.new_zeros(num_slots, x.shape[1])
        padded[: len(tracks)] = x
        return padded.reshape(1, 1, num_slots, x.shape[1])

    return {"output_embedding": rows(tracks.output_embedding), "query_pos": rows(tracks.query_pos),
            "mask_query": slot_mask(len(tracks), num_slots, tracks.obj_ids.device)}


def apply_qim_output(tracks: TrackInstances, qim_query_pos: torch.Tensor) -> TrackInstances:
    """`tracks` with the content queries the QIM graph returned, (1, D, 1, S) with track i in column
    i; the columns past the tracks (padding) are dropped."""
    dim = tracks.query_pos.shape[1]
    if qim_query_pos.dim() != 4 or qim_query_pos.shape[:3] != (1, dim, 1) or qim_query_pos.shape[3] < len(tracks):
        raise UsageError(f"apply_qim_output: expected the QIM output (1, {dim}, 1, S >= {len(tracks)}) but got "
                         f"{tuple(qim_query_pos.shape)}")
    out = tracks.clone()
    out.query_pos = qim_query_pos[0, :, 0, : len(tracks)].t().to(tracks.query_pos.dtype).clone()
    return out


def track_inputs(tracks: TrackInstances, num_slots: int = NUM_TRACK_SLOTS,
                 row_width: int = ROW_WIDTH) -> dict[str, torch.Tensor]:
    """The base graph's track-slot inputs for `tracks` (<= num_slots, packed first, then padding):
    `query_pos` (1, D, num_slots // row_width, row_width) content queries, `ref_pts` (1, 4, ...,
    row_width) box logits, slot i at (i // row_width, i % row_width), and `mask_query` (1, 1, 1,
    num_slots). No tracks gives the all-zero inputs of the first frame."""
    return {"query_pos": slot_map(tracks.query_pos, num_slots, row_width),
            "mask_query": slot_mask(len(tracks), num_slots, tracks.obj_ids.device),
            "ref_pts": slot_map(tracks.ref_pts, num_slots, row_width)}


def report_tracks(tracks: TrackInstances, input_size: Sequence[int], scale_factor: float | Sequence[float] = 1.0,
                  prob_threshold: float = 0.7, area_threshold: float = 100.0) -> torch.Tensor:
    """(K, 6) rows (x1, y1, x2, y2, score, track id) in original pixels of the tracks (obj_id >= 0)
    with score > prob_threshold and area > area_threshold px: the normalised boxes times the
    network input's (W, H) of `input_size` (H, W), divided by `scale_factor` (one factor, or (x, y))."""
    height, width = float(input_size[0]), float(input_size[1])
    device = tracks.pred_boxes.device
    factor = torch.as_tensor(scale_factor, dtype=torch.float32, device=device).reshape(-1)
    if factor.numel() not in (1, 2) or bool((factor <= 0).any()):
        raise UsageError(f"report_tracks: expected a positive scale_factor or (x, y) pair but got {scale_factor}")
    sx, sy = (factor[0], factor[0]) if factor.numel() == 1 else (factor[0], factor[1])
    scale = torch.stack([width / sx, height / sy, width / sx, height / sy])
    boxes = box_cxcywh_to_xyxy(tracks.pred_boxes.float()) * scale
    area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    keep = (tracks.obj_ids >= 0) & (tracks.scores > prob_threshold) & (area > area_threshold)
    return torch.cat([boxes[keep], tracks.scores[keep, None].float(), tracks.obj_ids[keep, None].float()], 1)


def select_training_tracks(instances: TrackInstances, *, iou_threshold: float = 0.5, random_drop: float = 0.1,
                           fp_ratio: float = 0.3, mark_fp: bool = False,
                           generator: torch.Generator | None = None) -> TrackInstances:
    """The slots a training frame carries to the next (after `MotrCriterion.match_for_single_frame`
    set obj_ids and iou):
      1. active = obj_id >= 0 and IoU(pred, matched gt) > iou_threshold;
      2. each active slot is dropped with probability `random_drop`;
      3. each kept slot, with probability `fp_ratio`, brings in the inactive slot (obj_id < 0) of
         highest IoU with it, each such slot once; when as many are drawn as there are inactive
         slots, all inactive slots come in. They follow the kept tracks, with obj_id -1, or -2
         when `mark_fp` (see the file header).
    The draws (drop, then FP, one uniform number per slot each) come from `generator` (CPU)."""
    if not 0 <= random_drop <= 1 or not 0 <= fp_ratio <= 1:
        raise UsageError(f"select_training_tracks: expected probabilities in [0, 1] but got random_drop={random_drop}, "
                         f"fp_ratio={fp_ratio}")
    device = instances.obj_ids.device
    active = instances[(instances.obj_ids >= 0) & (instances.iou > iou_threshold)]
    if random_drop > 0 and len(active):
        active = active[(torch.rand(len(active), generator=generator) > random_drop).to(device)]
    if fp_ratio <= 0 or not len(active):
        return active
    chosen = active[(torch.rand(len(active), generator=generator) < fp_ratio).to(device)]
    inactive = instances[instances.obj_ids < 0]
    if not len(chosen) or not len(inactive):
        return active
    if len(chosen) >= len(inactive):
        fp = inactive.clone()
    else:
        iou = pairwise_iou_and_giou(box_cxcywh_to_xyxy(inactive.pred_boxes.detach().float()),
                                    box_cxcywh_to_xyxy(chosen.pred_boxes.detach().float()))[0]
        fp = inactive[torch.unique(iou.argmax(0))]
    if mark_fp:
        fp.obj_ids = torch.full_like(fp.obj_ids, FP_SLOT)
    return TrackInstances.cat([active, fp])


class MotrTrackPostProcess:
    """The eval post-process of one process, sequence after sequence (see the file header): `reset`
    at a new sequence, then per frame `frame` (reported boxes and the QIM inputs, None when there is
    no track) and `next_inputs` (the next frame's track-slot inputs of the base graph)."""

    def __init__(self, max_track: int = NUM_TRACK_SLOTS, area_threshold: float = 100.0, prob_threshold: float = 0.7,
                 score_thresh: float = 0.7, filter_score_thresh: float = 0.6, miss_tolerance: int = 5,
                 embed_dim: int = 256, row_width: int = ROW_WIDTH, num_slots: int = NUM_TRACK_SLOTS) -> None:
        if not 1 <= max_track <= num_slots:
            raise UsageError(f"MotrTrackPostProcess: max_track must lie in 1..{num_slots} but got {max_track}")
        if num_slots % row_width:
            raise UsageError(f"MotrTrackPostProcess: num_slots {num_slots} must fill whole rows of {row_width}")
        self.num_slots = int(num_slots)
        self.max_track, self.area_threshold, self.prob_threshold = int(max_track), area_threshold, prob_threshold
        self.embed_dim, self.row_width = int(embed_dim), int(row_width)
        self.tracker = RuntimeTracker(score_thresh, filter_score_thresh, miss_tolerance)
        self.tracks = TrackInstances.empty(0, self.embed_dim)

    def reset(self) -> None:
        """A new sequence: no tracks (the first frame's inputs are all zero), ids from 0 again."""
        self.tracker.reset()
        self.tracks = TrackInstances.empty(0, self.embed_dim)

    def frame(self, classes: torch.Tensor, coords: torch.Tensor, hs: torch.Tensor, detect_query_pos: torch.Tensor,
              input_size: Sequence[int], scale_factor: float | Sequence[float] = 1.0
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """One frame's base-graph outputs (see `frame_instances`) -> the reported (K, 6) rows (see
        `report_tracks`) and the QIM graph's inputs, None when no track is alive."""
        slots = frame_instances(classes, coords, hs, detect_query_pos, self.tracks.detach())
        self.tracker.update(slots)
        self.tracks = select_active_tracks(slots, self.max_track)
        report = report_tracks(self.tracks, input_size, scale_factor, self.prob_threshold, self.area_threshold)
        return report, (qim_inputs(self.tracks, self.num_slots) if len(self.tracks) else None)

    def next_inputs(self, qim_query_pos: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The next frame's `query_pos`, `mask_query` and `ref_pts`; `qim_query_pos` is the QIM
        graph's output, required when `frame` returned QIM inputs."""
        if len(self.tracks):
            if qim_query_pos is None:
                raise UsageError("MotrTrackPostProcess: run the QIM graph on the tracks and pass its output")
            self.tracks = apply_qim_output(self.tracks, qim_query_pos)
        return track_inputs(self.tracks, self.num_slots, self.row_width)
