"""Losses of the task models, registered in LOSSES."""

from hbdk_sim.nn.losses.detection import CenternessBCE, GIoULoss, SigmoidFocalLoss
from hbdk_sim.nn.losses.keypoint import HeatmapMSELoss
from hbdk_sim.nn.losses.segmentation import FocalLoss, MultiScaleSegLoss

__all__ = ["CenternessBCE", "FocalLoss", "GIoULoss", "HeatmapMSELoss", "MultiScaleSegLoss", "SigmoidFocalLoss"]
