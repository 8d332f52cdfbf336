"""March descriptions from Python: shipped files, name/path resolution, the parameters the cycle
model and the docs read, and one clear error for each kind of malformed file."""

import json

import pytest
from hbdk_sim import _core
from hbdk_sim.march import DEFAULT_MARCH, MARCHES_DIR, list_marches, load_march, resolve_march


def bpu_json() -> dict:
    return json.loads((MARCHES_DIR / "bpu.json").read_text())


def test_shipped_marches_span_5_to_128_tops():
    assert list_marches() == ["bpu", "bpu_max", "bpu_nano"]
    assert DEFAULT_MARCH == "bpu"
    tops = {name: load_march(name).peak_tops for name in list_marches()}
    assert tops["bpu_nano"] == pytest.approx(2 * 32 * 64 * 1.2e9 / 1e12)
    assert tops["bpu"] == pytest.approx(2 * 64 * 128 * 1.0e9 / 1e12)
    assert tops["bpu_max"] == pytest.approx(2 * 128 * 256 * 1.95e9 / 1e12)
    assert 4.5 < tops["bpu_nano"] < tops["bpu"] < tops["bpu_max"] < 130
    for name in list_marches():
        m = load_march(name)
        assert m.peak_tops_for("int16") == pytest.approx(m.peak_tops / 4)


def test_march_properties():
    m = load_march()
    assert m.name == "bpu"
    assert m.clock_mhz == 1000
    assert m.mac_array == {"rows": 64, "cols": 128, "dataflow": "output_stationary",
                           "macs_per_cycle": {"int8": 8192, "int16": 2048},
                           "depthwise_macs_per_cycle": {"int8": 1152, "int16": 288}}
    assert m.sram == {"size_bytes": 2 << 20, "size_kib": 2048, "banks": 16, "bytes_per_cycle": 512}
    assert m.ddr == {"bandwidth_gbps": 25.6, "latency_cycles": 250}
    assert m.dma["engines"] == 4
    assert m.tensor["max_rank"] >= 4
    assert m.ops["conv2d"]["strides"] == [1, 2, 4]
    assert "kernel_max" not in m.ops["relu"]
    assert m.fuse == {"conv_activation": True, "conv_add": True}
    assert repr(m) == "<March bpu: 64x128 @ 1000 MHz>"
    with pytest.raises(AttributeError):
        m.name = "other"
    with pytest.raises(_core.MarchError, match="no MAC throughput for 'int4'"):
        m.peak_tops_for("int4")


def test_default_march_runs_every_op_the_task_models_need():
    # every op with a BPU instruction (its op-table traits), and the constants they read
    needed = {d["name"] for d in _core.op_table() if d["traits"]["opcode"]} | {"constant"}
    assert needed <= set(load_march("bpu").ops)
    assert needed <= set(load_march("bpu_max").ops)


def test_resolve_by_name_or_path(tmp_path):
    assert resolve_march("bpu_nano") == MARCHES_DIR / "bpu_nano.json"
    own = tmp_path / "my_npu.json"
    spec = bpu_json()
    spec["name"] = "my_npu"
    own.write_text(json.dumps(spec))
    assert resolve_march(own) == own
    m = load_march(str(own))
    assert m.name == "my_npu" and m.source_path == str(own)
    with pytest.raises(_core.MarchError, match=r"unknown march 'bpu_nan'; did you mean 'bpu_nano'\? "
                                               r"\(shipped marches: bpu, bpu_max, bpu_nano"):
        load_march("bpu_nan")
    with pytest.raises(_core.MarchError, match="unknown march"):
        load_march(tmp_path / "missing.json")


def load_edited(edit) -> None:
    spec = bpu_json()
    edit(spec)
    _core.parse_march(json.dumps(spec, indent=2), "my_npu.json")


def test_malformed_files_each_give_one_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "name": "x",\n  "clock_mhz" 1000\n}\n')
    with pytest.raises(_core.ParseError, match=r"bad\.json:3:15: error: expected ':' after the key but got '1'"):
        _core.load_march_file(str(bad))

    def negative(s):
        s["mac_array"]["rows"] = -4

    with pytest.raises(_core.MarchError, match=r"my_npu\.json:\d+:\d+: error: mac_array\.rows: "
                                               r"expected a positive integer but got -4$"):
        load_edited(negative)

    def unknown_key(s):
        s["sram"]["size_kb"] = s["sram"].pop("size_kib")

    with pytest.raises(_core.MarchError, match=r'sram\.size_kb: unknown key; did you mean "size_kib"\?'):
        load_edited(unknown_key)

    def wrong_type(s):
        s["ddr"]["bandwidth_gbps"] = "fast"

    with pytest.raises(_core.MarchError, match=r'ddr\.bandwidth_gbps: expected a positive number but got "fast"'):
        load_edited(wrong_type)

    def missing(s):
        del s["dma"]["engines"]

    with pytest.raises(_core.MarchError, match=r'dma: missing required field "engines"'):
        load_edited(missing)

    def unknown_op(s):
        s["ops"]["conv3d"] = {"dtypes": ["si8"]}

    with pytest.raises(_core.MarchError, match=r'ops\.conv3d: unknown op; did you mean "conv2d"\?'):
        load_edited(unknown_op)

    def misplaced_limit(s):
        s["ops"]["add"]["kernel_max"] = 3

    with pytest.raises(_core.MarchError, match=r"ops\.add\.kernel_max: does not apply to add"):
        load_edited(misplaced_limit)

    # Every march error is also an HbirError, so one `except` covers the compiler's messages.
    assert issubclass(_core.MarchError, _core.HbirError)


def test_schema_covers_every_field_of_a_shipped_file():
    schema = {f["path"] for f in _core.march_schema()}

    def paths(obj, prefix=""):
        for k, v in obj.items():
            key = "ops.<op>" if prefix == "ops." else prefix + k
            yield key
            if isinstance(v, dict) and k not in ("macs_per_cycle", "depthwise_macs_per_cycle", "ops_per_cycle_per_lane"):
                yield from paths(v, key + ".")

    for name in list_marches():
        spec = json.loads((MARCHES_DIR / f"{name}.json").read_text())
        missing = {p for p in paths(spec) if p != "ops.<op>"} - schema
        assert not missing, missing
