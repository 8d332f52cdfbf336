"""Whole-model cycle estimation time for a 52-layer model (target: under 10 ms per estimate).

The model is a chain of 52 conv2d + relu6 blocks, alternating dense and depthwise (each block one
fused layer after lowering), calibrated and compiled for `bpu`; only the estimate is timed. Run with
`make bench`.
"""

from __future__ import annotations

import hbdk_sim
import numpy as np
import pytest
from hbdk_sim import _core

BLOCKS = 52
TARGET_SECONDS = 0.010


def _chain_model() -> hbdk_sim.Module:
    rng = np.random.default_rng(0)
    m = hbdk_sim.Module("chain52")
    fn = m.add_function("main")
    y = fn.add_argument(hbdk_sim.TensorType([1, 16, 32, 32], "f32"), "input")
    for i in range(BLOCKS):
        c = y.shape[1]
        w = m.create_constant(fn, rng.standard_normal((c, 1 if i % 2 else c, 3, 3)).astype(np.float32) * 0.2,
                              name=f"conv{i}.weight").result()
        y = m.create_op(fn, "conv2d", [y, w], {"padding": [1, 1, 1, 1], "groups": c if i % 2 else 1},
                        loc=f"conv{i}").result()
        y = m.create_op(fn, "relu6", [y], loc=f"act{i}").result()
    fn.returns = [y]
    hbdk_sim.calibrate(m, [[rng.uniform(-1, 1, (1, 16, 32, 32)).astype(np.float32)] for _ in range(2)])
    return m


@pytest.fixture(scope="module")
def compiled():
    march = hbdk_sim.load_march("bpu")
    model = _core.load_hbm_bytes(hbdk_sim.compile(_chain_model(), march=march).hbm)
    return model, march


def test_whole_model_estimate(benchmark, compiled):
    model, march = compiled
    result = benchmark(_core.estimate_hbm, model, march)
    assert len(result["layers"]) >= 50
    benchmark.extra_info["layers"] = len(result["layers"])
    benchmark.extra_info["target_seconds"] = TARGET_SECONDS
    assert benchmark.stats.stats.min < TARGET_SECONDS
