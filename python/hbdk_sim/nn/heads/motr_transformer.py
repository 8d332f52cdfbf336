"""The MOTR tracker's transformer on NCHW token maps: deformable attention with one level and one
sampling point per head, the encoder and decoder layers, the decoder's box refinement and
conditional query positions, and the query interaction module (QIM) that updates the kept tracks'
queries between frames.

Token maps: the encoder's tokens are the (H, W) pixels of the projected feature map; the decoder's
512 queries are a (4, 128) map, rows 0-1 the 256 detect queries and rows 2-3 the 256 track slots
(query i at (i // 128, i % 128)). LayerNorms normalize over the channels (ChannelLayerNorm).

`MotrDeformAttn(query, reference, value)`: per head h and point p, an offset (2 channels of
`sampling_offsets(query)`) moves the reference point: a 2-D reference (x, y) moves by
offset / (W_v, H_v), a 4-D reference box (cx, cy, w, h) by offset * 0.5 / points * (w, h); the
head's 32 value channels are sampled there by `grid_sample` (bilinear, zero padding,
align_corners=True, grid = 2 loc - 1), weighted by sigmoid(`attention_weights(query)`) (not a
softmax), summed over the points, and `output_proj` mixes the heads.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

from hbdk_sim.errors import UsageError
from hbdk_sim.nn.layers.attention import (
    MultiheadAttention2d,
    box_frequencies,
    pair_mask,
    sine_box_embedding,
    sine_position_embedding,
)
from hbdk_sim.nn.layers.norm import ChannelLayerNorm
from hbdk_sim.quantization import QuantStub
from hbdk_sim.quantization.fuse_modules import Add, Mul


def _clones(module: nn.Module, n: int) -> nn.ModuleList:
    return nn.ModuleList(copy.deepcopy(module) for _ in range(n))


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class FFN2d(nn.Module):
    """1x1 conv d -> hidden, ReLU, 1x1 conv hidden -> d; then LayerNorm(x + ffn(x))."""

    def __init__(self, d_model: int = 256, hidden: int = 1024) -> None:
        super().__init__()
        self.linear1, self.linear2 = nn.Conv2d(d_model, hidden, 1), nn.Conv2d(hidden, d_model, 1)
        self.act = nn.ReLU()
        self.add = Add()
        self.norm = ChannelLayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.add(x, self.linear2(self.act(self.linear1(x)))))


class MotrDeformAttn(nn.Module):
    """Deformable attention over one value map (see the module docstring)."""

    def __init__(self, d_model: int = 256, num_heads: int = 8, num_points: int = 1, reference_dims: int = 2) -> None:
        super().__init__()
        if d_model % num_heads:
            raise UsageError(f"MotrDeformAttn: d_model {d_model} is not a multiple of num_heads {num_heads}")
        if reference_dims not in (2, 4):
            raise UsageError(f"MotrDeformAttn: reference_dims must be 2 (points) or 4 (boxes) but got {reference_dims}")
        self.d_model, self.num_heads, self.num_points = d_model, num_heads, num_points
        self.reference_dims = reference_dims
        self.head_dim = d_model // num_heads
        self.sampling_offsets = nn.Conv2d(d_model, num_heads * num_points * 2, 1)
        self.attention_weights = nn.Conv2d(d_model, num_heads * num_points, 1)
        self.sigmoid = nn.Sigmoid()
        self.value_proj = nn.Conv2d(d_model, d_model, 1)
        self.output_proj = nn.Conv2d(d_model, d_model, 1)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2 * math.pi / self.num_heads)
        grid = torch.stack([angles.cos(), angles.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True).values  # unit directions at 360 / heads degree steps
        grid = grid[:, None, :].repeat(1, self.num_points, 1)
        grid = grid * torch.arange(1, self.num_points + 1, dtype=torch.float32)[None, :, None]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, query: torch.Tensor, reference: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """query (N, C, Hq, Wq); reference (N, reference_dims, Hq, Wq) in [0, 1] (x, y, or cx, cy,
        w, h); value (N, C, Hv, Wv) -> (N, C, Hq, Wq). Shapes are read one dim at a time (never
        unpacked), so that torch.fx can trace this."""
        n, heads, points = query.shape[0], self.num_heads, self.num_points
        lq = query.shape[2] * query.shape[3]
        v = self.value_proj(value).reshape(n * heads, self.head_dim, value.shape[2], value.shape[3])
        offsets = self.sampling_offsets(query).reshape(n, heads, points, 2, lq)
        ref = reference.reshape(reference.shape[0], 1, 1, self.reference_dims, lq)  # batch 1 broadcasts
        if self.reference_dims == 2:  # offsets in value pixels
            loc = torch.cat((ref[:, :, :, :1] + offsets[:, :, :, :1] * (1.0 / value.shape[3]),
                             ref[:, :, :, 1:] + offsets[:, :, :, 1:] * (1.0 / value.shape[2])), dim=3)
        else:  # offsets in half box sizes
            loc = ref[:, :, :, :2] + offsets * (0.5 / points) * ref[:, :, :, 2:]
        grid = (loc * 2.0 - 1.0).permute(0, 1, 2, 4, 3).reshape(n * heads, points, lq, 2)
        sampled = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=True)  # (N h, d, P, Lq)
        weights = self.sigmoid(self.attention_weights(query)).reshape(n * heads, 1, points, lq)
        # the sum over the points as adds of their slices (one point: none), not a reduction over a
        # (N h) x d x Lq plane per point
        out = sampled * weights
        if points > 1:
            parts = out.split(1, dim=2)
            out = parts[0]
            for i in range(1, points):
                out = out + parts[i]
        return self.output_proj(out.reshape(n, self.d_model, query.shape[2], query.shape[3]))


class MotrEncoderLayer(nn.Module):
    """src = LN1(src + DeformAttn(src + pos, ref, src)); src = LN2(src + FFN(src))."""

    def __init__(self, d_model: int = 256, num_heads: int = 8, ffn_dim: int = 1024, num_points: int = 1) -> None:
        super().__init__()
        self.pos_add, self.add = Add(), Add()
        self.self_attn = MotrDeformAttn(d_model, num_heads, num_points, reference_dims=2)
        self.norm1 = ChannelLayerNorm(d_model)
        self.ffn = FFN2d(d_model, ffn_dim)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        src = self.norm1(self.add(src, self.self_attn(self.pos_add(src, pos), reference, src)))
        return self.ffn(src)


class MotrDecoderLayer(nn.Module):
    """The track slots' own self-attention (rows 2-3 of the query map, `track_mask`), self-attention
    over all queries (`mask`), deformable cross-attention into the memory at the reference boxes,
    and the FFN; each followed by the residual add and a LayerNorm."""

    def __init__(self, d_model: int = 256, num_heads: int = 8, ffn_dim: int = 1024, num_points: int = 1,
                 extra_track_attn: bool = True) -> None:
        super().__init__()
        self.extra_track_attn = extra_track_attn
        if extra_track_attn:
            self.update_attn = MultiheadAttention2d(d_model, num_heads, bias=False)
            self.track_pos_add, self.track_add = Add(), Add()
            self.norm4 = ChannelLayerNorm(d_model)
        self.self_attn = MultiheadAttention2d(d_model, num_heads)
        self.pos_add, self.add2 = Add(), Add()
        self.norm2 = ChannelLayerNorm(d_model)
        self.cross_attn = MotrDeformAttn(d_model, num_heads, num_points, reference_dims=4)
        self.cross_pos_add, self.add1 = Add(), Add()
        self.norm1 = ChannelLayerNorm(d_model)
        self.ffn = FFN2d(d_model, ffn_dim)

    def forward(self, tgt: torch.Tensor, pos: torch.Tensor, reference: torch.Tensor, memory: torch.Tensor,
                mask: torch.Tensor, track_mask: torch.Tensor) -> torch.Tensor:
        if self.extra_track_attn:
            rows = tgt.shape[2] // 2
            det, track = tgt[:, :, :rows], tgt[:, :, rows:]
            q = self.track_pos_add(track, pos[:, :, rows:])
            track = self.norm4(self.track_add(track, self.update_attn(q, q, track, track_mask)))
            tgt = torch.cat((det, track), dim=2)
        q = self.pos_add(tgt, pos)
        tgt = self.norm2(self.add2(tgt, self.self_attn(q, q, tgt, mask)))
        tgt = self.norm1(self.add1(tgt, self.cross_attn(self.cross_pos_add(tgt, pos), reference, memory)))
        return self.ffn(tgt)


class BoxEmbed(nn.Module):
    """1x1 convs d -> d, ReLU, d -> d, ReLU, d -> 4: the box logit update of a decoder layer."""

    def __init__(self, d_model: int = 256) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(d_model, d_model, 1), nn.ReLU(), nn.Conv2d(d_model, d_model, 1),
                                    nn.ReLU(), nn.Conv2d(d_model, 4, 1))
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class QueryPosition(nn.Module):
    """A decoder layer's query positions from the reference boxes: the 4 x 128 sine features through
    1x1 convs 512 -> 512, ReLU, 512 -> 256."""

    def __init__(self, d_model: int = 256, num_feats: int = 128, temperature: float = 20.0) -> None:
        super().__init__()
        self.num_feats, self.temperature = num_feats, temperature
        self.register_buffer("frequencies", box_frequencies(num_feats, temperature), persistent=False)
        self.frequency_stub = QuantStub()  # a constant the graph multiplies by: its own scale
        self.mlp = nn.Sequential(nn.Conv2d(4 * num_feats, 2 * d_model, 1), nn.ReLU(),
                                 nn.Conv2d(2 * d_model, d_model, 1))

    def forward(self, reference: torch.Tensor) -> torch.Tensor:
        return self.mlp(sine_box_embedding(reference, self.num_feats, self.temperature,
                                           self.frequency_stub(self.frequencies)))


class MotrTransformer(nn.Module):
    """Encoder over the feature map, decoder over the (4, 128) query map with box refinement.

    `forward(src, tgt, ref_logits, mask, track_mask)`: src (N, C, H, W) the projected features; tgt
    (N, C, 4, 128) the content queries; ref_logits (N, 4, 4, 128) the reference boxes' logits;
    `mask` (512, 512) and `track_mask` (256, 256) additive. Returns (classes, boxes, hs): per decoder
    layer the class logits (N, 1, 4, 128) and box logits (N, 4, 4, 128) (all layers, or the last
    only when `return_intermediate` is False), and the last layer's queries (N, C, 4, 128).

    The encoder's sine position embedding and reference points depend only on the map's size: they
    are computed for each input, except under torch.fx tracing (deployment), where they are the
    buffers made for `feature_size` (H, W), the deploy feature map's size."""

    def __init__(self, d_model: int = 256, num_heads: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, ffn_dim: int = 1024, num_points: int = 1, temperature: float = 20.0,
                 extra_track_attn: bool = True, return_intermediate: bool = True,
                 feature_size: Sequence[int] | None = None) -> None:
        super().__init__()
        self.d_model, self.temperature, self.return_intermediate = d_model, temperature, return_intermediate
        self.feature_size = None if feature_size is None else (int(feature_size[0]), int(feature_size[1]))
        if self.feature_size is not None:
            h, w = self.feature_size
            self.register_buffer("fixed_sine", sine_position_embedding(h, w, d_model // 2, temperature),
                                 persistent=False)
            self.register_buffer("fixed_reference", self.encoder_reference(h, w, torch.device("cpu")), persistent=False)
        self.level_embed = nn.Parameter(torch.randn(1, d_model, 1, 1))
        self.pos_add = Add()
        # The constants the graph computes with (position embedding, its level, reference points)
        # enter it through stubs, each with its own scale.
        self.sine_stub, self.level_stub, self.reference_stub = QuantStub(), QuantStub(), QuantStub()
        self.encoder = _clones(MotrEncoderLayer(d_model, num_heads, ffn_dim, num_points), num_encoder_layers)
        self.decoder = _clones(MotrDecoderLayer(d_model, num_heads, ffn_dim, num_points, extra_track_attn),
                               num_decoder_layers)
        self.query_pos = _clones(QueryPosition(d_model, d_model // 2, temperature), num_decoder_layers)
        self.query_pos_scale = _clones(nn.Sequential(nn.Conv2d(d_model, d_model, 1), nn.ReLU(),
                                                     nn.Conv2d(d_model, d_model, 1)), num_decoder_layers - 1)
        self.pos_mul = _clones(Mul(), num_decoder_layers - 1)
        self.box_add = _clones(Add(), num_decoder_layers)
        self.bbox_embed = _clones(BoxEmbed(d_model), num_decoder_layers)
        nn.init.constant_(self.bbox_embed[0].layers[-1].bias[2:], -2.0)
        self.class_embed = _clones(nn.Conv2d(d_model, 1, 1), num_decoder_layers)
        for conv in self.class_embed:
            nn.init.constant_(conv.bias, -math.log(99.0))
        self.sigmoid = nn.Sigmoid()

    def encoder_reference(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """Pixel centres ((j + 0.5) / W, (i + 0.5) / H) as (1, 2, H, W)."""
        y = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
        x = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
        return torch.stack((x[None, :].expand(height, width), y[:, None].expand(height, width)))[None]

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor,
                track_mask: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        if is_fx_symbolic_tracing():
            if self.feature_size is None:
                raise UsageError("MotrTransformer: give feature_size (the deploy feature map's H, W) to trace it")
            sine, reference = self.fixed_sine, self.fixed_reference
        else:
            h, w = src.shape[2], src.shape[3]
            sine = sine_position_embedding(h, w, self.d_model // 2, self.temperature, src.device)
            reference = self.encoder_reference(h, w, src.device)
        # (1, C, H, W) and (1, 2, H, W): broadcast over the batch
        pos = self.pos_add(self.sine_stub(sine), self.level_stub(self.level_embed))
        reference = self.reference_stub(reference)
        memory = src
        for layer in self.encoder:
            memory = layer(memory, pos, reference)
        classes, boxes = [], []
        logits = ref_logits
        for i, layer in enumerate(self.decoder):
            ref = self.sigmoid(logits)
            query_pos = self.query_pos[i](ref)
            if i > 0:
                query_pos = self.pos_mul[i - 1](query_pos, self.query_pos_scale[i - 1](tgt))
            tgt = layer(tgt, query_pos, ref, memory, mask, track_mask)
            logits = self.box_add[i](self.bbox_embed[i](tgt), logits)
            if self.return_intermediate or i == len(self.decoder) - 1:
                classes.append(self.class_embed[i](tgt))
                boxes.append(logits)
            logits = logits.detach() if self.training else logits
        return classes, boxes, tgt


class QueryInteraction(nn.Module):
    """QIM: the kept tracks' new content queries from their decoder outputs. Inputs in the board
    layout (1, 1, N, C): `output_embedding` (the last decoder layer's outputs of the kept tracks),
    `query_pos` (their current content queries) and `mask_query` (1, 1, 1, N) (1 = a kept track);
    returns the new query_pos as (1, C, 1, N):

        tgt = LN1(out + SelfAttn(q = k = query_pos + out, v = out, mask))
        tgt = LN2(tgt + FFN(tgt));  query_pos' = LN_pos(query_pos + FFN_pos(tgt))

    with mask = (m m^T) 100 - 100."""

    def __init__(self, d_model: int = 256, num_heads: int = 8, ffn_dim: int = 1024) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention2d(d_model, num_heads)
        self.q_add, self.attn_add = Add(), Add()
        self.norm1 = ChannelLayerNorm(d_model)
        self.ffn = FFN2d(d_model, ffn_dim)
        self.pos_linear1, self.pos_linear2 = nn.Conv2d(d_model, ffn_dim, 1), nn.Conv2d(ffn_dim, d_model, 1)
        self.pos_act = nn.ReLU()
        self.pos_add = Add()
        self.norm_pos = ChannelLayerNorm(d_model)

    def forward(self, output_embedding: torch.Tensor, query_pos: torch.Tensor, mask_query: torch.Tensor
                ) -> torch.Tensor:
        out = output_embedding.permute(0, 3, 1, 2)  # (1, 1, N, C) -> (1, C, 1, N)
        pos = query_pos.permute(0, 3, 1, 2)
        mask = pair_mask(mask_query)
        q = self.q_add(pos, out)
        tgt = self.norm1(self.attn_add(out, self.self_attn(q, q, out, mask)))
        tgt = self.ffn(tgt)
        return self.norm_pos(self.pos_add(pos, self.pos_linear2(self.pos_act(self.pos_linear1(tgt)))))
