"""hbdk_sim.models: backbones, necks, heads, losses and metrics of the task models. Importing it
registers them in hbdk_sim.registry (MODELS, LOSSES, METRICS)."""

from hbdk_sim.models.backbones import MobileNetV1
from hbdk_sim.models.heads import SegHead
from hbdk_sim.models.layers import ConvBNAct, ConvBNAddAct, DepthwiseSeparable, fuse_blocks, fusion_groups
from hbdk_sim.models.losses import FocalLoss, MultiScaleSegLoss
from hbdk_sim.models.metrics import MeanIoU
from hbdk_sim.models.necks import UNetNeck
from hbdk_sim.models.segmentation import Segmentor, UNetMobileNetV1, downsample_labels, seg_postprocess

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
