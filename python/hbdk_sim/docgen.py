"""Documents derived from the code: docs/ops.md from the C++ op table, docs/passes.md from the
pass registry and the named pipelines, docs/marches.md from the march schema, the constraint rules
and the shipped march files, docs/op_coverage.md from every registry an op appears in.

    python -m hbdk_sim.docgen --write   # regenerate docs/ (from the repository root)
    python -m hbdk_sim.docgen --check   # exit 1 if a document is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hbdk_sim import _core
from hbdk_sim.march import list_marches, load_march, supported_ops_report

HEADER = """# HBIR ops

Generated from the op table (`csrc/ir/ops_*.cpp`, one file per family) by `make docs`; do not edit by
hand. Which kernels, marches, tracer mappings and tests each op has: [op_coverage.md](op_coverage.md).
Layout is NCHW. Operands marked *optional* may be left out (trailing only); *variadic* takes any
number. Attributes without a default are required. Element-type rules and the text syntax are in
[hbir.md](hbir.md).
"""


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _traits_line(t: dict) -> str:
    rule = t["quant_rule"] + (" (by mode)" if t["quant_rule_varies"] else "")
    runs = f"instruction `{t['opcode']}` on the {t['unit']}" if t["opcode"] else "no instruction"
    fusion = f", fuses as {t['fusion']}" if t["fusion"] != "none" else ""
    return f"Traits: quantize rule `{rule}`; {runs}; tiling `{t['tile']}`{fusion}."


def ops_markdown() -> str:
    table = _core.op_table()
    out = [HEADER, "| op | summary |", "| --- | --- |"]
    out += [f"| [`{d['name']}`](#{d['name']}) | {_md(d['summary'])} |" for d in table]
    for d in table:
        out += ["", f"## {d['name']}", "", d["summary"], ""]
        if d["operands"]:
            out.append("Operands:")
            out += [f"- `{o['name']}`{'' if o['arity'] == 'one' else ' *' + o['arity'] + '*'}: {o['doc']}"
                    for o in d["operands"]]
            out.append("")
        out.append("Results:")
        out += [f"- `{r['name']}`{'' if r['arity'] == 'one' else ' *' + r['arity'] + '*'}: {r['doc']}"
                for r in d["results"]]
        out.append("")
        if d["attrs"]:
            out += ["| attribute | kind | default | meaning |", "| --- | --- | --- | --- |"]
            for a in d["attrs"]:
                default = f"`{a['default']}`" if a["default"] is not None else "required"
                out.append(f"| `{a['name']}` | {_md(a['kind'])} | {_md(default)} | {_md(a['doc'])} |")
            out.append("")
        if d["has_macs"]:
            out += ["Counts multiply-accumulates (MACs).", ""]
        out += [_traits_line(d["traits"]), ""]
        out += ["```", d["example"], "```"]
    return "\n".join(out) + "\n"


def passes_markdown() -> str:
    out = ["# Passes and pipelines", "",
           "Generated from the pass registry in `csrc/passes/registry.cpp` by `make docs`; do not edit by hand.",
           "Run them with `hbdk-sim opt FILE --passes a,b` or `Module.run_pipeline([...])`; every pass is",
           "followed by the verifier unless `--no-verify-each` is given. Each pass's algorithm is written at",
           "the top of its file in `csrc/passes/`, and its text-in/text-out cases are in `tests/ir/<pass>/`.",
           "", "| pass | what it does |", "| --- | --- |"]
    out += [f"| `{name}` | {_md(summary)} |" for name, summary in _core.passes()]
    out += ["", "| pipeline | passes | purpose |", "| --- | --- | --- |"]
    out += [f"| `{p['name']}` | {', '.join(p['passes'])} | {_md(p['summary'])} |" for p in _core.pipelines()]
    return "\n".join(out) + "\n"


def marches_markdown() -> str:
    marches = sorted((load_march(name) for name in list_marches()), key=lambda m: m.peak_tops)
    out = ["# March descriptions", "",
           "Generated from the march loader's schema (`csrc/march/march.cpp`), the constraint rules",
           "(`csrc/march/constraints.cpp`) and the shipped files in `python/hbdk_sim/marches/` by `make docs`;",
           "do not edit by hand. Select a march with `--march NAME` (a shipped one) or `--march path/to/my_npu.json`.",
           "",
           "## Shipped marches", "",
           "| march | MAC array | clock | int8 TOPS | SRAM | DDR | description |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in marches:
        mac = m.mac_array
        out.append(f"| `{m.name}` | {mac['rows']}x{mac['cols']} | {m.clock_mhz:g} MHz | {m.peak_tops:.1f} | "
                   f"{m.sram['size_kib']} KiB | {m.ddr['bandwidth_gbps']:g} GB/s | {_md(m.description)} |")
    out += ["", "## Schema", "",
            "A march file is one JSON object with exactly these fields; an unknown key is an error (a misspelt",
            "limit must not pass silently), and every error names the file, the line:col and the JSON path, e.g.",
            "`my_npu.json:5:13: error: mac_array.rows: expected a positive integer but got -4`. Each `ops.<op>` key",
            "is an op of [ops.md](ops.md); the march runs exactly the ops listed there, and a limit field is",
            "accepted only for the ops its rule applies to.", "",
            "| field | type | required | meaning |", "| --- | --- | --- | --- |"]
    for f in _core.march_schema():
        out.append(f"| `{f['path']}` | {_md(f['type'])} | {'yes' if f['required'] else 'no'} | {_md(f['doc'])} |")
    out += ["", "## Rules", "",
            "The `check-constraints` pass runs every rule on every op and reports all violations at once, one",
            "line each: `<where>: '<op>' op %<value>: <rule>: expected <limit> but got <actual>; <hint>`.", "",
            "| rule | requirement | applies to | field | how to fix |", "| --- | --- | --- | --- | --- |"]
    for r in _core.constraint_rules():
        ops = ", ".join(f"`{o}`" for o in r["ops"]) or "every op"
        field = f"`ops.<op>.{r['field']}`" if r["field"] else "-"
        out.append(f"| `{r['name']}` | {_md(r['doc'])} | {ops} | {field} | {_md(r['hint'])} |")
    out += ["", "## Supported ops", "",
            "What each shipped march runs, with its limits. Ops a march does not list are rejected by the",
            "`supported-op` rule; the quantize pass has already rewritten sigmoid, tanh, exp and leaky_relu into",
            "`lut` and the default pipeline has folded batch_norm, so those appear only in float models.", ""]
    for m in marches:
        out += [supported_ops_report(m)]
    return "\n".join(out)


def op_coverage_markdown(repo: Path) -> str:
    from hbdk_sim.op_coverage import coverage_markdown  # imports the torch front end

    return coverage_markdown(repo)


# name -> render(repository root)
DOCUMENTS = {"ops.md": lambda repo: ops_markdown(), "passes.md": lambda repo: passes_markdown(),
             "marches.md": lambda repo: marches_markdown(), "op_coverage.md": op_coverage_markdown}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Regenerate or check the generated documents in docs/.")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    ap.add_argument("--docs-dir", type=Path, default=Path("docs"))
    args = ap.parse_args(argv)
    stale = []
    for name, render in DOCUMENTS.items():
        path = args.docs_dir / name
        text = render(args.docs_dir.resolve().parent)
        if args.write:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        elif not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(str(path))
    if stale:
        print(f"stale: {', '.join(stale)}; run `make docs`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
