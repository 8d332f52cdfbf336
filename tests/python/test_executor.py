"""The executor from Python: optimized integer kernels == reference kernels == a numpy oracle, bit for
bit, on random si8 data with the extremes and for several thread counts; float functions against
torch; argument checking and the run_all naming."""

import hbdk_sim
import numpy as np
import pytest
import torch
from hbdk_sim import Module, TensorType
from hbdk_sim._core import Executor
from hypothesis import given, settings
from hypothesis import strategies as st

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def si8(rng: np.random.Generator, shape) -> np.ndarray:
    """Random si8 values with a fifth of them pinned to -128 or 127."""
    x = rng.integers(-128, 128, size=shape, dtype=np.int8)
    pick = rng.integers(0, 10, size=shape)
    x[pick == 0] = -128
    x[pick == 1] = 127
    return x


def run_all_ways(m: Module, args: list) -> np.ndarray:
    """The reference result, after checking every optimized thread count against it."""
    ref = Executor(m, optimized=False).run(args)
    for threads in (1, 2, 3):
        got = Executor(m, optimized=True, threads=threads).run(args)
        assert len(got) == len(ref)
        for a, b in zip(got, ref, strict=True):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
    return ref[0]


def conv_oracle(x, w, b, stride, pad, dil, groups):
    n, cin, h, wd = x.shape
    cout, cing, kh, kw = w.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])))
    oh = (h + pad[0] + pad[2] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + pad[1] + pad[3] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, cout, oh, ow), np.int64)
    coutg = cout // groups
    for g in range(groups):
        xs = xp[:, g * cing:(g + 1) * cing]
        ws = w[g * coutg:(g + 1) * coutg].astype(np.int64)
        for i in range(kh):
            for j in range(kw):
                y0, x0 = i * dil[0], j * dil[1]
                patch = xs[:, :, y0:y0 + stride[0] * (oh - 1) + 1:stride[0], x0:x0 + stride[1] * (ow - 1) + 1:stride[1]]
                out[:, g * coutg:(g + 1) * coutg] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    if b is not None:
        out += b.astype(np.int64)[None, :, None, None]
    return np.clip(out, INT32_MIN, INT32_MAX).astype(np.int32)


def conv_module(x_shape, w, b, stride, pad, dil, groups, out_shape, weight_argument=False):
    m = Module("conv")
    fn = m.add_function("main")
    operands = [fn.add_argument(TensorType(list(x_shape), "si8", 0.5), "x")]
    if weight_argument:
        operands.append(fn.add_argument(TensorType(list(w.shape), "si8", 0.25), "w"))
    else:
        operands.append(m.create_constant(fn, w, name="w", dtype="si8", scale=0.25).result())
    if b is not None:
        operands.append(m.create_constant(fn, b, name="b", dtype="si32", scale=0.125).result())
    attrs = {"stride": list(stride), "padding": list(pad), "dilation": list(dil), "groups": groups}
    conv = m.create_op(fn, "conv2d", operands, attrs, result_types=[TensorType(list(out_shape), "si32", 0.125)])
    fn.returns = [conv.result()]
    m.verify()
    return m


