"""Builds the C++ unit tests with CMake and runs them through ctest."""

import shutil
import subprocess

import pytest
from conftest import REPO


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is needed to build the C++ tests")
def test_cpp_unit_tests():
    build = REPO / "build" / "cpp-tests"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    cfg = subprocess.run(["cmake", "-S", REPO, "-B", build, *gen, "-DHBDK_BUILD_PYTHON=OFF", "-DHBDK_BUILD_TESTS=ON"],
                         capture_output=True, text=True)
    assert cfg.returncode == 0, cfg.stdout + cfg.stderr
    bld = subprocess.run(["cmake", "--build", build, "-j2"], capture_output=True, text=True)
    assert bld.returncode == 0, bld.stdout[-5000:] + bld.stderr[-5000:]
    run = subprocess.run(["ctest", "--test-dir", build, "--output-on-failure"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-3000:]
