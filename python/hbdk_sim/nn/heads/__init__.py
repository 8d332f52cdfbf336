"""Heads: task outputs computed from neck features."""

from hbdk_sim.nn.heads.deconv_decoder import ConvTransposeBNAct, DeconvDecoder
from hbdk_sim.nn.heads.fcos_head import FCOSHead
from hbdk_sim.nn.heads.motr_transformer import MotrDeformAttn, MotrTransformer, QueryInteraction
from hbdk_sim.nn.heads.seg_head import SegHead

__all__ = ["ConvTransposeBNAct", "DeconvDecoder", "FCOSHead", "MotrDeformAttn", "MotrTransformer", "QueryInteraction",
           "SegHead"]