@st.composite
def conv_cases(draw):
    depthwise = draw(st.booleans())
    cin = draw(st.integers(1, 19))
    groups = cin if depthwise else 1
    cout = cin * draw(st.integers(1, 2)) if depthwise else draw(st.integers(1, 21))
    kh, kw = draw(st.sampled_from([(1, 1), (3, 3), (5, 5), (7, 7), (1, 3), (2, 4)]))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pad = tuple(draw(st.integers(0, 3)) for _ in range(4))
    h = draw(st.integers(max(1, dil[0] * (kh - 1) + 1 - pad[0] - pad[2]), 16))
    w = draw(st.integers(max(1, dil[1] * (kw - 1) + 1 - pad[1] - pad[3]), 16))
    n = draw(st.integers(1, 2))
    bias = draw(st.sampled_from(["none", "small", "huge"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return dict(n=n, cin=cin, cout=cout, h=h, w=w, k=(kh, kw), stride=stride, pad=pad, dil=dil, groups=groups,
                bias=bias, seed=seed)


@settings(max_examples=40, deadline=None)
@given(conv_cases())
def test_conv_optimized_matches_reference_and_oracle(c):
    rng = np.random.default_rng(c["seed"])
    x = si8(rng, (c["n"], c["cin"], c["h"], c["w"]))
    w = si8(rng, (c["cout"], c["cin"] // c["groups"], *c["k"]))
    b = None
    if c["bias"] == "small":
        b = rng.integers(-100000, 100000, size=c["cout"]).astype(np.int32)
    elif c["bias"] == "huge":  # saturates on the way to si32
        b = rng.choice([INT32_MIN, INT32_MAX], size=c["cout"]).astype(np.int32)
    expected = conv_oracle(x, w, b, c["stride"], c["pad"], c["dil"], c["groups"])
    m = conv_module(x.shape, w, b, c["stride"], c["pad"], c["dil"], c["groups"], expected.shape)
    np.testing.assert_array_equal(run_all_ways(m, [x]), expected)


def test_conv_fixed_shapes_and_weight_argument():
    rng = np.random.default_rng(5)
    for cin, cout, k, stride, pad, groups in [(3, 8, 7, 2, 3, 1), (64, 33, 1, 1, 0, 1), (32, 70, 3, 1, 1, 1),
                                              (16, 16, 3, 2, 1, 16), (12, 9, 3, 1, 1, 3)]:
        x = si8(rng, (1, cin, 12, 12))
        w = si8(rng, (cout, cin // groups, k, k))
        b = rng.integers(-(10**6), 10**6, size=cout).astype(np.int32)
        expected = conv_oracle(x, w, b, (stride, stride), (pad,) * 4, (1, 1), groups)
        for weight_argument in (False, True):
            m = conv_module(x.shape, w, b, (stride, stride), (pad,) * 4, (1, 1), groups, expected.shape,
                            weight_argument)
            args = [x, w] if weight_argument else [x]
            np.testing.assert_array_equal(run_all_ways(m, args), expected)


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.integers(1, 4), min_size=1, max_size=3), k=st.integers(1, 300), n=st.integers(1, 40),
       bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_linear_optimized_matches_reference(rows, k, n, bias, seed):
    rng = np.random.default_rng(seed)
    x, w = si8(rng, (*rows, k)), si8(rng, (n, k))
    b = rng.integers(INT32_MIN, INT32_MAX, size=n, dtype=np.int64).astype(np.int32) if bias else None
    m = Module()
    fn = m.add_function("main")
    operands = [fn.add_argument(TensorType([*rows, k], "si8", 0.5), "x"),
                m.create_constant(fn, w, name="w", dtype="si8", scale=0.5).result()]
    if bias:
        operands.append(m.create_constant(fn, b, name="b", dtype="si32", scale=0.25).result())
    op = m.create_op(fn, "linear", operands, result_types=[TensorType([*rows, n], "si32", 0.25)])
    fn.returns = [op.result()]
    expected = x.astype(np.int64) @ w.astype(np.int64).T + (b.astype(np.int64) if bias else 0)
    np.testing.assert_array_equal(run_all_ways(m, [x]), np.clip(expected, INT32_MIN, INT32_MAX).astype(np.int32))


@settings(max_examples=25, deadline=None)
@given(lhs_batch=st.lists(st.integers(1, 3), max_size=2), rhs_batch=st.lists(st.integers(1, 3), max_size=2),
       mkn=st.tuples(st.integers(1, 9), st.integers(1, 40), st.integers(1, 9)), rhs_constant=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_matmul_batch_broadcast_matches_reference(lhs_batch, rhs_batch, mkn, rhs_constant, seed):
    # Make the batch dims broadcastable: where both have a dim, one of them is 1 or they agree.
    la, ra = list(lhs_batch), list(rhs_batch)
    for i in range(1, min(len(la), len(ra)) + 1):
        if la[-i] != ra[-i] and 1 not in (la[-i], ra[-i]):
            ra[-i] = 1
    mm, k, n = mkn
    rng = np.random.default_rng(seed)
    a, b = si8(rng, (*la, mm, k)), si8(rng, (*ra, k, n))
    expected = np.matmul(a.astype(np.int64), b.astype(np.int64)).astype(np.int32)
    m = Module()
    fn = m.add_function("main")
    lhs = fn.add_argument(TensorType(list(a.shape), "si8", 0.5), "a")
    if rhs_constant:
        rhs = m.create_constant(fn, b, name="b", dtype="si8", scale=0.5).result()
    else:
        rhs = fn.add_argument(TensorType(list(b.shape), "si8", 0.5), "b")
    op = m.create_op(fn, "matmul", [lhs, rhs], result_types=[TensorType(list(expected.shape), "si32", 0.25)])
    fn.returns = [op.result()]
    np.testing.assert_array_equal(run_all_ways(m, [a] if rhs_constant else [a, b]), expected)


def test_requantize_per_channel_matches_reference():
    rng = np.random.default_rng(3)
    x = rng.integers(INT32_MIN, INT32_MAX, size=(2, 5, 3, 4), dtype=np.int64).astype(np.int32)
    x.flat[:4] = [INT32_MIN, INT32_MAX, 0, -1]
    for mult, shift in [([1 << 30], [31]), ([1677722, 5, 0, (1 << 31) - 1, 1 << 20], [24, 0, 3, 62, 40])]:
        m = Module()
        fn = m.add_function("main")
        arg = fn.add_argument(TensorType(list(x.shape), "si32", [0.1] * 5, axis=1), "acc")
        op = m.create_op(fn, "requantize", [arg], {"multiplier": mult, "shift": shift, "axis": 1},
                         result_types=[TensorType(list(x.shape), "si8", 0.5)])
        fn.returns = [op.result()]
        got = run_all_ways(m, [x])
        mm = np.array(mult if len(mult) > 1 else mult * 5, dtype=object)[None, :, None, None]
        ss = np.array(shift if len(shift) > 1 else shift * 5, dtype=object)[None, :, None, None]
        prod = x.astype(object) * mm
        rounded = np.where(ss > 0, (prod + (1 << np.maximum(ss - 1, 0))) >> ss, prod)
        np.testing.assert_array_equal(got, np.clip(rounded.astype(np.int64), -128, 127).astype(np.int8))


def float_module():
    rng = np.random.default_rng(0)
    m = Module("float")
    fn = m.add_function("main")
    x = fn.add_argument(TensorType([1, 3, 8, 8], "f32"), "x")
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    conv = m.create_op(fn, "conv2d", [x, m.create_constant(fn, w, name="w").result()], {"padding": [1, 1, 1, 1]},
                       names=["conv"])
    relu = m.create_op(fn, "relu", [conv.result()], names=["relu"])
    pool = m.create_op(fn, "global_avg_pool2d", [relu.result()])
    fn.returns = [pool.result(), relu.result()]
    return m, w


def test_float_function_runs_on_the_float_kernels():
    m, w = float_module()
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8))  # float64 converts to f32
    pool, relu = Executor(m, threads=2).run([x])
    ref = torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x.astype(np.float32)), torch.from_numpy(w), padding=1))
    assert relu.dtype == np.float32 and relu.shape == (1, 4, 8, 8)
    np.testing.assert_allclose(relu, ref.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pool, ref.mean(dim=(2, 3), keepdim=True).numpy(), rtol=1e-5, atol=1e-5)
    assert np.array_equal(Executor(m, optimized=False).run([x])[1], relu)


def test_run_all_names_every_value():
    m, _ = float_module()
    x = np.zeros((1, 3, 8, 8), np.float32)
    values = Executor(m).run_all([x])
    assert set(values) == {"x", "w", "conv", "relu", "global_avg_pool2d#3"}
    np.testing.assert_array_equal(values["x"], x)
    assert values["relu"].shape == (1, 4, 8, 8)


def test_argument_errors():
    m, _ = float_module()
    ex = Executor(m)
    assert ex.function == "main"
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="@main takes 1 argument"):
        ex.run([])
    with pytest.raises(TypeError, match="list of arrays"):
        ex.run(x)
    shape_error = r"argument #0 \(%x\) of @main expects shape \(1, 3, 8, 8\) but got \(1, 3, 8\)"
    with pytest.raises(ValueError, match=shape_error):
        ex.run([np.zeros((1, 3, 8), np.float32)])
    with pytest.raises(TypeError, match=r"expects float32 data \(f32\) but got int32"):
        ex.run([np.zeros((1, 3, 8, 8), np.int32)])
    with pytest.raises(ValueError, match="threads must be >= 0"):
        Executor(m, threads=-1)
    with pytest.raises(hbdk_sim.HbirError, match="no function @nope"):
        Executor(m, "nope")


def test_integer_arguments_cast_only_when_safe():
    rng = np.random.default_rng(2)
    x, w = si8(rng, (1, 4, 5, 5)), si8(rng, (2, 4, 1, 1))
    m = conv_module(x.shape, w, None, (1, 1), (0,) * 4, (1, 1), 1, (1, 2, 5, 5))
    ex = Executor(m)
    with pytest.raises(TypeError, match=r"expects int8 data \(si8\) but got int16"):
        ex.run([x.astype(np.int16)])
    with pytest.raises(TypeError, match="but got int64"):
        ex.run([x.tolist()])  # nested lists become int64 arrays: not a safe cast either
    strided = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(ex.run([strided])[0], ex.run([x])[0])
    assert ex.run([x])[0].dtype == np.int32
