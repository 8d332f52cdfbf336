"""Building blocks shared by backbones, necks and heads: conv+BN+activation, depthwise-separable and
residual-add blocks, and their fusion for quantization."""

from hbdk_sim.nn.layers.conv import (
    ConvBNAct,
    ConvBNAddAct,
    DepthwiseSeparable,
    fuse_blocks,
    fusion_groups,
    kaiming_init,
)

__all__ = ["ConvBNAct", "ConvBNAddAct", "DepthwiseSeparable", "fuse_blocks", "fusion_groups", "kaiming_init"]
