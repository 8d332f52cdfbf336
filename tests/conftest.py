"""Shared fixtures: repository paths and a helper that runs the `hbdk-sim` CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tools installed beside this interpreter (hbdk-sim, cmake, ctest) must be found even when the
# virtual environment is not activated, as under `make test`.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

REPO = Path(__file__).resolve().parent.parent
IR_TESTS = REPO / "tests" / "ir"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hbdk_sim.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def cli():
    return run_cli
