"""Task models ("structures"): a network with its training forward and loss, its board graphs and
the host code around them (the task contract of `base`), registered in MODELS."""

from hbdk_sim.nn.structures.base import BoardGraph, GraphInput, TaskModel
from hbdk_sim.nn.structures.detection import FCOS, FCOSNet
from hbdk_sim.nn.structures.keypoint import HeatmapKeypointModel, HeatmapKeypointNet
from hbdk_sim.nn.structures.motr import Motr, MotrNet
from hbdk_sim.nn.structures.segmentation import FinestLogits, Segmentor, UNetMobileNetV1, downsample_labels

__all__ = [
    "BoardGraph",
    "FCOS",
    "FCOSNet",
    "FinestLogits",
    "GraphInput",
    "HeatmapKeypointModel",
    "HeatmapKeypointNet",
    "Motr",
    "MotrNet",
    "Segmentor",
    "TaskModel",
    "UNetMobileNetV1",
    "downsample_labels",
]
