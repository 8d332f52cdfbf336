"""The sensitivity view: one self-contained HTML page putting each quantized layer's error (cosine,
SQNR) beside its estimated cycles from a PerfReport, in the visual language of the perf report
(its stylesheet, tiles and sortable table; charts are inline SVG drawn here).

Layers are matched to the perf report by location: the tracer sets an HBIR op's location to the
torch module path, so a perf layer belongs to the sensitivity layer whose name equals its
location or is the longest dotted prefix of it (`block.conv` owns `block.conv.add_1`). Several
perf layers of one module (e.g. a gemm and its dequantize) add up.
"""

from __future__ import annotations

import html
import math
import os

from hbdk_sim.files import write_file
from hbdk_sim.perf_report import _CSS, _JS, PerfReport, _legend, _tile, human
from hbdk_sim.quantization.sensitivity import SensitivityReport

_e = html.escape
ERROR_COLOUR = "#dc2626"
CYCLES_COLOUR = "#2563eb"
# The error axis is 1 - cosine on a log scale from 1e-6 (no visible loss) to 1 (no correlation left).
_LOG_FLOOR = -6.0


def layer_cycles(names: list[str], perf: PerfReport) -> dict[str, int]:
    """Total cycles per name, for the names some perf layer belongs to."""
    out: dict[str, int] = {}
    for layer in perf.layers:
        owners = [n for n in names if layer.layer == n or layer.layer.startswith(n + ".")]
        if owners:
            owner = max(owners, key=len)
            out[owner] = out.get(owner, 0) + layer.total_cycles
    return out


def _error_fraction(cosine: float) -> float:
    """Where `1 - cosine` falls on the log axis, 0 (<= 1e-6) to 1 (>= 1)."""
    err = 1.0 - cosine
    if not err > 0.0:
        return 0.0
    return min(1.0, max(0.0, (math.log10(err) - _LOG_FLOOR) / -_LOG_FLOOR))


def _sqnr(x: float) -> str:
    return "∞" if x == math.inf else f"{x:.2f}"


