"""The FCOS task model: training losses on a small batch (finite, and falling when fitting it), the
host prediction's format, the task contract's board graph, and the detections picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hbdk_sim.errors import UsageError
from hbdk_sim.nn.structures import FCOS, FCOSNet


def _model(num_classes=3):
    torch.manual_seed(0)
    net = FCOSNet(backbone=dict(type="EfficientNet", model_type="b0"), neck=dict(type="BiFPN"),
                  head=dict(type="FCOSHead", num_classes=num_classes))
    return FCOS(net, num_classes=num_classes, class_names=["car", "dog", "cup"])


def _batch():
    g = torch.Generator().manual_seed(1)
    return {"img": torch.rand(2, 3, 128, 128, generator=g) * 2 - 1,
            "gt_boxes": [torch.tensor([[10.0, 12.0, 60.0, 70.0], [70.0, 20.0, 120.0, 100.0]]),
                         torch.tensor([[30.0, 30.0, 90.0, 90.0], [0.0, 0.0, 20.0, 20.0]])],
            "gt_classes": [torch.tensor([0, 2]), torch.tensor([1, -1])]}  # the last one is an ignore box


def test_training_losses_fall_when_fitting_one_batch():
    model = _model().train()
    opt = torch.optim.AdamW(model.parameters(), 2e-3)
    batch, totals = _batch(), []
    for _ in range(20):
        losses = model(batch)
        assert set(losses) == {"loss_cls", "loss_reg", "loss_centerness"}
        total = sum(losses.values())
        assert torch.isfinite(total)
        opt.zero_grad()
        total.backward()
        opt.step()
        totals.append(float(total.detach()))
    assert sum(totals[-3:]) / 3 < 0.6 * totals[0]  # the assignment changes as it learns: noisy, but falling


def test_prediction_format_and_contract():
    model = _model().eval()
    (graph,) = model.board_graphs([1, 3, 128, 128])
    assert graph.name == "network" and graph.inputs[0].shape == (1, 3, 128, 128)
    outputs = model.board_runners()["network"](torch.zeros(1, 3, 128, 128))
    assert len(outputs) == 15 and [tuple(o.shape[1:]) for o in outputs[:5]] == [(3, 16, 16), (3, 8, 8), (3, 4, 4),
                                                                                  (3, 2, 2), (3, 1, 1)]
    with torch.no_grad():
        pred = model({"img": _batch()["img"], "scale_factor": torch.tensor([0.5, 2.0])})
    assert len(pred["detections"]) == 2
    for det in pred["detections"]:
        assert det.shape[1] == 6 and det.shape[0] <= 100
    # An untrained head starts at a 1% prior: nothing passes the 0.05 filter.
    assert all(d.shape[0] == 0 for d in pred["detections"])
    picture = model.visualize(np.zeros((64, 80, 3), np.uint8),
                              {"detections": torch.tensor([[5.0, 5.0, 40.0, 30.0, 0.9, 1.0]])})["detections"]
    assert picture.shape == (64, 80, 3) and picture.any()
    with pytest.raises(UsageError, match="multiple of the largest stride"):
        model({"img": torch.zeros(1, 3, 100, 128)})


def test_head_outputs_are_si16_after_calibration_and_conversion():
    from hbdk_sim.quantization import Float2Calibration, QAT2Quantize, set_fake_quant_state

    model = _model().eval()
    model = Float2Calibration(observer="percentile", observer_kwargs=dict(percentile=99.9))(model)
    head = model.network.head
    assert head.conv_cls.activation_post_process.dtype == "si16"
    assert head.conv_reg.activation_post_process.dtype == "si16"  # conv_reg fused with its ReLU
    assert head.conv_centerness.activation_post_process.dtype == "si16"
    assert head.cls_tower.levels[0][0].pointwise.activation_post_process.dtype == "si8"
    model.train()
    with torch.no_grad():
        model(_batch())
    set_fake_quant_state(model, "validation")
    model = QAT2Quantize(input_shape=[1, 3, 128, 128])(model.eval())
    text = model.integer_graphs["network"].hbir_text
    # Each of the 15 outputs is the dequantization of an si16 value.
    for name in ("head_conv_cls", "head_conv_reg", "head_conv_centerness"):
        for level in range(5):
            value = f"%{name}{'' if level == 0 else f'_{level}'}.q"
            (line,) = [x for x in text.splitlines() if x.strip().startswith(f"{value} = ")]
            assert "si16" in line.split(":")[-1], line
