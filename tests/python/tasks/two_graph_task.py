"""A task model with two board graphs and host code between them, to test the task contract
through every deployment tool: "encoder" (image -> features at stride 4) and "decoder" (features ->
class logits), with the host keeping the encoder's features of the strongest channel only
(a top-k on the host, as a tracker's bookkeeping runs between its graphs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from hbdk_sim.nn.layers import ConvBNAct, fuse_blocks
from hbdk_sim.nn.postprocess import seg_postprocess
from hbdk_sim.nn.structures import GraphInput, TaskModel
from hbdk_sim.nn.structures.base import Runner
from hbdk_sim.quantization import DeQuantStub, QuantStub
from hbdk_sim.visualize import colorize
from torch import nn

FEATURES = 8
STRIDE = 4


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.stem = ConvBNAct(3, FEATURES, 3, stride=2)
        self.down = ConvBNAct(FEATURES, FEATURES, 3, stride=2)
        self.dequant = DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.down(self.stem(self.quant(x))))


class Decoder(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.mix = ConvBNAct(FEATURES, FEATURES, 1)
        self.classifier = nn.Conv2d(FEATURES, num_classes, 1)
        self.dequant = DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.classifier(self.mix(self.quant(x))))


class TwoGraphSegmentor(TaskModel):
    visual_names = ("color",)

    def __init__(self, num_classes: int = 19, keep_channels: int = 6) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder(num_classes)
        self.keep_channels = keep_channels
        self.max_stride = STRIDE

    def fuse_model(self, mode: str = "fuse_bn") -> TwoGraphSegmentor:
        fuse_blocks(self, mode)
        return self

    def board_modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    def board_inputs(self, input_shape: Sequence[int]) -> dict[str, tuple[GraphInput, ...]]:
        n, _, h, w = (int(d) for d in input_shape)
        return {"encoder": (GraphInput("img", (n, 3, h, w)),),
                "decoder": (GraphInput("features", (n, FEATURES, h // STRIDE, w // STRIDE), value_range=(0.0, 4.0)),)}

    def _between(self, features: torch.Tensor) -> torch.Tensor:
        """Host code between the graphs: the `keep_channels` channels of largest mean survive."""
        strength = features.mean(dim=(2, 3))
        weak = strength.argsort(dim=1)[:, : FEATURES - self.keep_channels]
        return features.scatter(1, weak[:, :, None, None].expand(-1, -1, *features.shape[2:]), 0.0)

    def predict(self, batch: Mapping[str, Any], runners: Mapping[str, Runner]) -> dict[str, Any]:
        image = batch["img"]
        (features,) = runners["encoder"](image)
        (logits,) = runners["decoder"](self._between(features))
        return {"preds": seg_postprocess(logits, image.shape[-2:]), "logits": logits}

    def visualize(self, image: np.ndarray, prediction: Mapping[str, Any]) -> dict[str, np.ndarray]:
        ids = seg_postprocess(prediction["logits"][None], image.shape[:2])[0].numpy()
        return {"color": colorize(ids, [(i * 12, 255 - i * 12, 128) for i in range(19)])}

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        if not self.training:
            return self.predict(batch, self.board_runners())
        image, labels = batch["img"], batch["gt_seg"]
        logits = self.decoder(self._between(self.encoder(image)))
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        return {"loss": F.cross_entropy(logits, labels.long(), ignore_index=255)}
