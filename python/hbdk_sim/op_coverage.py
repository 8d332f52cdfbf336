"""The op coverage matrix: for every HBIR op, what the code holds for it at each stage of the
toolchain, read from the registries themselves (the C++ op table with its traits and kernel
tables, the shipped marches, the tracer's handler registry, int_infer's op modules, the ONNX
exporter's emitters and the bit-exact kernel tests). Nothing here is kept by hand: a cell is
"yes" with what backs it, "n/a: <why>" where the op never reaches that stage, or "missing".

`hbdk-sim ops --coverage [--json]` prints it; `make docs` writes docs/op_coverage.md, and
tests/python/test_op_coverage.py fails when that file is stale or a cell claims what the code does
not hold.
"""

from __future__ import annotations

import ast
from pathlib import Path

from hbdk_sim import _core
from hbdk_sim.march import list_marches, load_march

# The kernel tests whose cases compare the C++ integer reference with the independent numpy oracle
# (tests/python/numerics_oracle.py) bit for bit.
KERNEL_TESTS = "tests/python/test_int_kernels*.py"
_KERNEL_RUNNERS = ("check", "run_op")
MISSING = "missing"

# Why an op never reaches a stage, by its quantize rule.
_NOT_LOWERED = {
    "constant": "n/a: data, loaded as weights",
    "fold_first": "n/a: fold-bn folds it into the conv before quantize",
    "lut": "n/a: quantize rewrites it into lut",
}


def _yes(detail: str = "") -> str:
    return f"yes ({detail})" if detail else "yes"


def kernel_tests(repo: Path) -> dict[str, dict[str, list[str]]] | None:
    """op -> {"reference": [test names], "optimized": [test names]} from the kernel test files, or
    None when they are not there (an installed package). A test covers the ops it passes to
    check()/run_op() by name, or, where it passes a variable, the op names its body and its
    decorators spell (a parametrized or looped test)."""
    paths = sorted(repo.glob(KERNEL_TESTS))
    if not paths:
        return None
    ops = {d["name"] for d in _core.op_table()}
    found: dict[str, dict[str, list[str]]] = {}
    functions = [fn for path in paths for fn in ast.parse(path.read_text(encoding="utf-8")).body]
    for fn in functions:
        if not isinstance(fn, ast.FunctionDef) or not fn.name.startswith("test_"):
            continue
        spelled = {n.value for n in ast.walk(fn) if isinstance(n, ast.Constant) and n.value in ops}
        for call in ast.walk(fn):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in _KERNEL_RUNNERS):
                continue
            index = 1 if call.func.id == "check" else 0
            if len(call.args) <= index:
                continue
            arg = call.args[index]
            names = {arg.value} if isinstance(arg, ast.Constant) and arg.value in ops else spelled
            optimized = any(k.arg == "optimized" and isinstance(k.value, ast.Constant) and k.value.value
                            for k in call.keywords)
            for name in names:
                entry = found.setdefault(name, {"reference": [], "optimized": []})
                kind = "optimized" if optimized else "reference"
                if fn.name not in entry[kind]:
                    entry[kind].append(fn.name)
    return found


def _tracer_targets() -> dict[str, list[str]]:
    from hbdk_sim.frontend.torch_ops import FUNCTION_HANDLERS, MODULE_HANDLERS

    targets: dict[str, list[str]] = {}
    for handler in [*MODULE_HANDLERS.values(), *FUNCTION_HANDLERS.values()]:
        for op in handler.emits:
            if handler.target not in targets.setdefault(op, []):
                targets[op].append(handler.target)
    return targets


def _short_list(names: list[str], keep: int = 4) -> str:
    return ", ".join(names[:keep]) + (f" (+{len(names) - keep})" if len(names) > keep else "")


