"""Quantization sensitivity: metrics against reference computations, the ranking of a deliberately
damaged layer, restored fake-quant states, the int16 helper and the HTML view beside cycles."""

import json
import math

import hbdk_sim
import numpy as np
import pytest
import torch
from hbdk_sim.frontend.torch_tracer import trace_float
from hbdk_sim.quantization import (
    FakeQuantize,
    QuantStub,
    default_qconfig,
    fuse_modules,
    prepare_qat,
    set_fake_quant_state,
    set_qconfig,
)
from hbdk_sim.quantization.sensitivity import (
    FULL_MODEL,
    cosine_similarity,
    int16_qconfig_for_sensitive,
    sensitivity,
    sqnr_db,
)
from hbdk_sim.quantization.sensitivity_html import layer_cycles, sensitivity_html
from torch import nn

OUTLIER = 400.0


class Net(nn.Module):
    """conv1's channel 0 carries a huge constant that conv2 ignores: with si8 the scale follows the
    outlier and the other channels round to nothing, so conv1 alone ruins the output."""

    def __init__(self, stub: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.quant = QuantStub() if stub else nn.Identity()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8, 6)
        with torch.no_grad():
            self.conv1.bias[0] = OUTLIER
            self.conv2.weight[:, 0] = 0.0
            # No constant offsets downstream: they would survive quantization and mask the damage.
            self.conv2.bias.zero_()
            self.fc.bias.zero_()

    def forward(self, x):
        y = self.relu1(self.conv1(self.quant(x)))
        y = self.relu2(self.conv2(y))
        return self.fc(self.flatten(self.pool(y)))


GROUPS = [["conv1", "relu1"], ["conv2", "relu2"]]


def data(n: int = 4, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, 12, 12, generator=g) for _ in range(n)]


def calibrated(float_model: nn.Module, by_name=None) -> nn.Module:
    fused = fuse_modules(float_model, GROUPS)
    set_qconfig(fused, default_qconfig(), by_name=by_name)
    model = prepare_qat(fused).eval()
    set_fake_quant_state(model, "calibration")
    with torch.no_grad():
        for x in data(8, seed=2):
            model(x)
    return model


@pytest.fixture(scope="module")
def models():
    float_model = Net().eval()
    return float_model, calibrated(float_model)


def test_metrics_against_references():
    ref = np.array([1.0, 2.0, 3.0])
    test = np.array([1.0, 2.0, 4.0])
    assert cosine_similarity(ref, test) == pytest.approx(17.0 / math.sqrt(14.0 * 21.0), rel=1e-15)
    assert sqnr_db(ref, test) == pytest.approx(10.0 * math.log10(14.0 / 1.0), rel=1e-15)
    assert sqnr_db(ref, ref) == math.inf and cosine_similarity(ref, ref) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 50)).astype(np.float32)
    b = a + 0.1 * rng.standard_normal((3, 50)).astype(np.float32)
    expected = float(torch.nn.functional.cosine_similarity(torch.from_numpy(a).double().reshape(1, -1),
                                                           torch.from_numpy(b).double().reshape(1, -1)))
    assert cosine_similarity(torch.from_numpy(a), b) == pytest.approx(expected, rel=1e-12)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    assert sqnr_db(a, b) == pytest.approx(10 * np.log10((a64**2).sum() / ((a64 - b64) ** 2).sum()), rel=1e-12)
    assert cosine_similarity(np.zeros(3), np.zeros(3)) == 1.0 and cosine_similarity(np.zeros(3), ref) == 0.0


def test_damaged_layer_ranks_first(models):
    float_model, quant = models
    report = sensitivity(float_model, quant, data())
    names = [x.name for x in report.layers]
    assert sorted(names) == ["conv1", "conv2", "fc", "quant"]
    worst = report.layers[0]
    assert worst.name == "conv1" and worst.module_type == "FusedConv2d" and worst.dtype == "si8"
    assert worst.cosine < 0.9 and all(x.cosine > 0.99 for x in report.layers[1:])
    assert [x.cosine for x in report.layers] == sorted(x.cosine for x in report.layers)
    assert report.most_sensitive(2) == report.layers[:2]
    by_sqnr = sensitivity(float_model, quant, data(), metric="sqnr")
    assert by_sqnr.layers[0].name == "conv1"
    assert [x.sqnr for x in by_sqnr.layers] == sorted(x.sqnr for x in by_sqnr.layers)

    # The full model computed independently: every fake-quantizer in validation state.
    set_fake_quant_state(quant, "validation")
    with torch.no_grad():
        ref = torch.cat([float_model(x).reshape(-1) for x in data()])
        out = torch.cat([quant(x).reshape(-1) for x in data()])
    set_fake_quant_state(quant, "calibration")
    assert report.full.name == FULL_MODEL
    assert report.full.cosine == pytest.approx(cosine_similarity(ref, out), abs=1e-12)
    assert report.full.sqnr == pytest.approx(sqnr_db(ref, out), abs=1e-9)


def test_tuple_inputs_and_outputs():
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(3)
            self.a = nn.Linear(4, 5)
            self.b = nn.Linear(4, 3)

        def forward(self, x, y):
            return self.a(x), self.b(y)

    float_model = Two().eval()
    quant = prepare_qat(float_model, default_qconfig()).eval()
    samples = [(torch.randn(2, 4), torch.randn(2, 4)) for _ in range(3)]
    with torch.no_grad():
        for s in samples:
            quant(*s)
    report = sensitivity(float_model, quant, samples)
    assert sorted(x.name for x in report.layers) == ["a", "b"]
    # Quantizing only `a` leaves `b`'s outputs exact, so the concatenated error is `a`'s alone.
    set_fake_quant_state(quant, "validation")
    quant.b.weight_fake_quant.enable_fake_quant(False)
    quant.b.activation_post_process.enable_fake_quant(False)
    with torch.no_grad():
        ref = torch.cat([torch.cat([o.reshape(-1) for o in float_model(*s)]) for s in samples])
        out = torch.cat([torch.cat([o.reshape(-1) for o in quant(*s)]) for s in samples])
    got = {x.name: x for x in report.layers}["a"]
    assert got.sqnr == pytest.approx(sqnr_db(ref, out), abs=1e-9)


