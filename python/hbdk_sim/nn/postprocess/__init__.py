"""Host-side post-processing of the task models' board outputs."""

from hbdk_sim.nn.postprocess.fcos import fcos_postprocess
from hbdk_sim.nn.postprocess.keypoint import decode_heatmaps
from hbdk_sim.nn.postprocess.nms import batched_nms
from hbdk_sim.nn.postprocess.segmentation import seg_postprocess
from hbdk_sim.nn.postprocess.track_instances import TrackInstances
from hbdk_sim.nn.postprocess.tracking import MotrTrackPostProcess, RuntimeTracker

__all__ = ["MotrTrackPostProcess", "RuntimeTracker", "TrackInstances", "batched_nms", "decode_heatmaps",
           "fcos_postprocess", "seg_postprocess"]
