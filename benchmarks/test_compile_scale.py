"""Compile-time scaling: `check` and `compile` must grow linearly with the op count.

The bound is the same pipeline on a graph ten times smaller, in the same run: the time for 10n ops
over the time for n ops stays below 20. Linear is 10 and n log n about 12; on the 2-core CI machine
the measured ratios are 10.5 to 15.5, the rest being the memory hierarchy (the 200k-op run peaks
near 200 MB, far past the caches) and noise on the shorter run. A quadratic pass gives 100: the
use scans this replaced took 16x the time for 4x the ops. Two chains:
relu (canonicalize folds relu(relu(x)) to one op, so this measures parse, verify, the use lists
and dead-op erasure) and sigmoid (nothing folds: quantize makes a lookup table per op, lowering
and serialization see every op, and the cycle model times every instruction).
Run with `make bench`.
"""

from __future__ import annotations

from pathlib import Path

import hbdk_sim
import pytest
from timing import best_of

RATIO_TARGET = 20.0


def _chain(path: Path, op: str, n: int) -> Path:
    t = "tensor<1x8x8x8xf32, scale=0.01>"
    lines = ["module @chain {", f"  func @main(%x: {t}) -> ({t}) {{"]
    prev = "%x"
    for i in range(n):
        lines.append(f"    %v{i} = {op}({prev}) : {t}")
        prev = f"%v{i}"
    lines += [f"    return {prev}", "  }", "}", ""]
    path.write_text("\n".join(lines))
    return path


@pytest.mark.parametrize("what,op,small,repeat", [
    ("check", "relu", 20_000, 3),
    ("compile", "relu", 20_000, 3),
    ("compile", "sigmoid", 2_000, 2),
])
def test_time_grows_linearly_with_op_count(what, op, small, repeat, tmp_path, benchmark):
    run = {"check": lambda p: hbdk_sim.check(p), "compile": lambda p: hbdk_sim.compile(p)}[what]
    small_file, large_file = _chain(tmp_path / "small.hbir", op, small), _chain(tmp_path / "large.hbir", op, 10 * small)
    t_small = best_of(lambda: run(small_file), 3 * repeat)  # cheap, and noisier: more tries
    t_large = best_of(lambda: run(large_file), repeat)
    ratio = t_large / t_small
    benchmark.extra_info.update({f"{what}_{op}_{small}_s": round(t_small, 3),
                                 f"{what}_{op}_{10 * small}_s": round(t_large, 3), "ratio": round(ratio, 2)})
    benchmark.pedantic(lambda: None, rounds=1)
    assert ratio < RATIO_TARGET, (f"{what} of a {op} chain: {10 * small} ops take {t_large:.2f} s, {ratio:.1f}x "
                                  f"the {small} ops' {t_small:.2f} s (target < {RATIO_TARGET}x)")
