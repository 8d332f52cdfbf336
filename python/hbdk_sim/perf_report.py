"""The performance report: what the cycle model (csrc/perf, docs/perf_model.md) estimated for one
compiled model on one march, in three forms: a terminal table (`format`), JSON (`to_json`), and
one self-contained HTML page (`to_html`) whose charts are inline SVG drawn here in Python.

JSON layout (`"format": "hbdk-sim.perf"`, `"version": 1`); keys are stable, values in base units
(cycles, bytes, MACs) unless the key names another unit:

    model, march, clock_mhz
    totals:   latency_ms, fps, total_cycles, compute_cycles, memory_cycles, stall_cycles, macs,
              ddr_read_bytes, ddr_write_bytes, ddr_bytes_per_frame, ddr_gbps, on_chip_bytes_saved,
              achieved_tops, peak_tops, mac_utilization, roofline_cycles, roofline_ratio
    layers:   [{layer, op, unit, output_shape, macs, compute_cycles, memory_cycles, stall_cycles,
               total_cycles, bound, utilization, ddr_read_bytes, ddr_write_bytes, roofline_cycles,
               start, end, instruction}]
    timeline: [{instruction, unit, start, end, opcode, layer}]   (cycles; end exclusive)

`ddr_bytes_per_frame`, `ddr_gbps` and `roofline_ratio` are derived (read + write bytes; those
bytes at `fps` frames per second; total over roofline cycles, 1.0 = at the lower bound) and are
written for readers of the JSON; `from_json` recomputes them rather than trusting them.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from hbdk_sim.errors import UsageError

JSON_FORMAT = "hbdk-sim.perf"
JSON_VERSION = 1

UNITS = ("mac_array", "vector", "dma")
UNIT_TITLES = {"mac_array": "MAC array", "vector": "Vector unit", "dma": "DMA"}
# Ops the lowering places on the MAC array; everything else with a compute instruction is vector work.
MAC_ARRAY_OPS = frozenset({"conv2d", "conv_transpose2d", "gemm"})

# One palette for every form: a layer's compute segment takes its unit's colour.
COLOURS = {"mac_array": "#2563eb", "vector": "#059669", "dma": "#d97706", "stall": "#f97316",
           "other": "#cbd5e1", "roofline": "#111827"}


# ---- the records ---------------------------------------------------------------------------------


@dataclass
class LayerPerf:
    """One layer (a compute instruction: a fused group or a single op) and the DMA serving it."""

    layer: str
    op: str
    output_shape: list[int]
    macs: int
    compute_cycles: int
    memory_cycles: int
    stall_cycles: int
    total_cycles: int
    memory_bound: bool
    utilization: float
    ddr_read_bytes: int
    ddr_write_bytes: int
    roofline_cycles: int
    start: int = 0  # the layer's first cycle (its first DMA or compute event)
    end: int = 0  # the end of its last event
    instruction: int = 0  # index of its compute instruction in the program

    @property
    def bound(self) -> str:
        return "memory" if self.memory_bound else "compute"

    @property
    def unit(self) -> str:
        return "mac_array" if self.op in MAC_ARRAY_OPS else "vector"

    @property
    def ddr_bytes(self) -> int:
        return self.ddr_read_bytes + self.ddr_write_bytes

    @property
    def other_cycles(self) -> int:
        """Cycles of the layer's span that are neither its own compute nor a stall (e.g. waiting on
        a store that overlaps the next layer's start)."""
        return max(0, self.total_cycles - self.compute_cycles - self.stall_cycles)

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "op": self.op, "unit": self.unit, "output_shape": list(self.output_shape),
                "macs": self.macs, "compute_cycles": self.compute_cycles, "memory_cycles": self.memory_cycles,
                "stall_cycles": self.stall_cycles, "total_cycles": self.total_cycles, "bound": self.bound,
                "utilization": self.utilization, "ddr_read_bytes": self.ddr_read_bytes,
                "ddr_write_bytes": self.ddr_write_bytes, "roofline_cycles": self.roofline_cycles,
                "start": self.start, "end": self.end, "instruction": self.instruction}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerPerf:
        """From a JSON layer (`bound`) or from the estimator's dict (`memory_bound`)."""
        memory_bound = d["memory_bound"] if "memory_bound" in d else d["bound"] == "memory"
        return cls(layer=str(d["layer"]), op=str(d["op"]), output_shape=[int(x) for x in d["output_shape"]],
                   macs=int(d["macs"]), compute_cycles=int(d["compute_cycles"]),
                   memory_cycles=int(d["memory_cycles"]), stall_cycles=int(d["stall_cycles"]),
                   total_cycles=int(d["total_cycles"]), memory_bound=bool(memory_bound),
                   utilization=float(d["utilization"]), ddr_read_bytes=int(d["ddr_read_bytes"]),
                   ddr_write_bytes=int(d["ddr_write_bytes"]), roofline_cycles=int(d["roofline_cycles"]),
                   start=int(d.get("start", 0)), end=int(d.get("end", 0)), instruction=int(d.get("instruction", 0)))


