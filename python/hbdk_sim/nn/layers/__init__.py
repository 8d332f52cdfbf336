"""Building blocks shared by backbones, necks and heads: conv+BN+activation, depthwise-separable and
residual-add blocks, and their fusion for quantization; the channel LayerNorm; attention and sine
position embeddings on NCHW token maps."""

from hbdk_sim.nn.layers.attention import (
    MultiheadAttention2d,
    additive_mask,
    pair_mask,
    sine_box_embedding,
    sine_position_embedding,
)
from hbdk_sim.nn.layers.conv import (
    ConvBNAct,
    ConvBNAddAct,
    DepthwiseSeparable,
    fuse_blocks,
    fusion_groups,
    kaiming_init,
    tapped_forward,
)
from hbdk_sim.nn.layers.norm import ChannelLayerNorm

__all__ = ["ChannelLayerNorm", "ConvBNAct", "ConvBNAddAct", "DepthwiseSeparable", "MultiheadAttention2d",
           "additive_mask", "fuse_blocks", "fusion_groups", "kaiming_init", "pair_mask", "sine_box_embedding",
           "sine_position_embedding", "tapped_forward"]
