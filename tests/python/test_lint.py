"""Style is checked, not hoped for: ruff over the Python code, clang-format over the C++."""

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

CPP_DIRS = ["csrc", "tests/cpp", "tests/fuzz"]


def _tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    assert Path(path).exists(), f"{name} is missing: it is in the [test] extras of pyproject.toml"
    return path


def test_ruff():
    r = subprocess.run([_tool("ruff"), "check", "python", "tools", "tests", "benchmarks"], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_clang_format():
    files = sorted(str(p.relative_to(REPO)) for d in CPP_DIRS for p in (REPO / d).rglob("*")
                   if p.suffix in (".h", ".cpp"))
    r = subprocess.run([_tool("clang-format"), "--dry-run", "--Werror", *files], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, "run clang-format -i on:\n" + "\n".join(
        sorted({line.split(":")[0] for line in r.stderr.splitlines() if ": error:" in line}))
