"""UNet-MobileNetV1 semantic segmentation: the network (`UNetMobileNetV1`, image tensor in, logits
per output stride out) and `Segmentor`, the task model around it: its loss for training, one board
graph (the network's finest logits), the host post-processing (resize to the image, argmax) and
the class colours over the image for `tools/infer.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn

from hbdk_sim.data.datasets.cityscapes import PALETTE as CITYSCAPES_PALETTE
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.nn.backbones.mobilenet_v1 import STRIDES, MobileNetV1
from hbdk_sim.nn.heads.seg_head import SegHead
from hbdk_sim.nn.layers import fuse_blocks
from hbdk_sim.nn.losses import MultiScaleSegLoss
from hbdk_sim.nn.necks.unet import UNetNeck
from hbdk_sim.nn.postprocess.segmentation import seg_postprocess
from hbdk_sim.nn.structures.base import GraphInput, Runner, TaskModel
from hbdk_sim.quantization import DeQuantStub, QuantStub
from hbdk_sim.registry import LOSSES, MODELS, build_from_cfg
from hbdk_sim.visualize import colorize, overlay


@MODELS.register
class UNetMobileNetV1(nn.Module):
    """MobileNetV1 backbone, UNet neck and a per-stride SegHead between a QuantStub and DeQuantStubs.

    `forward(x)` returns a tuple of (N, num_classes, H/s, W/s) logits, one per `out_strides` entry,
    finest first; with `deploy=True` only the finest (the one a board runs). H and W must be
    multiples of 32. The neck upsamples with `upsample_mode` "bilinear" (half-pixel; measured about a
    point of mIoU better on the synthetic set) or "nearest" (cheaper on the board).
    """

    max_stride = STRIDES[-1]

    def __init__(self, num_classes: int = 19, width: float = 0.25, out_strides: Sequence[int] = (4, 8, 16, 32),
                 deploy: bool = False, upsample_mode: str = "bilinear") -> None:
        super().__init__()
        out_strides = tuple(sorted(out_strides))
        if not out_strides or any(s not in STRIDES for s in out_strides):
            raise UsageError(f"UNetMobileNetV1: expected out_strides from {STRIDES} but got {out_strides}")
        self.num_classes = num_classes
        self.out_strides = out_strides
        self.deploy = deploy
        in_strides = tuple(s for s in STRIDES if s >= out_strides[0])
        self.quant = QuantStub()
        self.backbone = MobileNetV1(width=width, out_strides=in_strides)
        channels = [self.backbone.channels[s] for s in in_strides]
        self.neck = UNetNeck(channels, in_strides, out_strides, upsample_mode=upsample_mode)
        self.head = SegHead([self.backbone.channels[s] for s in out_strides], num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...] | torch.Tensor:
        features = self.neck(self.backbone(self.quant(x)))
        if self.deploy:
            return self.dequant(self.head.convs[0](features[0]))
        return tuple(self.dequant(logits) for logits in self.head(features))

    def fuse_model(self, mode: str = "fuse_bn") -> UNetMobileNetV1:
        """Fuse every conv+bn(+relu) and, in the neck, conv+bn+add+relu in place: "fuse_bn" folds BN
        into the convs (eval statistics), "with_bn" keeps it live for QAT."""
        fuse_blocks(self, mode)
        return self


def _validate_image(image: object, max_stride: int) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.dim() != 4:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise UsageError(f"Segmentor: expected an image batch tensor (N, C, H, W) but got {shape}")
    h, w = image.shape[-2:]
    if h % max_stride or w % max_stride:
        raise UsageError(f"Segmentor: image size {h}x{w} is not a multiple of the network's stride {max_stride}; "
                         "resize or pad the images to a multiple of it")
    return image


def downsample_labels(labels: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Labels (N, H, W) at an integer fraction `size` of their resolution, taking the centre pixel of
    each block (no interpolation between class ids)."""
    h, w = labels.shape[-2:]
    oh, ow = int(size[0]), int(size[1])
    if h % oh or w % ow or h // oh != w // ow:
        raise UsageError(f"Segmentor: labels {h}x{w} are not an integer multiple of the logits' {oh}x{ow}")
    s = h // oh
    return labels[..., s // 2::s, s // 2::s]


class FinestLogits(nn.Module):
    """The board graph of a segmentation network: its first (finest) logits only. The coarser
    heads stay in the network for training and calibration; the tracer drops them as unread."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.network(x)
        return logits if isinstance(logits, torch.Tensor) else logits[0]


@MODELS.register
class Segmentor(TaskModel):
    """Training and evaluation around a segmentation network.

    `forward(batch)` takes a dict with the images under `image_key` (N, 3, H, W) and, in training, the
    labels: a list with one (N, h, w) map per output stride, finest first, under `scales_key` (what
    the MultiScaleLabels transform makes), else the (N, H, W) map under `label_key`, downsampled
    here to each output stride (centre pixel of each block). Training returns the loss's dict of
    per-scale losses (the training loss is their sum); eval returns `{"preds": (N, H, W) class ids
    at image size, "logits": the finest logits}`. A bare image tensor is accepted in eval.

    `finest_loss_at_label_size=True` scores the finest logits after the same bilinear resize to the
    full label map that evaluation applies (the coarser scales keep their downsampled labels), so
    training sees the boundaries that evaluation measures.

    The board runs one graph, "network": the image in, the finest logits out. `palette` colours the
    classes in `visualize` (default: Cityscapes').
    """

    visual_names = ("pred", "color")

    def __init__(self, network: nn.Module | Mapping, loss: nn.Module | Mapping | None = None,
                 image_key: str = "img", label_key: str = "gt_seg", scales_key: str = "gt_seg_scales",
                 finest_loss_at_label_size: bool = False,
                 palette: Sequence[Sequence[int]] = CITYSCAPES_PALETTE) -> None:
        super().__init__()
        self.network = build_from_cfg(network, MODELS)
        self.loss = build_from_cfg(loss, LOSSES) if loss is not None else MultiScaleSegLoss()
        strides = getattr(self.network, "out_strides", None)
        weights = getattr(self.loss, "weights", None)
        if strides is not None and weights is not None and len(weights) != len(strides):
            raise UsageError(f"Segmentor: the loss has {len(weights)} weights for the network's "
                             f"{len(strides)} out_strides {tuple(strides)}; give one weight per stride")
        self.image_key = image_key
        self.label_key = label_key
        self.scales_key = scales_key
        self.finest_loss_at_label_size = finest_loss_at_label_size
        self.palette = [tuple(int(v) for v in c) for c in palette]

    @property
    def max_stride(self) -> int:
        """What the image height and width must be multiples of."""
        return int(getattr(self.network, "max_stride", 1))

    # ---- the task contract ----------------------------------------------------------------------------

    def board_modules(self) -> dict[str, nn.Module]:
        return {"network": FinestLogits(self.network)}

    def board_inputs(self, input_shape: Sequence[int]) -> dict[str, tuple[GraphInput, ...]]:
        return {"network": (GraphInput(self.image_key, tuple(int(d) for d in input_shape)),)}

    def predict(self, batch: Mapping[str, Any] | torch.Tensor, runners: Mapping[str, Runner]) -> dict[str, Any]:
        """`{"preds": (N, H, W) class ids at the image size, "logits": the finest logits}`."""
        image = _validate_image(self._image(batch), self.max_stride)
        logits = runners["network"](image)[0]
        return {"preds": seg_postprocess(logits, image.shape[-2:]), "logits": logits}

    def visualize(self, image: np.ndarray, prediction: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """"pred": the class colours blended over the image; "color": the colours alone. The logits
        are resized to the image before the argmax, as evaluation does at the label size."""
        class_ids = seg_postprocess(prediction["logits"][None], image.shape[:2])[0].numpy()
        color = colorize(class_ids, self.palette)
        return {"pred": overlay(image, color), "color": color}

    def fuse_model(self, mode: str = "fuse_bn") -> Segmentor:
        """Fuse the network's conv+bn(+add)(+relu) groups in place (see UNetMobileNetV1.fuse_model)."""
        fuse = getattr(self.network, "fuse_model", None)
        if fuse is None:
            raise UsageTypeError(f"Segmentor: the network {type(self.network).__name__} has no fuse_model method")
        fuse(mode)
        return self

    def _finest_at_label_size(self, batch: Mapping, logits: tuple[torch.Tensor, ...]):
        labels = batch.get(self.label_key)
        if not isinstance(labels, torch.Tensor):
            raise UsageError(f"Segmentor: finest_loss_at_label_size needs the full-size label map under "
                             f"{self.label_key!r} in the batch")
        if labels.dim() == 4 and labels.shape[1] == 1:
            labels = labels[:, 0]
        finest = F.interpolate(logits[0], size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=False)
        return (finest, *logits[1:]), labels.to(finest.device).long()

    def _targets(self, labels, logits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if isinstance(labels, (list, tuple)):
            if len(labels) != len(logits):
                raise UsageError(f"Segmentor: got {len(labels)} label maps for {len(logits)} output scales")
            targets = list(labels)
            for t, x in zip(targets, logits, strict=True):
                if tuple(t.shape[-2:]) != tuple(x.shape[-2:]):
                    raise UsageError(f"Segmentor: a label map is {tuple(t.shape[-2:])} where its scale's logits "
                                     f"are {tuple(x.shape[-2:])}")
        elif isinstance(labels, torch.Tensor):
            if labels.dim() == 4 and labels.shape[1] == 1:
                labels = labels[:, 0]
            targets = [downsample_labels(labels, x.shape[-2:]) for x in logits]
        else:
            raise UsageError(f"Segmentor: expected the labels to be a tensor or a list of them but got "
                             f"{type(labels).__name__}")
        return [t.to(x.device).long() for t, x in zip(targets, logits, strict=True)]

    def _image(self, batch: Mapping | torch.Tensor) -> torch.Tensor:
        if not isinstance(batch, Mapping):
            return batch
        if self.image_key not in batch:
            raise UsageError(f"Segmentor: the batch has no {self.image_key!r} (keys: {sorted(batch)}); set image_key")
        return batch[self.image_key]

    def forward(self, batch: Mapping | torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.training:
            return self.predict(batch, self.board_runners())
        image = _validate_image(self._image(batch), self.max_stride)
        logits = self.network(image)
        logits = (logits,) if isinstance(logits, torch.Tensor) else tuple(logits)
        key = next((k for k in (self.scales_key, self.label_key) if isinstance(batch, Mapping) and k in batch), None)
        if key is None:
            raise UsageError(f"Segmentor: training needs labels under {self.scales_key!r} or {self.label_key!r} "
                             "in the batch")
        targets = self._targets(batch[key], logits)
        if self.finest_loss_at_label_size:
            logits, targets[0] = self._finest_at_label_size(batch, logits)
        return self.loss(logits, targets, getattr(self.network, "out_strides", None))
