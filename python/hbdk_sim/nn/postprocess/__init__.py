"""Host-side post-processing of the task models' board outputs."""

from hbdk_sim.nn.postprocess.segmentation import seg_postprocess

__all__ = ["seg_postprocess"]