def _states(model: nn.Module):
    return [(int(fq.observer_enabled), int(fq.fake_quant_enabled)) for fq in model.modules()
            if isinstance(fq, FakeQuantize)]


def test_states_and_modes_restored_also_on_error(models):
    float_model, quant = models
    quant.train()
    quant.conv2.eval()
    set_fake_quant_state(quant, "qat")
    quant.conv1.activation_post_process.set_state("validation")
    before = _states(quant)
    stats = {k: v.clone() for k, v in quant.state_dict().items()}
    modes = [m.training for m in quant.modules()]
    float_modes = [m.training for m in float_model.modules()]
    try:
        sensitivity(float_model, quant, data())
        assert _states(quant) == before
        assert [m.training for m in quant.modules()] == modes
        assert [m.training for m in float_model.modules()] == float_modes
        # Observers were frozen: no statistic moved.
        after = quant.state_dict()
        assert all(torch.equal(stats[k], after[k]) for k in stats)

        bad = data(2) + [torch.randn(2, 5, 12, 12)]  # wrong channel count: fails inside the loop
        with pytest.raises(RuntimeError):
            sensitivity(float_model, quant, bad)
        assert _states(quant) == before
        assert [m.training for m in quant.modules()] == modes
    finally:
        quant.eval()
        set_fake_quant_state(quant, "calibration")


def test_bad_arguments(models):
    float_model, quant = models
    with pytest.raises(ValueError, match="metric"):
        sensitivity(float_model, quant, data(), metric="mse")
    with pytest.raises(ValueError, match="at least one"):
        sensitivity(float_model, quant, [])
    with pytest.raises(ValueError, match="prepare_qat"):
        sensitivity(float_model, Net(stub=False), data())
    fresh = prepare_qat(fuse_modules(Net(), GROUPS), default_qconfig()).eval()
    with pytest.raises(ValueError, match="has no scale yet"):
        sensitivity(float_model, fresh, data())


def test_int16_for_the_most_sensitive_improves_the_model(models):
    float_model, quant = models
    report = sensitivity(float_model, quant, data())
    by_name = int16_qconfig_for_sensitive(report, 1)
    assert list(by_name) == ["conv1"]
    assert by_name["conv1"].output().dtype == "si16"
    raised = calibrated(float_model, by_name=by_name)
    assert raised.conv1.activation_post_process.dtype == "si16"
    assert raised.conv2.activation_post_process.dtype == "si8"
    again = sensitivity(float_model, raised, data())
    assert report.full.cosine < 0.9
    assert again.full.cosine > 0.99 and again.full.cosine > report.full.cosine
    # A QuantStub cannot be raised by a qconfig after construction; it is passed over.
    assert "quant" not in int16_qconfig_for_sensitive(report, len(report.layers))
    with pytest.raises(ValueError, match="k >= 0"):
        int16_qconfig_for_sensitive(report, -1)


def test_table_and_json(models):
    float_model, quant = models
    report = sensitivity(float_model, quant, data())
    table = report.to_table()
    for x in report.layers:
        assert x.name in table
    assert FULL_MODEL in table
    d = json.loads(report.to_json())
    assert d["format"] == "hbdk-sim.sensitivity" and d["metric"] == "cosine" and d["samples"] == 4
    assert [x["name"] for x in d["layers"]] == [x.name for x in report.layers]
    assert d["layers"][0]["cosine"] == report.layers[0].cosine


def test_html_beside_cycles(models, tmp_path):
    float_model, quant = models
    report = sensitivity(float_model, quant, data())
    x = data(1)[0]
    module = trace_float(Net(stub=False), (x,))
    hbdk_sim.calibrate(module, [[x.numpy()]])
    perf = hbdk_sim.compile_perf(module)
    cycles = layer_cycles([layer.name for layer in report.layers], perf)
    # Perf layers are named by the fused group's first op: conv1 (conv + relu), conv2, fc (gemm +
    # dequantize, summed). The stub has no op in the float graph.
    expected = {}
    for layer in perf.layers:
        if layer.layer in ("conv1", "conv2", "fc"):
            expected[layer.layer] = expected.get(layer.layer, 0) + layer.total_cycles
    assert cycles == expected and set(cycles) == {"conv1", "conv2", "fc"}
    assert sum(1 for layer in perf.layers if layer.layer == "fc") == 2

    path = tmp_path / "sensitivity.html"
    page = sensitivity_html(report, perf, path)
    assert path.read_text(encoding="utf-8") == page
    assert "http://" not in page and "https://" not in page and "<svg" in page
    assert "<th class=\"n\">cycles</th>" in page
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    assert len(rows) == len(report.layers)
    for layer, row in zip(report.layers, rows, strict=True):
        assert f"<td>{layer.name}</td>" in row
        cell = row.split('class="n cycles"')[1]
        if layer.name in cycles:
            assert f'data-v="{cycles[layer.name]}"' in cell
        else:
            assert cell.startswith(' data-v="-1">-<')
    with pytest.raises(FileExistsError):
        sensitivity_html(report, perf, path)
    without = sensitivity_html(report, None)
    assert "cycles</th>" not in without and all(f"<td>{x.name}</td>" in without for x in report.layers)