def _chart(report: SensitivityReport, cycles: dict[str, int] | None) -> str:
    label_w, gap, row_h, bar_h, top, width = 280, 40, 20, 13, 24, 1240
    panel_w = (width - label_w - gap - 70) // (2 if cycles is not None else 1)
    n = len(report.layers)
    height = top + n * row_h + 8
    parts = [f'<svg class="sensitivity-chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="quantization error and cycles per layer">']
    for k in range(int(-_LOG_FLOOR) + 1):
        x = label_w + k * panel_w / -_LOG_FLOOR
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 6}" stroke="#e2e8f0"/>')
        parts.append(f'<text x="{x:.1f}" y="{top - 8}" font-size="11" fill="#64748b" text-anchor="middle">'
                     f'1e{int(_LOG_FLOOR) + k}</text>')
    right = label_w + panel_w + gap
    longest = max([*(cycles or {}).values(), 1])
    if cycles is not None:
        parts.append(f'<text x="{right}" y="{top - 8}" font-size="11" fill="#64748b">cycles (0 to '
                     f'{_e(human(longest))})</text>')
    for i, layer in enumerate(report.layers):
        y = top + i * row_h
        yb = y + (row_h - bar_h) / 2
        name = layer.name if len(layer.name) <= 30 else layer.name[:29] + "…"
        c = None if cycles is None else cycles.get(layer.name)
        title = (f"{layer.name} ({layer.module_type}, {layer.dtype}): cosine {layer.cosine:.6f}, "
                 f"SQNR {_sqnr(layer.sqnr)} dB" + ("" if cycles is None else
                                                  f", {'-' if c is None else f'{c:,}'} cycles"))
        parts.append(f'<g class="row"><title>{_e(title)}</title>')
        parts.append(f'<text x="{label_w - 10}" y="{y + row_h / 2 + 4:.1f}" font-size="12" fill="#0f172a" '
                     f'text-anchor="end">{_e(name)}</text>')
        w = _error_fraction(layer.cosine) * panel_w
        parts.append(f'<rect class="seg error" x="{label_w}" y="{yb:.1f}" width="{max(w, 0.8):.2f}" '
                     f'height="{bar_h}" fill="{ERROR_COLOUR}"/>')
        if cycles is not None:
            if c is not None:
                cw = c / longest * panel_w
                parts.append(f'<rect class="seg cycles" x="{right}" y="{yb:.1f}" width="{max(cw, 0.8):.2f}" '
                             f'height="{bar_h}" fill="{CYCLES_COLOUR}"/>')
                label, lx = human(c), right + cw + 6
            else:
                label, lx = "-", right + 6
            parts.append(f'<text x="{lx:.1f}" y="{y + row_h / 2 + 4:.1f}" font-size="11" fill="#475569">'
                         f'{_e(label)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _table(report: SensitivityReport, cycles: dict[str, int] | None, total_cycles: int) -> str:
    heads = [("#", True), ("layer", False), ("type", False), ("dtype", False), ("cosine", True),
             ("1 − cosine", True), ("SQNR dB", True)]
    if cycles is not None:
        heads += [("cycles", True), ("share", True)]
    total = total_cycles or 1
    out = ['<table class="layers"><thead><tr>']
    out += [f'<th class="{"n" if num else ""}">{_e(h)}</th>' for h, num in heads]
    out.append("</tr></thead><tbody>")
    for i, x in enumerate(report.layers):
        sqnr_v = "1e308" if x.sqnr == math.inf else f"{x.sqnr}"
        row = (f'<tr><td class="n" data-v="{i}">{i}</td><td>{_e(x.name)}</td><td>{_e(x.module_type)}</td>'
               f'<td>{_e(x.dtype)}</td><td class="n" data-v="{x.cosine}">{x.cosine:.6f}</td>'
               f'<td class="n" data-v="{1.0 - x.cosine}">{1.0 - x.cosine:.2e}</td>'
               f'<td class="n" data-v="{sqnr_v}">{_sqnr(x.sqnr)}</td>')
        if cycles is not None:
            c = cycles.get(x.name)
            if c is None:
                row += '<td class="n cycles" data-v="-1">-</td><td class="n" data-v="-1">-</td>'
            else:
                row += (f'<td class="n cycles" data-v="{c}">{_e(human(c))}</td>'
                        f'<td class="n" data-v="{c / total}">{100 * c / total:.1f}%</td>')
        out.append(row + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def sensitivity_html(report: SensitivityReport, perf: PerfReport | None = None, path: str | os.PathLike | None = None,
                     *, overwrite: bool = False) -> str:
    """The page as a string; also written to `path` when given (refusing to replace an existing
    file unless `overwrite`)."""
    cycles = layer_cycles([x.name for x in report.layers], perf) if perf is not None else None
    worst = report.layers[0] if report.layers else None
    tiles = [
        _tile("Full model cosine", f"{report.full.cosine:.5f}", "every layer quantized", hero=True),
        _tile("Full model SQNR", f"{_sqnr(report.full.sqnr)} dB", f"over {report.samples} samples", hero=True),
        _tile("Most sensitive", worst.name if worst else "-",
              f"cosine {worst.cosine:.5f} alone" if worst else ""),
        _tile("Quantized layers", str(len(report.layers)), f"ranked by {report.metric}"),
    ]
    if perf is not None:
        matched = sum(1 for x in report.layers if x.name in cycles)
        tiles.append(_tile("Estimated latency", f"{perf.latency_ms:.3f} ms",
                           f"{perf.total_cycles:,} cycles on {perf.march}"))
        tiles.append(_tile("Layers with cycles", f"{matched} / {len(report.layers)}", "matched by module path"))
    legend = [("quantization error 1 − cosine (log scale)", ERROR_COLOUR)]
    if perf is not None:
        legend.append(("estimated cycles", CYCLES_COLOUR))
    perf_note = ("" if perf is None else
                 " The right bars are the layer's estimated cycles on the march (a layer the compiler fused into "
                 "its neighbour, or that runs no instruction of its own, shows -).")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(report.model)} — hbdk-sim quantization sensitivity</title>
<style>{_CSS}</style></head>
<body><main>
<header><h1>{_e(report.model)} <span style="color:#64748b;font-weight:500">quantization sensitivity</span></h1>
<p>one layer fake-quantized at a time against the float model · {report.samples} samples ·
worst {_e(report.metric)} first</p></header>
<div class="tiles">{"".join(tiles)}</div>
<section id="sensitivity-chart"><h2>Error and cost per layer</h2>
<p class="note">The left bars are the output error when only this layer is quantized: longer is worse. A layer
with a long error bar and a short cycles bar is cheap to raise to int16.{perf_note}</p>
{_legend(legend)}{_chart(report, cycles)}</section>
<section id="table"><h2>Layers</h2>
<p class="note">Cosine similarity and SQNR of all model outputs against the float model; the share is of all the
model's layer cycles. Click a heading to sort.</p>
{_table(report, cycles, sum(x.total_cycles for x in perf.layers) if perf is not None else 0)}</section>
<footer>Generated by hbdk-sim.</footer>
</main><script>{_JS}</script></body></html>
"""
    if path is not None:
        write_file(path, page.encode("utf-8"), overwrite=overwrite)
    return page
