"""Image transforms, per sample (on the data workers) and per batch (on the training device).

A per-sample transform takes and returns a sample dict. The fields it may hold (the sample schema):
    img: HxWx3 uint8 numpy array, channel order in `color_space` ("rgb" from the datasets, "bgr", "yuv444")
    gt_seg: HxW uint8 numpy array (label ids, or train ids after LabelRemap; 255 = ignore)
    gt_seg_scales: list of hxw uint8 arrays (after MultiScaleLabels), coarsest last
    gt_boxes: Nx4 float32 (x1, y1, x2, y2) in image pixels, per object; with it, per object:
        gt_classes (N,) int64, gt_track_ids (N,) int64, gt_ignore (N,) bool, gt_keypoints NxKx3
    gt_keypoints: Kx3 (one object) or NxKx3 float32 (x, y, visibility): visibility 0 = no usable label
        (unlabelled, or outside the image), > 0 labelled (CarFusion: 1 occluded, 2 visible)
    gt_heatmap, gt_heatmap_weight: KxHxW float32 (after GenerateHeatmapTarget)
    scale_factor: (2,) float32 (x, y): input pixels per original pixel (after Resize)
    points: PxD float32 lidar points (x, y, z, ...) in the sensor frame; image transforms leave them
Coordinates are continuous: pixel (i, j) covers [j, j+1) x [i, i+1). Every geometric transform
(Resize, RandomCrop, RandomPad, SegRandomAffine, RandomFlip) moves every geometric field it finds: boxes are clipped to
the image and dropped, with their per-object fields, when nothing of them is left; keypoints that
leave the image keep their coordinates and become invisible. RandomFlip swaps the keypoints of each
of its `keypoint_flip_pairs` (coordinates and visibility together).

A transform class declares `random = True` when it draws random numbers (it cannot be part of the
board preprocessing) and `label_only = True` when it touches only labels (an image without labels
skips it).

Clip transforms (`Seq`, in transforms/sequence.py) take a list of frames and run per-sample
transforms on each with the same random draw (video tasks).

ToTensor turns `img` into a CxHxW tensor and the labels into int64 tensors; Normalize works on that.

A batch transform (Batch*) takes and returns a collated batch dict of tensors (img BxCxHxW, gt_seg
BxHxW, gt_seg_scales list of Bxhxw) and runs wherever the tensors are (CPU or GPU); `BatchPreprocessor`
moves a batch to the training device and applies them there.

Random transforms draw from `generator` (a torch.Generator) when given, so a seeded generator makes
them deterministic; without one they draw from torch's global generator, which DataLoader seeds
differently in each worker.
"""

from hbdk_sim.data.transforms.base import Compose, Sample
from hbdk_sim.data.transforms.batch import BatchNormalize, BatchPreprocessor, BatchRandomFlip
from hbdk_sim.data.transforms.color import (
    RGB_TO_YUV_BT601_FULL,
    YUV_OFFSET,
    AddGaussianNoise,
    AugmentHSV,
    ImageBgrToYuv444,
    rgb_to_yuv444,
)
from hbdk_sim.data.transforms.geometric import RandomCrop, RandomFlip, RandomPad, Resize, SegRandomAffine
from hbdk_sim.data.transforms.label import GenerateHeatmapTarget, LabelRemap, MultiScaleLabels
from hbdk_sim.data.transforms.sequence import RandomChoice, RandomSizeCrop, ResizeShortSide, Seq
from hbdk_sim.data.transforms.tensor import Normalize, ToTensor

__all__ = [
    "AddGaussianNoise",
    "AugmentHSV",
    "BatchNormalize",
    "BatchPreprocessor",
    "BatchRandomFlip",
    "Compose",
    "GenerateHeatmapTarget",
    "ImageBgrToYuv444",
    "LabelRemap",
    "MultiScaleLabels",
    "Normalize",
    "RGB_TO_YUV_BT601_FULL",
    "RandomChoice",
    "RandomCrop",
    "RandomFlip",
    "RandomPad",
    "RandomSizeCrop",
    "Resize",
    "ResizeShortSide",
    "Sample",
    "SegRandomAffine",
    "Seq",
    "ToTensor",
    "YUV_OFFSET",
    "rgb_to_yuv444",
]
