"""Colour spaces (RGB/BGR to YUV444 as the camera ISP delivers it to the BPU) and pixel noise."""

from __future__ import annotations

import numpy as np
import torch

from hbdk_sim.data.transforms.base import Sample, check_sample
from hbdk_sim.errors import UsageError
from hbdk_sim.registry import TRANSFORMS

# BT.601 full-range ("JFIF") RGB -> YCbCr, as camera ISPs deliver YUV to the BPU: rows give Y, U (Cb), V (Cr)
# from (R, G, B); U and V are offset by 128. Each channel is rounded half up and clipped to [0, 255].
RGB_TO_YUV_BT601_FULL = np.array([[0.299, 0.587, 0.114],
                                  [-0.168736, -0.331264, 0.5],
                                  [0.5, -0.418688, -0.081312]], dtype=np.float64)
YUV_OFFSET = np.array([0.0, 128.0, 128.0])


def rgb_to_yuv444(img: np.ndarray, order: str = "rgb") -> np.ndarray:
    """HxWx3 uint8 RGB (or BGR with order="bgr") -> HxWx3 uint8 YUV444, BT.601 full range
    (`RGB_TO_YUV_BT601_FULL`), rounded half up and clipped."""
    if order not in ("rgb", "bgr"):
        raise UsageError(f"rgb_to_yuv444: order must be 'rgb' or 'bgr' but got {order!r}")
    rgb = img[..., ::-1] if order == "bgr" else img
    yuv = rgb.astype(np.float64) @ RGB_TO_YUV_BT601_FULL.T + YUV_OFFSET
    return np.clip(np.floor(yuv + 0.5), 0, 255).astype(np.uint8)


@TRANSFORMS.register
class ImageBgrToYuv444:
    """Convert `img` to YUV444 (BT.601 full range, see `RGB_TO_YUV_BT601_FULL`), the BPU's camera
    input format. The input channel order is the sample's `color_space` ("bgr" or "rgb"; the
    datasets give "rgb"), or `input_order` when the sample carries none."""

    def __init__(self, input_order: str = "bgr") -> None:
        self.input_order = input_order

    def __call__(self, sample: Sample) -> Sample:
        img, _ = check_sample(sample, "ImageBgrToYuv444")
        order = sample.get("color_space", self.input_order)
        if order == "yuv444":
            return sample
        return {**sample, "img": rgb_to_yuv444(img, order), "color_space": "yuv444"}


@TRANSFORMS.register
class AddGaussianNoise:
    """With probability `p`, add one HxW map of Gaussian noise (`mean`, `sigma`, in pixel levels) to
    every channel of `img`, clip to [0, 255] and truncate to uint8."""

    random = True

    def __init__(self, p: float = 0.2, mean: float = 0.0, sigma: float = 2.0,
                 generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0 or sigma < 0:
            raise UsageError(f"AddGaussianNoise: expected p in [0, 1] and sigma >= 0 but got p={p}, sigma={sigma}")
        self.p, self.mean, self.sigma, self.generator = p, float(mean), float(sigma), generator

    def __call__(self, sample: Sample) -> Sample:
        img, _ = check_sample(sample, "AddGaussianNoise")
        if float(torch.rand((), generator=self.generator)) >= self.p:
            return sample
        noise = torch.randn(img.shape[:2], generator=self.generator, dtype=torch.float64).numpy()
        noisy = img.astype(np.float64) + (self.mean + self.sigma * noise)[:, :, None]
        return {**sample, "img": np.clip(noisy, 0, 255).astype(np.uint8)}


@TRANSFORMS.register
class AugmentHSV:
    """Random hue, saturation and value gains: each channel of `img` in HSV (Pillow's, every
    channel 0-255) is multiplied by 1 + U(-1, 1) x its gain, hue modulo 256 (the full circle),
    saturation and value clipped to 255, and the image goes back to RGB. All three gains 0 leave the
    image untouched (no HSV round trip)."""

    random = True

    def __init__(self, hgain: float = 0.015, sgain: float = 0.7, vgain: float = 0.4,
                 generator: torch.Generator | None = None) -> None:
        if min(hgain, sgain, vgain) < 0:
            raise UsageError(f"AugmentHSV: gains must be >= 0 but got {hgain}, {sgain}, {vgain}")
        self.gains = np.array([hgain, sgain, vgain], np.float64)
        self.generator = generator

    def __call__(self, sample: Sample) -> Sample:
        from PIL import Image

        img, _ = check_sample(sample, "AugmentHSV")
        if not self.gains.any():
            return sample
        if sample.get("color_space", "rgb") != "rgb":
            raise UsageError("AugmentHSV: expects an RGB image; put it before ToTensor(to_yuv=True)")
        r = 1.0 + (torch.rand(3, generator=self.generator, dtype=torch.float64).numpy() * 2 - 1) * self.gains
        x = np.arange(256, dtype=np.float64)
        luts = [np.mod(x * r[0], 256).astype(np.uint8), np.clip(x * r[1], 0, 255).astype(np.uint8),
                np.clip(x * r[2], 0, 255).astype(np.uint8)]
        hsv = np.array(Image.fromarray(img).convert("HSV"))
        for c in range(3):
            hsv[..., c] = luts[c][hsv[..., c]]
        return {**sample, "img": np.array(Image.fromarray(hsv, mode="HSV").convert("RGB"))}
