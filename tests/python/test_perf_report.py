"""PerfReport: JSON round trip, the terminal table, and the HTML page's structure (self-contained,
inline SVG with one shape per layer segment and per timeline event), on a fixture estimate."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import perf_fixture
import pytest
from hbdk_sim.perf_report import JSON_FORMAT, UNITS, PerfReport, TimelineEvent, human, human_bytes


@pytest.fixture()
def report() -> PerfReport:
    return PerfReport.from_estimate(perf_fixture.estimate(), model="fixture", program=perf_fixture.program())


class _Elements(HTMLParser):
    """Every start tag with its attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)


def _elements(page: str) -> list[tuple[str, dict[str, str]]]:
    p = _Elements()
    p.feed(page)
    return p.tags


def _with_class(tags, tag: str, cls: str) -> list[dict[str, str]]:
    return [a for t, a in tags if t == tag and cls in a.get("class", "").split()]


# ---- JSON ------------------------------------------------------------------------------------------


def test_json_round_trip(report):
    text = report.to_json()
    back = PerfReport.from_json(text)
    assert back == report
    assert back.to_json() == text  # stable: same report, same bytes


def test_json_keys_are_the_documented_ones(report):
    d = json.loads(report.to_json())
    assert list(d) == ["format", "version", "model", "march", "clock_mhz", "totals", "layers", "timeline"]
    assert d["format"] == JSON_FORMAT and d["version"] == 1
    assert set(d["totals"]) == {
        "latency_ms", "fps", "total_cycles", "compute_cycles", "memory_cycles", "stall_cycles", "macs",
        "ddr_read_bytes", "ddr_write_bytes", "ddr_bytes_per_frame", "ddr_gbps", "on_chip_bytes_saved",
        "achieved_tops", "peak_tops", "mac_utilization", "roofline_cycles", "roofline_ratio"}
    assert set(d["layers"][0]) == {
        "layer", "op", "unit", "output_shape", "macs", "compute_cycles", "memory_cycles", "stall_cycles",
        "total_cycles", "bound", "utilization", "ddr_read_bytes", "ddr_write_bytes", "roofline_cycles", "start",
        "end", "instruction"}
    assert set(d["timeline"][0]) == {"instruction", "unit", "start", "end", "opcode", "layer"}


def test_derived_totals(report):
    est = perf_fixture.estimate()
    assert report.ddr_bytes_per_frame == est["ddr_read_bytes"] + est["ddr_write_bytes"]
    assert report.ddr_gbps == pytest.approx(report.ddr_bytes_per_frame * est["fps"] / 1e9)
    assert report.roofline_ratio == pytest.approx(est["total_cycles"] / est["roofline_cycles"])
    assert report.on_chip_bytes_saved == est["on_chip_bytes"]
    assert [layer.bound for layer in report.layers] == ["memory", "compute", "compute", "compute", "compute"]
    assert [layer.unit for layer in report.layers] == ["mac_array"] * 3 + ["vector", "mac_array"]


def test_from_json_rejects_other_documents(report):
    d = json.loads(report.to_json())
    with pytest.raises(ValueError, match="expected a 'hbdk-sim.perf' JSON document but got format 'x'"):
        PerfReport.from_json(json.dumps({**d, "format": "x"}))
    with pytest.raises(ValueError, match="version 1 but got 7"):
        PerfReport.from_json(json.dumps({**d, "version": 7}))


def test_timeline_names_instructions_from_the_program(report):
    first = report.timeline[0]
    assert (first.unit, first.opcode, first.layer) == ("dma", "load_weights", "conv1")
    assert {e.unit for e in report.timeline} == set(UNITS)
    # The estimator's enum value is accepted as well as its name.
    assert TimelineEvent.from_dict({"instruction": 3, "unit": 2, "start": 0, "end": 5}).unit == "dma"
    with pytest.raises(ValueError, match="expected a unit in mac_array, vector, dma but got 'npu'"):
        TimelineEvent.from_dict({"instruction": 3, "unit": "npu", "start": 0, "end": 5})


# ---- terminal table --------------------------------------------------------------------------------


def test_human_units():
    assert human(0) == "0"
    assert human(999) == "999"
    assert human(1234) == "1.23 K"
    assert human(10_838_016) == "10.8 M"
    assert human(2.5e9) == "2.50 G"
    assert human_bytes(148_048) == "148 KB"
    assert human_bytes(512) == "512 B"


