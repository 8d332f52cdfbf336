"""The integer reference kernels against numerics_oracle.py, bit for bit: every op of
docs/numerics.md §4 as a one-op quantized HBIR module run by the executor with the reference
kernels, over hypothesis-drawn shapes, values and scales (saturation, rounding ties, extreme
scales, si16 included). Also the requant and LUT bindings against the oracle's statement. Data
movement, pooling and resize are in test_int_kernels_spatial.py."""

from __future__ import annotations

import math

import numerics_oracle as ref
import numpy as np
import pytest
from hbdk_sim import HbirError, Module, TensorType, _core
from hypothesis import assume, given
from hypothesis import strategies as st
from int_kernel_cases import NP, SETTINGS, Arg, T, act_dtypes, assert_same, check, int_arrays, run_op, scales

# ---- §2: the requant rule and its bindings ---------------------------------------------------------


@SETTINGS
@given(st.one_of(st.floats(1e-300, 2.0**31 * 1.5, allow_subnormal=False),
                 st.sampled_from([0.5, 1.0, 2.0**31, 2.0**31 - 1, math.nextafter(2.0**31, 0), 1e-10, 1e6,
                                  2.0**-40, 1e-30, 1 - 2.0**-40])))
def test_compute_requant_matches_oracle(r):
    try:
        want = ref.compute_requant(r)
    except ref.RequantRejected:
        with pytest.raises(HbirError, match="ratio"):
            _core.compute_requant(r)
        return
    assert _core.compute_requant(r) == want
    xs = [-(2**31), -(2**15) - 1, -3, -1, 0, 1, 3, 2**15, 2**31 - 1, 2**40, -(2**40)]
    # Large x only where the result still fits int64 (the product itself is 128-bit).
    x = np.array([v for v in xs if abs(int(ref.requant([v], *want)[0])) < 2**62], np.int64)
    assert list(_core.apply_requant(x, *want)) == list(ref.requant(x, *want))


@SETTINGS
@given(st.floats(1e-30, 2.0**30, allow_subnormal=False), st.floats(1e-30, 2.0**30, allow_subnormal=False))
def test_compute_requant_pair_matches_oracle(ra, rb):
    try:
        want = ref.compute_requant_pair(ra, rb)
    except ref.RequantRejected:
        with pytest.raises(HbirError):
            _core.compute_requant_pair(ra, rb)
        return
    assert _core.compute_requant_pair(ra, rb) == want


def test_requant_rounding_ties():
    m, s = _core.compute_requant(0.5)
    assert [_core.apply_requant(x, m, s) for x in (-5, -3, -1, 1, 3, 5)] == [-2, -1, 0, 1, 2, 3]


# ---- accumulating ops ------------------------------------------------------------------------------