def coverage(repo: Path | None = None) -> dict:
    """{"columns": [...], "marches": [...], "rows": [{"op": name, <column>: cell, ...}]}."""
    from hbdk_sim.onnx_export import _FLOAT_OPS, _INTEGER_OPS
    from hbdk_sim.quantization.int_ops import OP_MODULES, Constant

    marches = [load_march(name) for name in list_marches()]
    marches.sort(key=lambda m: m.peak_tops)
    tracer = _tracer_targets()
    tests = kernel_tests(repo) if repo is not None else None
    rows = []
    for d in _core.op_table():
        name, t, k = d["name"], d["traits"], d["kernels"]
        rule = t["quant_rule"]
        not_lowered = _NOT_LOWERED.get(rule)
        integer_only = rule == "integer"
        row = {"op": name}
        row["float kernel"] = (_yes() if k["float"] else "n/a: integer only" if integer_only
                               else "n/a: data" if rule == "constant" else MISSING)
        row["integer reference"] = _yes() if k["int"] else not_lowered or MISSING
        row["optimized kernel"] = (_yes() if k["optimized"] else "n/a: runs on the reference" if k["int"]
                                   else not_lowered or MISSING)
        row["quantize rule"] = rule + (" (by mode)" if t["quant_rule_varies"] else "")
        if t["opcode"]:
            cost = "systolic" if t["unit"] == "mac_array" else t["vector_work"]
            row["instruction"] = f"yes (`{t['opcode']}`, {t['unit']}, {cost}, tiling {t['tile']})"
        else:
            row["instruction"] = not_lowered or MISSING
        for m in marches:
            if name in m.ops:
                row[m.name] = _yes(", ".join(m.ops[name]["dtypes"]))
            else:
                row[m.name] = not_lowered or "no: not in the march's op list"
        if name in tracer:
            row["tracer"] = _yes(_short_list(tracer[name]))
        else:
            row["tracer"] = ("n/a: made by quantize" if integer_only
                             else "n/a: traced as the weight it holds" if rule == "constant" else MISSING)
        module = Constant if rule == "constant" else OP_MODULES.get(name)
        row["int_infer"] = (_yes(module.__name__) if module is not None
                            else not_lowered if rule in ("fold_first", "lut") else MISSING)
        row["ONNX export"] = (_yes() if name in _FLOAT_OPS or name in _INTEGER_OPS
                              else "n/a: an initializer" if rule == "constant" else MISSING)
        if tests is None:
            row["bit-exact test"] = "n/a: no tests/ directory here"
        elif name in tests and tests[name]["reference"]:
            row["bit-exact test"] = _yes(_short_list(tests[name]["reference"], 2))
        else:
            row["bit-exact test"] = not_lowered or ("n/a: data" if rule == "constant" else MISSING)
        rows.append(row)
    columns = ["float kernel", "integer reference", "optimized kernel", "quantize rule", "instruction",
               *[m.name for m in marches], "tracer", "int_infer", "ONNX export", "bit-exact test"]
    return {"columns": columns, "marches": [m.name for m in marches], "rows": rows}


def gaps(matrix: dict) -> list[tuple[str, str]]:
    """The (op, column) cells that are missing."""
    return [(r["op"], c) for r in matrix["rows"] for c in matrix["columns"] if r[c] == MISSING]


HEADER = """# Op coverage

Generated from the code by `make docs` (`hbdk-sim ops --coverage` prints the same, `--json` as
data); do not edit by hand. One row per HBIR op ([ops.md](ops.md)); a cell is "yes" with what backs
it, "n/a" with the reason the op never reaches that stage, or **missing**. Columns:

- *float kernel*, *integer reference*: the C++ reference kernels (csrc/exec/float_reference.cpp,
  csrc/exec/int_reference*.cpp); *optimized kernel*: csrc/exec/int_optimized.cpp.
- *quantize rule*, *instruction*: the op's traits in the op table (csrc/ir/ops_*.cpp): how the
  quantize pass rewrites it; the ISA opcode, unit, what the cycle model charges and how lower tiles it.
- one column per shipped march (python/hbdk_sim/marches/): supported, with its element types.
- *tracer*: the torch targets whose handler emits it (python/hbdk_sim/frontend/torch_ops.py).
- *int_infer*: its torch module in python/hbdk_sim/quantization/int_ops/.
- *ONNX export*: an emitter in python/hbdk_sim/onnx_float_ops.py (float ops) or onnx_export.py (integer ops).
- *bit-exact test*: the tests/python/test_int_kernels*.py cases comparing the integer reference with
  the independent numpy oracle bit for bit.
"""


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def coverage_markdown(repo: Path) -> str:
    matrix = coverage(repo)
    columns = matrix["columns"]
    out = [HEADER, "| op | " + " | ".join(columns) + " |", "| --- " * (len(columns) + 1) + "|"]
    for r in matrix["rows"]:
        cells = [f"**{MISSING}**" if r[c] == MISSING else _md(r[c]) for c in columns]
        out.append(f"| `{r['op']}` | " + " | ".join(cells) + " |")
    missing = gaps(matrix)
    out += ["", f"{len(missing)} missing cell(s)" + (":" if missing else ".")]
    out += [f"- `{op}`: {column}" for op, column in missing]
    return "\n".join(out) + "\n"
