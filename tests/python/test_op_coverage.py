"""The op coverage matrix (hbdk_sim.op_coverage, docs/op_coverage.md): generated, fresh, complete,
and every cell it claims backed by the code."""

import json
import subprocess
import sys

import pytest
from conftest import REPO
from hbdk_sim import _core, op_coverage
from hbdk_sim.frontend.torch_ops import FUNCTION_HANDLERS, MODULE_HANDLERS
from hbdk_sim.onnx_export import _FLOAT_OPS, _INTEGER_OPS
from hbdk_sim.quantization.int_ops import OP_MODULES

# The cells the matrix says are missing, each with the issue that fills it. A new gap fails here
# (give the op what it lacks, or add it with its reason); a filled one fails too (drop its line).
KNOWN_GAPS = {
    ("gather", "tracer"): "issue 12: index_select / indexing by a tensor",
    ("argmax", "tracer"): "a board filter for FCOS (its post-process runs on the host: docs/detection.md)",
    ("topk", "tracer"): "a board filter for FCOS (its post-process runs on the host: docs/detection.md)",
    ("point_pillar_scatter", "tracer"): "issue 16: the lidar pillar scatter from torch",
    ("gather", "float kernel"): "issue 12: the float reference of the gather the tracer will emit",
    ("argmax", "float kernel"): "a board filter for FCOS",
    ("topk", "float kernel"): "a board filter for FCOS",
    ("point_pillar_scatter", "float kernel"): "issue 16",
    ("point_pillar_scatter", "ONNX export"): "issue 16: ScatterND of the pillar features",
}


@pytest.fixture(scope="module")
def matrix():
    return op_coverage.coverage(REPO)


def _rows(matrix):
    return {r["op"]: r for r in matrix["rows"]}


def test_doc_is_generated_from_the_code():
    text = (REPO / "docs" / "op_coverage.md").read_text(encoding="utf-8")
    assert text == op_coverage.coverage_markdown(REPO), "docs/op_coverage.md is stale: run `make docs`"


def test_one_row_per_op_and_every_cell_filled(matrix):
    assert [r["op"] for r in matrix["rows"]] == [d["name"] for d in _core.op_table()]
    for r in matrix["rows"]:
        for c in matrix["columns"]:
            cell = r[c]
            assert cell == op_coverage.MISSING or cell.startswith(("yes", "n/a: ", "no: ")) or c == "quantize rule", \
                (r["op"], c, cell)


def test_missing_cells_are_the_known_gaps(matrix):
    assert set(op_coverage.gaps(matrix)) == set(KNOWN_GAPS)


def test_what_the_board_runs_the_simulators_run(matrix):
    """An op with an instruction runs in the integer reference, in int_infer and in the QDQ export,
    and has a bit-exact kernel test; a march lists only ops that have an instruction."""
    for d in _core.op_table():
        name, t = d["name"], d["traits"]
        row = _rows(matrix)[name]
        if t["opcode"] is not None:
            assert d["kernels"]["int"], name
            assert name in OP_MODULES, name
            assert name in _FLOAT_OPS or name in _INTEGER_OPS or (name, "ONNX export") in KNOWN_GAPS, name
            assert row["bit-exact test"].startswith("yes"), name
            assert t["tile"] != "none" and t["unit"] in ("mac_array", "vector"), name
        for m in matrix["marches"]:
            if row[m].startswith("yes") and t["quant_rule"] != "constant":  # constants are weight loads
                assert t["opcode"] is not None, (name, m)


def test_claimed_kernels_exist(matrix):
    """yes cells name what exists: kernel tests are test functions of the kernel test files, an
    optimized kernel has a test running it with optimized=True, tracer targets are registered
    handlers emitting the op."""
    tests = op_coverage.kernel_tests(REPO)
    source = "".join(p.read_text(encoding="utf-8") for p in sorted(REPO.glob(op_coverage.KERNEL_TESTS)))
    targets = {h.target: h for h in [*MODULE_HANDLERS.values(), *FUNCTION_HANDLERS.values()]}
    for d in _core.op_table():
        name = d["name"]
        for test in tests.get(name, {}).get("reference", []):
            assert f"def {test}(" in source
        if d["kernels"]["optimized"]:
            assert tests.get(name, {}).get("optimized"), f"{name}: no kernel test runs its optimized kernel"
        cell = _rows(matrix)[name]["tracer"]
        if cell.startswith("yes ("):
            shown = cell[len("yes ("):-1].split(" (+")[0].split(", ")
            for target in shown:
                assert name in targets[target].emits, (name, target)


def test_rules_with_no_integer_form_stop_before_the_board(matrix):
    for d in _core.op_table():
        rule = d["traits"]["quant_rule"]
        if rule in ("fold_first", "lut", "constant"):
            assert d["traits"]["opcode"] is None and not d["kernels"]["int"], d["name"]


def test_cli_prints_the_matrix_and_its_json():
    md = subprocess.run([sys.executable, "-m", "hbdk_sim.cli", "ops", "--coverage"], cwd=REPO, capture_output=True,
                        text=True, check=True).stdout
    assert md == op_coverage.coverage_markdown(REPO)
    data = json.loads(subprocess.run([sys.executable, "-m", "hbdk_sim.cli", "ops", "--json"], cwd=REPO,
                                     capture_output=True, text=True, check=True).stdout)
    assert [r["op"] for r in data["rows"]] == [d["name"] for d in _core.op_table()]