@st.composite
def conv_case(draw, transpose=False):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    stride = [draw(st.integers(1, 3)), draw(st.integers(1, 2))]
    dil = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    pad = [draw(st.integers(0, 2)) for _ in range(4)]
    dtype = draw(act_dtypes())
    x = draw(int_arrays((draw(st.integers(1, 2)), cin, h, w), dtype))
    wshape = (cin, cout // groups, kh, kw) if transpose else (cout, cin // groups, kh, kw)
    wt = draw(int_arrays(wshape, "si8"))
    big = draw(st.booleans())
    b = draw(int_arrays((cout,), "si32", *((None, None) if big else (-1000, 1000)))) if draw(st.booleans()) else None
    attrs = {"stride": stride, "padding": pad, "dilation": dil, "groups": groups}
    if transpose:
        attrs["output_padding"] = [draw(st.integers(0, max(stride[0], dil[0]) - 1)),
                                   draw(st.integers(0, max(stride[1], dil[1]) - 1))]
        oh = (h - 1) * stride[0] - pad[0] - pad[2] + dil[0] * (kh - 1) + attrs["output_padding"][0] + 1
        ow = (w - 1) * stride[1] - pad[1] - pad[3] + dil[1] * (kw - 1) + attrs["output_padding"][1] + 1
    else:
        oh = (h + pad[0] + pad[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
        ow = (w + pad[1] + pad[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    assume(oh >= 1 and ow >= 1)
    return x, wt, b, attrs, dtype


def conv_args(x, wt, b, dtype, cout_axis):
    sx = 0.05
    sw = [0.01 * (i + 1) for i in range(wt.shape[cout_axis])]
    args = [Arg(x, dtype, sx), Arg(wt, "si8", sw if cout_axis == 0 else 0.01, 0 if cout_axis == 0 else -1,
                                   const=True)]
    if b is not None:
        args.append(Arg(b, "si32", const=True))
    return args


@SETTINGS
@given(conv_case())
def test_conv2d(case):
    x, wt, b, attrs, dtype = case
    want = ref.conv2d(x, wt, b, attrs["stride"], attrs["padding"], attrs["dilation"], attrs["groups"])
    got = run_op("conv2d", conv_args(x, wt, b, dtype, 0), attrs, [T(want.shape, "si32")])
    assert_same(got, want)


@SETTINGS
@given(conv_case(transpose=True))
def test_conv_transpose2d(case):
    x, wt, b, attrs, dtype = case
    want = ref.conv_transpose2d(x, wt, b, attrs["stride"], attrs["padding"], attrs["output_padding"],
                                attrs["dilation"], attrs["groups"])
    args = [Arg(x, dtype, 0.05), Arg(wt, "si8", 0.01, const=True)]
    if b is not None:
        args.append(Arg(b, "si32", const=True))
    got = run_op("conv_transpose2d", args, attrs, [T(want.shape, "si32")])
    assert_same(got, want)


@SETTINGS
@given(st.data())
def test_linear(data):
    dtype = data.draw(act_dtypes())
    lead = data.draw(st.lists(st.integers(1, 3), max_size=2))
    k, n = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 5))
    x = data.draw(int_arrays((*lead, k), dtype))
    wt = data.draw(int_arrays((n, k), "si8"))
    b = data.draw(int_arrays((n,), "si32"))
    got = run_op("linear", [Arg(x, dtype, 0.1), Arg(wt, "si8", [0.01] * n, 0, const=True),
                            Arg(b, "si32", const=True)], {}, [T((*lead, n), "si32")])
    assert_same(got, ref.linear(x, wt, b))


@SETTINGS
@given(st.data())
def test_matmul_broadcast(data):
    da, db = data.draw(act_dtypes()), data.draw(act_dtypes())
    m, k, n = (data.draw(st.integers(1, 4)) for _ in range(3))
    batch = data.draw(st.lists(st.integers(1, 3), max_size=2))
    ba = [d if data.draw(st.booleans()) else 1 for d in batch]
    bb = [d if data.draw(st.booleans()) else 1 for d in batch][data.draw(st.integers(0, len(batch))):]
    a = data.draw(int_arrays((*ba, m, k), da))
    b = data.draw(int_arrays((*bb, k, n), db))
    want = ref.matmul(a, b)
    got = run_op("matmul", [Arg(a, da, 0.1), Arg(b, db, 0.2)], {}, [T(want.shape, "si32")])
    assert_same(got, want)


# ---- requantize ------------------------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_requantize_from_scales(data):
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3)))
    out_dtype = data.draw(act_dtypes())
    x = data.draw(int_arrays(shape, "si32"))
    per_axis = data.draw(st.booleans())
    in_scales = [data.draw(scales(-30, -5)) for _ in range(shape[1] if per_axis else 1)]
    s_out = data.draw(scales(-10, 2))
    assume(all(s / s_out < 2.0**31 for s in in_scales))
    in_type = Arg(x, "si32", in_scales if per_axis else in_scales[0], 1 if per_axis else -1)
    got = run_op("requantize", [in_type], {}, [T(shape, out_dtype, s_out)])
    want = ref.requantize(x, out_dtype, in_scales=in_scales, in_axis=1 if per_axis else None, out_scales=[s_out])
    assert_same(got, want)


