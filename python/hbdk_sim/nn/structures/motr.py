"""MOTR multi-object tracking, the networks of its two board graphs (float).

`MotrNet`, the base graph: the image and the track slots' state in, the detections and tracks out.
The image goes through a backbone (its last feature map, stride 32) and a 1x1 input projection to
d_model channels; the decoder's queries are a (4, W) map, rows 0-1 the learned detect queries and
rows 2-3 the track slots (inputs), their reference boxes likewise (learned logits, then the slots'
logits); a track slot takes part only where `mask_query` is 1 (additive -100 masks).

    inputs   img (N, 3, H, W); query_pos (N, C, 2, W) the track slots' content queries;
             mask_query (N, 1, 1, 2 W) 1 for a live slot; ref_pts (N, 4, 2, W) their box logits
    outputs  classes (N, 1, 4, W) logits and boxes (N, 4, 4, W) logits (cx, cy, w, h before the
             sigmoid) of every decoder layer (`forward`) or the last (`deploy`), and hs (N, C, 4, W)
             the last decoder layer's queries (what QIM and the next frame's tracks start from)

`QueryInteraction` (nn/heads/motr_transformer.py) is the second graph.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.nn.heads.motr_transformer import MotrTransformer
from hbdk_sim.nn.layers.attention import pair_mask
from hbdk_sim.registry import MODELS, build_from_cfg


@MODELS.register
class MotrNet(nn.Module):
    """The base graph's network (see the module docstring). `num_queries` detect queries and as many
    track slots, laid out `query_width` per row (two rows each)."""

    def __init__(self, backbone: nn.Module | Mapping, backbone_channels: int = 384,
                 transformer: nn.Module | Mapping | None = None, num_queries: int = 256,
                 query_width: int = 128) -> None:
        super().__init__()
        if num_queries != 2 * query_width:
            raise UsageError(f"MotrNet: num_queries ({num_queries}) must fill two rows of query_width "
                             f"({query_width})")
        self.backbone = build_from_cfg(backbone, MODELS)
        self.transformer = transformer if isinstance(transformer, nn.Module) else \
            MotrTransformer(**dict(transformer or {}))
        d = self.transformer.d_model
        self.input_proj = nn.Conv2d(backbone_channels, d, 1)
        nn.init.xavier_uniform_(self.input_proj.weight)
        nn.init.zeros_(self.input_proj.bias)
        self.query_embed = nn.Embedding(num_queries, d)
        self.refpoint_embed = nn.Embedding(num_queries, 4)
        self.num_queries, self.query_width = num_queries, query_width

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
            raise UsageError(f"MotrNet: one image at a time (the track state is per sequence), got a batch of {n}")

    def forward(self, img: torch.Tensor, query_pos: torch.Tensor, mask_query: torch.Tensor, ref_pts: torch.Tensor
                ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        self._check(img, query_pos, mask_query, ref_pts)
        src = self.input_proj(self.backbone(img)[-1])
        d, w = self.d_model, self.query_width
        tgt = torch.cat((self.query_embed.weight.t().reshape(1, d, 2, w), query_pos), dim=2)
        ref_logits = torch.cat((self.refpoint_embed.weight.t().reshape(1, 4, 2, w), ref_pts), dim=2)
        slots = mask_query.reshape(-1)
        mask = pair_mask(torch.cat((torch.ones_like(slots), slots)))
        return self.transformer(src, tgt, ref_logits, mask, pair_mask(slots))

    def deploy(self, img: torch.Tensor, query_pos: torch.Tensor, mask_query: torch.Tensor, ref_pts: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the board graph returns: the last layer's classes and boxes, and hs."""
        classes, boxes, hs = self(img, query_pos, mask_query, ref_pts)
        return classes[-1], boxes[-1], hs
