"""Evaluation metrics of the task models, registered in METRICS."""

from hbdk_sim.metrics.collection import MetricCollection
from hbdk_sim.metrics.detection import COCODetectionMetric
from hbdk_sim.metrics.keypoint import MeanKeypointDist, PCKMetric
from hbdk_sim.metrics.segmentation import MeanIoU
from hbdk_sim.metrics.tracking import MotMetric

__all__ = ["COCODetectionMetric", "MeanIoU", "MeanKeypointDist", "MetricCollection", "MotMetric", "PCKMetric"]
