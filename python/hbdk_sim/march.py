"""March descriptions: the BPU targets the compiler knows, selectable by name or by path.

Shipped marches are the JSON files in ``hbdk_sim/marches/``; ``--march bpu`` and
``--march ./my_npu.json`` both work. Loading validates every field (see docs/marches.md).
``supported_ops_report`` renders what one march runs, with its limits, from the loaded file.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from hbdk_sim import _core

MARCHES_DIR = Path(__file__).resolve().parent / "marches"
DEFAULT_MARCH = "bpu"


def list_marches() -> list[str]:
    """Names of the shipped marches, sorted."""
    return sorted(p.stem for p in MARCHES_DIR.glob("*.json"))


def resolve_march(name_or_path: str | Path) -> Path:
    """The file of a shipped march name, else `name_or_path` as a path to a march JSON file.

    Raises MarchError naming the shipped marches when it is neither.
    """
    text = str(name_or_path)
    shipped = MARCHES_DIR / f"{text}.json"
    if "/" not in text and "\\" not in text and not text.endswith(".json") and shipped.is_file():
        return shipped
    path = Path(text)
    if path.is_file():
        return path
    if path.exists():
        raise _core.MarchError(f"{text}: error: not a regular file; give the path of a march JSON file")
    close = difflib.get_close_matches(text, list_marches(), n=1)
    suggestion = f"; did you mean '{close[0]}'?" if close else ""
    raise _core.MarchError(
        f"error: unknown march '{text}'{suggestion} (shipped marches: {', '.join(list_marches())}; "
        "or give the path of a march JSON file)"
    )


def load_march(name_or_path: str | Path = DEFAULT_MARCH) -> _core.March:
    """The validated March for a shipped name or a path to a JSON file."""
    return _core.load_march_file(str(resolve_march(name_or_path)))


def _limits(c: dict) -> str:
    parts = []
    if "kernel_max" in c:
        parts.append(f"kernel <= {c['kernel_max']}x{c['kernel_max']}")
    if "strides" in c:
        parts.append("strides " + ", ".join(map(str, c["strides"])))
    if "dilation_max" in c:
        parts.append(f"dilation <= {c['dilation_max']}")
    if "channels_max" in c:
        parts.append(f"channels <= {c['channels_max']}")
    if "groups" in c:
        parts.append(f"groups {c['groups']}")
    if "resize_factors" in c:
        parts.append("factors " + ", ".join(map(str, c["resize_factors"])))
    if "modes" in c:
        parts.append("modes " + ", ".join(c["modes"]))
    if "k_max" in c:
        parts.append(f"k <= {c['k_max']}")
    return "; ".join(parts) or "-"


def supported_ops_report(march: _core.March) -> str:
    """Markdown: the march's hardware in one paragraph, then every op it runs with its dtypes and limits."""
    mac, sram, ddr = march.mac_array, march.sram, march.ddr
    int16 = f", {march.peak_tops_for('int16'):.1f} int16 TOPS" if "int16" in mac["macs_per_cycle"] else ""
    out = [
        f"### {march.name}",
        "",
        march.description,
        "",
        f"{mac['rows']}x{mac['cols']} {mac['dataflow'].replace('_', '-')} MAC array at {march.clock_mhz:g} MHz: "
        f"{march.peak_tops:.1f} int8 TOPS{int16}. SRAM {sram['size_kib']} KiB in {sram['banks']} banks "
        f"({sram['bytes_per_cycle']} B/cycle); DDR {ddr['bandwidth_gbps']:g} GB/s, {ddr['latency_cycles']} cycles "
        f"latency; {march.dma['engines']} DMA engines x {march.dma['bytes_per_cycle']} B/cycle; vector unit "
        f"{march.vector_unit['lanes']} lanes. Tensors: rank <= {march.tensor['max_rank']}, dims <= "
        f"{march.tensor['max_dim']}. Fusion: conv+activation "
        f"{'yes' if march.fuse['conv_activation'] else 'no'}, conv+add {'yes' if march.fuse['conv_add'] else 'no'}.",
        "",
        "| op | dtypes | limits |",
        "| --- | --- | --- |",
    ]
    ops = march.ops
    order = [d["name"] for d in _core.op_table() if d["name"] in ops]
    out += [f"| `{name}` | {', '.join(ops[name]['dtypes'])} | {_limits(ops[name])} |" for name in order]
    missing = [d["name"] for d in _core.op_table() if d["name"] not in ops]
    if missing:
        out += ["", "Not supported: " + ", ".join(f"`{n}`" for n in missing) + "."]
    return "\n".join(out) + "\n"
