"""calops: per-layer MACs and parameters against hand counts, and against the bundled example's
known totals from both its HBIR file and an equivalent torch model."""

import json
from pathlib import Path

import pytest
import torch
from hbdk_sim.frontend.torch_tracer import UnsupportedOpError
from hbdk_sim.ir import load
from hbdk_sim.opcount import calops
from torch import nn

EXAMPLE = Path(__file__).resolve().parents[2] / "python" / "hbdk_sim" / "examples" / "mobilenet_v1_tiny.hbir"
EXAMPLE_MACS = 5_715_200
EXAMPLE_PARAMS = 57_194


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=1, padding=1)  # 8x8 output
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)  # 4x4 output
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)  # 8x8 output
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        y = self.dw(self.relu(self.bn(self.conv(x))))
        y = self.up(y) * 0.5
        return self.fc(torch.flatten(y, 1))


def test_hand_counts_per_layer():
    report = calops(Small(), (2, 3, 8, 8), name="small")
    by = {layer.layer: layer for layer in report.layers}
    # MACs per output element times output elements; batch 2.
    assert by["conv"].macs == 2 * (8 * 8 * 8) * (3 * 3 * 3)
    assert by["conv"].params == 8 * 3 * 3 * 3 + 8
    assert by["bn"].macs == 0 and by["bn"].params == 4 * 8  # weight, bias, running mean and variance
    assert by["dw"].macs == 2 * (8 * 4 * 4) * (1 * 3 * 3)
    assert by["dw"].params == 8 * 1 * 3 * 3
    # Transposed conv: every input element is multiplied by a k x k x Cout/groups kernel.
    assert by["up"].macs == 2 * (8 * 4 * 4) * (4 * 2 * 2)
    assert by["up"].params == 8 * 4 * 2 * 2 + 4
    assert by["fc"].macs == 2 * 256 * 10
    assert by["fc"].params == 256 * 10 + 10
    assert by["conv"].ops == ["conv2d"] and by["up"].ops == ["conv_transpose2d"] and by["fc"].ops == ["linear"]
    assert by["fc"].output_shape == [2, 10]
    hand = 2 * (8 * 8 * 8 * 27 + 8 * 4 * 4 * 9 + 8 * 4 * 4 * 16 + 2560)
    assert report.total_macs == hand
    assert report.flops == 2 * hand
    assert report.gmacs == hand / 1e9
    # The scalar of `* 0.5` is a constant too; it is the only one outside the module parameters.
    torch_params = sum(p.numel() for p in Small().parameters()) + 2 * 8
    assert report.total_params == torch_params + 1


def test_several_inputs_and_modes_restored():
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 3)
            self.b = nn.Linear(6, 3)
            self.drop = nn.Dropout(0.5)

        def forward(self, x, y):
            return self.a(x) + self.drop(self.b(y))

    model = Two().train()
    model.drop.eval()
    report = calops(model, [(1, 4), (1, 6)])
    assert report.input_shapes == [[1, 4], [1, 6]]
    assert report.total_macs == 4 * 3 + 6 * 3
    assert model.training and model.a.training and not model.drop.training


def test_example_hbir_and_torch_equivalent():
    from_file = calops(EXAMPLE)
    from_module = calops(load(EXAMPLE))
    assert (from_file.total_macs, from_file.total_params) == (EXAMPLE_MACS, EXAMPLE_PARAMS)
    assert (from_module.total_macs, from_module.total_params) == (EXAMPLE_MACS, EXAMPLE_PARAMS)
    assert from_file.input_shapes == [[1, 3, 64, 64]]

    def cbr(cin: int, cout: int, stride: int, groups: int, k: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU6()]

    layers = cbr(3, 16, 2, 1, 3)
    c = 16
    for cout, stride in [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1)]:
        layers += cbr(c, c, stride, c, 3) + cbr(c, cout, 1, 1, 1)
        c = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)]
    report = calops(nn.Sequential(*layers), (1, 3, 64, 64))
    assert (report.total_macs, report.total_params) == (EXAMPLE_MACS, EXAMPLE_PARAMS)
    assert [layer.layer for layer in report.layers][:3] == ["0", "1", "2"]


def test_table_and_json():
    report = calops(Small(), (1, 3, 8, 8), name="small")
    table = report.to_table()
    lines = table.splitlines()
    assert f"MACs {report.total_macs:,}" in lines[1] and f"params {report.total_params:,}" in lines[1]
    rows = [line for line in lines if line.startswith("  conv ") or line.startswith("  fc ")]
    assert len(rows) == 2
    # Right-aligned numeric columns end at the same column on every row.
    assert len({len(r) for r in rows}) == 1
    d = json.loads(report.to_json())
    assert d["format"] == "hbdk-sim.calops" and d["totals"]["macs"] == report.total_macs
    assert d["totals"]["flops"] == 2 * report.total_macs and d["totals"]["params"] == report.total_params
    assert [x["layer"] for x in d["layers"]] == [layer.layer for layer in report.layers]


def test_bad_input_shape_and_untraceable_model():
    with pytest.raises(TypeError, match="input_shape"):
        calops(Small(), "1x3x8x8")
    with pytest.raises(ValueError, match="positive"):
        calops(Small(), (1, 0, 8, 8))

    class Branchy(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x
            return -x

    with pytest.raises(UnsupportedOpError) as e:
        calops(Branchy(), (1, 4))
    assert "\n" not in str(e.value) and "cannot trace module" in str(e.value)
