"""The per-slot state of the MOTR tracker (task_models.md §4.2, §4.5, §4.6): one row per query slot
of a frame, shared by the training criterion (which matches slots to gts and assigns ids) and the
host-side tracker (which gives birth to and kills tracks and builds the next frame's inputs)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import torch

from hbdk_sim.errors import UsageError

FREE_SLOT = -1  # obj_ids of a slot that holds no track: a detect query, a padding slot, a dead track


@dataclass
class TrackInstances:
    """N query slots of one frame, every field a tensor whose first dimension is N.

    obj_ids           (N,) long: the track id a slot carries, FREE_SLOT (-1) if none. In training the
                      criterion gives a slot matched to a new gt that gt's id; at eval the tracker
                      gives a confident free slot a fresh id. Training may mark a false-positive slot
                      -2 (`select_training_tracks(mark_fp=True)`): neither a track nor free.
    matched_gt_idx    (N,) long: index of the gt this frame matched to the slot, -1 if none (training).
    scores            (N,) float: sigmoid of the slot's largest class logit this frame.
    disappear_time    (N,) long: frames in a row a live track scored below the filter threshold (eval).
    pred_logits       (N, C) float: class logits of the last decoder layer.
    pred_boxes        (N, 4) float: predicted box, normalised (cx, cy, w, h) in [0, 1] (after sigmoid).
    query_pos         (N, D) float: the content query the slot carries into the query interaction
                      (QIM) and, once QIM has updated it, into the next frame's decoder.
    ref_pts           (N, 4) float: box logits (cx, cy, w, h before sigmoid) of this frame's prediction,
                      the slot's reference point in the next frame.
    output_embedding  (N, D) float: the last decoder layer's embedding of the slot (the QIM input).
    iou               (N,) float: IoU of pred_boxes with the matched gt (training; 0 until matched).
    """

    obj_ids: torch.Tensor
    matched_gt_idx: torch.Tensor
    scores: torch.Tensor
    disappear_time: torch.Tensor
    pred_logits: torch.Tensor
    pred_boxes: torch.Tensor
    query_pos: torch.Tensor
    ref_pts: torch.Tensor
    output_embedding: torch.Tensor
    iou: torch.Tensor

    def __post_init__(self) -> None:
        sizes = {f.name: tuple(getattr(self, f.name).shape) for f in fields(self)}
        n = sizes["obj_ids"][0] if sizes["obj_ids"] else -1
        bad = [name for name, shape in sizes.items()
               if not shape or shape[0] != n or (name in _VECTORS) != (len(shape) == 1)
               or (name in _BOXES and shape[1:] != (4,))]
        if bad:
            raise UsageError(f"TrackInstances: every field must have one row per slot ((N,) ids/scores, (N, 4) boxes, "
                             f"(N, K) features) but got {sizes}")

    @classmethod
    def empty(cls, num_slots: int, embed_dim: int = 256, num_classes: int = 1,
              device: torch.device | str | None = None) -> TrackInstances:
        """`num_slots` free slots: ids and matches -1, every other field 0."""
        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(num_slots, *shape, device=device)

        minus_one = torch.full((num_slots,), FREE_SLOT, dtype=torch.long, device=device)
        return cls(obj_ids=minus_one, matched_gt_idx=minus_one.clone(), scores=zeros(),
                   disappear_time=torch.zeros(num_slots, dtype=torch.long, device=device),
                   pred_logits=zeros(num_classes), pred_boxes=zeros(4), query_pos=zeros(embed_dim), ref_pts=zeros(4),
                   output_embedding=zeros(embed_dim), iou=zeros())

    @classmethod
    def cat(cls, parts: Sequence[TrackInstances]) -> TrackInstances:
        """The slots of `parts`, one after the other."""
        if not parts:
            raise UsageError("TrackInstances.cat: expected at least one TrackInstances")
        return cls(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def __len__(self) -> int:
        return int(self.obj_ids.shape[0])

    def __getitem__(self, index: torch.Tensor | slice | Sequence[int]) -> TrackInstances:
        """The slots picked by a bool mask, an index tensor or list (a copy) or a slice (views)."""
        if isinstance(index, int):
            raise UsageError("TrackInstances: index with a slice, mask or index list, not an int, to keep the rows")
        return type(self)(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def clone(self) -> TrackInstances:
        return type(self)(**{f.name: getattr(self, f.name).clone() for f in fields(self)})

    def detach(self) -> TrackInstances:
        """The same slots cut from the autograd graph (what a frame passes on to the next)."""
        return type(self)(**{f.name: getattr(self, f.name).detach() for f in fields(self)})


_VECTORS = frozenset({"obj_ids", "matched_gt_idx", "scores", "disappear_time", "iou"})
_BOXES = frozenset({"pred_boxes", "ref_pts"})
