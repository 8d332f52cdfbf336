"""MAC-array estimator speed against SCALE-Sim 3 on the same layers, measured in one run.

SCALE-Sim lives in its own virtual environment (build/scalesim-venv, see
tests/perf/gen_scalesim_reference.py); it runs there in a subprocess that times each layer's
simulation itself, so interpreter start-up and imports are not counted against it. Ours is
`_core.systolic_compute_cycles` called from Python on the GEMM SCALE-Sim derived for the layer (the
Python call overhead is counted against us). Both must give the same cycles. Target: ours at least
1000x faster per layer. Run with `make bench`; skipped when the SCALE-Sim venv is absent.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from hbdk_sim import _core

REPO = Path(__file__).resolve().parent.parent
SCALESIM_PY = REPO / "build" / "scalesim-venv" / "bin" / "python"
GENERATOR = REPO / "tests" / "perf" / "gen_scalesim_reference.py"
LAYERS = ["stem_3x3_s2", "pw_1x1_64_128", "conv_3x3_256", "linear_300x256x256", "matmul_qk_300x300x32"]
ARRAY = (32, 32)
DATAFLOW = "os"
TARGET = 1000.0


def _scalesim_timings() -> dict:
    if not SCALESIM_PY.exists():
        pytest.skip(f"SCALE-Sim venv absent: {SCALESIM_PY} (see tests/perf/gen_scalesim_reference.py)")
    probe = subprocess.run([str(SCALESIM_PY), "-c", "import scalesim.scale_sim"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"scalesim is not importable in {SCALESIM_PY}: {probe.stderr.strip().splitlines()[-1:]}")
    out = subprocess.run(
        [
            str(SCALESIM_PY),
            str(GENERATOR),
            "--time",
            *LAYERS,
            "--array",
            f"{ARRAY[0]}x{ARRAY[1]}",
            "--dataflow",
            DATAFLOW,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(out.stdout)


def test_estimator_vs_scalesim_per_layer(benchmark):
    theirs = _scalesim_timings()
    gemms = [theirs[name]["gemm"] for name in LAYERS]

    def estimate_all():
        return [
            _core.systolic_compute_cycles(g["m"], g["n"], g["k"], ARRAY[0], ARRAY[1], DATAFLOW, batch=g["batch"])
            for g in gemms
        ]

    got = benchmark(estimate_all)
    assert got == [theirs[name]["compute_cycles"] for name in LAYERS]

    # Our per-layer time: the best of many repetitions of the whole list, per layer.
    reps = 2000
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            estimate_all()
        best = min(best, (time.perf_counter() - start) / (reps * len(LAYERS)))
    scalesim_per_layer = sum(theirs[name]["seconds"] for name in LAYERS) / len(LAYERS)
    ratio = scalesim_per_layer / best
    benchmark.extra_info.update(
        layers=LAYERS,
        array=f"{ARRAY[0]}x{ARRAY[1]}",
        dataflow=DATAFLOW,
        ours_us_per_layer=round(best * 1e6, 3),
        scalesim_s_per_layer=round(scalesim_per_layer, 3),
        scalesim_s={name: round(theirs[name]["seconds"], 3) for name in LAYERS},
        ratio=round(ratio),
    )
    assert ratio >= TARGET, f"estimator only {ratio:.0f}x faster than SCALE-Sim (target {TARGET:.0f}x)"
