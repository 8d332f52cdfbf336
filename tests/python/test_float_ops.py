"""Every op with a float meaning, run alone in an f32 function by the Executor, against torch (or,
where torch has no such op or mode, numpy stating docs/ops.md and docs/numerics.md §6). References
are computed in float64 from the same f32 inputs; the tolerance is 1e-5, relative above 1."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hbdk_sim import Module, TensorType, _core
from hbdk_sim._core import Executor
from hypothesis import assume, given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)
FEW = settings(max_examples=15, deadline=None, derandomize=True, database=None)

# Ops of the table without a float meaning: integer semantics only (docs/numerics.md).
INTEGER_ONLY = {"constant", "quantize", "dequantize", "requantize", "lut"}
COVERED: set[str] = set()


def covers(*ops):
    def mark(f):
        COVERED.update(ops)
        return f
    return mark


def close(got, want, tol=1e-5):
    """|got - want| <= tol * max(1, |want|), elementwise."""
    want = np.asarray(want, np.float64)
    assert got.dtype == np.float32, got.dtype
    assert got.shape == want.shape, (got.shape, want.shape)
    g = got.astype(np.float64)
    with np.errstate(invalid="ignore"):  # equal infinities (a max over padding only is -inf) match
        err = np.where(g == want, 0.0, np.abs(g - want) / np.maximum(1.0, np.abs(want)))
    assert err.size == 0 or err.max() <= tol, f"max scaled error {err.max():.3g}"


def t64(a):
    return torch.from_numpy(np.asarray(a, np.float64))


def data(seed: int, shape, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def run_op(op, args, attrs=None, consts=(), n_results=None):
    """One `op` in an f32 function: `args` become arguments (f32, or si32 for int32 arrays) and
    `consts` constants, in that operand order; returns the Executor's result, or the list of
    `n_results` results."""
    m = Module("single")
    fn = m.add_function("main")
    operands = []
    for i, a in enumerate(args):
        dtype = "si32" if a.dtype == np.int32 else "f32"
        operands.append(fn.add_argument(TensorType(list(a.shape), dtype), f"a{i}"))
    for i, c in enumerate(consts):
        operands.append(m.create_constant(fn, c, name=f"c{i}").result())
    o = m.create_op(fn, op, operands, attrs or {})
    fn.returns = [o.result(i) for i in range(n_results or 1)]
    m.verify()
    out = Executor(m).run(list(args))
    return out if n_results else out[0]


seeds = st.integers(0, 2**32 - 1)
small = st.integers(1, 5)


def test_every_float_op_is_covered():
    names = {d["name"] for d in _core.op_table()}
    assert names - INTEGER_ONLY == COVERED, (names - INTEGER_ONLY) ^ COVERED


# ---- Convolution and dense ---------------------------------------------------------------------


@covers("conv2d")
@SETTINGS
@given(seed=seeds, n=st.integers(1, 2), groups=st.integers(1, 3), cin_g=st.integers(1, 3), cout_g=st.integers(1, 3),
       h=st.integers(1, 7), w=st.integers(1, 7), k=st.tuples(small.map(lambda v: min(v, 3)), st.integers(1, 3)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), dil=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       pad=st.tuples(*[st.integers(0, 2)] * 4), bias=st.booleans())
def test_conv2d(seed, n, groups, cin_g, cout_g, h, w, k, stride, dil, pad, bias):
    assume(h + pad[0] + pad[2] >= dil[0] * (k[0] - 1) + 1 and w + pad[1] + pad[3] >= dil[1] * (k[1] - 1) + 1)
    cin, cout = cin_g * groups, cout_g * groups
    x, wt, b = data(seed, (n, cin, h, w)), data(seed + 1, (cout, cin_g, *k)), data(seed + 2, (cout,))
    attrs = {"stride": list(stride), "padding": list(pad), "dilation": list(dil), "groups": groups}
    got = run_op("conv2d", [x], attrs, [wt, b] if bias else [wt])
    xp = F.pad(t64(x), (pad[1], pad[3], pad[0], pad[2]))  # torch pads symmetrically only
    want = F.conv2d(xp, t64(wt), t64(b) if bias else None, stride=stride, dilation=dil, groups=groups)
    close(got, want.numpy())


@covers("conv_transpose2d")
@SETTINGS
@given(seed=seeds, n=st.integers(1, 2), groups=st.integers(1, 2), cin_g=st.integers(1, 3), cout_g=st.integers(1, 3),
       h=st.integers(1, 5), w=st.integers(1, 5), k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), dil=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       pad=st.tuples(*[st.integers(0, 2)] * 4), out_pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       bias=st.booleans())
def test_conv_transpose2d(seed, n, groups, cin_g, cout_g, h, w, k, stride, dil, pad, out_pad, bias):
    assume(all(out_pad[i] < max(stride[i], dil[i]) for i in range(2)))
    full = [(s - 1) * st_ + d * (kk - 1) + op + 1 for s, st_, d, kk, op in zip((h, w), stride, dil, k, out_pad, strict=True)]
    assume(full[0] - pad[0] - pad[2] >= 1 and full[1] - pad[1] - pad[3] >= 1)
    cin, cout = cin_g * groups, cout_g * groups
    # Weight layout [Cin, Cout/groups, KH, KW], as torch's.
    x, wt, b = data(seed, (n, cin, h, w)), data(seed + 1, (cin, cout_g, *k)), data(seed + 2, (cout,))
    attrs = {"stride": list(stride), "padding": list(pad), "output_padding": list(out_pad), "dilation": list(dil),
             "groups": groups}
    got = run_op("conv_transpose2d", [x], attrs, [wt, b] if bias else [wt])
    # torch crops symmetrically only: crop the unpadded result by hand.
    want = F.conv_transpose2d(t64(x), t64(wt), t64(b) if bias else None, stride=stride, output_padding=out_pad,
                              groups=groups, dilation=dil)
    want = want[:, :, pad[0]:full[0] - pad[2], pad[1]:full[1] - pad[3]]
    close(got, want.numpy())


@covers("linear")
@SETTINGS
@given(seed=seeds, lead=st.lists(small, max_size=2), k=st.integers(1, 9), n=st.integers(1, 9), bias=st.booleans())
def test_linear(seed, lead, k, n, bias):
    x, wt, b = data(seed, (*lead, k)), data(seed + 1, (n, k)), data(seed + 2, (n,))
    got = run_op("linear", [x], {}, [wt, b] if bias else [wt])
    close(got, F.linear(t64(x), t64(wt), t64(b) if bias else None).numpy())


@st.composite
def broadcast_pair(draw, min_rank=0, max_rank=4):
    """Two shapes numpy broadcasts together: each dim of the longer shape is kept, set to 1 on one
    side, or dropped from the left of the shorter one."""
    shape = draw(st.lists(st.integers(1, 4), min_size=min_rank, max_size=max_rank))
    a, b = list(shape), list(shape)
    for i in range(len(shape)):
        side = draw(st.integers(0, 2))
        if side == 1:
            a[i] = 1
        elif side == 2:
            b[i] = 1
    drop = draw(st.integers(0, len(shape)))
    return (a, b[drop:]) if draw(st.booleans()) else (a[drop:], b)


@covers("matmul")
@SETTINGS
@given(seed=seeds, batch=broadcast_pair(max_rank=2), m=small, k=small, n=small)
def test_matmul(seed, batch, m, k, n):
    x, y = data(seed, (*batch[0], m, k)), data(seed + 1, (*batch[1], k, n))
    close(run_op("matmul", [x, y]), torch.matmul(t64(x), t64(y)).numpy())


@covers("batch_norm")
@SETTINGS
@given(seed=seeds, shape=st.lists(small, min_size=2, max_size=4), eps=st.sampled_from([1e-5, 1e-3, 0.1]))
def test_batch_norm(seed, shape, eps):
    c = shape[1]
    x, mean, gamma, beta = data(seed, shape, 3), data(seed + 1, (c,)), data(seed + 2, (c,)), data(seed + 3, (c,))
    var = np.abs(data(seed + 4, (c,))) + np.float32(0.05)
    got = run_op("batch_norm", [x], {"eps": eps}, [mean, var, gamma, beta])
    want = F.batch_norm(t64(x), t64(mean), t64(var), t64(gamma), t64(beta), training=False, eps=eps)
    close(got, want.numpy())


# ---- Elementwise -------------------------------------------------------------------------------

UNARY = {
    "relu": ({}, torch.relu),
    "relu6": ({}, lambda x: F.hardtanh(x, 0.0, 6.0)),
    "sigmoid": ({}, torch.sigmoid),
    "tanh": ({}, torch.tanh),
    "exp": ({}, torch.exp),
    "silu": ({}, F.silu),
    "hardswish": ({}, F.hardswish),
    "hardsigmoid": ({}, F.hardsigmoid),
    "gelu": ({}, F.gelu),
    "sin": ({}, torch.sin),
    "cos": ({}, torch.cos),
    "clip": ({"min": -1.5, "max": 2.25}, lambda x: torch.clamp(x, -1.5, 2.25)),
    "leaky_relu": ({"alpha": 0.2}, lambda x: F.leaky_relu(x, 0.2)),
}


@covers(*UNARY)
@pytest.mark.parametrize("op", sorted(UNARY))
@FEW
@given(seed=seeds, shape=st.lists(small, max_size=4), scale=st.sampled_from([0.5, 4.0, 20.0]))
def test_unary(op, seed, shape, scale):
    attrs, ref = UNARY[op]
    x = data(seed, shape, scale)
    x.reshape(-1)[: min(x.size, 2)] = [0.0, 6.0][: min(x.size, 2)]  # the kinks themselves
    if op == "exp":
        x = np.clip(x, -80, 80)  # finite in f32
    close(run_op(op, [x], attrs), ref(t64(x)).numpy())


@covers("layer_norm")
@FEW
@given(seed=seeds, shape=st.lists(small, min_size=2, max_size=4), axis=st.sampled_from([-1, 1]),
       eps=st.sampled_from([1e-5, 1e-3]))
def test_layer_norm(seed, shape, axis, eps):
    x, n = data(seed, shape, 3), shape[axis]
    gamma, beta = data(seed + 1, (n,)), data(seed + 2, (n,))
    got = run_op("layer_norm", [x], {"axis": axis, "eps": eps}, [gamma, beta])
    moved = t64(x).movedim(axis, -1)
    want = F.layer_norm(moved, (n,), t64(gamma), t64(beta), eps).movedim(-1, axis)
    close(got, want.numpy(), tol=1e-4)


@covers("leaky_relu", "clip")
@FEW
@given(seed=seeds, alpha=st.floats(-2, 2, width=32), lo=st.floats(-3, 3, width=32), width=st.floats(0, 3, width=32))
def test_unary_attributes(seed, alpha, lo, width):
    x = data(seed, (3, 5), 3)
    close(run_op("leaky_relu", [x], {"alpha": alpha}), F.leaky_relu(t64(x), float(alpha)).numpy())
    hi = np.float32(lo + width)
    close(run_op("clip", [x], {"min": lo, "max": float(hi)}), torch.clamp(t64(x), float(lo), float(hi)).numpy())


@covers("softmax")
@SETTINGS
@given(seed=seeds, shape=st.lists(small, min_size=1, max_size=4), data_=st.data(), scale=st.sampled_from([1.0, 30.0]))
def test_softmax(seed, shape, data_, scale):
    axis = data_.draw(st.integers(-len(shape), len(shape) - 1))
    x = data(seed, shape, scale)
    close(run_op("softmax", [x], {"axis": axis}), torch.softmax(t64(x), axis).numpy())


@covers("add", "sub", "mul")
@pytest.mark.parametrize("op,ref", [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul)])
@SETTINGS
@given(seed=seeds, shapes=broadcast_pair())
def test_binary_broadcast(op, ref, seed, shapes):
    a, b = data(seed, shapes[0], 3), data(seed + 1, shapes[1], 3)
    close(run_op(op, [a, b]), ref(t64(a), t64(b)).numpy())


# ---- Data movement -----------------------------------------------------------------------------


@covers("concat")
@SETTINGS
@given(seed=seeds, shape=st.lists(small, min_size=1, max_size=4), count=st.integers(1, 4), data_=st.data())
def test_concat(seed, shape, count, data_):
    axis = data_.draw(st.integers(-len(shape), len(shape) - 1))
    parts = []
    for i in range(count):
        s = list(shape)
        s[axis] = data_.draw(small)
        parts.append(data(seed + i, s))
    got = run_op("concat", parts, {"axis": axis})
    close(got, torch.cat([t64(p) for p in parts], axis).numpy())


@covers("split")
@SETTINGS
@given(seed=seeds, shape=st.lists(small, min_size=1, max_size=4), data_=st.data())
def test_split(seed, shape, data_):
    axis = data_.draw(st.integers(-len(shape), len(shape) - 1))
    sizes = data_.draw(st.lists(small, min_size=1, max_size=4))
    shape[axis] = sum(sizes)
    x = data(seed, shape)
    got = run_op("split", [x], {"axis": axis, "sizes": sizes}, n_results=len(sizes))
    want = torch.split(t64(x), sizes, axis)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        close(g, w.numpy())


@covers("slice")
@SETTINGS
@given(seed=seeds, shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), data_=st.data())
def test_slice(seed, shape, data_):
    rank = len(shape)
    axes = data_.draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
    axes = [a - rank if data_.draw(st.booleans()) else a for a in axes]  # negative axes too
    bound = st.integers(-9, 9)
    starts = [data_.draw(bound) for _ in axes]
    ends = [data_.draw(bound) for _ in axes]
    steps = [data_.draw(st.integers(1, 3)) for _ in axes]
    index = [slice(None)] * rank
    for a, b, e, s in zip(axes, starts, ends, steps, strict=True):
        index[a] = slice(b, e, s)
    x = data(seed, shape)
    want = t64(x)[tuple(index)]
    assume(want.numel() > 0)  # the verifier rejects empty results
    close(run_op("slice", [x], {"axes": axes, "starts": starts, "ends": ends, "steps": steps}), want.numpy())


@covers("reshape")
@SETTINGS
@given(seed=seeds, shape=st.lists(small, max_size=4), data_=st.data())
def test_reshape(seed, shape, data_):
    x = data(seed, shape)
    target = list(data_.draw(st.permutations(shape))) + [1] * data_.draw(st.integers(0, 1))
    if target and data_.draw(st.booleans()):
        target[data_.draw(st.integers(0, len(target) - 1))] = -1
    close(run_op("reshape", [x], {"shape": target}), t64(x).reshape(target).numpy())


@covers("transpose")
@SETTINGS
@given(seed=seeds, shape=st.lists(small, min_size=1, max_size=4), data_=st.data())
def test_transpose(seed, shape, data_):
    perm = list(data_.draw(st.permutations(range(len(shape)))))
    attr = [p - len(shape) if data_.draw(st.booleans()) else p for p in perm]  # negative entries too
    x = data(seed, shape)
    close(run_op("transpose", [x], {"perm": attr}), t64(x).permute(perm).numpy())


@covers("flatten")
@SETTINGS
@given(seed=seeds, shape=st.lists(small, min_size=1, max_size=4), data_=st.data())
def test_flatten(seed, shape, data_):
    r = len(shape)
    start = data_.draw(st.integers(-r, r - 1))
    end = data_.draw(st.integers((start + r) % r, r - 1))
    end = end - r if data_.draw(st.booleans()) else end
    x = data(seed, shape)
    close(run_op("flatten", [x], {"start_dim": start, "end_dim": end}), torch.flatten(t64(x), start, end).numpy())


@covers("pad")
@SETTINGS
@given(seed=seeds, shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), mode=st.sampled_from(
    ["constant", "edge", "reflect"]), value=st.floats(-4, 4, width=32), data_=st.data())
def test_pad(seed, shape, mode, value, data_):
    r = len(shape)
    limit = [s - 1 if mode == "reflect" else 3 for s in shape]  # torch reflects within one period
    begin = [data_.draw(st.integers(0, lim)) for lim in limit]
    end = [data_.draw(st.integers(0, lim)) for lim in limit]
    x = data(seed, shape)
    got = run_op("pad", [x], {"pads": begin + end, "mode": mode, "value": value})
    torch_pads = [p for d in reversed(range(r)) for p in (begin[d], end[d])]
    # torch's reflect/replicate pad the last two dims of a (N)CHW tensor only; numpy the rest.
    trailing_only = r in (3, 4) and not any(torch_pads[4:])
    if mode == "constant" or trailing_only:
        kind = {"constant": "constant", "edge": "replicate", "reflect": "reflect"}[mode]
        torch_pads = torch_pads if mode == "constant" else torch_pads[:4]
        want = F.pad(t64(x), torch_pads, mode=kind, value=float(value) if mode == "constant" else None)
    else:
        want = np.pad(x.astype(np.float64), list(zip(begin, end, strict=True)), mode=mode)
    close(got, np.asarray(want))


@covers("gather")
@SETTINGS
@given(seed=seeds, shape=st.lists(small, min_size=1, max_size=3), idx_shape=st.lists(st.integers(1, 4), max_size=2),
       as_constant=st.booleans(), data_=st.data())
def test_gather(seed, shape, idx_shape, as_constant, data_):
    axis = data_.draw(st.integers(-len(shape), len(shape) - 1))
    dim = shape[axis]
    idx = np.random.default_rng(seed + 1).integers(-dim, dim, size=idx_shape).astype(np.int32)
    x = data(seed, shape)
    got = run_op("gather", [x], {"axis": axis}, [idx]) if as_constant else run_op("gather", [x, idx], {"axis": axis})
    close(got, np.take(x.astype(np.float64), idx, axis=axis))
    if idx.ndim == 1:  # torch.index_select with the negative positions counted from the end
        want = torch.index_select(t64(x), axis, torch.from_numpy(np.where(idx < 0, idx + dim, idx).astype(np.int64)))
        close(got, want.numpy())


@covers("point_pillar_scatter")
@SETTINGS
@given(seed=seeds, pillars=st.integers(1, 12), channels=small, grid=st.tuples(small, small), batch=st.integers(1, 2))
def test_point_pillar_scatter(seed, pillars, channels, grid, batch):
    rng = np.random.default_rng(seed)
    feats = data(seed + 1, (pillars, channels))
    # Some coordinates fall off the canvas (padding pillars) and some repeat (the later one wins).
    coords = np.stack([rng.integers(-1, batch + 1, pillars), rng.integers(0, 2, pillars),
                       rng.integers(-1, grid[0] + 1, pillars), rng.integers(-1, grid[1] + 1, pillars)], 1)
    coords = coords.astype(np.int32)
    got = run_op("point_pillar_scatter", [feats, coords], {"grid": list(grid), "batch": batch})
    want = torch.zeros(batch, channels, *grid, dtype=torch.float64)
    for p in range(pillars):
        b, _, y, x = coords[p]
        if 0 <= b < batch and 0 <= y < grid[0] and 0 <= x < grid[1]:
            want[b, :, y, x] = t64(feats[p])
    close(got, want.numpy())


# ---- Pooling and resizing ----------------------------------------------------------------------


def pool_case(draw, dilated):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    pad = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))  # torch: at most half the kernel
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    return k, stride, dil, pad, h, w


def pool_size(size, k, s, d, p, ceil):
    span = size + 2 * p - d * (k - 1) - 1
    if span < 0:
        return 0
    out = (span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:  # torch: the last window starts inside the input or left padding
        out -= 1
    return out


@covers("max_pool2d")
@SETTINGS
@given(seed=seeds, n=st.integers(1, 2), c=small, ceil=st.booleans(), data_=st.data())
def test_max_pool2d(seed, n, c, ceil, data_):
    k, stride, dil, pad, h, w = pool_case(data_.draw, dilated=True)
    assume(pool_size(h, k[0], stride[0], dil[0], pad[0], ceil) > 0 and pool_size(w, k[1], stride[1], dil[1], pad[1],
                                                                                  ceil) > 0)
    x = data(seed, (n, c, h, w))
    attrs = {"kernel": list(k), "stride": list(stride), "padding": [pad[0], pad[1], pad[0], pad[1]],
             "dilation": list(dil), "ceil_mode": ceil}
    want = F.max_pool2d(t64(x), k, stride, pad, dil, ceil_mode=ceil)
    close(run_op("max_pool2d", [x], attrs), want.numpy())


@covers("max_pool2d")
@FEW
@given(seed=seeds, pad=st.tuples(*[st.integers(0, 1)] * 4), h=st.integers(2, 6), w=st.integers(2, 6))
def test_max_pool2d_asymmetric_padding(seed, pad, h, w):
    assume(h + pad[0] + pad[2] >= 3)
    x = data(seed, (1, 2, h, w))
    attrs = {"kernel": [3, 2], "stride": [2, 1], "padding": list(pad)}
    padded = F.pad(t64(x), (pad[1], pad[3], pad[0], pad[2]), value=-math.inf)  # padding never wins
    close(run_op("max_pool2d", [x], attrs), F.max_pool2d(padded, (3, 2), (2, 1)).numpy())


@covers("avg_pool2d")
@SETTINGS
@given(seed=seeds, n=st.integers(1, 2), c=small, ceil=st.booleans(), include_pad=st.booleans(), data_=st.data())
def test_avg_pool2d(seed, n, c, ceil, include_pad, data_):
    k, stride, _, pad, h, w = pool_case(data_.draw, dilated=False)
    assume(pool_size(h, k[0], stride[0], 1, pad[0], ceil) > 0 and pool_size(w, k[1], stride[1], 1, pad[1], ceil) > 0)
    x = data(seed, (n, c, h, w))
    attrs = {"kernel": list(k), "stride": list(stride), "padding": [pad[0], pad[1], pad[0], pad[1]],
             "ceil_mode": ceil, "count_include_pad": include_pad}
    want = F.avg_pool2d(t64(x), k, stride, pad, ceil_mode=ceil, count_include_pad=include_pad)
    close(run_op("avg_pool2d", [x], attrs), want.numpy())


@covers("global_avg_pool2d")
@SETTINGS
@given(seed=seeds, shape=st.tuples(st.integers(1, 2), small, st.integers(1, 9), st.integers(1, 9)))
def test_global_avg_pool2d(seed, shape):
    x = data(seed, shape)
    close(run_op("global_avg_pool2d", [x]), F.adaptive_avg_pool2d(t64(x), 1).numpy())


def resize_reference(x, size, mode, cmode):
    """docs/numerics.md §6 in numpy, for the modes torch has no counterpart of."""

    def axis(n_in, n_out):
        o = np.arange(n_out, dtype=np.float64)
        if cmode == "asymmetric":
            src = o * n_in / n_out
        elif cmode == "half_pixel":
            src = np.maximum((o + 0.5) * n_in / n_out - 0.5, 0.0)
        else:
            src = o * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros(1)
        if mode == "nearest":
            f = (o + 0.5) * n_in / n_out if cmode == "half_pixel" else src + (0.5 if cmode == "align_corners" else 0)
            return np.minimum(np.floor(f).astype(int), n_in - 1), None, None
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0

    y0, y1, fy = axis(x.shape[2], size[0])
    x0, x1, fx = axis(x.shape[3], size[1])
    x = x.astype(np.float64)
    if mode == "nearest":
        return x[:, :, y0][:, :, :, x0]
    fy, fx = fy[:, None], fx[None, :]
    top = x[:, :, y0][:, :, :, x0] * (1 - fx) + x[:, :, y0][:, :, :, x1] * fx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - fx) + x[:, :, y1][:, :, :, x1] * fx
    return top * (1 - fy) + bottom * fy


@covers("resize2d")
@pytest.mark.parametrize("mode,cmode", [(m, c) for m in ("nearest", "bilinear")
                                        for c in ("asymmetric", "half_pixel", "align_corners")])
@SETTINGS
@given(seed=seeds, n=st.integers(1, 2), c=st.integers(1, 3), hw=st.tuples(st.integers(1, 8), st.integers(1, 8)),
       size=st.tuples(st.integers(1, 16), st.integers(1, 16)))
def test_resize2d(mode, cmode, seed, n, c, hw, size):
    x = data(seed, (n, c, *hw))
    got = run_op("resize2d", [x], {"size": list(size), "mode": mode, "coordinate_mode": cmode})
    close(got, resize_reference(x, size, mode, cmode))
    # torch where it has the mode (for these sizes its float32 scale picks the same indices).
    torch_mode = {("nearest", "asymmetric"): ("nearest", None), ("nearest", "half_pixel"): ("nearest-exact", None),
                  ("bilinear", "half_pixel"): ("bilinear", False), ("bilinear", "align_corners"): ("bilinear", True)}
    if (mode, cmode) in torch_mode:
        tm, corners = torch_mode[(mode, cmode)]
        close(got, F.interpolate(t64(x), size=size, mode=tm, align_corners=corners).numpy())


@covers("grid_sample")
@pytest.mark.parametrize("align_corners", [True, False])
@SETTINGS
@given(seed=seeds, n=st.integers(1, 2), c=st.integers(1, 3), hw=st.tuples(st.integers(1, 6), st.integers(1, 6)),
       out=st.tuples(st.integers(1, 5), st.integers(1, 5)))
def test_grid_sample(align_corners, seed, n, c, hw, out):
    x = data(seed, (n, c, *hw))
    grid = (1.3 * np.random.default_rng(seed + 1).uniform(-1, 1, (n, *out, 2))).astype(np.float32)  # some outside
    got = run_op("grid_sample", [x, grid], {"align_corners": align_corners})
    want = F.grid_sample(t64(x), torch.from_numpy(grid).double(), mode="bilinear", padding_mode="zeros",
                         align_corners=align_corners)
    close(got, want.numpy())


def test_resize2d_hand_values():
    x = np.array([[[[0.0, 10.0], [20.0, 30.0]]]], np.float32)
    bil = {"size": [3, 3], "mode": "bilinear"}
    # align_corners: the corners stay put, the middle is the mean.
    np.testing.assert_array_equal(run_op("resize2d", [x], {**bil, "coordinate_mode": "align_corners"}),
                                  [[[[0, 5, 10], [10, 15, 20], [20, 25, 30]]]])
    # half_pixel 2 -> 3: sources max(-1/6, 0), 1/2, 7/6 (the last clamps to the edge).
    got = run_op("resize2d", [x], {**bil, "coordinate_mode": "half_pixel"})
    close(got, [[[[0, 5, 10], [10, 15, 20], [20, 25, 30]]]])
    # asymmetric 2 -> 3: sources 0, 2/3, 4/3.
    got = run_op("resize2d", [x], {**bil, "coordinate_mode": "asymmetric"})
    close(got, [[[[0, 20 / 3, 10], [40 / 3, 20, 70 / 3], [20, 80 / 3, 30]]]])
    nearest = {"size": [1, 4], "mode": "nearest"}
    row = np.array([[[[1.0, 2.0, 3.0]]]], np.float32)
    # 3 -> 4: asymmetric floors o*3/4 = 0, .75, 1.5, 2.25; half_pixel floors (o+.5)*3/4; align_corners
    # rounds o*2/3 half up.
    assert run_op("resize2d", [row], {**nearest, "coordinate_mode": "asymmetric"}).tolist() == [[[[1, 1, 2, 3]]]]
    assert run_op("resize2d", [row], {**nearest, "coordinate_mode": "half_pixel"}).tolist() == [[[[1, 2, 2, 3]]]]
    assert run_op("resize2d", [row], {**nearest, "coordinate_mode": "align_corners"}).tolist() == [[[[1, 2, 2, 3]]]]


# ---- Selection ---------------------------------------------------------------------------------


@covers("argmax")
@SETTINGS
@given(seed=seeds, shape=st.lists(small, min_size=1, max_size=4), keepdim=st.booleans(), ties=st.booleans(),
       data_=st.data())
def test_argmax(seed, shape, keepdim, ties, data_):
    axis = data_.draw(st.integers(-len(shape), len(shape) - 1))
    x = data(seed, shape)
    if ties:
        x = np.round(x).astype(np.float32)  # many equal maxima: the first one wins
    got = run_op("argmax", [x], {"axis": axis, "keepdim": keepdim})
    want = np.argmax(x, axis=axis)
    if keepdim:
        want = np.expand_dims(want, axis)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)
    if not ties:
        np.testing.assert_array_equal(got, torch.argmax(torch.from_numpy(x), axis, keepdim=keepdim).numpy())


@covers("topk")
@SETTINGS
@given(seed=seeds, shape=st.lists(small, min_size=1, max_size=4), largest=st.booleans(), sorted_=st.booleans(),
       data_=st.data())
def test_topk(seed, shape, largest, sorted_, data_):
    axis = data_.draw(st.integers(-len(shape), len(shape) - 1))
    k = data_.draw(st.integers(1, shape[axis]))
    x = data(seed, shape)
    values, indices = run_op("topk", [x], {"k": k, "axis": axis, "largest": largest, "sorted": sorted_},
                             n_results=2)
    want_v, want_i = torch.topk(t64(x), k, axis, largest=largest, sorted=True)  # sorted=false: same order
    close(values, want_v.numpy())
    assert indices.dtype == np.int32
    np.testing.assert_array_equal(indices, want_i.numpy())


@covers("topk")
def test_topk_ties_keep_the_lower_index_first():
    x = np.array([[1.0, 3.0, 3.0, 0.0, 3.0, 1.0]], np.float32)
    values, indices = run_op("topk", [x], {"k": 4}, n_results=2)
    assert values.tolist() == [[3, 3, 3, 1]] and indices.tolist() == [[1, 2, 4, 0]]
    values, indices = run_op("topk", [x], {"k": 3, "largest": False}, n_results=2)
    assert values.tolist() == [[0, 1, 1]] and indices.tolist() == [[3, 0, 5]]


# ---- A whole float function --------------------------------------------------------------------


def test_float_function_mixing_float_and_index_ops():
    """conv -> resize -> argmax/gather in one f32 function: float kernels and the type-generic
    index kernels hand f32 data to each other."""
    rng = np.random.default_rng(7)
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    idx = np.array([3, 0, 3], np.int32)
    m = Module("mixed")
    fn = m.add_function("main")
    x = fn.add_argument(TensorType([1, 3, 5, 5], "f32"), "x")
    conv = m.create_op(fn, "conv2d", [x, m.create_constant(fn, wt, name="w").result()], {"padding": [1, 1, 1, 1]})
    up = m.create_op(fn, "resize2d", [conv.result()], {"size": [7, 9], "mode": "bilinear"})
    g = m.create_op(fn, "gather", [up.result(), m.create_constant(fn, idx, name="i").result()], {"axis": 1})
    am = m.create_op(fn, "argmax", [g.result()], {"axis": 1, "keepdim": False})
    fn.returns = [g.result(), am.result()]
    m.verify()
    xv = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    got_g, got_am = Executor(m).run([xv])
    ref = F.interpolate(F.conv2d(t64(xv), t64(wt), padding=1), size=(7, 9), mode="bilinear", align_corners=False)
    ref = ref[:, [3, 0, 3]]
    close(got_g, ref.numpy())
    np.testing.assert_array_equal(got_am, np.argmax(got_g, axis=1))
