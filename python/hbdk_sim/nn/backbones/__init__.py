"""Backbones: feature extractors returning multi-stride feature maps for a neck or head."""

from hbdk_sim.nn.backbones.efficientnet import EfficientNet
from hbdk_sim.nn.backbones.mobilenet_v1 import MobileNetV1

__all__ = ["EfficientNet", "MobileNetV1"]
