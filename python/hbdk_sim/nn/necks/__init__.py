"""Necks: multi-scale feature fusion between a backbone and the heads."""

from hbdk_sim.nn.necks.bifpn import BiFPN
from hbdk_sim.nn.necks.unet import UNetNeck

__all__ = ["BiFPN", "UNetNeck"]
