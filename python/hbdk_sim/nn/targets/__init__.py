"""Training-target assignment of the detectors: which prediction learns which ground-truth box."""

from hbdk_sim.nn.targets.fcos import DynamicFcosTarget, FcosTargets, fcos_points

__all__ = ["DynamicFcosTarget", "FcosTargets", "fcos_points"]