def test_table_contents(report):
    text = report.format()
    lines = text.splitlines()
    assert lines[0] == "hbdk-sim perf  fixture  on march 'bpu' @ 1000 MHz"
    for expected in ("0.010 ms", "101,010 fps", "9.90 K", "3.37 K (2.93x)", "18.2 M", "16.4 TOPS", "602 KB",
                     "86.4 KB", "8.73 GB/s"):
        assert expected in text, expected
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["#", "layer", "op"])
    rows = lines[header + 2:]
    assert len(rows) == len(report.layers)
    assert rows[0].split()[:9] == ["0", "conv1", "conv2d", "1x32x56x56", "10.8", "M", "1.49", "K", "2.60"]
    assert "memory" in rows[0] and "88.8%" in rows[0] and rows[0].endswith("41.3%")
    assert " - " in rows[3]  # no MACs: no utilization
    # The share bars line up in one column and grow with the share of cycles.
    bar_col = {line.index("█") for line in rows if "█" in line}
    assert len(bar_col) == 1
    assert rows[0].count("█") > rows[1].count("█") > rows[3].count("█")


def test_table_cuts_long_layer_names():
    est = perf_fixture.estimate()
    est["layers"][0]["layer"] = "backbone.stage4.block3.conv2.fused_with_relu"
    text = PerfReport.from_estimate(est).format()
    assert "backbone.stage4.block3.conv…" in text
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("  ---"))
    widths = {len(line) for line in lines[rule:]}
    assert len(widths) == 1  # the rule and every row the same width


# ---- HTML ------------------------------------------------------------------------------------------


def test_html_is_self_contained(report):
    page = report.to_html()
    assert not re.search(r"https?://", page)
    assert not re.search(r"\b(src|href)\s*=", page, re.I)
    assert "@import" not in page and "url(" not in page
    tags = _elements(page)
    assert not [t for t, _ in tags if t in ("link", "img", "iframe", "object", "embed")]
    assert [a for t, a in tags if t == "script" and "src" in a] == []


def test_html_charts_have_a_shape_per_segment_and_event(report):
    tags = _elements(report.to_html())
    svgs = [a for t, a in tags if t == "svg"]
    assert [a["class"] for a in svgs] == ["layer-chart", "timeline"]

    rows = _with_class(tags, "g", "row")
    assert len(rows) == len(report.layers)
    for kind, attr in (("compute", "compute_cycles"), ("stall", "stall_cycles"), ("other", "other_cycles")):
        expected = sum(1 for layer in report.layers if getattr(layer, attr) > 0)
        assert len(_with_class(tags, "rect", kind)) == expected, kind
    compute_fill = [a["fill"] for a in _with_class(tags, "rect", "compute")]
    assert compute_fill == ["#2563eb", "#2563eb", "#2563eb", "#059669", "#2563eb"]
    assert {a["fill"] for a in _with_class(tags, "rect", "stall")} == {"#f97316"}
    assert len(_with_class(tags, "line", "roof")) == sum(1 for x in report.layers if x.roofline_cycles > 0)

    events = _with_class(tags, "rect", "ev")
    assert len(events) == len(report.timeline)
    for unit in UNITS:
        assert len(_with_class(tags, "rect", unit)) == sum(1 for e in report.timeline if e.unit == unit)

    table_rows = [t for t, _ in tags if t == "tr"]
    assert len(table_rows) == 1 + len(report.layers)


def test_html_bar_lengths_follow_cycles(report):
    tags = _elements(report.to_html())
    widths = [float(a["width"]) for a in _with_class(tags, "rect", "compute")]
    cycles = [layer.compute_cycles for layer in report.layers]
    ratios = [w / c for w, c in zip(widths, cycles, strict=True)]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-3)


def test_html_hover_titles_and_escaping():
    est = perf_fixture.estimate()
    est["layers"][0]["layer"] = "<script>alert(1)</script>"
    page = PerfReport.from_estimate(est, model="a&b", program=perf_fixture.program()).to_html()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&amp;b" in page
    assert "<title>#0 load_weights [conv1]: cycles 0–2,600 (2,600)</title>" in page


