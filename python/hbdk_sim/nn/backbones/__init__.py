"""Backbones: feature extractors returning multi-stride feature maps for a neck."""

from hbdk_sim.nn.backbones.mobilenet_v1 import MobileNetV1

__all__ = ["MobileNetV1"]
