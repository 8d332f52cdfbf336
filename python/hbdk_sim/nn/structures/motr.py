"""MOTR multi-object tracking: the networks of its two board graphs and the task model around them.

`MotrNet`, the base graph: the image and the track slots' state in, the detections and tracks out.
The image goes through a backbone (its last feature map, stride 32) and a 1x1 input projection to
d_model channels; the decoder's queries are a (4, W) map, rows 0-1 the learned detect queries and
rows 2-3 the track slots (inputs), their reference boxes likewise (learned logits, then the slots'
logits); a track slot takes part only where `mask_query` is 1 (additive -100 masks).

    inputs   img (N, 3, H, W); query_pos (N, C, 2, W) the track slots' content queries;
             mask_query (N, 1, 1, 2 W) 1 for a live slot; ref_pts (N, 4, 2, W) their box logits
    outputs  classes (N, 1, 4, W) logits and boxes (N, 4, 4, W) logits (cx, cy, w, h before the
             sigmoid) of every decoder layer (the board graph, `MotrBaseGraph`, returns the last),
             and hs (N, C, 4, W) the last decoder layer's queries (what QIM and the next frame's
             tracks start from)

`QueryInteraction` (nn/heads/motr_transformer.py) is the second graph. `Motr` is the task model
around both: the training clip loss and the host track lifecycle between the graphs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.nn.heads.motr_transformer import MotrDeformAttn, MotrTransformer, QueryInteraction, QueryPosition
from hbdk_sim.nn.layers.attention import pair_mask
from hbdk_sim.nn.losses.tracking import MotrCriterion, TrackTargets
from hbdk_sim.nn.postprocess.track_instances import TrackInstances
from hbdk_sim.nn.postprocess.tracking import (
    MotrTrackPostProcess,
    apply_qim_output,
    board_tokens,
    frame_instances,
    qim_inputs,
    select_training_tracks,
    track_inputs,
)
from hbdk_sim.nn.structures.base import GraphInput, Runner, TaskModel, as_outputs
from hbdk_sim.quantization import QuantStub
from hbdk_sim.registry import MODELS, build_from_cfg
from hbdk_sim.visualize import draw_boxes


@MODELS.register
class MotrNet(nn.Module):
    """The base graph's network (see the module docstring). `num_queries` detect queries and as many
    track slots, laid out `query_width` per row (two rows each). The transformer reads the
    backbone's last map, at `feature_stride` (the reference's 32; a backbone built with
    `out_strides=[16]` ends at 16, four times the positions), `backbone_channels` wide (None: the
    backbone's `channels[feature_stride]`)."""

    def __init__(self, backbone: nn.Module | Mapping, backbone_channels: int | None = 384,
                 transformer: nn.Module | Mapping | None = None, num_queries: int = 256,
                 query_width: int = 128, deploy_image_size: Sequence[int] | None = None,
                 feature_stride: int = 32) -> None:
        super().__init__()
        if num_queries != 2 * query_width:
            raise UsageError(f"MotrNet: num_queries ({num_queries}) must fill two rows of query_width "
                             f"({query_width})")
        if feature_stride not in (8, 16, 32):
            raise UsageError(f"MotrNet: feature_stride must be 8, 16 or 32 but is {feature_stride}")
        self.backbone = build_from_cfg(backbone, MODELS)
        if backbone_channels is None:  # the backbone's own width at that stride
            backbone_channels = getattr(self.backbone, "channels", {}).get(feature_stride)
            if backbone_channels is None:
                raise UsageError(f"MotrNet: {type(self.backbone).__name__} does not say its width at stride "
                                 f"{feature_stride}; give backbone_channels")
        # The backbone's last map is at `feature_stride` (each stride-2 conv pads k // 2: ceil(size / 2)).
        self.feature_stride = feature_stride
        self.deploy_image_size = None if deploy_image_size is None else tuple(int(s) for s in deploy_image_size)
        feature_size = None if deploy_image_size is None else \
            [-(-int(s) // feature_stride) for s in deploy_image_size]
        self.transformer = transformer if isinstance(transformer, nn.Module) else \
            MotrTransformer(**{"feature_size": feature_size, **dict(transformer or {})})
        d = self.transformer.d_model
        self.input_proj = nn.Conv2d(backbone_channels, d, 1)
        nn.init.xavier_uniform_(self.input_proj.weight)
        nn.init.zeros_(self.input_proj.bias)
        self.query_embed = nn.Embedding(num_queries, d)
        self.refpoint_embed = nn.Embedding(num_queries, 4)
        self.num_queries, self.query_width = num_queries, query_width
        self.register_buffer("detect_valid", torch.ones(1, num_queries), persistent=False)  # detect queries: all live
        # The learned queries and boxes and the detect queries' mask enter the graph through stubs.
        self.query_stub, self.refpoint_stub, self.valid_stub = QuantStub(), QuantStub(), QuantStub()

    @property
    def d_model(self) -> int:
        return self.transformer.d_model

    def empty_tracks(self, batch: int = 1, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """The track inputs of a first frame: every slot padding."""
        d, w = self.d_model, self.query_width
        return {"query_pos": torch.zeros(batch, d, 2, w, device=device),
                "mask_query": torch.zeros(batch, 1, 1, 2 * w, device=device),
                "ref_pts": torch.zeros(batch, 4, 2, w, device=device)}

    def _check(self, img: torch.Tensor, query_pos: torch.Tensor, mask_query: torch.Tensor,
               ref_pts: torch.Tensor) -> None:
        n, d, w = img.shape[0], self.d_model, self.query_width
        want = {"query_pos": (n, d, 2, w), "mask_query": (n, 1, 1, 2 * w), "ref_pts": (n, 4, 2, w)}
        for name, t in (("query_pos", query_pos), ("mask_query", mask_query), ("ref_pts", ref_pts)):
            if tuple(t.shape) != want[name]:
                raise UsageError(f"MotrNet: {name} must be {want[name]} but is {tuple(t.shape)}")
        if n != 1:
            raise UsageError(f"MotrNet: one frame at a time (the track state is per sequence), got a batch of {n}; "
                             "set the data loader's batch size to 1")

    def forward(self, img: torch.Tensor, query_pos: torch.Tensor, mask_query: torch.Tensor, ref_pts: torch.Tensor
                ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        if not is_fx_symbolic_tracing():  # a traced graph has its input shapes fixed by the tracer
            self._check(img, query_pos, mask_query, ref_pts)
        src = self.input_proj(self.backbone(img)[-1])
        d, w = self.d_model, self.query_width
        queries = self.query_stub(self.query_embed.weight).transpose(0, 1).reshape(1, d, 2, w)
        boxes = self.refpoint_stub(self.refpoint_embed.weight).transpose(0, 1).reshape(1, 4, 2, w)
        tgt = torch.cat((queries, query_pos), dim=2)
        ref_logits = torch.cat((boxes, ref_pts), dim=2)
        slots = mask_query.reshape(1, -1)
        mask = pair_mask(torch.cat((self.valid_stub(self.detect_valid), slots), dim=1))
        return self.transformer(src, tgt, ref_logits, mask, pair_mask(slots))


class MotrBaseGraph(nn.Module):
    """The base board graph over the network (a MotrNet, or its graph-mode preparation): img,
    query_pos, mask_query, ref_pts in; the last decoder layer's classes and boxes, and hs out (the
    auxiliary layers' heads are dead code the tracer drops)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, img: torch.Tensor, query_pos: torch.Tensor, mask_query: torch.Tensor, ref_pts: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        classes, boxes, hs = self.network(img, query_pos, mask_query, ref_pts)
        return classes[-1], boxes[-1], hs


@MODELS.register
class Motr(TaskModel):
    """MOTR tracking through the task contract: two board graphs, "base" (MotrNet) and "qim"
    (QueryInteraction), and the host track lifecycle between them (MotrTrackPostProcess).

    Training, `forward(clip)` (or a list of clips: their mean loss): a clip is a list of frame samples
    (`img` (3, H, W), `gt_boxes` (G, 4) xyxy input pixels, `gt_track_ids` (G,)); the frames run in
    order, each matched and priced by MotrCriterion (the last layer and the auxiliary ones), the
    tracks it carries chosen by `select_training_tracks` (IoU > 0.5, random drop, false-positive
    insertion) and their queries updated by QIM for the next frame; the loss dict is the clip's,
    normalised.

    Eval, `predict(batch, runners)`: one frame (batch of 1: `img`, `sequence`, `frame`, and
    `scale_factor`); a new sequence resets the tracks. Returns `{"tracks": [(K, 6) rows (x1, y1,
    x2, y2, score, track id) in original pixels]}`, what MotMetric reads. Eval on clips (a clip or a
    batch of them, collate="clips"; what calibration forwards) tracks each clip as a sequence of its
    own, so that both graphs see what they see on the board.

    Quantization (`int16=True`, the reference's choices): the transformer, the learned queries' and
    boxes' stubs and QIM at si16, except the deformable attention's value and output projections
    and the box position embedding's sin/cos tables (si8); the backbone, the input projection and
    the detect queries' mask at si8 (`int16_outputs`, `int8_outputs`, which the stages' prepare
    converters read).
    """

    visual_names = ("tracks",)

    def __init__(self, network: nn.Module | Mapping, qim: nn.Module | Mapping | None = None,
                 criterion: nn.Module | Mapping | None = None, random_drop: float = 0.1, fp_ratio: float = 0.3,
                 score_thresh: float = 0.7, filter_score_thresh: float = 0.6, miss_tolerance: int = 5,
                 prob_threshold: float = 0.7, area_threshold: float = 100.0, image_key: str = "img",
                 int16: bool = True) -> None:
        super().__init__()
        self.int16 = int16
        self.network = build_from_cfg(network, MODELS)
        # The sizes, read once: graph-mode preparation replaces the network by a GraphModule.
        self.d_model, self.num_queries, self.query_width = (self.network.d_model, self.network.num_queries,
                                                            self.network.query_width)
        d = self.d_model
        self.qim = qim if isinstance(qim, nn.Module) else QueryInteraction(d, **dict(qim or {}))
        self.criterion = criterion if isinstance(criterion, nn.Module) else MotrCriterion(**dict(criterion or {}))
        self.random_drop, self.fp_ratio, self.image_key = random_drop, fp_ratio, image_key
        self.post = MotrTrackPostProcess(self.num_queries, area_threshold, prob_threshold, score_thresh,
                                         filter_score_thresh, miss_tolerance, d, self.query_width,
                                         num_slots=self.num_queries)
        self._sequence: str | None = None
        self._inputs: dict[str, torch.Tensor] | None = None

    # ---- quantization --------------------------------------------------------------------------------

    @property
    def int16_outputs(self) -> tuple[str, ...]:
        if not self.int16:
            return ()
        mlps = [f"{n}.mlp" for n, m in self.named_modules() if isinstance(m, QueryPosition)]
        return ("network.query_stub", "network.refpoint_stub", "network.transformer", "qim", *mlps)

    @property
    def int8_outputs(self) -> tuple[str, ...]:
        if not self.int16:
            return ()
        names = [f"{n}.{proj}" for n, m in self.named_modules() if isinstance(m, MotrDeformAttn)
                 for proj in ("value_proj", "output_proj")]
        return (*names, *(n for n, m in self.named_modules() if isinstance(m, QueryPosition)))

    # ---- the task contract -------------------------------------------------------------------------

    def board_modules(self) -> dict[str, nn.Module]:
        # The view takes the network's mode, so that a tool restoring the mode after tracing keeps it.
        return {"base": MotrBaseGraph(self.network).train(self.network.training), "qim": self.qim}

    def graph_mode_parts(self, input_shape: Sequence[int]) -> dict[str, tuple[GraphInput, ...]]:
        # The whole network (every decoder layer's heads, for the training losses) and QIM.
        inputs = self.board_inputs(input_shape)
        return {"network": inputs["base"], "qim": inputs["qim"]}

    def board_inputs(self, input_shape: Sequence[int]) -> dict[str, tuple[GraphInput, ...]]:
        d, w = self.d_model, self.query_width
        slots, n = 2 * w, int(input_shape[0])  # n is 1 on the board; the network refuses another batch
        return {
            "base": (GraphInput("img", tuple(int(s) for s in input_shape)), GraphInput("query_pos", (n, d, 2, w)),
                     GraphInput("mask_query", (n, 1, 1, slots), value_range=(0, 1)),
                     GraphInput("ref_pts", (n, 4, 2, w), value_range=(-3.0, 3.0))),
            "qim": (GraphInput("output_embedding", (n, 1, slots, d)), GraphInput("query_pos", (n, 1, slots, d)),
                    GraphInput("mask_query", (n, 1, 1, slots), value_range=(0, 1))),
        }

    def predict(self, batch: Mapping[str, Any], runners: Mapping[str, Runner]) -> dict[str, Any]:
        img = batch[self.image_key]
        if not isinstance(img, torch.Tensor) or img.dim() != 4 or img.shape[0] != 1:
            got = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise UsageError(f"Motr: predict takes one frame at a time, an image (1, 3, H, W), but got {got}; set the "
                             "validation batch size to 1")
        sequence = batch.get("sequence")
        sequence = sequence[0] if isinstance(sequence, list | tuple) else sequence
        if self._inputs is None or sequence != self._sequence:
            self.post.reset()
            self._sequence = sequence
            self._inputs = self.post.next_inputs()
        inputs = {k: v.to(img.device) for k, v in self._inputs.items()}
        classes, boxes, hs = runners["base"](img, inputs["query_pos"], inputs["mask_query"], inputs["ref_pts"])
        scale = batch.get("scale_factor")
        scale = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)[:2] if scale is not None else 1.0
        rows, qim_in = self.post.frame(classes, boxes, hs, self.network.query_embed.weight.detach(),
                                       img.shape[-2:], scale)
        qim_out = None
        if qim_in is not None:
            (qim_out,) = as_outputs(runners["qim"](qim_in["output_embedding"], qim_in["query_pos"],
                                                   qim_in["mask_query"]))
        self._inputs = self.post.next_inputs(qim_out)
        return {"tracks": [rows]}

    def visualize(self, image: np.ndarray, prediction: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """"tracks": the tracked boxes over the original image, labelled with their ids."""
        rows = np.asarray(prediction["tracks"], np.float64).reshape(-1, 6)
        ids = rows[:, 5].astype(np.int64)
        return {"tracks": draw_boxes(image, rows[:, :4], [f"id {i}" for i in ids], ids)}

    # ---- training ----------------------------------------------------------------------------------

    def forward(self, batch: Any) -> Any:
        if not self.training:
            if isinstance(batch, Mapping):
                return self.predict(batch, self.board_runners())
            return self._predict_clips(batch)
        if _is_clip_batch(batch):  # a batch of clips: their mean loss
            clips = [self._clip_losses(clip) for clip in batch]
            return {k: sum(c[k] for c in clips) / len(clips) for k in clips[0]}
        return self._clip_losses(batch)

    def _predict_clips(self, batch: Any) -> list[list[dict[str, Any]]]:
        """Eval on clips (a clip or a list of clips, e.g. calibration's): each clip tracked from empty
        slots, frame after frame, as a sequence of its own; the predictions per clip and frame."""
        clips = list(batch) if _is_clip_batch(batch) else [batch]
        runners = self.board_runners()
        out = []
        for clip in clips:
            _check_clip(clip)
            self._inputs = None  # a new sequence
            frames = []
            for t, frame in enumerate(clip):
                img = torch.as_tensor(frame[self.image_key])
                frames.append(self.predict({self.image_key: img[None] if img.dim() == 3 else img, "frame": t + 1,
                                            "scale_factor": frame.get("scale_factor")}, runners))
            out.append(frames)
        self._inputs = None
        return out

    def _clip_losses(self, batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        _check_clip(batch)
        device = self.network.query_embed.weight.device
        detect_query_pos = self.network.query_embed.weight
        tracks: TrackInstances | None = None
        frames = []
        for i, sample in enumerate(batch):
            img = torch.as_tensor(sample[self.image_key]).to(device)
            img = img[None] if img.dim() == 3 else img
            inputs = track_inputs(tracks if tracks is not None else TrackInstances.empty(0, self.d_model,
                                                                                          device=device),
                                  2 * self.query_width, self.query_width)
            classes, boxes, hs = self.network(img, inputs["query_pos"].to(device), inputs["mask_query"].to(device),
                                              inputs["ref_pts"].to(device))
            slots = frame_instances(classes[-1], boxes[-1], hs, detect_query_pos, tracks, keep_padding=True)
            aux = [(board_tokens(c), board_tokens(b).sigmoid()) for c, b in zip(classes[:-1], boxes[:-1], strict=True)]
            targets = TrackTargets.from_xyxy(torch.as_tensor(sample["gt_boxes"], dtype=torch.float32, device=device),
                                             torch.as_tensor(sample["gt_track_ids"], device=device), img.shape[-2:])
            frames.append(self.criterion.match_for_single_frame(i, slots, targets, aux))
            if i + 1 < len(batch):
                tracks = select_training_tracks(slots, random_drop=self.random_drop, fp_ratio=self.fp_ratio)
                if len(tracks):
                    qim_in = qim_inputs(tracks, 2 * self.query_width)
                    tracks = apply_qim_output(tracks, self.qim(qim_in["output_embedding"], qim_in["query_pos"],
                                                               qim_in["mask_query"]))
        return self.criterion(frames)


def _is_clip_batch(batch: Any) -> bool:
    """A list of clips (collate="clips"), not one clip (a list of frame dicts)."""
    return isinstance(batch, Sequence) and not isinstance(batch, Mapping) and bool(batch) and \
        isinstance(batch[0], Sequence) and not isinstance(batch[0], Mapping)


def _check_clip(clip: Any) -> None:
    if isinstance(clip, Mapping) or not isinstance(clip, Sequence) or not clip or \
            not all(isinstance(f, Mapping) for f in clip):
        raise UsageTypeError("Motr: training and eval on clips take a clip, a non-empty list of frame samples "
                             "(ClipDataset's items), or a list of clips (collate='clips')")
