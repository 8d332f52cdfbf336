"""Host-side post-processing of the task models' board outputs."""

from hbdk_sim.nn.postprocess.keypoint import decode_heatmaps
from hbdk_sim.nn.postprocess.segmentation import seg_postprocess

__all__ = ["decode_heatmaps", "seg_postprocess"]
