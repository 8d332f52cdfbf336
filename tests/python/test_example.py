"""The bundled example model: reproducible from its script, and what the demo runs on."""

import subprocess
import sys

import hbdk_sim
from conftest import REPO
from hbdk_sim.examples import example_path, mobilenet_v1_tiny


def test_bundled_example_is_exactly_what_the_script_builds():
    assert example_path().read_text(encoding="utf-8") == mobilenet_v1_tiny.build().print()


def test_example_summary_numbers():
    s = hbdk_sim.summarize(hbdk_sim.load(example_path()))
    assert s.ops_by_kind["conv2d"] == 13 and s.ops_by_kind["batch_norm"] == 13
    assert s.ops_by_kind["linear"] == 1
    # conv MACs by hand: stem 16*3*9*32*32, then per block dw C*9*H*W + pw Cin*Cout*H*W.
    stem = 16 * 27 * 32 * 32
    dw = [(16, 32), (32, 16), (64, 16), (64, 8), (128, 8), (128, 8)]
    pw = [(16, 32, 32), (32, 64, 16), (64, 64, 16), (64, 128, 8), (128, 128, 8), (128, 128, 8)]
    macs = stem + sum(c * 9 * h * h for c, h in dw) + sum(ci * co * h * h for ci, co, h in pw) + 128 * 10
    assert s.macs == macs


def test_default_pipeline_folds_every_batch_norm():
    m = hbdk_sim.load(example_path())
    m.run_pipeline(["default"])
    s = hbdk_sim.summarize(m)
    assert "batch_norm" not in s.ops_by_kind and s.ops_by_kind["conv2d"] == 13


def test_demo_compiles_and_runs_bit_exactly(tmp_path):
    r = subprocess.run([sys.executable, str(REPO / "tools" / "compiler_demo.py"), "--out-dir", str(tmp_path), "--samples", "2"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "fold-bn" in r.stdout and "optimized == reference: yes" in r.stdout
    assert sorted(p.name for p in tmp_path.glob("*.hbm")) == [
        f"mobilenet_v1_tiny.{m}.hbm" for m in sorted(hbdk_sim.list_marches())]
    r = subprocess.run([sys.executable, str(REPO / "tools" / "compiler_demo.py"), "--out-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "exists" in r.stderr
