"""Evaluation metrics of the task models, registered in METRICS."""

from hbdk_sim.metrics.segmentation import MeanIoU

__all__ = ["MeanIoU"]
