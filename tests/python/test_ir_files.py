"""Text-in/text-out pass tests through the CLI, like lit: every tests/ir/<pass>/<case>.hbir has a
first line `// RUN: --passes ...` and an exact expected output in <case>.expected.hbir."""

import shlex

import pytest
from conftest import IR_TESTS

CASES = sorted(p for p in IR_TESTS.glob("*/*.hbir")
               if not p.name.endswith(".expected.hbir") and p.parent.name not in ("roundtrip", "malformed"))


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_pass_case(case, cli):
    first = case.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("// RUN:"), f"{case}: first line must be '// RUN: <opt flags>'"
    r = cli("opt", case, *shlex.split(first[len("// RUN:"):]))
    assert r.returncode == 0, r.stderr
    expected = case.with_name(case.stem + ".expected.hbir").read_text(encoding="utf-8")
    assert r.stdout == expected


@pytest.mark.parametrize("case", sorted((IR_TESTS / "roundtrip").glob("*.hbir")), ids=lambda p: p.stem)
def test_dump_roundtrip(case, cli):
    r = cli("dump", case)
    assert r.returncode == 0, r.stderr
    assert r.stdout == case.read_text(encoding="utf-8")


MALFORMED = sorted((IR_TESTS / "malformed").glob("*.hbir"))


def test_enough_malformed_cases():
    assert len(MALFORMED) >= 25


@pytest.mark.parametrize("case", MALFORMED, ids=lambda p: p.stem)
def test_malformed_input_is_one_line_exit_2(case, cli):
    r = cli("dump", case)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"{case}:"), lines[0]
    assert "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize("data", [b"", b"\x00\xff\xfe garbage \x89PNG\r\n", b"module @m {\n  func @f(",
                                  bytes(range(256)) * 4], ids=["empty", "binary", "truncated", "all-bytes"])
def test_generated_bad_bytes(data, cli, tmp_path):
    path = tmp_path / "bad.hbir"
    path.write_bytes(data)
    r = cli("dump", path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith(f"{path}:")