@SETTINGS
@given(st.data())
def test_requantize_explicit(data):
    shape = (2, data.draw(st.integers(1, 4)), 3)
    axis = data.draw(st.sampled_from([1, -2, 0, 2]))
    count = data.draw(st.sampled_from([1, shape[axis]]))
    mult = [data.draw(st.integers(0, 2**31 - 1)) for _ in range(count)]
    shift = [data.draw(st.integers(0, 62)) for _ in range(count)]
    out_dtype = data.draw(act_dtypes())
    x = data.draw(int_arrays(shape, "si32"))
    want = ref.requantize(x, out_dtype, multiplier=mult, shift=shift, axis=axis)
    attrs = {"multiplier": mult, "shift": shift, "axis": axis}
    assert_same(run_op("requantize", [Arg(x, "si32", 0.001)], attrs, [T(shape, out_dtype, 0.1)]), want)
    # The optimized kernel (explicit multipliers between si8/si16/si32) states the same numerics.
    assert_same(run_op("requantize", [Arg(x, "si32", 0.001)], attrs, [T(shape, out_dtype, 0.1)], optimized=True),
                want)


# ---- clamps and tables -----------------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_relu_relu6_clip(data):
    dtype = data.draw(act_dtypes())
    x = data.draw(int_arrays((data.draw(st.integers(1, 20)),), dtype))
    s = data.draw(scales(-12, 0))
    assert_same(run_op("relu", [Arg(x, dtype, s)], {}, [T(x.shape, dtype, s)]), ref.relu(x, dtype))
    assert_same(run_op("relu6", [Arg(x, dtype, s)], {}, [T(x.shape, dtype, s)]), ref.relu6(x, s, dtype))
    # Bounds on exact half steps (ties) as well as arbitrary ones, infinite ones included.
    lo = data.draw(st.one_of(st.floats(-1e4, 1e4), st.integers(-300, 300).map(lambda k: (k + 0.5) * s),
                             st.just(-math.inf)))
    hi = data.draw(st.one_of(st.floats(min(lo, 1e4) if math.isfinite(lo) else -1e4, 1e4),
                             st.integers(-300, 300).map(lambda k: (k + 0.5) * s), st.just(math.inf)))
    assume(lo <= hi)
    got = run_op("clip", [Arg(x, dtype, s)], {"min": lo, "max": hi}, [T(x.shape, dtype, s)])
    assert_same(got, ref.clip(x, s, lo, hi, dtype))


LUT_KINDS = ["leaky_relu", "sigmoid", "tanh", "exp", "silu", "hardswish", "hardsigmoid", "gelu", "sin", "cos"]


@SETTINGS
@given(st.sampled_from(LUT_KINDS), act_dtypes(), act_dtypes(), scales(-14, 0), scales(-15, 2),
       st.floats(0.0, 0.5))
def test_build_lut_matches_oracle(kind, in_dtype, out_dtype, s_in, s_out, alpha):
    got = _core.build_lut(kind, in_dtype, s_in, out_dtype, s_out, alpha)
    assert got.dtype == NP[out_dtype]
    assert_same(got, ref.build_lut(kind, in_dtype, s_in, out_dtype, s_out, alpha))


@SETTINGS
@given(st.data())
def test_lut_op(data):
    in_dtype, out_dtype = data.draw(act_dtypes()), data.draw(act_dtypes())
    kind = data.draw(st.sampled_from(LUT_KINDS))
    s_in, s_out = data.draw(scales(-14, 0)), data.draw(scales(-15, 1))
    if data.draw(st.booleans()):
        table = ref.build_lut(kind, in_dtype, s_in, out_dtype, s_out)
    else:  # any table: wider entries saturate into the result type
        table = data.draw(int_arrays((256 if in_dtype == "si8" else 257,), "si16"))
    x = data.draw(int_arrays((data.draw(st.integers(1, 64)),), in_dtype))
    got = run_op("lut", [Arg(x, in_dtype, s_in), Arg(table, "si16", const=True)], {}, [T(x.shape, out_dtype, s_out)])
    assert_same(got, ref.lut(x, table, in_dtype, out_dtype))


def test_lut_rejects_wrong_table_length():
    x = np.zeros(4, np.int16)
    with pytest.raises(HbirError, match="257 entries"):
        run_op("lut", [Arg(x, "si16", 0.1), Arg(np.zeros(256), "si16", const=True)], {}, [T((4,), "si16", 0.1)])


# ---- binary elementwise ----------------------------------------------------------------------------