@dataclass
class TimelineEvent:
    """One instruction on its unit: cycles [start, end). `opcode` and `layer` name it when known."""

    instruction: int
    unit: str
    start: int
    end: int
    opcode: str = ""
    layer: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"instruction": self.instruction, "unit": self.unit, "start": self.start, "end": self.end,
                "opcode": self.opcode, "layer": self.layer}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimelineEvent:
        unit = d["unit"]
        if isinstance(unit, int) or (not isinstance(unit, str) and hasattr(unit, "__int__")):
            unit = UNITS[int(unit)]
        unit = str(unit)
        if unit not in UNITS:
            raise UsageError(f"timeline event: expected a unit in {', '.join(UNITS)} but got '{unit}'")
        return cls(instruction=int(d["instruction"]), unit=unit, start=int(d["start"]), end=int(d["end"]),
                   opcode=str(d.get("opcode", "")), layer=str(d.get("layer", "")))


@dataclass
class PerfReport:
    """The estimate for one model on one march: totals, per-layer records and the unit timeline."""

    model: str
    march: str
    clock_mhz: float
    total_cycles: int
    compute_cycles: int
    memory_cycles: int
    stall_cycles: int
    macs: int
    ddr_read_bytes: int
    ddr_write_bytes: int
    on_chip_bytes_saved: int
    roofline_cycles: int
    latency_ms: float
    fps: float
    achieved_tops: float
    peak_tops: float
    mac_utilization: float
    layers: list[LayerPerf] = field(default_factory=list)
    timeline: list[TimelineEvent] = field(default_factory=list)

    # -- derived figures --

    @property
    def ddr_bytes_per_frame(self) -> int:
        return self.ddr_read_bytes + self.ddr_write_bytes

    @property
    def ddr_gbps(self) -> float:
        """DDR bandwidth the model draws when it runs back to back at `fps` (GB/s, 1e9 bytes)."""
        return self.ddr_bytes_per_frame * self.fps / 1e9

    @property
    def roofline_ratio(self) -> float:
        """Estimated cycles over the roofline lower bound: 1.0 is at the bound, 2.0 twice as slow."""
        return self.total_cycles / self.roofline_cycles if self.roofline_cycles else 0.0

    # -- construction --

    @classmethod
    def from_estimate(cls, estimate: dict[str, Any], model: str = "",
                      program: list[dict[str, Any]] | None = None) -> PerfReport:
        """From the dict `_core.estimate_hbm` returns. With the `.hbm`'s `program`, timeline events
        also name their opcode and layer."""
        timeline = [TimelineEvent.from_dict(e) for e in estimate.get("timeline", [])]
        if program is not None:
            for e in timeline:
                if 0 <= e.instruction < len(program):
                    e.opcode = e.opcode or str(program[e.instruction].get("opcode", ""))
                    e.layer = e.layer or str(program[e.instruction].get("layer", ""))
        return cls(model=model, march=str(estimate["march"]), clock_mhz=float(estimate["clock_mhz"]),
                   total_cycles=int(estimate["total_cycles"]), compute_cycles=int(estimate["compute_cycles"]),
                   memory_cycles=int(estimate["memory_cycles"]), stall_cycles=int(estimate["stall_cycles"]),
                   macs=int(estimate["macs"]), ddr_read_bytes=int(estimate["ddr_read_bytes"]),
                   ddr_write_bytes=int(estimate["ddr_write_bytes"]),
                   on_chip_bytes_saved=int(estimate["on_chip_bytes"]),
                   roofline_cycles=int(estimate["roofline_cycles"]), latency_ms=float(estimate["latency_ms"]),
                   fps=float(estimate["fps"]), achieved_tops=float(estimate["achieved_tops"]),
                   peak_tops=float(estimate["peak_tops"]), mac_utilization=float(estimate["mac_utilization"]),
                   layers=[LayerPerf.from_dict(d) for d in estimate.get("layers", [])], timeline=timeline)

    # -- JSON --

    def to_dict(self) -> dict[str, Any]:
        totals = {"latency_ms": self.latency_ms, "fps": self.fps, "total_cycles": self.total_cycles,
                  "compute_cycles": self.compute_cycles, "memory_cycles": self.memory_cycles,
                  "stall_cycles": self.stall_cycles, "macs": self.macs, "ddr_read_bytes": self.ddr_read_bytes,
                  "ddr_write_bytes": self.ddr_write_bytes, "ddr_bytes_per_frame": self.ddr_bytes_per_frame,
                  "ddr_gbps": self.ddr_gbps, "on_chip_bytes_saved": self.on_chip_bytes_saved,
                  "achieved_tops": self.achieved_tops, "peak_tops": self.peak_tops,
                  "mac_utilization": self.mac_utilization, "roofline_cycles": self.roofline_cycles,
                  "roofline_ratio": self.roofline_ratio}
        return {"format": JSON_FORMAT, "version": JSON_VERSION, "model": self.model, "march": self.march,
                "clock_mhz": self.clock_mhz, "totals": totals, "layers": [layer.to_dict() for layer in self.layers],
                "timeline": [e.to_dict() for e in self.timeline]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> PerfReport:
        d = json.loads(text)
        if not isinstance(d, dict) or d.get("format") != JSON_FORMAT:
            raise UsageError(f"expected a '{JSON_FORMAT}' JSON document but got format {d.get('format')!r}"
                             if isinstance(d, dict) else f"expected a '{JSON_FORMAT}' JSON object")
        if d.get("version") != JSON_VERSION:
            raise UsageError(f"expected {JSON_FORMAT} version {JSON_VERSION} but got {d.get('version')!r}")
        t = d["totals"]
        return cls(model=str(d["model"]), march=str(d["march"]), clock_mhz=float(d["clock_mhz"]),
                   total_cycles=int(t["total_cycles"]), compute_cycles=int(t["compute_cycles"]),
                   memory_cycles=int(t["memory_cycles"]), stall_cycles=int(t["stall_cycles"]), macs=int(t["macs"]),
                   ddr_read_bytes=int(t["ddr_read_bytes"]), ddr_write_bytes=int(t["ddr_write_bytes"]),
                   on_chip_bytes_saved=int(t["on_chip_bytes_saved"]), roofline_cycles=int(t["roofline_cycles"]),
                   latency_ms=float(t["latency_ms"]), fps=float(t["fps"]), achieved_tops=float(t["achieved_tops"]),
                   peak_tops=float(t["peak_tops"]), mac_utilization=float(t["mac_utilization"]),
                   layers=[LayerPerf.from_dict(x) for x in d["layers"]],
                   timeline=[TimelineEvent.from_dict(x) for x in d["timeline"]])

    # -- the other forms --

    def format(self, width: int = 120) -> str:
        return _format_table(self, width)

    def to_html(self) -> str:
        return _render_html(self)

    def summary(self) -> str:
        """One line for `hbdk-sim compile`."""
        return (f"{self.latency_ms:.3f} ms ({_fps(self.fps)}), {human_bytes(self.ddr_bytes_per_frame)} DDR/frame, "
                f"{_pct(self.mac_utilization)} MAC utilization, {self.roofline_ratio:.2f}x the roofline bound")


# ---- human units ---------------------------------------------------------------------------------


def human(n: float, unit: str = "", digits: int = 3) -> str:
    """1234567 -> '1.23 M' (decimal prefixes; three significant digits)."""
    if n == 0:
        return f"0 {unit}".rstrip()
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= factor:
            return f"{_sig(n / factor, digits)} {prefix}{unit}"
    text = f"{int(n)}" if float(n).is_integer() else _sig(n, digits)
    return f"{text} {unit}".rstrip()


def _sig(x: float, digits: int) -> str:
    mag = len(str(int(abs(x)))) if abs(x) >= 1 else 1
    return f"{x:.{max(0, digits - mag)}f}"


def _tick(x: float) -> str:
    """An axis label: 2000 -> '2 K', 2500 -> '2.5 K' (no padding zeros)."""
    text = human(x, digits=4)
    num, _, prefix = text.partition(" ")
    if "." in num:
        num = num.rstrip("0").rstrip(".")
    return f"{num} {prefix}".rstrip()


def _fps(fps: float) -> str:
    return f"{fps:,.0f} fps" if fps >= 1000 else f"{fps:,.1f} fps"


def _rate(x: float, unit: str) -> str:
    return f"{_sig(x, 3)} {unit}" if x >= 1 or x == 0 else f"{x:.3g} {unit}"


def human_bytes(n: float) -> str:
    return human(n, "B")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _shape(shape: list[int]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


# ---- terminal table ------------------------------------------------------------------------------

_EIGHTHS = " ▏▎▍▌▋▊▉█"


def _bar(fraction: float, cells: int) -> str:
    """A horizontal bar of `cells` character cells, resolved to eighths of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * cells * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[rest] if rest else "")).ljust(cells)


def _format_table(r: PerfReport, width: int) -> str:
    title = f"hbdk-sim perf  {r.model or '(model)'}  on march '{r.march}' @ {r.clock_mhz:g} MHz"
    pairs = [
        ("latency", f"{r.latency_ms:.3f} ms", "throughput", _fps(r.fps)),
        ("cycles", human(r.total_cycles), "roofline bound", f"{human(r.roofline_cycles)} ({r.roofline_ratio:.2f}x)"),
        ("compute cycles", human(r.compute_cycles), "memory cycles", human(r.memory_cycles)),
        ("stall cycles", human(r.stall_cycles), "MACs", human(r.macs)),
        ("achieved", _rate(r.achieved_tops, "TOPS"), "peak", _rate(r.peak_tops, "TOPS")),
        ("MAC utilization", _pct(r.mac_utilization), "on-chip (saved)", human_bytes(r.on_chip_bytes_saved)),
        ("DDR per frame", human_bytes(r.ddr_bytes_per_frame), "DDR bandwidth", _rate(r.ddr_gbps, "GB/s")),
        ("DDR read", human_bytes(r.ddr_read_bytes), "DDR write", human_bytes(r.ddr_write_bytes)),
    ]
    lines = [title, "=" * min(width, max(len(title), 60))]
    for k1, v1, k2, v2 in pairs:
        lines.append(f"  {k1:<16}{v1:>14}     {k2:<16}{v2:>18}")
    lines.append("")

    cols = [("#", ">"), ("layer", "<"), ("op", "<"), ("output", "<"), ("MACs", ">"), ("compute", ">"),
            ("memory", ">"), ("stall", ">"), ("total", ">"), ("bound", "<"), ("util", ">"), ("DDR", ">")]
    total = sum(layer.total_cycles for layer in r.layers) or 1
    rows = []
    for i, layer in enumerate(r.layers):
        rows.append([str(i), layer.layer, layer.op, _shape(layer.output_shape), human(layer.macs),
                     human(layer.compute_cycles), human(layer.memory_cycles), human(layer.stall_cycles),
                     human(layer.total_cycles), layer.bound, _pct(layer.utilization) if layer.macs else "-",
                     human_bytes(layer.ddr_bytes)])
    widths = [max([len(c[0])] + [len(row[j]) for row in rows]) for j, c in enumerate(cols)]
    widths[1] = min(widths[1], 28)  # long location names are cut, the JSON keeps them whole
    fixed = sum(widths) + 2 * len(widths) + 2
    bar_cells = max(8, min(24, width - fixed - 7))

    def line(cells: list[str], bar: str) -> str:
        out = []
        for (_, align), w, c in zip(cols, widths, cells, strict=True):
            c = c if len(c) <= w else c[: w - 1] + "…"
            out.append(f"{c:{align}{w}}")
        return "  " + "  ".join(out) + "  " + bar

    # Bars are scaled to the slowest layer so a long model's bars stay readable; the number is the share.
    longest = max([layer.total_cycles for layer in r.layers] + [1])
    body = [line(row, f"{_bar(layer.total_cycles / longest, bar_cells)} {100 * layer.total_cycles / total:5.1f}%")
            for layer, row in zip(r.layers, rows, strict=True)]
    head = line([c[0] for c in cols], "share of cycles")
    lines += [head, "  " + "-" * (max(len(x) for x in body + [head]) - 2)]
    lines += body or ["  (no layers)"]
    return "\n".join(lines)


# ---- HTML ----------------------------------------------------------------------------------------

_CSS = """
:root { --ink:#0f172a; --muted:#64748b; --line:#e2e8f0; --card:#ffffff; --bg:#f8fafc; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1320px; margin:0 auto; padding:28px 32px 48px; }
header h1 { font-size:22px; margin:0 0 2px; font-weight:650; letter-spacing:-0.01em; }
header p { margin:0 0 18px; color:var(--muted); }
.tiles { display:grid; grid-template-columns:repeat(auto-fill,minmax(190px,1fr)); gap:12px; margin-bottom:26px; }
.tile { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.tile .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.05em; }
.tile .v { font-size:22px; font-weight:650; font-variant-numeric:tabular-nums; margin-top:2px; }
.tile .s { color:var(--muted); font-size:12px; font-variant-numeric:tabular-nums; }
.tile.hero { border-color:#bfdbfe; background:linear-gradient(180deg,#eff6ff,#fff); }
section { background:var(--card); border:1px solid var(--line); border-radius:12px; padding:18px 20px 14px;
          margin-bottom:22px; }
section h2 { font-size:16px; margin:0 0 4px; font-weight:650; }
section .note { color:var(--muted); margin:0 0 12px; font-size:13px; }
.legend { display:flex; gap:16px; flex-wrap:wrap; font-size:12px; color:var(--muted); margin:0 0 8px; }
.legend i { display:inline-block; width:11px; height:11px; border-radius:2px; margin-right:5px;
            vertical-align:-1px; }
svg { display:block; max-width:100%; height:auto; }
svg text { font-family:inherit; }
svg rect.ev:hover, svg g.row:hover rect.seg { opacity:.75; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; font-size:13px; }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
th { text-align:left; color:var(--muted); font-weight:600; font-size:12px; position:sticky; top:0;
     background:var(--card); cursor:pointer; user-select:none; }
td.n, th.n { text-align:right; }
tbody tr:hover { background:#f1f5f9; }
.badge { display:inline-block; padding:1px 7px; border-radius:999px; font-size:11px; font-weight:600; }
.badge.compute { background:#dbeafe; color:#1e40af; }
.badge.memory { background:#ffedd5; color:#9a3412; }
.share { display:inline-block; height:8px; border-radius:2px; background:#94a3b8; vertical-align:middle; }
footer { color:var(--muted); font-size:12px; }
"""

# Optional: click a column heading to sort the table. The page reads fully without it.
_JS = """
document.querySelectorAll('table.layers th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
    var asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v || a.cells[col].textContent;
      var y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

_e = html.escape


def _nice_step(span: float, target_ticks: int) -> float:
    """A 1/2/5 x 10^k step giving about `target_ticks` ticks over `span`."""
    if span <= 0:
        return 1.0
    raw = span / target_ticks
    mag = 10 ** int(f"{raw:e}".split("e")[1])
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def _tile(key: str, value: str, sub: str = "", hero: bool = False) -> str:
    cls = "tile hero" if hero else "tile"
    s = f'<div class="s">{_e(sub)}</div>' if sub else ""
    return f'<div class="{cls}"><div class="k">{_e(key)}</div><div class="v">{_e(value)}</div>{s}</div>'


def _layer_chart(r: PerfReport) -> str:
    """Horizontal bars, one per layer: compute (in its unit's colour), stall, rest of the span, and a
    tick at the layer's roofline bound."""
    label_w, right_w, row_h, bar_h, top = 300, 90, 20, 13, 22
    plot_w = 1240 - label_w - right_w
    n = len(r.layers)
    height = top + n * row_h + 8
    scale_max = max([layer.total_cycles for layer in r.layers] + [1])
    step = _nice_step(scale_max, 6)
    px = plot_w / scale_max
    parts = [f'<svg class="layer-chart" width="1240" height="{height}" '
             f'viewBox="0 0 1240 {height}" role="img" aria-label="cycles per layer">']
    tick = 0.0
    while tick <= scale_max + 1e-9:
        x = label_w + tick * px
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 6}" stroke="#e2e8f0"/>')
        parts.append(f'<text x="{x:.1f}" y="{top - 8}" font-size="11" fill="#64748b" '
                     f'text-anchor="middle">{_e(_tick(tick))}</text>')
        tick += step
    for i, layer in enumerate(r.layers):
        y = top + i * row_h
        yb = y + (row_h - bar_h) / 2
        name = layer.layer if len(layer.layer) <= 30 else layer.layer[:29] + "…"
        title = (f"{layer.layer} ({layer.op}): {layer.total_cycles:,} cycles; compute {layer.compute_cycles:,}, "
                 f"stall {layer.stall_cycles:,}, memory {layer.memory_cycles:,}, roofline {layer.roofline_cycles:,}; "
                 f"{layer.bound}-bound")
        parts.append(f'<g class="row"><title>{_e(title)}</title>')
        parts.append(f'<text x="{label_w - 10}" y="{y + row_h / 2 + 4:.1f}" font-size="12" fill="#0f172a" '
                     f'text-anchor="end">{_e(name)} <tspan fill="#94a3b8">{_e(layer.op)}</tspan></text>')
        x = float(label_w)
        for kind, cycles in (("compute", layer.compute_cycles), ("stall", layer.stall_cycles),
                             ("other", layer.other_cycles)):
            w = cycles * px
            if w <= 0:
                continue
            colour = COLOURS[layer.unit] if kind == "compute" else COLOURS[kind]
            parts.append(f'<rect class="seg {kind}" x="{x:.2f}" y="{yb:.1f}" width="{max(w, 0.8):.2f}" '
                         f'height="{bar_h}" fill="{colour}"/>')
            x += w
        if layer.roofline_cycles > 0:
            rx = label_w + layer.roofline_cycles * px
            parts.append(f'<line class="roof" x1="{rx:.2f}" y1="{yb - 2:.1f}" x2="{rx:.2f}" y2="{yb + bar_h + 2:.1f}" '
                         f'stroke="{COLOURS["roofline"]}" stroke-width="2"/>')
        parts.append(f'<text x="{label_w + max(x - label_w, layer.total_cycles * px) + 6:.1f}" '
                     f'y="{y + row_h / 2 + 4:.1f}" font-size="11" fill="#475569">{_e(human(layer.total_cycles))}'
                     f'</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _merged_events(events: list[TimelineEvent], px: float) -> list[tuple[int, int, list[TimelineEvent]]]:
    """Events of one lane, with runs that would overlap within a pixel drawn as one rectangle (a
    large model has thousands of tiny DMA transfers; the file should stay small)."""
    out: list[tuple[int, int, list[TimelineEvent]]] = []
    for e in sorted(events, key=lambda e: (e.start, e.end)):
        if out and (e.start - out[-1][1]) * px < 0.5 and (out[-1][1] - out[-1][0]) * px < 1.0:
            start, end, group = out[-1]
            out[-1] = (start, max(end, e.end), group + [e])
        else:
            out.append((e.start, e.end, [e]))
    return out


def _timeline_chart(r: PerfReport) -> str:
    label_w, lane_h, top, width = 110, 34, 4, 1240
    plot_w = width - label_w - 16
    span = max([e.end for e in r.timeline] + [r.total_cycles, 1])
    px = plot_w / span
    height = top + len(UNITS) * lane_h + 36
    parts = [f'<svg class="timeline" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="unit timeline">']
    for i, unit in enumerate(UNITS):
        y = top + i * lane_h
        shade = "#f8fafc" if i % 2 == 0 else "#ffffff"
        parts.append(f'<rect x="{label_w}" y="{y}" width="{plot_w}" height="{lane_h}" fill="{shade}"/>')
        parts.append(f'<text x="{label_w - 10}" y="{y + lane_h / 2 + 4}" font-size="12" fill="#0f172a" '
                     f'text-anchor="end">{_e(UNIT_TITLES[unit])}</text>')
    step = _nice_step(span, 8)
    tick = 0.0
    axis_y = top + len(UNITS) * lane_h
    while tick <= span + 1e-9:
        x = label_w + tick * px
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="#e2e8f0"/>')
        us = tick / r.clock_mhz if r.clock_mhz else 0
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 16}" font-size="11" fill="#475569" text-anchor="middle">'
                     f'{_e(_tick(tick))}</text>')
        if r.clock_mhz:
            parts.append(f'<text x="{x:.1f}" y="{axis_y + 29}" font-size="10" fill="#94a3b8" '
                         f'text-anchor="middle">{_e(_tick(us))} µs</text>')
        tick += step
    for i, unit in enumerate(UNITS):
        y = top + i * lane_h + 6
        lane = [e for e in r.timeline if e.unit == unit]
        for start, end, group in _merged_events(lane, px):
            if len(group) == 1:
                e = group[0]
                what = "".join(x for x in (f" {e.opcode}" if e.opcode else "", f" [{e.layer}]" if e.layer else ""))
                title = f"#{e.instruction}{what}: cycles {e.start:,}–{e.end:,} ({e.end - e.start:,})"
            else:
                title = (f"{len(group)} instructions #{group[0].instruction}–#{group[-1].instruction}: "
                         f"cycles {start:,}–{end:,}")
            w = max((end - start) * px, 1.0)
            parts.append(f'<rect class="ev {unit}" x="{label_w + start * px:.2f}" y="{y}" width="{w:.2f}" '
                         f'height="{lane_h - 12}" rx="1.5" fill="{COLOURS[unit]}"><title>{_e(title)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def _layer_table(r: PerfReport) -> str:
    total = sum(layer.total_cycles for layer in r.layers) or 1
    longest = max([layer.total_cycles for layer in r.layers] + [1])
    heads = [("#", True), ("layer", False), ("op", False), ("output", False), ("MACs", True), ("compute", True),
             ("memory", True), ("stall", True), ("total", True), ("roofline", True), ("bound", False),
             ("util", True), ("DDR read", True), ("DDR write", True), ("share", True)]
    out = ['<table class="layers"><thead><tr>']
    out += [f'<th class="{"n" if num else ""}">{_e(h)}</th>' for h, num in heads]
    out.append("</tr></thead><tbody>")
    for i, layer in enumerate(r.layers):
        share = layer.total_cycles / total
        bar_px = 48 * layer.total_cycles / longest

        def num(v: int, text: str | None = None) -> str:
            return f'<td class="n" data-v="{v}">{_e(text if text is not None else human(v))}</td>'

        out.append("<tr>" + num(i, str(i)) + f"<td>{_e(layer.layer)}</td><td>{_e(layer.op)}</td>"
                   f"<td>{_e(_shape(layer.output_shape))}</td>" + num(layer.macs) + num(layer.compute_cycles)
                   + num(layer.memory_cycles) + num(layer.stall_cycles) + num(layer.total_cycles)
                   + num(layer.roofline_cycles)
                   + f'<td data-v="{layer.bound}"><span class="badge {layer.bound}">{layer.bound}</span></td>'
                   + f'<td class="n" data-v="{layer.utilization}">{_pct(layer.utilization) if layer.macs else "–"}</td>'
                   + num(layer.ddr_read_bytes, human_bytes(layer.ddr_read_bytes))
                   + num(layer.ddr_write_bytes, human_bytes(layer.ddr_write_bytes))
                   + f'<td class="n" data-v="{share}"><span class="share" style="width:{bar_px:.1f}px">'
                   f'</span> {100 * share:.1f}%</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _legend(items: list[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{c}"></i>{_e(t)}</span>' for t, c in items) + "</div>"


def _render_html(r: PerfReport) -> str:
    name = r.model or "model"
    memory_bound = sum(1 for layer in r.layers if layer.memory_bound)
    tiles = "".join([
        _tile("Latency", f"{r.latency_ms:.3f} ms", f"{r.total_cycles:,} cycles @ {r.clock_mhz:g} MHz", hero=True),
        _tile("Throughput", _fps(r.fps), "one frame at a time", hero=True),
        _tile("DDR per frame", human_bytes(r.ddr_bytes_per_frame),
              f"read {human_bytes(r.ddr_read_bytes)} · write {human_bytes(r.ddr_write_bytes)}"),
        _tile("DDR bandwidth", _rate(r.ddr_gbps, "GB/s"), "at the frame rate above"),
        _tile("Achieved", _rate(r.achieved_tops, "TOPS"), f"of {_rate(r.peak_tops, 'TOPS')} peak"),
        _tile("MAC utilization", _pct(r.mac_utilization), f"{human(r.macs)} MACs per frame"),
        _tile("Roofline bound", f"{human(r.roofline_cycles)} cycles",
              f"estimate is {r.roofline_ratio:.2f}x the bound"),
        _tile("Kept on chip", human_bytes(r.on_chip_bytes_saved), "DDR traffic saved by SRAM residency"),
        _tile("Cycles", human(r.total_cycles),
              f"compute {human(r.compute_cycles)} · memory {human(r.memory_cycles)} · stall {human(r.stall_cycles)}"),
        _tile("Layers", str(len(r.layers)), f"{memory_bound} memory-bound"),
    ])
    bars_legend = _legend([("compute on the MAC array", COLOURS["mac_array"]),
                           ("compute on the vector unit", COLOURS["vector"]), ("memory stall", COLOURS["stall"]),
                           ("rest of the layer's span", COLOURS["other"]), ("roofline bound", COLOURS["roofline"])])
    lanes_legend = _legend([(UNIT_TITLES[u], COLOURS[u]) for u in UNITS])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(name)} on {_e(r.march)} — hbdk-sim performance report</title>
<style>{_CSS}</style></head>
<body><main>
<header><h1>{_e(name)} <span style="color:#64748b;font-weight:500">on march {_e(r.march)}</span></h1>
<p>hbdk-sim cycle estimate · {len(r.layers)} layers · {len(r.timeline)} instructions scheduled ·
{r.clock_mhz:g} MHz</p></header>
<div class="tiles">{tiles}</div>
<section id="layers-chart"><h2>Cycles per layer</h2>
<p class="note">Each bar spans the layer's cycles on the critical path: its own compute, then the cycles it waited
for data. The black tick is the layer's roofline bound (its MACs at peak rate or its DDR bytes at full bandwidth,
whichever is larger).</p>
{bars_legend}{_layer_chart(r)}</section>
<section id="timeline"><h2>Unit timeline</h2>
<p class="note">Every instruction on its unit, in cycles from the start of the frame. DMA that overlaps compute
is hidden by double buffering; hover a block for the instruction.</p>
{lanes_legend}{_timeline_chart(r)}</section>
<section id="table"><h2>Layers</h2>
<p class="note">Cycle counts in K (10³) and M (10⁶); bytes in decimal units. Click a heading to sort.</p>
{_layer_table(r)}</section>
<footer>Generated by hbdk-sim. The model behind these numbers is described in docs/perf_model.md.</footer>
</main><script>{_JS}</script></body></html>
"""
