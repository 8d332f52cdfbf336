"""Properties of the cycle model through the bindings, on the bundled example compiled for every
shipped march: roofline bounds, determinism, more DDR bandwidth or SRAM never slower, speed."""

import json

import hbdk_sim
import pytest
from hbdk_sim import _core
from hbdk_sim.examples import example_path
from hbdk_sim.march import load_march

MARCHES = ["bpu_nano", "bpu", "bpu_max"]


def _edited(name: str, edit) -> _core.March:
    from importlib.resources import files

    data = json.loads((files("hbdk_sim") / "marches" / f"{name}.json").read_text())
    edit(data)
    return _core.parse_march(json.dumps(data), f"<edited {name}>")


def _estimate(march: _core.March) -> dict:
    result = hbdk_sim.compile(example_path(), march=march)
    return _core.estimate_hbm(_core.load_hbm_bytes(result.hbm), march)


@pytest.mark.parametrize("name", MARCHES)
def test_every_layer_at_least_its_roofline(name):
    r = _estimate(load_march(name))
    assert r["total_cycles"] >= r["roofline_cycles"] > 0
    assert r["total_cycles"] >= r["compute_cycles"]
    for layer in r["layers"]:
        assert layer["total_cycles"] >= layer["roofline_cycles"], layer
        assert layer["total_cycles"] >= layer["compute_cycles"], layer
        assert 0 <= layer["utilization"] <= 1
    assert r["latency_ms"] == pytest.approx(r["total_cycles"] / (r["clock_mhz"] * 1e3))
    assert r["fps"] == pytest.approx(1e3 / r["latency_ms"])
    assert r["mac_utilization"] == pytest.approx(r["achieved_tops"] / r["peak_tops"])
    assert len(r["timeline"]) >= len(r["layers"])


@pytest.mark.parametrize("name", MARCHES)
def test_same_model_and_march_same_cycles(name):
    march = load_march(name)
    a, b = _estimate(march), _estimate(march)
    assert a == b


@pytest.mark.parametrize("name", MARCHES)
@pytest.mark.parametrize("factor", [1.5, 4])
def test_more_ddr_bandwidth_never_slower(name, factor):
    base = _estimate(_edited(name, lambda d: None))

    def faster(d):
        d["ddr"]["bandwidth_gbps"] *= factor
        d["dma"]["engines"] *= 4

    assert _estimate(_edited(name, faster))["total_cycles"] <= base["total_cycles"]


@pytest.mark.parametrize("name", MARCHES)
@pytest.mark.parametrize("factor", [2, 4])
def test_larger_sram_never_slower(name, factor):
    base = _estimate(_edited(name, lambda d: None))

    def bigger(d):
        d["sram"]["size_kib"] *= factor

    assert _estimate(_edited(name, bigger))["total_cycles"] <= base["total_cycles"]


def test_estimate_module_matches_estimate_hbm():
    march = load_march("bpu")
    from_hbm = _estimate(march)
    module = _core.parse(example_path().read_text(), "example")
    passes = [p["passes"] for p in _core.pipelines() if p["name"] == "compile"][0]
    module.run_pipeline(list(passes[: passes.index("lower")]), march=march)
    assert _core.estimate_module(module, march)["total_cycles"] == from_hbm["total_cycles"]