@st.composite
def broadcast_pair(draw):
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    a = [d if draw(st.booleans()) else 1 for d in shape]
    b = [d if draw(st.booleans()) else 1 for d in shape][draw(st.integers(0, len(shape) - 1)):]
    return a, b


@SETTINGS
@given(st.data())
def test_add_sub_mul(data):
    sa_shape, sb_shape = data.draw(broadcast_pair())
    da, db, dy = data.draw(act_dtypes()), data.draw(act_dtypes()), data.draw(act_dtypes())
    a, b = data.draw(int_arrays(sa_shape, da)), data.draw(int_arrays(sb_shape, db))
    sa, sb, sy = data.draw(scales()), data.draw(scales()), data.draw(scales())
    out_shape = np.broadcast_shapes(a.shape, b.shape)
    args = [Arg(a, da, sa), Arg(b, db, sb)]
    for op, fn in (("add", ref.add), ("sub", ref.sub), ("mul", ref.mul)):
        check(lambda fn=fn: fn(a, b, sa, sb, sy, dy), op, args, {}, [T(out_shape, dy, sy)])


def test_add_rounding_ties_and_missing_scale():
    a = np.array([1, -1, 3, -3, 1, -1], np.int8)
    b = np.zeros(6, np.int8)
    got = run_op("add", [Arg(a, "si8", 0.5), Arg(b, "si8", 0.5)], {}, [T((6,), "si8", 1.0)])
    assert list(got) == [1, 0, 2, -1, 1, 0]  # half toward +infinity
    with pytest.raises(HbirError, match="operand #1 has no scale; quantize the graph first"):
        run_op("add", [Arg(a, "si8", 0.5), Arg(b, "si8")], {}, [T((6,), "si8", 1.0)])


# ---- softmax and selection -------------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_softmax(data):
    in_dtype, out_dtype = data.draw(act_dtypes()), data.draw(act_dtypes())
    shape = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(int_arrays(shape, in_dtype))
    s_in = data.draw(scales(-14, -2))
    s_out = ref.f32(1.0 / (128 if out_dtype == "si8" else 32768)) if data.draw(st.booleans()) else data.draw(
        scales(-15, -3))
    table = Arg(ref.softmax_exp_table(s_in, in_dtype), "si32", const=True)
    check(lambda: ref.softmax(x, s_in, s_out, in_dtype, out_dtype, axis), "softmax",
          [Arg(x, in_dtype, s_in), table], {"axis": axis}, [T(shape, out_dtype, s_out)])


@SETTINGS
@given(st.data())
def test_layer_norm(data):
    in_dtype, out_dtype = data.draw(act_dtypes()), data.draw(act_dtypes())
    rank = data.draw(st.integers(2, 4))
    shape = data.draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank))
    axis = data.draw(st.sampled_from([-1, 1]))
    n = shape[axis]
    x = data.draw(int_arrays(shape, in_dtype))
    rows = st.lists(st.floats(-3, 3, width=32) | st.just(0.0), min_size=n, max_size=n)
    gamma, beta = np.array(data.draw(rows), np.float32), np.array(data.draw(rows), np.float32)
    eps = data.draw(st.sampled_from([0.0, 1e-6, 1e-5, 0.5]))
    s_in, s_out = data.draw(scales(-14, 0)), data.draw(scales(-15, 0))
    check(lambda: ref.layer_norm(x, gamma, beta, axis, eps, s_in, s_out, out_dtype), "layer_norm",
          [Arg(x, in_dtype, s_in), Arg(gamma, "f32", const=True), Arg(beta, "f32", const=True)],
          {"axis": axis, "eps": eps}, [T(shape, out_dtype, s_out)])


@SETTINGS
@given(st.data())
def test_argmax_topk(data):
    dtype = data.draw(act_dtypes())
    shape = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = data.draw(int_arrays(shape, dtype, -3, 3))  # narrow range: many ties
    keep = data.draw(st.booleans())
    want = ref.argmax(x, axis, keep)
    got = run_op("argmax", [Arg(x, dtype, 0.1)], {"axis": axis, "keepdim": keep}, [T(want.shape, "si32")])
    assert_same(got, want)
    k = data.draw(st.integers(1, shape[axis]))
    largest = data.draw(st.booleans())
    values, indices = ref.topk(x, k, axis, largest)
    got_v, got_i = run_op("topk", [Arg(x, dtype, 0.1)], {"k": k, "axis": axis, "largest": largest},
                          [T(values.shape, dtype, 0.1), T(indices.shape, "si32")])
    assert_same(got_v, values)
    assert_same(got_i, indices)


