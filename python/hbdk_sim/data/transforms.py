"""Image transforms, per sample (on the data workers) and per batch (on the training device).

A per-sample transform takes and returns a sample dict. The fields it may hold (the sample schema):
    img: HxWx3 uint8 numpy array, channel order in `color_space` ("rgb" from the datasets, "bgr", "yuv444")
    gt_seg: HxW uint8 numpy array (label ids, or train ids after LabelRemap; 255 = ignore)
    gt_seg_scales: list of hxw uint8 arrays (after MultiScaleLabels), coarsest last
    gt_boxes: Nx4 float32 (x1, y1, x2, y2) in image pixels, per object; with it, per object:
        gt_classes (N,) int64, gt_track_ids (N,) int64, gt_ignore (N,) bool, gt_keypoints NxKx3
    gt_keypoints: Kx3 (one object) or NxKx3 float32 (x, y, visibility; 0 = not visible)
    points: PxD float32 lidar points (x, y, z, ...) in the sensor frame; image transforms leave them
Coordinates are continuous: pixel (i, j) covers [j, j+1) x [i, i+1). Every geometric transform
(Resize, SegRandomAffine, RandomFlip) moves every geometric field it finds: boxes are clipped to
the image and dropped, with their per-object fields, when nothing of them is left; keypoints that
leave the image keep their coordinates and become invisible. RandomFlip swaps the keypoints of each
of its `keypoint_flip_pairs` (coordinates and visibility together).

A transform class declares `random = True` when it draws random numbers (it cannot be part of the
board preprocessing) and `label_only = True` when it touches only labels (an image without labels
skips it).

ToTensor turns `img` into a CxHxW tensor and the labels into int64 tensors; Normalize works on that.

A batch transform (Batch*) takes and returns a collated batch dict of tensors (img BxCxHxW, gt_seg
BxHxW, gt_seg_scales list of Bxhxw) and runs wherever the tensors are (CPU or GPU); `BatchPreprocessor`
moves a batch to the training device and applies them there.

Random transforms draw from `generator` (a torch.Generator) when given, so a seeded generator makes
them deterministic; without one they draw from torch's global generator, which DataLoader seeds
differently in each worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from hbdk_sim.data.datasets.cityscapes import ID_TO_TRAIN_ID, IGNORE_INDEX
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.registry import TRANSFORMS, build_from_cfg

Sample = dict[str, Any]

# BT.601 full-range ("JFIF") RGB -> YCbCr, as camera ISPs deliver YUV to the BPU: rows give Y, U (Cb), V (Cr)
# from (R, G, B); U and V are offset by 128. Each channel is rounded half up and clipped to [0, 255].
RGB_TO_YUV_BT601_FULL = np.array([[0.299, 0.587, 0.114],
                                  [-0.168736, -0.331264, 0.5],
                                  [0.5, -0.418688, -0.081312]], dtype=np.float64)
YUV_OFFSET = np.array([0.0, 128.0, 128.0])


def _uniform(generator: torch.Generator | None, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _check_sample(sample: Sample, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    img = sample.get("img")
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        got = f"{type(img).__name__} {getattr(img, 'shape', '')} {getattr(img, 'dtype', '')}"
        raise UsageTypeError(f"{name}: expected sample['img'] to be an HxWx3 uint8 array but got {got}; "
                             f"put {name} before ToTensor")
    gt = sample.get("gt_seg")
    if gt is not None and (not isinstance(gt, np.ndarray) or gt.shape != img.shape[:2]):
        raise UsageTypeError(f"{name}: expected sample['gt_seg'] to be an array of shape {img.shape[:2]} but got "
                             f"{getattr(gt, 'shape', type(gt).__name__)}")
    return img, gt


# Per-object fields that follow gt_boxes when a box is dropped.
_PER_OBJECT = ("gt_classes", "gt_track_ids", "gt_ignore")


def _move_geometry(sample: Sample, out: Sample, sx: float, tx: float, sy: float, ty: float,
                   size: tuple[int, int]) -> None:
    """Apply x' = sx * x + tx, y' = sy * y + ty to the boxes and keypoints of `sample` into `out`,
    for an output image of `size` = (height, width)."""
    h, w = size
    keypoints = sample.get("gt_keypoints")
    if keypoints is not None:
        k = np.array(keypoints, dtype=np.float32, copy=True)
        if k.ndim not in (2, 3) or k.shape[-1] != 3:
            raise UsageTypeError(f"expected sample['gt_keypoints'] of shape Kx3 or NxKx3 but got {k.shape}")
        k[..., 0] = sx * k[..., 0] + tx
        k[..., 1] = sy * k[..., 1] + ty
        outside = (k[..., 0] < 0) | (k[..., 0] > w) | (k[..., 1] < 0) | (k[..., 1] > h)
        k[..., 2] = np.where(outside, 0.0, k[..., 2])
        out["gt_keypoints"] = k
    boxes = sample.get("gt_boxes")
    if boxes is None:
        return
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    xs = np.stack([sx * b[:, 0] + tx, sx * b[:, 2] + tx], axis=1)
    ys = np.stack([sy * b[:, 1] + ty, sy * b[:, 3] + ty], axis=1)
    moved = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)
    moved[:, 0::2] = moved[:, 0::2].clip(0, w)
    moved[:, 1::2] = moved[:, 1::2].clip(0, h)
    keep = (moved[:, 2] > moved[:, 0]) & (moved[:, 3] > moved[:, 1])
    out["gt_boxes"] = moved[keep]
    for key in _PER_OBJECT:
        if sample.get(key) is not None:
            out[key] = np.asarray(sample[key])[keep]
    k = out.get("gt_keypoints")
    if k is not None and k.ndim == 3:
        if k.shape[0] != b.shape[0]:
            raise UsageTypeError(f"expected one NxKx3 gt_keypoints entry per box ({b.shape[0]}) but got "
                                 f"{k.shape[0]}")
        out["gt_keypoints"] = k[keep]


@TRANSFORMS.register
class Compose:
    """Run transforms in order; entries may be callables or TRANSFORMS config dicts."""

    def __init__(self, transforms: Sequence[Callable | Mapping]) -> None:
        self.transforms = [build_from_cfg(t, TRANSFORMS) for t in transforms]
        for t in self.transforms:
            if not callable(t):
                raise UsageTypeError(f"Compose: {t!r} is not a transform (not callable)")

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


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
class Resize:
    """Resize to `size` = (height, width): the image bilinear, the label nearest."""

    def __init__(self, size: Sequence[int]) -> None:
        if len(size) != 2 or min(size) <= 0:
            raise UsageError(f"Resize: size must be (height, width) > 0 but got {size!r}")
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, sample: Sample) -> Sample:
        img, gt = _check_sample(sample, "Resize")
        h, w = self.size
        out = {**sample, "img": np.array(Image.fromarray(img).resize((w, h), Image.BILINEAR))}
        if gt is not None:
            out["gt_seg"] = np.array(Image.fromarray(gt).resize((w, h), Image.NEAREST))
        ih, iw = img.shape[:2]
        _move_geometry(sample, out, w / iw, 0.0, h / ih, 0.0, (h, w))
        return out


@TRANSFORMS.register
class SegRandomAffine:
    """Random scaling by a factor in `scale`, then a random translation that crops (or pads) back to
    the input size, or to `size` = (height, width) when given. No rotation or shear. The image is
    sampled bilinear and padded with `img_fill`; the label nearest, padded with `label_fill` (ignored)."""

    random = True

    def __init__(self, scale: Sequence[float] = (0.5, 2.0), size: Sequence[int] | None = None, img_fill: int = 0,
                 label_fill: int = IGNORE_INDEX, p: float = 1.0, generator: torch.Generator | None = None) -> None:
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise UsageError(f"SegRandomAffine: scale must be (low, high) with 0 < low <= high but got {scale!r}")
        self.scale = (float(scale[0]), float(scale[1]))
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.img_fill, self.label_fill, self.p, self.generator = img_fill, label_fill, p, generator

    def __call__(self, sample: Sample) -> Sample:
        img, gt = _check_sample(sample, "SegRandomAffine")
        h, w = img.shape[:2]
        oh, ow = self.size or (h, w)
        if self.p < 1.0 and float(torch.rand((), generator=self.generator)) >= self.p:
            return Resize((oh, ow))(sample) if (oh, ow) != (h, w) else sample
        s = _uniform(self.generator, *self.scale)
        # Offsets of the output window in the scaled image: a crop when it is larger, padding otherwise.
        sw, sh = w * s, h * s
        ox = _uniform(self.generator, min(0.0, sw - ow), max(0.0, sw - ow))
        oy = _uniform(self.generator, min(0.0, sh - oh), max(0.0, sh - oh))
        # PIL maps each output pixel (x, y) to the input pixel (a x + b y + c, d x + e y + f).
        coeffs = (1 / s, 0.0, ox / s, 0.0, 1 / s, oy / s)
        out = {**sample, "img": np.array(Image.fromarray(img).transform(
            (ow, oh), Image.AFFINE, coeffs, resample=Image.BILINEAR, fillcolor=(self.img_fill,) * 3))}
        if gt is not None:
            out["gt_seg"] = np.array(Image.fromarray(gt).transform(
                (ow, oh), Image.AFFINE, coeffs, resample=Image.NEAREST, fillcolor=self.label_fill))
        # PIL samples output point X at input 1/s * X + o/s (continuous coordinates): x' = s x - o.
        _move_geometry(sample, out, s, -ox, s, -oy, (oh, ow))
        return out


@TRANSFORMS.register
class RandomFlip:
    """Flip the image and its labels left-right with probability `p`: boxes and keypoints move with
    it, and the keypoints of each pair in `keypoint_flip_pairs` (a left and a right one) swap places,
    visibility included. A sample with keypoints needs the pairs ([] when no keypoint has a mirror
    twin)."""

    random = True

    def __init__(self, p: float = 0.5, keypoint_flip_pairs: Sequence[Sequence[int]] | None = None,
                 generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise UsageError(f"RandomFlip: p must be in [0, 1] but got {p}")
        pairs = None if keypoint_flip_pairs is None else [tuple(int(i) for i in pair) for pair in keypoint_flip_pairs]
        if pairs is not None and any(len(pair) != 2 for pair in pairs):
            raise UsageError(f"RandomFlip: keypoint_flip_pairs must be pairs of indices but got {keypoint_flip_pairs}")
        if pairs is not None and len({i for pair in pairs for i in pair}) != 2 * len(pairs):
            raise UsageError(f"RandomFlip: keypoint_flip_pairs name a keypoint twice: {keypoint_flip_pairs}")
        self.p, self.pairs, self.generator = p, pairs, generator

    def __call__(self, sample: Sample) -> Sample:
        img, _ = _check_sample(sample, "RandomFlip")
        if sample.get("gt_keypoints") is not None and self.pairs is None:
            raise UsageError("RandomFlip: the sample holds gt_keypoints; give keypoint_flip_pairs (the index "
                             "pairs that swap in a mirror image, [] for none)")
        if float(torch.rand((), generator=self.generator)) >= self.p:
            return sample
        out = dict(sample)
        h, w = img.shape[:2]
        _move_geometry(sample, out, -1.0, float(w), 1.0, 0.0, (h, w))
        if out.get("gt_keypoints") is not None and self.pairs:
            k = out["gt_keypoints"]
            order = np.arange(k.shape[-2])
            for a, b in self.pairs:
                if max(a, b) >= len(order):
                    raise UsageError(f"RandomFlip: keypoint_flip_pairs name keypoint {max(a, b)} but the sample "
                                     f"has {len(order)}")
                order[a], order[b] = b, a
            out["gt_keypoints"] = np.ascontiguousarray(k[..., order, :])
        for key in ("img", "gt_seg"):
            if out.get(key) is not None:
                out[key] = np.ascontiguousarray(out[key][:, ::-1])
        if "gt_seg_scales" in out:
            out["gt_seg_scales"] = [np.ascontiguousarray(g[:, ::-1]) for g in out["gt_seg_scales"]]
        return out


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
        img, _ = _check_sample(sample, "ImageBgrToYuv444")
        order = sample.get("color_space", self.input_order)
        if order == "yuv444":
            return sample
        return {**sample, "img": rgb_to_yuv444(img, order), "color_space": "yuv444"}


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
        img, _ = _check_sample(sample, "ToTensor")
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


# ---- batch transforms: collated tensors, on the training device ----

def _check_batch(batch: Mapping[str, Any], name: str) -> torch.Tensor:
    img = batch.get("img")
    if not isinstance(img, torch.Tensor) or img.ndim != 4:
        raise UsageTypeError(f"{name}: expected batch['img'] to be a BxCxHxW tensor but got "
                             f"{type(img).__name__} {list(getattr(img, 'shape', []))}")
    return img


@TRANSFORMS.register
class BatchNormalize:
    """Normalize on a BxCxHxW batch: (img - mean) / std, as float32."""

    def __init__(self, mean: float | Sequence[float] = 128.0, std: float | Sequence[float] = 128.0) -> None:
        self.sample_normalize = Normalize(mean, std)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        img = _check_batch(batch, "BatchNormalize")
        mean = self.sample_normalize.mean.to(img.device).view(1, -1, 1, 1)
        std = self.sample_normalize.std.to(img.device).view(1, -1, 1, 1)
        return {**batch, "img": (img.float() - mean) / std}


@TRANSFORMS.register
class BatchRandomFlip:
    """Flip each sample of a batch left-right with probability `p` (one draw per sample), image and
    labels together."""

    random = True

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise UsageError(f"BatchRandomFlip: p must be in [0, 1] but got {p}")
        self.p, self.generator = p, generator

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        img = _check_batch(batch, "BatchRandomFlip")
        flip = torch.rand(img.shape[0], generator=self.generator) < self.p
        if not flip.any():
            return batch

        def apply(t: torch.Tensor) -> torch.Tensor:
            mask = flip.to(t.device).view(-1, *([1] * (t.ndim - 1)))
            return torch.where(mask, t.flip(-1), t)

        out = {**batch, "img": apply(img)}
        if isinstance(batch.get("gt_seg"), torch.Tensor):
            out["gt_seg"] = apply(batch["gt_seg"])
        if "gt_seg_scales" in batch:
            out["gt_seg_scales"] = [apply(g) for g in batch["gt_seg_scales"]]
        return out


@TRANSFORMS.register
class BatchPreprocessor:
    """Moves a collated batch's tensors to `device` and runs batch transforms there: the per-batch
    preprocessing the trainer applies between the DataLoader and the model (e.g. flip and
    normalize on the GPU, leaving the workers only decoding)."""

    def __init__(self, transforms: Sequence[Callable | Mapping] = (), device: str | torch.device | None = None) -> None:
        self.transforms = [build_from_cfg(t, TRANSFORMS) for t in transforms]
        self.device = None if device is None else torch.device(device)

    def _move(self, value: Any, device: torch.device) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device, non_blocking=True)
        if isinstance(value, list):
            return [self._move(v, device) for v in value]
        return value

    def __call__(self, batch: dict[str, Any], device: str | torch.device | None = None) -> dict[str, Any]:
        target = torch.device(device) if device is not None else self.device
        if target is not None:
            batch = {k: self._move(v, target) for k, v in batch.items()}
        for t in self.transforms:
            batch = t(batch)
        return batch
