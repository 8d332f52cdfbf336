"""Losses of the task models, registered in LOSSES."""

from hbdk_sim.nn.losses.detection import CenternessBCE, GIoULoss, SigmoidFocalLoss
from hbdk_sim.nn.losses.keypoint import HeatmapMSELoss
from hbdk_sim.nn.losses.segmentation import FocalLoss, MultiScaleSegLoss
from hbdk_sim.nn.losses.tracking import HungarianMatcher, MotrCriterion, TrackTargets

__all__ = ["CenternessBCE", "FocalLoss", "GIoULoss", "HeatmapMSELoss", "HungarianMatcher", "MotrCriterion",
           "MultiScaleSegLoss", "SigmoidFocalLoss", "TrackTargets"]
