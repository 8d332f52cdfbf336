"""Task models ("structures"): a network with its training forward, loss and evaluation forward,
registered in MODELS."""

from hbdk_sim.nn.structures.segmentation import Segmentor, UNetMobileNetV1, downsample_labels

__all__ = ["Segmentor", "UNetMobileNetV1", "downsample_labels"]
