"""What the integer-kernel tests share: hypothesis strategies for scales and integer arrays, and
running one op as a one-op quantized HBIR module in the executor (reference or optimized
kernels), compared bit for bit with numerics_oracle.py."""

from __future__ import annotations

import numerics_oracle as ref
import numpy as np
import pytest
from hbdk_sim import HbirError, Module, TensorType, _core
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NP = {"si8": np.int8, "si16": np.int16, "si32": np.int32, "f32": np.float32}

# ---- strategies -----------------------------------------------------------------------------------


@st.composite
def scales(draw, lo=-12, hi=4):
    """f32 scales m * 2^e, with the odd extreme value."""
    if draw(st.integers(0, 9)) == 0:
        return ref.f32(draw(st.sampled_from([1e-10, 1e-6, 1.0, 1e3, 1e6])))
    m = draw(st.floats(0.5, 1.0, exclude_max=True, allow_subnormal=False))
    return ref.f32(m * 2.0 ** draw(st.integers(lo, hi)))


@st.composite
def int_arrays(draw, shape, dtype, lo=None, hi=None):
    rlo, rhi = ref.RANGES[dtype]
    lo = rlo if lo is None else lo
    hi = rhi if hi is None else hi
    n = int(np.prod(shape))
    # Mix uniform values with the extremes, so that saturation is reached often.
    special = st.sampled_from([v for v in (lo, hi, 0, -1, 1) if lo <= v <= hi])
    values = draw(st.lists(st.one_of(st.integers(lo, hi), special), min_size=n,
                           max_size=n))
    return np.array(values, np.int64).reshape(shape).astype(NP[dtype])


def act_dtypes():
    return st.sampled_from(["si8", "si16"])


# ---- running one op ---------------------------------------------------------------------------------


class Arg:
    """An operand: a function argument (default) or a `constant` op (weights, tables)."""

    def __init__(self, data, dtype, scale=None, axis=-1, const=False):
        self.data = np.asarray(data).astype(NP[dtype])
        self.dtype, self.scale, self.axis, self.const = dtype, scale, axis, const


def run_op(op, args, attrs=None, results=None, optimized=False):
    m = Module("t")
    fn = m.add_function("main")
    values, feeds = [], []
    for i, a in enumerate(args):
        if a.const:
            values.append(m.create_constant(fn, a.data, name=f"c{i}", dtype=a.dtype, scale=a.scale,
                                            axis=a.axis).result())
        else:
            values.append(fn.add_argument(TensorType(list(a.data.shape), a.dtype, a.scale, a.axis), f"a{i}"))
            feeds.append(a.data)
    o = m.create_op(fn, op, values, attrs or {}, results or [])
    fn.returns = o.results
    m.verify()
    outs = _core.Executor(m, "main", optimized=optimized).run(feeds)
    return outs if len(outs) > 1 else outs[0]


def T(shape, dtype, scale=None, axis=-1):
    return TensorType(list(shape), dtype, scale, axis)


def check(oracle, op, args, attrs, results):
    """Runs the op and compares with oracle(); where the oracle rejects a ratio (>= 2^31), the op
    must raise instead."""
    try:
        want = oracle()
    except ref.RequantRejected:
        with pytest.raises(HbirError, match="ratio|scale above"):
            run_op(op, args, attrs, results)
        return None
    got = run_op(op, args, attrs, results)
    assert_same(got, want)
    return got


def assert_same(got, want):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    if got.dtype == np.float32:
        assert np.array_equal(got.view(np.int32), want.astype(np.float32).view(np.int32)), (got, want)
    else:
        assert np.array_equal(got.astype(np.int64), want.astype(np.int64)), (got, want)
