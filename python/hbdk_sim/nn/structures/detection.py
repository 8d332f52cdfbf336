"""FCOS object detection: `FCOSNet` (image in; per level class logits, box distances and centerness
out: a backbone, BiFPN, FCOSHead, between a QuantStub and DeQuantStubs) and `FCOS`, the task model:
dynamic targets and the focal / GIoU / centerness losses for training, one board graph ("network",
15 outputs: the class maps of the five levels, then the box maps, then the centerness maps), and on
the host the post-processing to (x1, y1, x2, y2, score, label) rows in original image pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.nn.layers import fuse_blocks
from hbdk_sim.nn.losses.detection import CenternessBCE, GIoULoss, SigmoidFocalLoss, fcos_centerness
from hbdk_sim.nn.postprocess.fcos import LOGIT_OF_0_05, fcos_postprocess
from hbdk_sim.nn.structures.base import Runner, SingleGraphTask
from hbdk_sim.nn.targets.fcos import DynamicFcosTarget, fcos_points
from hbdk_sim.quantization import DeQuantStub, QuantStub
from hbdk_sim.registry import MODELS, build_from_cfg
from hbdk_sim.visualize import draw_boxes


@MODELS.register
class FCOSNet(nn.Module):
    """`forward(x)` -> a tuple of 3 x levels tensors: class logits of every level, then box distances
    (stride units), then centerness logits, each dequantized."""

    def __init__(self, backbone: nn.Module | Mapping, neck: nn.Module | Mapping, head: nn.Module | Mapping) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.backbone = build_from_cfg(backbone, MODELS)
        self.neck = build_from_cfg(neck, MODELS)
        self.head = build_from_cfg(head, MODELS)
        self.dequant = DeQuantStub()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cls, reg, ctr = self.head(self.neck(self.backbone(self.quant(x))))
        return tuple(self.dequant(t) for t in (*cls, *reg, *ctr))


def _split(outputs: Sequence[torch.Tensor], levels: int) -> tuple[list[torch.Tensor], ...]:
    if len(outputs) != 3 * levels:
        raise UsageError(f"FCOS: the network gives {len(outputs)} outputs; expected 3 per level ({3 * levels})")
    return list(outputs[:levels]), list(outputs[levels:2 * levels]), list(outputs[2 * levels:])


@MODELS.register
class FCOS(SingleGraphTask):
    """Anchor-free detection. In training `forward(batch)` takes the images under `image_key` and,
    per image, `gt_boxes` (G, 4 xyxy input pixels) and `gt_classes` (G,; < 0 marks an ignore box) as
    lists (or (B, G, 4) / (B, G) tensors), assigns targets with DynamicFcosTarget and returns
    {"loss_cls", "loss_reg", "loss_centerness"}. In eval it returns `{"detections": per image (K, 6)
    rows (x1, y1, x2, y2, score, label)}` in original pixels: the batch's `scale_factor` (per image,
    the resize from original to input pixels) maps them back. `filter_threshold` is the board
    filter's class logit threshold (the logit of 0.05), `score_threshold` the NMS candidates' score
    threshold (see fcos_postprocess)."""

    visual_names = ("detections",)
    # The three head outputs stay si16 on the board (calibration and QAT prepare them so).
    int16_outputs = ("network.head.conv_cls", "network.head.conv_reg", "network.head.conv_centerness")

    def __init__(self, network: nn.Module | Mapping, num_classes: int = 80,
                 strides: Sequence[int] = (8, 16, 32, 64, 128), topk: int = 10,
                 class_names: Sequence[str] | None = None, score_threshold: float = 0.05,
                 iou_threshold: float = 0.6, max_per_image: int = 100, nms_pre: int = 1000,
                 filter_threshold: float = LOGIT_OF_0_05, image_key: str = "img") -> None:
        super().__init__()
        self.network = build_from_cfg(network, MODELS)
        self.num_classes, self.strides = int(num_classes), tuple(int(s) for s in strides)
        self.target = DynamicFcosTarget(self.strides, self.num_classes, topk)
        self.loss_cls, self.loss_reg, self.loss_ctr = SigmoidFocalLoss(), GIoULoss(), CenternessBCE()
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.post = dict(score_threshold=score_threshold, iou_threshold=iou_threshold, max_per_image=max_per_image,
                         nms_pre=nms_pre, logit_threshold=filter_threshold)
        self.image_key = image_key

    # ---- the task contract (the board graph: SingleGraphTask) -------------------------------------------

    def predict(self, batch: Mapping[str, Any] | torch.Tensor, runners: Mapping[str, Runner]) -> dict[str, Any]:
        image = self._image(batch)
        cls, reg, ctr = _split(runners["network"](image), len(self.strides))
        scale = batch.get("scale_factor") if isinstance(batch, Mapping) else None
        detections = fcos_postprocess(cls, reg, ctr, self.strides, image.shape[-2:],
                                      None if scale is None else torch.as_tensor(scale, dtype=torch.float32),
                                      **self.post)
        return {"detections": detections}

    def visualize(self, image: np.ndarray, prediction: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """"detections": the boxes over the original image, labelled with class and score."""
        rows = np.asarray(prediction["detections"], np.float64).reshape(-1, 6)
        labels = [f"{self.class_names[int(k)]} {s:.2f}" for s, k in rows[:, 4:6]]
        return {"detections": draw_boxes(image, rows[:, :4], labels, rows[:, 5].astype(np.int64))}

    def fuse_model(self, mode: str = "fuse_bn") -> FCOS:
        fuse_blocks(self.network, mode)
        return self

    # ---- training --------------------------------------------------------------------------------------

    def forward(self, batch: Mapping[str, Any] | torch.Tensor) -> dict[str, Any]:
        if not self.training:
            return self.predict(batch, self.board_runners())
        if not isinstance(batch, Mapping) or "gt_boxes" not in batch or "gt_classes" not in batch:
            raise UsageTypeError("FCOS: training needs a batch dict with the images, gt_boxes and gt_classes")
        image = self._image(batch)
        cls, reg, ctr = _split(self.network(image), len(self.strides))
        n = image.shape[0]
        sizes = [tuple(c.shape[-2:]) for c in cls]
        points, point_strides = fcos_points(sizes, self.strides, device=image.device)
        cls_flat = torch.cat([c.flatten(2) for c in cls], 2).transpose(1, 2)  # (N, P, C)
        reg_flat = torch.cat([r.flatten(2) for r in reg], 2).transpose(1, 2)  # (N, P, 4)
        ctr_flat = torch.cat([t.flatten(2) for t in ctr], 2)[:, 0]  # (N, P)
        boxes, classes = batch["gt_boxes"], batch["gt_classes"]
        if len(boxes) != n or len(classes) != n:
            raise UsageError(f"FCOS: {n} images but {len(boxes)} box sets and {len(classes)} class sets")
        with torch.no_grad():
            targets = [self.target(points, point_strides, cls_flat[i].detach(), reg_flat[i].detach(),
                                   torch.as_tensor(boxes[i], dtype=torch.float32, device=image.device).reshape(-1, 4),
                                   torch.as_tensor(classes[i], device=image.device).reshape(-1).long())
                       for i in range(n)]
        labels = torch.cat([t.labels for t in targets])
        weights = torch.cat([t.label_weights for t in targets])
        pos = torch.cat([t.pos_mask for t in targets])
        num_pos = max(int(pos.sum()), 1)
        loss_cls = self.loss_cls(cls_flat.reshape(-1, self.num_classes), labels, weights, avg_factor=num_pos)
        bbox_targets = torch.cat([t.bbox_targets for t in targets])[pos]
        pred = reg_flat.reshape(-1, 4)[pos]
        # Boxes around the origin: (-l, -t, r, b), in stride units (the IoU does not depend on the unit).
        weight = fcos_centerness(bbox_targets)
        loss_reg = self.loss_reg(torch.cat([-pred[:, :2], pred[:, 2:]], 1),
                                 torch.cat([-bbox_targets[:, :2], bbox_targets[:, 2:]], 1), weight,
                                 avg_factor=weight.sum().clamp(min=1e-6))
        ctr_target = torch.cat([t.centerness_targets for t in targets])[pos]
        loss_ctr = self.loss_ctr(ctr_flat.reshape(-1)[pos], ctr_target)
        return {"loss_cls": loss_cls, "loss_reg": loss_reg, "loss_centerness": loss_ctr}

    def _image(self, batch: Mapping | torch.Tensor) -> torch.Tensor:
        image = batch if not isinstance(batch, Mapping) else batch.get(self.image_key)
        if not isinstance(image, torch.Tensor) or image.dim() != 4:
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise UsageError(f"FCOS: expected an image batch (N, C, H, W) under {self.image_key!r} but got {got}")
        limit = self.strides[-1]
        if image.shape[-1] % limit or image.shape[-2] % limit:
            raise UsageError(f"FCOS: image size {tuple(image.shape[-2:])} is not a multiple of the largest stride "
                             f"{limit}; pad the images to a multiple of it")
        return image
