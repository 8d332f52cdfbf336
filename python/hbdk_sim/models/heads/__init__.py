"""Heads: task outputs computed from neck features."""

from hbdk_sim.models.heads.seg_head import SegHead

__all__ = ["SegHead"]
