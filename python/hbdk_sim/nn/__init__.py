"""hbdk_sim.nn: the model zoo by kind (layers, backbones, necks, heads, losses, postprocess and the
task structures). Importing it registers them in hbdk_sim.registry (MODELS, LOSSES); the metrics
are in hbdk_sim.metrics.
"""

from hbdk_sim.metrics import MeanIoU
from hbdk_sim.nn.backbones import MobileNetV1
from hbdk_sim.nn.heads import SegHead
from hbdk_sim.nn.layers import ConvBNAct, ConvBNAddAct, DepthwiseSeparable, fuse_blocks, fusion_groups
from hbdk_sim.nn.losses import FocalLoss, MultiScaleSegLoss
from hbdk_sim.nn.necks import UNetNeck
from hbdk_sim.nn.postprocess import seg_postprocess
from hbdk_sim.nn.structures import Segmentor, UNetMobileNetV1, downsample_labels

__all__ = [
    "ConvBNAct",
    "ConvBNAddAct",
    "DepthwiseSeparable",
    "FocalLoss",
    "MeanIoU",
    "MobileNetV1",
    "MultiScaleSegLoss",
    "SegHead",
    "Segmentor",
    "UNetMobileNetV1",
    "UNetNeck",
    "downsample_labels",
    "fuse_blocks",
    "fusion_groups",
    "seg_postprocess",
]
