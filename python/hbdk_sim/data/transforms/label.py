"""Label-only transforms: the label id remap, the multi-scale labels and the keypoint heatmaps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hbdk_sim.data.datasets.cityscapes import ID_TO_TRAIN_ID, IGNORE_INDEX
from hbdk_sim.data.transforms.base import Sample
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.registry import TRANSFORMS


@TRANSFORMS.register
class LabelRemap:
    """Map label ids to train ids with a 256-entry table; ids without an entry become `ignore_index`.
    Default: the official Cityscapes table (34 ids -> 19 train ids, the rest 255)."""

    label_only = True

    def __init__(self, mapping: Mapping[int, int] | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        mapping = ID_TO_TRAIN_ID if mapping is None else mapping
        self.table = np.full(256, ignore_index, dtype=np.uint8)
        for src, dst in mapping.items():
            if not (0 <= int(src) < 256 and 0 <= int(dst) < 256):
                raise UsageError(f"LabelRemap: mapping {src} -> {dst} is outside 0..255")
            self.table[int(src)] = int(dst)

    def __call__(self, sample: Sample) -> Sample:
        gt = sample["gt_seg"]
        if not isinstance(gt, np.ndarray) or gt.dtype != np.uint8:
            raise UsageTypeError(f"LabelRemap: expected sample['gt_seg'] to be a uint8 array but got "
                                 f"{type(gt).__name__} {getattr(gt, 'dtype', '')}")
        return {**sample, "gt_seg": self.table[gt]}


@TRANSFORMS.register
class MultiScaleLabels:
    """Add `gt_seg_scales`: the label downsampled (nearest, sampling each output pixel's centre) by
    each of `strides` (output H//s x W//s) or `factors` (output round(H*f) x round(W*f)), in order."""

    label_only = True

    def __init__(self, strides: Sequence[int] | None = (4, 8, 16, 32), factors: Sequence[float] | None = None) -> None:
        if (strides is None) == (factors is None):
            raise UsageError("MultiScaleLabels: give exactly one of strides or factors")
        if strides is not None and any(int(s) < 1 for s in strides):
            raise UsageError(f"MultiScaleLabels: strides must be >= 1 but got {list(strides)}")
        if factors is not None and any(not 0 < f <= 1 for f in factors):
            raise UsageError(f"MultiScaleLabels: factors must be in (0, 1] but got {list(factors)}")
        self.strides = None if strides is None else [int(s) for s in strides]
        self.factors = None if factors is None else [float(f) for f in factors]

    def _sizes(self, h: int, w: int) -> list[tuple[int, int]]:
        if self.strides is not None:
            return [(max(1, h // s), max(1, w // s)) for s in self.strides]
        return [(max(1, round(h * f)), max(1, round(w * f))) for f in self.factors]

    def __call__(self, sample: Sample) -> Sample:
        gt = sample["gt_seg"]
        h, w = gt.shape
        scales = []
        for oh, ow in self._sizes(h, w):
            rows = ((np.arange(oh) + 0.5) * h / oh).astype(np.int64)
            cols = ((np.arange(ow) + 0.5) * w / ow).astype(np.int64)
            scales.append(np.ascontiguousarray(gt[rows[:, None], cols[None, :]]))
        return {**sample, "gt_seg_scales": scales}


@TRANSFORMS.register
class GenerateHeatmapTarget:
    """From `gt_keypoints` (K x 3: x, y, visibility in input pixels), the training targets of a
    heatmap head with output stride `stride`:

    - `gt_heatmap` (K, H, W) float32: for each labelled keypoint (visibility > 0), an unnormalized
      Gaussian exp(-d^2 / (2 sigma^2)) around its heatmap position, written over the
      (2r+1) x (2r+1) window of pixels nearest it, r = ceil(3 sigma); heatmap pixel (i, j) is the
      input point (stride * (j + 0.5), stride * (i + 0.5)) (decode_heatmaps inverts this);
    - `gt_heatmap_weight` (K, H, W) float32: 1 inside the window, `background_weight` elsewhere,
      0 over a whole heatmap with nothing drawn (an unlabelled keypoint, or one off the map).
    """

    label_only = True

    def __init__(self, num_keypoints: int = 12, stride: int = 4, heatmap_size: Sequence[int] = (32, 32),
                 sigma: float = 1.0, background_weight: float = 0.1) -> None:
        if num_keypoints < 1 or stride < 1 or len(heatmap_size) != 2 or min(heatmap_size) < 1 or not sigma > 0:
            raise UsageError(f"GenerateHeatmapTarget: expected num_keypoints, stride, heatmap_size and sigma > 0 but "
                             f"got {num_keypoints}, {stride}, {list(heatmap_size)}, {sigma}")
        self.num_keypoints, self.stride, self.sigma = num_keypoints, stride, float(sigma)
        self.size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.radius = int(np.ceil(3 * self.sigma))
        self.background_weight = float(background_weight)

    def __call__(self, sample: Sample) -> Sample:
        k = sample.get("gt_keypoints")
        if not isinstance(k, np.ndarray) or k.shape != (self.num_keypoints, 3):
            raise UsageTypeError(f"GenerateHeatmapTarget: expected sample['gt_keypoints'] of shape "
                                 f"({self.num_keypoints}, 3) but got {getattr(k, 'shape', type(k).__name__)}")
        h, w = self.size
        heatmap = np.zeros((self.num_keypoints, h, w), np.float32)
        weight = np.full((self.num_keypoints, h, w), self.background_weight, np.float32)
        r = self.radius
        for i, (x, y, vis) in enumerate(k.astype(np.float64)):
            cx, cy = x / self.stride - 0.5, y / self.stride - 0.5
            x0, y0 = int(np.floor(cx + 0.5)) - r, int(np.floor(cy + 0.5)) - r  # the window around the nearest pixel
            xs = np.arange(max(x0, 0), min(x0 + 2 * r + 1, w))
            ys = np.arange(max(y0, 0), min(y0 + 2 * r + 1, h))
            if vis <= 0 or xs.size == 0 or ys.size == 0:
                weight[i] = 0.0
                continue
            g = np.exp(-((xs[None, :] - cx) ** 2 + (ys[:, None] - cy) ** 2) / (2 * self.sigma ** 2))
            heatmap[i, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] = g
            weight[i, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] = 1.0
        return {**sample, "gt_heatmap": heatmap, "gt_heatmap_weight": weight}
