"""Geometric transforms: they move the image, its labels and every geometric field of the sample
schema together (see hbdk_sim.data.transforms)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from hbdk_sim.data.datasets.cityscapes import IGNORE_INDEX
from hbdk_sim.data.transforms.base import Sample, check_sample, uniform
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.registry import TRANSFORMS

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


def resize_sample(sample: Sample, name: str, h: int, w: int) -> Sample:
    """`sample` resized to h x w: the image bilinear, the label nearest, boxes and keypoints scaled,
    and `scale_factor` (x, y) composed with the sample's earlier one (what maps predictions back to
    the original pixels)."""
    img, gt = check_sample(sample, name)
    ih, iw = img.shape[:2]
    out = {**sample, "img": np.array(Image.fromarray(img).resize((w, h), Image.BILINEAR))}
    if gt is not None:
        out["gt_seg"] = np.array(Image.fromarray(gt).resize((w, h), Image.NEAREST))
    _move_geometry(sample, out, w / iw, 0.0, h / ih, 0.0, (h, w))
    prior = np.asarray(sample.get("scale_factor", (1.0, 1.0)), np.float32)
    out["scale_factor"] = prior * np.array([w / iw, h / ih], np.float32)
    return out


@TRANSFORMS.register
class Resize:
    """Resize to `size` = (height, width): the image bilinear, the label nearest. With `keep_ratio`
    the image is scaled by one factor, min(height / h, width / w), so it fits inside `size`
    (each side rounded half up); pad it to `size` afterwards with RandomPad. With `ratio_range`
    (low, high) the target size is first scaled by a factor drawn uniformly from it (multi-scale
    training; then a random transform). The sample's
    `scale_factor` (x, y) records the factors from the original pixels (what a detector's host side
    divides its boxes by)."""

    def __init__(self, size: Sequence[int], keep_ratio: bool = False, ratio_range: Sequence[float] | None = None,
                 generator: torch.Generator | None = None) -> None:
        if len(size) != 2 or min(size) <= 0:
            raise UsageError(f"Resize: size must be (height, width) > 0 but got {size!r}")
        if ratio_range is not None and (len(ratio_range) != 2 or not 0 < ratio_range[0] <= ratio_range[1]):
            raise UsageError(f"Resize: ratio_range must be (low, high) with 0 < low <= high but got {ratio_range!r}")
        self.size = (int(size[0]), int(size[1]))
        self.keep_ratio = keep_ratio
        self.ratio_range = None if ratio_range is None else (float(ratio_range[0]), float(ratio_range[1]))
        self.random = self.ratio_range is not None  # a drawn target size (see the package docstring)
        self.generator = generator

    def output_size(self, height: int, width: int, ratio: float = 1.0) -> tuple[int, int]:
        """The (height, width) an image of `height` x `width` is resized to, for a target `size`
        scaled by `ratio`."""
        th, tw = self.size[0] * ratio, self.size[1] * ratio
        if not self.keep_ratio:
            return max(1, int(th + 0.5)), max(1, int(tw + 0.5))
        scale = min(th / height, tw / width)
        return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))

    def __call__(self, sample: Sample) -> Sample:
        img, _ = check_sample(sample, "Resize")
        ratio = uniform(self.generator, *self.ratio_range) if self.ratio_range else 1.0
        return resize_sample(sample, "Resize", *self.output_size(*img.shape[:2], ratio))


def crop_sample(sample: Sample, name: str, ch: int, cw: int, generator: torch.Generator | None) -> Sample:
    """A ch x cw window of `sample` at a uniformly drawn offset (top, then left): the image and label
    sliced, boxes and keypoints moved, clipped and dropped as in _move_geometry."""
    img, gt = check_sample(sample, name)
    h, w = img.shape[:2]
    top = int(torch.randint(0, h - ch + 1, (), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (), generator=generator))
    out = {**sample, "img": np.ascontiguousarray(img[top:top + ch, left:left + cw])}
    if gt is not None:
        out["gt_seg"] = np.ascontiguousarray(gt[top:top + ch, left:left + cw])
    _move_geometry(sample, out, 1.0, float(-left), 1.0, float(-top), (ch, cw))
    return out


@TRANSFORMS.register
class RandomCrop:
    """Crop a `size` = (height, width) window at a uniformly drawn offset (the whole extent along a
    side the image does not exceed). Boxes move with it, are clipped to the window and dropped, with
    their per-object fields, when nothing of them is left; a box whose clipped area is below
    `min_area` pixels is kept but marked ignored (its `gt_classes` entry -1). Keypoints move; those
    leaving the window become invisible."""

    random = True

    def __init__(self, size: Sequence[int], min_area: float = 1e-3, generator: torch.Generator | None = None) -> None:
        if len(size) != 2 or min(size) <= 0:
            raise UsageError(f"RandomCrop: size must be (height, width) > 0 but got {size!r}")
        self.size = (int(size[0]), int(size[1]))
        self.min_area, self.generator = float(min_area), generator

    def __call__(self, sample: Sample) -> Sample:
        img, _ = check_sample(sample, "RandomCrop")
        h, w = img.shape[:2]
        ch, cw = min(self.size[0], h), min(self.size[1], w)
        out = crop_sample(sample, "RandomCrop", ch, cw, self.generator)
        boxes, classes = out.get("gt_boxes"), out.get("gt_classes")
        if boxes is not None and classes is not None and len(boxes):
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            out["gt_classes"] = np.where(area < self.min_area, -1, np.asarray(classes))
        return out


@TRANSFORMS.register
class RandomPad:
    """Pad the image to `size` = (height, width) with `img_fill` (the label with `label_fill`): at the
    bottom and right, or, with `random=True`, at a uniformly drawn (top, left) offset. Boxes and
    keypoints move by the offset. An image larger than `size` is an error (resize it first)."""

    def __init__(self, size: Sequence[int], random: bool = True, img_fill: int = 0, label_fill: int = IGNORE_INDEX,
                 generator: torch.Generator | None = None) -> None:
        if len(size) != 2 or min(size) <= 0:
            raise UsageError(f"RandomPad: size must be (height, width) > 0 but got {size!r}")
        self.size = (int(size[0]), int(size[1]))
        self.random = random  # the class of transforms that draw random numbers (see the package docstring)
        self.img_fill, self.label_fill, self.generator = img_fill, label_fill, generator

    def __call__(self, sample: Sample) -> Sample:
        img, gt = check_sample(sample, "RandomPad")
        h, w = img.shape[:2]
        oh, ow = self.size
        if h > oh or w > ow:
            raise UsageError(f"RandomPad: the image is {h}x{w}, larger than the padded size {oh}x{ow}; put "
                             "Resize(size, keep_ratio=True) before it")
        top = left = 0
        if self.random:
            top = int(torch.randint(0, oh - h + 1, (), generator=self.generator))
            left = int(torch.randint(0, ow - w + 1, (), generator=self.generator))
        canvas = np.full((oh, ow, 3), self.img_fill, np.uint8)
        canvas[top:top + h, left:left + w] = img
        out = {**sample, "img": canvas}
        if gt is not None:
            label = np.full((oh, ow), self.label_fill, np.uint8)
            label[top:top + h, left:left + w] = gt
            out["gt_seg"] = label
        _move_geometry(sample, out, 1.0, float(left), 1.0, float(top), (oh, ow))
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
        img, gt = check_sample(sample, "SegRandomAffine")
        h, w = img.shape[:2]
        oh, ow = self.size or (h, w)
        if self.p < 1.0 and float(torch.rand((), generator=self.generator)) >= self.p:
            return Resize((oh, ow))(sample) if (oh, ow) != (h, w) else sample
        s = uniform(self.generator, *self.scale)
        # Offsets of the output window in the scaled image: a crop when it is larger, padding otherwise.
        sw, sh = w * s, h * s
        ox = uniform(self.generator, min(0.0, sw - ow), max(0.0, sw - ow))
        oy = uniform(self.generator, min(0.0, sh - oh), max(0.0, sh - oh))
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
        img, _ = check_sample(sample, "RandomFlip")
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
