"""Attention and position embeddings on NCHW token maps, the layout the board runs transformers in:
a sequence of L tokens of C channels is a (N, C, H, W) map with H * W = L (token i at row i // W,
column i % W), projections are 1x1 convolutions, and masks are additive.

- `MultiheadAttention2d`: scaled dot-product attention with 1x1-conv q/k/v/out projections, an
  additive (L_q, L_k) mask (`additive_mask` makes one of a keep mask: 0 where kept, -100
  elsewhere), softmax over the keys; the same numbers as torch.nn.MultiheadAttention with the same
  weights.
- `sine_position_embedding`: the 2-D sine embedding of a map's pixel positions (normalized to
  (0, 2 pi], temperature `temperature`), [y features, x features] along the channels.
- `sine_box_embedding`: the sine embedding of box coordinates (N, K, H, W) in [0, 1], `feats`
  features per coordinate (sin and cos interleaved per frequency), K * feats channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.quantization.fuse_modules import Add, Matmul

MASK_FILL = -100.0  # the additive mask value of a masked-out key (not -inf: it stays quantizable)


def additive_mask(keep: torch.Tensor) -> torch.Tensor:
    """An additive attention mask from a boolean or {0, 1} keep mask: 0 where kept, -100 elsewhere."""
    return (keep.to(torch.float32) - 1.0) * -MASK_FILL


def pair_mask(valid: torch.Tensor) -> torch.Tensor:
    """The (L, L) additive mask letting token i attend to token j when both are valid (`valid` (L,)
    of 0/1): (v v^T) 100 - 100."""
    return valid.reshape(-1, 1) @ valid.reshape(1, -1) * -MASK_FILL + MASK_FILL


class MultiheadAttention2d(nn.Module):
    """`forward(query, key, value, mask=None)`: query (N, C, Hq, Wq), key and value (N, C, Hk, Wk)
    token maps; returns (N, C, Hq, Wq). `mask` is added to the (Lq, Lk) scores of every head (shape
    (Lq, Lk), broadcast over batch and heads)."""

    def __init__(self, embed_dim: int = 256, num_heads: int = 8, bias: bool = True) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise UsageError(f"MultiheadAttention2d: embed_dim {embed_dim} is not a multiple of num_heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Conv2d(embed_dim, embed_dim, 1, bias=bias)
                                                                for _ in range(4))
        self.scaling = self.head_dim ** -0.5
        self.scores, self.weighted = Matmul(), Matmul()
        self.add_mask = Add()
        self.softmax = nn.Softmax(dim=-1)
        qkv = torch.empty(3 * embed_dim, embed_dim)
        nn.init.xavier_uniform_(qkv)  # over the stacked q, k, v weights, as one in-projection
        for i, proj in enumerate((self.q_proj, self.k_proj, self.v_proj)):
            proj.weight.data.copy_(qkv[i * embed_dim:(i + 1) * embed_dim, :, None, None])
        nn.init.xavier_uniform_(self.out_proj.weight)
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            if proj.bias is not None:
                nn.init.zeros_(proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, heads, head_dim, L)."""
        return x.reshape(x.shape[0], self.num_heads, self.head_dim, x.shape[2] * x.shape[3])

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        # Shapes are read one dim at a time (never unpacked), so that torch.fx can trace this.
        q = self._heads(self.q_proj(query) * self.scaling).transpose(2, 3)  # (N, heads, Lq, d)
        k = self._heads(self.k_proj(key))  # (N, heads, d, Lk)
        v = self._heads(self.v_proj(value))  # (N, heads, d, Lk)
        scores = self.scores(q, k)  # (N, heads, Lq, Lk)
        if mask is not None:
            scores = self.add_mask(scores, mask)
        attn = self.softmax(scores)
        out = self.weighted(v, attn.transpose(2, 3))  # (N, heads, d, Lq)
        return self.out_proj(out.reshape(query.shape[0], self.embed_dim, query.shape[2], query.shape[3]))


def sine_position_embedding(height: int, width: int, num_feats: int = 128, temperature: float = 20.0,
                            device: torch.device | str | None = None) -> torch.Tensor:
    """The (1, 2 num_feats, height, width) sine embedding of pixel positions: y = 1..height scaled to
    (0, 2 pi] (x likewise), each divided by temperature^(2 (i // 2) / num_feats) for feature i, sin on
    the even features and cos on the odd ones; channels [y features, x features]."""
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)[:, None].expand(height, width)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)[None, :].expand(height, width)
    y, x = y / (height + eps) * scale, x / (width + eps) * scale
    i = torch.arange(num_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / num_feats)

    def embed(v: torch.Tensor) -> torch.Tensor:
        p = v[..., None] / dim_t  # (H, W, F)
        return torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=-1).flatten(-2)

    return torch.cat((embed(y), embed(x)), dim=-1).permute(2, 0, 1)[None]


def box_frequencies(num_feats: int = 128, temperature: float = 20.0) -> torch.Tensor:
    """The (1, 1, num_feats / 2, 1, 1) factors 2 pi / temperature^(2 i / num_feats), i = 0, 1, ... of
    sine_box_embedding (one per sin/cos pair)."""
    i = torch.arange(0, num_feats, 2, dtype=torch.float64)
    return (2 * math.pi / temperature ** (i / num_feats)).to(torch.float32).reshape(1, 1, -1, 1, 1)


def sine_box_embedding(coords: torch.Tensor, num_feats: int = 128, temperature: float = 20.0,
                       frequencies: torch.Tensor | None = None) -> torch.Tensor:
    """(N, K, H, W) coordinates in [0, 1] -> (N, K num_feats, H, W): coordinate k scaled by 2 pi and
    divided by temperature^(2 (i // 2) / num_feats) for feature i, sin and cos interleaved per
    frequency, the K coordinates' features one after another along the channels. `frequencies`
    (box_frequencies, e.g. a module's buffer) saves building them on every call."""
    f = frequencies if frequencies is not None else box_frequencies(num_feats, temperature).to(coords.device)
    p = coords.unsqueeze(2) * f  # (N, K, F/2, H, W)
    pairs = torch.cat((p.sin().unsqueeze(3), p.cos().unsqueeze(3)), dim=3)  # (N, K, F/2, 2, H, W)
    return pairs.reshape(coords.shape[0], coords.shape[1] * num_feats, coords.shape[2], coords.shape[3])
