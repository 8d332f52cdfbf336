"""Text-in/text-out pass tests through the CLI, like lit: every tests/ir/<pass>/<file>.hbir has a
first line `// RUN: --passes ...` (with `--split-input-file` for a file of several cases separated by
`// -----` lines) and an exact expected output in <file>.expected.hbir; tests/ir/program/ runs
`compile --print-program` and pins the lowered program: tiles and each instruction's cycles. tests/ir/malformed/ holds
cases that must fail, each stating its error inline (`// expected-error: LINE:COL: error: ...`)."""

import shlex

import pytest
from conftest import IR_TESTS
from hbdk_sim.text_cases import expected_errors, split_cases

CASES = sorted(p for p in IR_TESTS.glob("*/*.hbir")
               if not p.name.endswith(".expected.hbir") and p.parent.name not in ("roundtrip", "malformed"))


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_pass_case(case, cli):
    first = case.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("// RUN:"), f"{case}: first line must be '// RUN: [subcommand] <flags>'"
    flags = shlex.split(first[len("// RUN:"):])
    command = flags.pop(0) if flags and not flags[0].startswith("-") else "opt"  # e.g. compile --print-program
    r = cli(command, case, *flags)
    assert r.returncode == 0, r.stderr
    expected = case.with_name(case.stem + ".expected.hbir").read_text(encoding="utf-8")
    assert r.stdout == expected


@pytest.mark.parametrize("case", sorted((IR_TESTS / "roundtrip").glob("*.hbir")), ids=lambda p: p.stem)
def test_dump_roundtrip(case, cli):
    r = cli("dump", case)
    assert r.returncode == 0, r.stderr
    assert r.stdout == case.read_text(encoding="utf-8")


MALFORMED = sorted((IR_TESTS / "malformed").glob("*.hbir"))
MALFORMED_CASES = [(path, start, part) for path in MALFORMED for start, part in split_cases(path.read_bytes())]


def test_enough_malformed_cases():
    assert len(MALFORMED_CASES) >= 70
    assert all(len(expected_errors(part)) == 1 for _, _, part in MALFORMED_CASES)


@pytest.mark.parametrize("path", MALFORMED, ids=lambda p: p.stem)
def test_malformed_cases_give_theirexpected_errors(path, cli):
    r = cli("dump", path, "--split-input-file", "--verify-diagnostics")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == "// -----\n" * (sum(1 for p, _, _ in MALFORMED_CASES if p == path) - 1)


@pytest.mark.parametrize("case", MALFORMED_CASES, ids=lambda c: f"{c[0].stem}:{c[1]}")
def test_malformed_input_is_one_line_exit_2(case, cli, tmp_path):
    """Each case alone in a file: `dump` prints its error as one line and exits 2."""
    source, _, part = case
    path = tmp_path / source.name
    path.write_bytes(part)
    r = cli("dump", path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.splitlines() == [f"{path}:{expected_errors(part)[0]}"]
    assert "Traceback" not in r.stderr and r.stdout == ""


SPLIT = """module @a {
  func @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {
    return %x
  }
}
// -----
// expected-error: 4:10: error: unknown op 'relu7' (did you mean 'relu'?)
module @b {
  func @main(%x: tensor<2xf32>) -> (tensor<2xf32>) {
    %y = relu7(%x) : tensor<2xf32>
    return %y
  }
}
"""


def test_split_input_file_keeps_the_file_line_numbers(cli, tmp_path):
    path = tmp_path / "two.hbir"
    path.write_text(SPLIT)
    r = cli("dump", path, "--split-input-file")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [f"{path}:10:10: error: unknown op 'relu7' (did you mean 'relu'?)"]
    r = cli("dump", path, "--split-input-file", "--verify-diagnostics")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.startswith("module @a {") and r.stdout.endswith("}\n// -----\n")


@pytest.mark.parametrize("edit, complaint", [
    ("4:10: error: unknown op 'relu7' (did you mean 'relu'?)", "4:11: error: unknown op 'relu7'"),
    ("// expected-error: 4:10", "// "),  # the failing case states no error
    ("module @a {", "// expected-error: 1:1: error: something\nmodule @a {"),  # a passing case states one
], ids=["wrong-message", "unexpected-error", "missing-error"])
def test_verify_diagnostics_fails_on_any_mismatch(cli, tmp_path, edit, complaint):
    path = tmp_path / "two.hbir"
    path.write_text(SPLIT.replace(edit, complaint))
    r = cli("dump", path, "--split-input-file", "--verify-diagnostics")
    assert r.returncode == 1
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"{path}:") and ": case: expected " in line


@pytest.mark.parametrize("data", [b"", b"\x00\xff\xfe garbage \x89PNG\r\n", b"module @m {\n  func @f(",
                                  bytes(range(256)) * 4], ids=["empty", "binary", "truncated", "all-bytes"])
def test_generated_bad_bytes(data, cli, tmp_path):
    path = tmp_path / "bad.hbir"
    path.write_bytes(data)
    r = cli("dump", path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith(f"{path}:")


def test_print_program_writes_no_binary(cli, tmp_path):
    case = tmp_path / "separable_residual.hbir"
    case.write_bytes((IR_TESTS / "program" / "separable_residual.hbir").read_bytes())
    r = cli("compile", case, "--print-program")
    assert r.returncode == 0 and r.stdout.startswith("program @main for bpu: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == [case.name]
    r = cli("compile", case, "--print-program", "-o", tmp_path / "x.hbm")
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "error: --print-program prints the program instead of writing a binary; drop --output"]
