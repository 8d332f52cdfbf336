"""To tensors and normalization."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from hbdk_sim.data.transforms.base import Sample, check_sample
from hbdk_sim.data.transforms.color import ImageBgrToYuv444
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.registry import TRANSFORMS


@TRANSFORMS.register
class ToTensor:
    """`img` HxWx3 uint8 -> 3xHxW tensor (float32 0..255, not rescaled; or uint8 with
    img_dtype="uint8" to normalize later on the device), YUV444 first when `to_yuv`; `gt_seg` and
    `gt_seg_scales` -> int64 tensors."""

    def __init__(self, to_yuv: bool = False, img_dtype: str = "float32") -> None:
        if img_dtype not in ("float32", "uint8"):
            raise UsageError(f"ToTensor: img_dtype must be 'float32' or 'uint8' but got {img_dtype!r}")
        self.to_yuv, self.img_dtype = to_yuv, img_dtype

    def __call__(self, sample: Sample) -> Sample:
        if self.to_yuv:
            sample = ImageBgrToYuv444()(sample)
        img, _ = check_sample(sample, "ToTensor")
        t = torch.from_numpy(_writable(img.transpose(2, 0, 1)))
        out = {**sample, "img": t.float() if self.img_dtype == "float32" else t}
        if sample.get("gt_seg") is not None:
            out["gt_seg"] = torch.from_numpy(_writable(sample["gt_seg"])).long()
        if "gt_seg_scales" in sample:
            out["gt_seg_scales"] = [torch.from_numpy(_writable(g)).long() for g in sample["gt_seg_scales"]]
        return out


def _writable(a: np.ndarray) -> np.ndarray:
    # torch.from_numpy shares memory and warns on read-only arrays (e.g. views of PIL buffers).
    return a if a.flags.writeable and a.flags.c_contiguous else np.array(a, order="C")


def _channel_stats(value: float | Sequence[float], name: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32)
    if t.ndim == 0:
        return t
    if t.shape != (3,):
        raise UsageError(f"{name}: expected a scalar or 3 per-channel values but got {list(t.shape)}")
    return t


@TRANSFORMS.register
class Normalize:
    """img <- (img - mean) / std on a CxHxW tensor (after ToTensor). The default (128, 128) maps
    uint8 pixels to [-1, 1), which the BPU's input quantization (scale 1/128) represents exactly."""

    def __init__(self, mean: float | Sequence[float] = 128.0, std: float | Sequence[float] = 128.0) -> None:
        self.mean, self.std = _channel_stats(mean, "Normalize mean"), _channel_stats(std, "Normalize std")
        if (self.std == 0).any():
            raise UsageError("Normalize: std must be non-zero")

    def __call__(self, sample: Sample) -> Sample:
        img = sample["img"]
        if not isinstance(img, torch.Tensor) or img.ndim != 3:
            raise UsageTypeError(f"Normalize: expected sample['img'] to be a CxHxW tensor (put ToTensor first) but got "
                                 f"{type(img).__name__} {getattr(img, 'shape', '')}")
        shape = (-1, 1, 1)
        return {**sample, "img": (img.float() - self.mean.view(shape)) / self.std.view(shape)}