# ---- float boundary --------------------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_quantize_dequantize(data):
    dtype = data.draw(act_dtypes())
    n = data.draw(st.integers(1, 30))
    s = data.draw(scales(-12, 2))
    specials = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e30, -1e30])
    ties = st.integers(-200, 200).map(lambda k: float(np.float32((k + 0.5) * s)))
    x = np.array(data.draw(st.lists(st.one_of(st.floats(-1e3, 1e3, width=32), specials, ties), min_size=n,
                                    max_size=n)), np.float32)
    q = run_op("quantize", [Arg(x, "f32")], {}, [T(x.shape, dtype, s)])
    assert_same(q, ref.quantize(x, s, dtype))
    assert_same(run_op("dequantize", [Arg(q, dtype, s)], {}, [T(x.shape, "f32")]), ref.dequantize(q, s))


def test_quantize_per_axis_and_dequantize_per_axis():
    x = np.array([[0.25, 0.75], [-0.25, 1.0]], np.float32)
    s = [0.5, 0.25]
    got = run_op("quantize", [Arg(x, "f32")], {}, [T(x.shape, "si8", s, 0)])
    want = ref.quantize(x, ref.channel_scales(s, x.shape, 0), "si8")
    assert_same(got, want)
    assert_same(run_op("dequantize", [Arg(got, "si8", s, 0)], {}, [T(x.shape, "f32")]),
                ref.dequantize(want, ref.channel_scales(s, x.shape, 0)))


# ---- the optimized kernels state the same numerics ---------------------------------------------


@SETTINGS
@given(conv_case(), act_dtypes(), scales(-6, 0))
def test_optimized_conv_then_requantize_matches_oracle(case, out_dtype, s_out):
    x, wt, b, attrs, dtype = case
    acc = ref.conv2d(x, wt, b, attrs["stride"], attrs["padding"], attrs["dilation"], attrs["groups"])
    args = conv_args(x, wt, b, dtype, 0)
    assert_same(run_op("conv2d", args, attrs, [T(acc.shape, "si32")], optimized=True), acc)
    s_acc = [0.05 * s for s in args[1].scale]
    m = Module("t")
    fn = m.add_function("main")
    v = fn.add_argument(TensorType(list(acc.shape), "si32", s_acc, 1))
    o = m.create_op(fn, "requantize", [v], {}, [T(acc.shape, out_dtype, s_out)])
    fn.returns = o.results
    want = ref.requantize(acc, out_dtype, in_scales=[ref.f32(s) for s in s_acc], in_axis=1, out_scales=[s_out])
    for optimized in (False, True):
        got = _core.Executor(m, "main", optimized=optimized).run([acc.astype(np.int32)])[0]
        assert_same(got, want)


@SETTINGS
@given(st.data())
def test_optimized_linear_and_matmul_match_oracle(data):
    dtype = data.draw(act_dtypes())
    k, n = data.draw(st.integers(1, 70)), data.draw(st.integers(1, 9))
    x = data.draw(int_arrays((data.draw(st.integers(1, 4)), k), dtype))
    wt = data.draw(int_arrays((n, k), "si8"))
    b = data.draw(int_arrays((n,), "si32"))
    got = run_op("linear", [Arg(x, dtype, 0.1), Arg(wt, "si8", [0.01] * n, 0, const=True), Arg(b, "si32", const=True)],
                 {}, [T((x.shape[0], n), "si32")], optimized=True)
    assert_same(got, ref.linear(x, wt, b))
    bm = data.draw(int_arrays((2, k, n), "si8"))
    got = run_op("matmul", [Arg(x, dtype, 0.1), Arg(bm, "si8", 0.2)], {}, [T((2, x.shape[0], n), "si32")],
                 optimized=True)
    assert_same(got, ref.matmul(x, bm))
