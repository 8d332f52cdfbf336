"""Heatmap keypoint detection (the car keypoint task): `HeatmapKeypointNet` (image in, one heatmap
per keypoint out: a backbone, a DeconvDecoder head, between a QuantStub and a DeQuantStub) and
`HeatmapKeypointModel`, the task model around it: the weighted heatmap loss for training, one board
graph ("network", the heatmaps), and the host side: heatmap decoding to keypoint coordinates and
the picture of the keypoints and the skeleton for `tools/infer.py`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.nn.layers import fuse_blocks
from hbdk_sim.nn.losses.keypoint import HeatmapMSELoss
from hbdk_sim.nn.postprocess.keypoint import decode_heatmaps
from hbdk_sim.nn.structures.base import Runner, SingleGraphTask
from hbdk_sim.quantization import DeQuantStub, QuantStub
from hbdk_sim.registry import LOSSES, MODELS, build_from_cfg
from hbdk_sim.visualize import draw_keypoints


@MODELS.register
class HeatmapKeypointNet(nn.Module):
    """`forward(x)`: the image (N, 3, H, W), quantized at the input, through `backbone` (a list of
    feature maps) and `head` (heatmaps (N, K, H / stride, W / stride)), dequantized."""

    def __init__(self, backbone: nn.Module | Mapping, head: nn.Module | Mapping) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.backbone = build_from_cfg(backbone, MODELS)
        self.head = build_from_cfg(head, MODELS)
        self.dequant = DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.head(self.backbone(self.quant(x))))


@MODELS.register
class HeatmapKeypointModel(SingleGraphTask):
    """Keypoints of one object per image from heatmaps.

    `forward(batch)`: in training, `{"loss": HeatmapMSELoss}` from the images under `image_key`
    and GenerateHeatmapTarget's `gt_heatmap`, `gt_heatmap_weight` with `gt_keypoints` (B, K, 3)
    (visibility 0: the keypoint adds nothing); in eval, `predict`.

    The board runs one graph, "network": the image (N, 3, H, W) in, the heatmaps out. The host
    decodes them (decode_heatmaps, `window` x `window` weighted mean around the peak) into
    `{"keypoints": (N, K, 2) (x, y) in input pixels, "scores": (N, K) peak values in [0, 1],
    "heatmaps": the board output}`.

    `image_size` (H, W) is the network input the validation transforms make by a ratio-keeping
    resize and a pad at the bottom and right; `visualize` maps keypoints back to the original image
    by that resize. `skeleton` (index pairs) is drawn between the keypoints.
    """

    visual_names = ("keypoints",)

    def __init__(self, network: nn.Module | Mapping, num_keypoints: int = 12, stride: int = 4,
                 image_size: Sequence[int] = (128, 128), loss: nn.Module | Mapping | None = None,
                 window: int = 5, skeleton: Sequence[Sequence[int]] = (), score_threshold: float = 0.5,
                 image_key: str = "img") -> None:
        super().__init__()
        self.network = build_from_cfg(network, MODELS)
        self.loss = build_from_cfg(loss, LOSSES) if loss is not None else HeatmapMSELoss()
        self.num_keypoints, self.stride, self.window = int(num_keypoints), int(stride), int(window)
        if len(image_size) != 2 or min(image_size) < 1:
            raise UsageError(f"HeatmapKeypointModel: image_size must be (height, width) but got {image_size!r}")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        if any(self.image_size[i] % self.stride for i in (0, 1)):
            raise UsageError(f"HeatmapKeypointModel: image_size {self.image_size} is not a multiple of the heatmap "
                             f"stride {self.stride}")
        self.skeleton = [tuple(int(i) for i in edge) for edge in skeleton]
        if any(len(e) != 2 or not all(0 <= i < self.num_keypoints for i in e) for e in self.skeleton):
            raise UsageError(f"HeatmapKeypointModel: skeleton edges must be pairs of keypoint indices in "
                             f"0..{self.num_keypoints - 1} but got {list(skeleton)}")
        self.score_threshold = float(score_threshold)
        self.image_key = image_key

    # ---- the task contract (the board graph: SingleGraphTask) -------------------------------------------

    def predict(self, batch: Mapping[str, Any] | torch.Tensor, runners: Mapping[str, Runner]) -> dict[str, Any]:
        image = self._image(batch)
        heatmaps = runners["network"](image)[0]
        self._check_heatmaps(image, heatmaps)
        keypoints, scores = decode_heatmaps(heatmaps, self.stride, self.window)
        return {"keypoints": keypoints, "scores": scores, "heatmaps": heatmaps}

    def visualize(self, image: np.ndarray, prediction: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """"keypoints": the keypoints and skeleton over the original image (filled: score at least
        `score_threshold`; hollow: below)."""
        h, w = image.shape[:2]
        scale = min(self.image_size[0] / h, self.image_size[1] / w)  # Resize(keep_ratio=True)'s factor
        keypoints = np.asarray(prediction["keypoints"], np.float64) / scale
        return {"keypoints": draw_keypoints(image, keypoints, np.asarray(prediction["scores"]), self.skeleton,
                                            self.score_threshold)}

    def fuse_model(self, mode: str = "fuse_bn") -> HeatmapKeypointModel:
        """Fuse the network's conv(transpose)+bn(+add)(+relu) groups in place."""
        fuse_blocks(self.network, mode)
        return self

    # ---- training --------------------------------------------------------------------------------------

    def forward(self, batch: Mapping[str, Any] | torch.Tensor) -> dict[str, Any]:
        if not self.training:
            return self.predict(batch, self.board_runners())
        if not isinstance(batch, Mapping):
            raise UsageTypeError("HeatmapKeypointModel: training needs a batch dict with the image and "
                                 "gt_heatmap, gt_heatmap_weight, gt_keypoints (put GenerateHeatmapTarget in the "
                                 "train transforms)")
        missing = [k for k in ("gt_heatmap", "gt_heatmap_weight", "gt_keypoints") if k not in batch]
        if missing:
            raise UsageError(f"HeatmapKeypointModel: the training batch has no {', '.join(missing)}; put "
                             "GenerateHeatmapTarget in the train transforms")
        image = self._image(batch)
        heatmaps = self.network(image)
        self._check_heatmaps(image, heatmaps)
        target = batch["gt_heatmap"].to(heatmaps)
        if target.shape != heatmaps.shape:
            raise UsageError(f"HeatmapKeypointModel: the target heatmaps are {tuple(target.shape)} but the network "
                             f"gives {tuple(heatmaps.shape)}; set GenerateHeatmapTarget's heatmap_size and stride "
                             f"to the network's")
        valid = batch["gt_keypoints"][..., 2].to(heatmaps.device) > 0
        return {"loss": self.loss(heatmaps, target, batch["gt_heatmap_weight"].to(heatmaps), valid)}

    def _image(self, batch: Mapping | torch.Tensor) -> torch.Tensor:
        image = batch if not isinstance(batch, Mapping) else batch.get(self.image_key)
        if not isinstance(image, torch.Tensor) or image.dim() != 4:
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise UsageError(f"HeatmapKeypointModel: expected an image batch (N, C, H, W) under {self.image_key!r} "
                             f"but got {got}")
        return image

    def _check_heatmaps(self, image: torch.Tensor, heatmaps: torch.Tensor) -> None:
        want = (image.shape[0], self.num_keypoints, image.shape[2] // self.stride, image.shape[3] // self.stride)
        if tuple(heatmaps.shape) != want:
            raise UsageError(f"HeatmapKeypointModel: the network gives heatmaps {tuple(heatmaps.shape)} for an image "
                             f"{tuple(image.shape)}; expected {want} (num_keypoints {self.num_keypoints}, stride "
                             f"{self.stride})")
