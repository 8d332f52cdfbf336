"""The `hbdk-sim` command line: subcommands, output files and exit codes."""

import shutil
import subprocess

import hbdk_sim
from conftest import IR_TESTS
from hbdk_sim.examples import example_path


def test_help_and_version(cli):
    r = cli("--help")
    assert r.returncode == 0 and "dump" in r.stdout and "opt" in r.stdout
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"hbdk-sim {hbdk_sim.__version__}"


def test_console_script_is_installed():
    exe = shutil.which("hbdk-sim")
    assert exe, "the hbdk-sim console script is not on PATH"
    r = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert r.returncode == 0


def test_no_command_is_a_usage_error(cli):
    assert cli().returncode == 2
    r = cli("frobnicate")
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr


def test_dump_prints_canonical_text(cli):
    r = cli("dump", example_path())
    assert r.returncode == 0
    assert r.stdout == example_path().read_text(encoding="utf-8")
    r = cli("dump", example_path(), "--summary")
    assert r.returncode == 0 and "conv2d" in r.stdout and "MACs" in r.stdout


def test_dump_missing_file(cli, tmp_path):
    r = cli("dump", tmp_path / "nope.hbir")
    assert r.returncode == 2 and "no such file" in r.stderr
    r = cli("dump", tmp_path)
    assert r.returncode == 2 and "directory" in r.stderr


def test_opt_writes_output_and_refuses_to_overwrite(cli, tmp_path):
    out = tmp_path / "out.hbir"
    r = cli("opt", example_path(), "--passes", "default", "-o", out, "--time-passes")
    assert r.returncode == 0, r.stderr
    assert "fold-bn" in r.stderr and "Total" in r.stderr
    text = out.read_text(encoding="utf-8")
    assert "batch_norm(" not in text
    r = cli("opt", example_path(), "--passes", "canonicalize", "-o", out)
    assert r.returncode == 2 and "--force" in r.stderr
    assert out.read_text(encoding="utf-8") == text
    r = cli("opt", example_path(), "--passes", "canonicalize", "-o", out, "--force")
    assert r.returncode == 0 and "batch_norm(" in out.read_text(encoding="utf-8")


def test_opt_print_ir_after(cli):
    r = cli("opt", example_path(), "--passes", "canonicalize,fold-bn", "--print-ir-after-all")
    assert r.returncode == 0
    assert r.stderr.count("IR Dump After") == 2
    r = cli("opt", example_path(), "--passes", "default", "--print-ir-after", "fold-bn")
    assert r.returncode == 0 and r.stderr.count("IR Dump After fold-bn") == 1
    assert r.stderr.count("IR Dump After") == 1


def test_opt_unknown_pass_suggests(cli):
    r = cli("opt", example_path(), "--passes", "fold-bm")
    assert r.returncode == 2 and "did you mean fold-bn" in r.stderr


def test_opt_output_is_a_valid_module(cli, tmp_path):
    out = tmp_path / "o.hbir"
    assert cli("opt", example_path(), "--passes", "default", "-o", out).returncode == 0
    r = cli("dump", out)
    assert r.returncode == 0 and r.stdout == out.read_text(encoding="utf-8")


def test_ops_and_passes_listings(cli):
    r = cli("ops")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == len(hbdk_sim.op_table())
    r = cli("passes")
    assert r.returncode == 0 and "fold-bn" in r.stdout and "default:" in r.stdout


def test_ir_cases_exist():
    assert any(IR_TESTS.glob("*/*.expected.hbir"))


def test_written_files_get_ordinary_permissions(cli, tmp_path):
    out = tmp_path / "o.hbir"
    assert cli("opt", example_path(), "--passes", "canonicalize", "-o", out).returncode == 0
    assert out.stat().st_mode & 0o644 == 0o644
