"""Building blocks shared by backbones, necks and heads: conv+BN+activation, depthwise-separable and
residual-add blocks, and their fusion for quantization; the channel LayerNorm."""

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

__all__ = ["ChannelLayerNorm", "ConvBNAct", "ConvBNAddAct", "DepthwiseSeparable", "fuse_blocks", "fusion_groups",
           "kaiming_init", "tapped_forward"]