def test_html_merges_sub_pixel_events():
    est = perf_fixture.estimate()
    last = est["total_cycles"]
    est["timeline"] += [{"instruction": 100 + i, "unit": "dma", "start": last + 2 * i, "end": last + 2 * i + 1}
                        for i in range(20_000)]
    est["total_cycles"] = last + 40_000
    report = PerfReport.from_estimate(est)
    page = report.to_html()
    events = _with_class(_elements(page), "rect", "ev")
    assert 0 < len(events) < 2_000  # a few per pixel of width at most
    assert "instructions #100–#" in page
    assert len(page) < 1_000_000


def test_empty_report_renders():
    est = perf_fixture.estimate()
    est["layers"], est["timeline"] = [], []
    report = PerfReport.from_estimate(est)
    assert "(no layers)" in report.format()
    assert "<svg" in report.to_html()


# ---- end to end: compile_perf, compile, the CLI ------------------------------------------------------


def test_compile_perf_of_the_example_writes_three_files(tmp_path):
    import hbdk_sim
    from hbdk_sim.examples import example_path

    report = hbdk_sim.compile_perf(example_path(), march="bpu", out_dir=tmp_path)
    assert isinstance(report, hbdk_sim.PerfReport)
    assert report.model == "mobilenet_v1_tiny" and report.march == "bpu"
    assert report.latency_ms > 0 and report.fps == pytest.approx(1e3 / report.latency_ms, rel=1e-6)
    assert report.layers and report.timeline
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["mobilenet_v1_tiny.hbm", "mobilenet_v1_tiny.perf.html", "mobilenet_v1_tiny.perf.json"]
    assert PerfReport.from_json((tmp_path / "mobilenet_v1_tiny.perf.json").read_text()) == report
    assert (tmp_path / "mobilenet_v1_tiny.perf.html").read_text() == report.to_html()

    with pytest.raises(FileExistsError, match="overwrite=True"):
        hbdk_sim.compile_perf(example_path(), march="bpu", out_dir=tmp_path)
    again = hbdk_sim.compile_perf(example_path(), march="bpu", out_dir=tmp_path, overwrite=True)
    assert again == report  # deterministic

    # The .hbm on its own gives the same estimate, without compiling.
    assert hbdk_sim.compile_perf(tmp_path / "mobilenet_v1_tiny.hbm", march="bpu") == report
    with pytest.raises(ValueError, match="compiled for 'bpu'"):
        hbdk_sim.compile_perf(tmp_path / "mobilenet_v1_tiny.hbm", march="bpu_nano")


def test_compile_writes_the_reports_beside_the_hbm(tmp_path):
    from hbdk_sim import api
    from hbdk_sim.examples import example_path

    out = tmp_path / "net.hbm"
    (tmp_path / "net.perf.html").write_text("mine")
    with pytest.raises(FileExistsError, match="net.perf.html"):
        api.compile(example_path(), "bpu", out)
    assert not out.exists()  # refused before anything was written
    result = api.compile(example_path(), "bpu", out, overwrite=True)
    assert result.perf_files == [tmp_path / "net.perf.json", tmp_path / "net.perf.html"]
    assert PerfReport.from_json((tmp_path / "net.perf.json").read_text()) == result.perf
    text = result.format()
    assert "estimate: " in text and f"wrote {tmp_path / 'net.perf.html'}" in text


def test_cli_perf_table_json_and_html(tmp_path, capsys):
    from hbdk_sim.cli import main
    from hbdk_sim.examples import example_path

    hbm = tmp_path / "m.hbm"
    assert main(["compile", str(example_path()), "-o", str(hbm)]) == 0
    out = capsys.readouterr().out
    assert "m.perf.json" in out and "m.perf.html" in out and "estimate: " in out

    html_path = tmp_path / "report.html"
    assert main(["perf", str(hbm), "--march", "bpu", "--html", str(html_path)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("hbdk-sim perf  m  on march 'bpu'") and "share of cycles" in table
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    assert main(["perf", str(hbm), "--html", str(html_path)]) == 2  # exists, no --force
    assert "--force" in capsys.readouterr().err

    assert main(["perf", str(example_path()), "--json"]) == 0
    report = PerfReport.from_json(capsys.readouterr().out)
    assert report.model == "mobilenet_v1_tiny" and len(report.layers) > 3

    assert main(["perf", str(hbm), "--march", "bpu_nano"]) == 2
    assert "compiled for march 'bpu'" in capsys.readouterr().err
