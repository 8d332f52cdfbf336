"""The integer reference kernels that move, gather, pool or resize elements against
numerics_oracle.py, bit for bit (docs/numerics.md §4-§5), as test_int_kernels.py does for the
arithmetic ones."""

from __future__ import annotations

import numerics_oracle as ref
import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from int_kernel_cases import SETTINGS, Arg, T, act_dtypes, assert_same, check, int_arrays, run_op, scales

# ---- data movement ---------------------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_concat(data):
    dtype = data.draw(act_dtypes())
    base = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    parts, args, ss = [], [], []
    for _ in range(data.draw(st.integers(1, 3))):
        shape = list(base)
        shape[axis] = data.draw(st.integers(1, 3))
        x = data.draw(int_arrays(shape, dtype))
        s = data.draw(scales(-8, 0))
        parts.append(x)
        ss.append(s)
        args.append(Arg(x, dtype, s))
    sy = data.draw(st.one_of(st.sampled_from(ss), scales(-8, 0)))
    shape = np.concatenate(parts, axis).shape
    check(lambda: ref.concat(parts, ss, sy, axis, dtype), "concat", args, {"axis": axis}, [T(shape, dtype, sy)])


@SETTINGS
@given(st.data())
def test_shape_ops(data):
    dtype = data.draw(act_dtypes())
    shape = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
    x = data.draw(int_arrays(shape, dtype))
    a = Arg(x, dtype, 0.1)
    r = len(shape)
    # split
    axis = data.draw(st.integers(0, r - 1))
    cuts = sorted(data.draw(st.sets(st.integers(1, shape[axis] - 1), max_size=2))) if shape[axis] > 1 else []
    pieces = np.split(x, cuts, axis=axis)
    sizes = [p.shape[axis] for p in pieces]
    got = run_op("split", [a], {"axis": axis, "sizes": sizes}, [T(p.shape, dtype, 0.1) for p in pieces])
    for g, p in zip(got if len(pieces) > 1 else [got], pieces, strict=True):
        assert_same(g, p)
    # slice (numpy semantics, steps >= 1)
    start = data.draw(st.integers(-shape[axis] - 2, shape[axis] - 1))
    end = data.draw(st.integers(-shape[axis], shape[axis] + 2))
    step = data.draw(st.integers(1, 3))
    idx = [slice(None)] * r
    idx[axis] = slice(start, end, step)
    want = x[tuple(idx)]
    if want.size:
        got = run_op("slice", [a], {"axes": [axis], "starts": [start], "ends": [end], "steps": [step]},
                     [T(want.shape, dtype, 0.1)])
        assert_same(got, want)
    # transpose, reshape, flatten
    perm = list(data.draw(st.permutations(range(r))))
    assert_same(run_op("transpose", [a], {"perm": perm}, [T(x.transpose(perm).shape, dtype, 0.1)]), x.transpose(perm))
    assert_same(run_op("reshape", [a], {"shape": [-1]}, [T((x.size,), dtype, 0.1)]), x.reshape(-1))
    flat = x.reshape(*shape[:1], -1)
    assert_same(run_op("flatten", [a], {"start_dim": 1}, [T(flat.shape, dtype, 0.1)]), flat)


@SETTINGS
@given(st.data())
def test_gather(data):
    dtype = data.draw(st.sampled_from(["si8", "si16", "f32"]))
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    axis = data.draw(st.integers(0, len(shape) - 1))
    if dtype == "f32":
        x = np.array(data.draw(st.lists(st.floats(-10, 10, width=32), min_size=int(np.prod(shape)),
                                        max_size=int(np.prod(shape)))), np.float32).reshape(shape)
    else:
        x = data.draw(int_arrays(shape, dtype))
    idx_shape = data.draw(st.lists(st.integers(1, 3), max_size=2))
    idx = data.draw(int_arrays(idx_shape, "si32", -shape[axis], shape[axis] - 1))
    want = ref.gather(x, idx, axis)
    got = run_op("gather", [Arg(x, dtype, None if dtype == "f32" else 0.1), Arg(idx, "si32")], {"axis": axis},
                 [T(want.shape, dtype, None if dtype == "f32" else 0.1)])
    assert_same(got, want)


@SETTINGS
@given(st.data())
def test_point_pillar_scatter(data):
    p, c = data.draw(st.integers(1, 10)), data.draw(st.integers(1, 3))
    grid, batch = [data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))], data.draw(st.integers(1, 2))
    feats = data.draw(int_arrays((p, c), "si8"))
    coords = np.array([[data.draw(st.integers(-1, batch)), 0, data.draw(st.integers(-1, grid[0])),
                        data.draw(st.integers(-1, grid[1]))] for _ in range(p)], np.int32)
    got = run_op("point_pillar_scatter", [Arg(feats, "si8", 0.1), Arg(coords, "si32")], {"grid": grid, "batch": batch},
                 [T((batch, c, *grid), "si8", 0.1)])
    assert_same(got, ref.point_pillar_scatter(feats, coords, grid, batch))


@SETTINGS
@given(st.data())
def test_pad(data):
    dtype = data.draw(act_dtypes())
    shape = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    x = data.draw(int_arrays(shape, dtype))
    mode = data.draw(st.sampled_from(["constant", "edge", "reflect"]))
    r = len(shape)
    limit = [d - 1 if mode == "reflect" else 2 for d in shape]
    pads = [data.draw(st.integers(0, limit[d % r])) for d in range(2 * r)]
    s = data.draw(scales(-8, 0))
    value = data.draw(st.one_of(st.floats(-1e3, 1e3), st.integers(-50, 50).map(lambda k: (k + 0.5) * s)))
    want = ref.pad(x, pads, mode, value, s, dtype)
    got = run_op("pad", [Arg(x, dtype, s)], {"pads": pads, "mode": mode, "value": value}, [T(want.shape, dtype, s)])
    assert_same(got, want)


# ---- pooling ---------------------------------------------------------------------------------------


@st.composite
def pool_case(draw, dilated):
    dtype = draw(act_dtypes())
    n, c, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kernel = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    dil = [draw(st.integers(1, 2)), draw(st.integers(1, 2))] if dilated else [1, 1]
    pad = [draw(st.integers(0, (dil[i % 2] * (kernel[i % 2] - 1) + 1) // 2)) for i in range(4)]
    stride = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    ceil = draw(st.booleans())
    assume(dil[0] * (kernel[0] - 1) + 1 <= h + pad[0] + pad[2] and dil[1] * (kernel[1] - 1) + 1 <= w + pad[1] + pad[3])
    x = draw(int_arrays((n, c, h, w), dtype))
    return x, dtype, kernel, stride, pad, dil, ceil


@SETTINGS
@given(pool_case(True))
def test_max_pool2d(case):
    x, dtype, kernel, stride, pad, dil, ceil = case
    oh, ow = ref._windows(x.shape[2], x.shape[3], kernel, stride, pad, dil, ceil)
    assume(oh > 0 and ow > 0)
    want = ref.max_pool2d(x, kernel, stride, pad, dil, ceil)
    got = run_op("max_pool2d", [Arg(x, dtype, 0.1)], {"kernel": kernel, "stride": stride, "padding": pad,
                                                       "dilation": dil, "ceil_mode": ceil}, [T(want.shape, dtype, 0.1)])
    assert_same(got, want)


@SETTINGS
@given(pool_case(False), st.booleans(), scales(-8, 0), scales(-8, 0))
def test_avg_pool2d(case, include_pad, s_in, s_out):
    x, dtype, kernel, stride, pad, _, ceil = case
    oh, ow = ref._windows(x.shape[2], x.shape[3], kernel, stride, pad, (1, 1), ceil)
    assume(oh > 0 and ow > 0)
    check(lambda: ref.avg_pool2d(x, s_in, s_out, dtype, kernel, stride, pad, ceil, include_pad), "avg_pool2d",
          [Arg(x, dtype, s_in)], {"kernel": kernel, "stride": stride, "padding": pad, "ceil_mode": ceil,
                                  "count_include_pad": include_pad}, [T((*x.shape[:2], oh, ow), dtype, s_out)])


@SETTINGS
@given(st.data())
def test_global_avg_pool2d(data):
    dtype = data.draw(act_dtypes())
    x = data.draw(int_arrays((1, data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5)),
                              data.draw(st.integers(1, 5))), dtype))
    s_in, s_out = data.draw(scales()), data.draw(scales())
    check(lambda: ref.global_avg_pool2d(x, s_in, s_out, dtype), "global_avg_pool2d", [Arg(x, dtype, s_in)], {},
          [T((*x.shape[:2], 1, 1), dtype, s_out)])


# ---- resize, grid_sample ---------------------------------------------------------------------------


@SETTINGS
@given(st.data())
def test_grid_sample(data):
    dtype, grid_dtype = data.draw(act_dtypes()), data.draw(act_dtypes())
    n, c = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    h, w = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    x = data.draw(int_arrays((n, c, h, w), dtype))
    grid = data.draw(int_arrays((n, data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)), 2), grid_dtype))
    align = data.draw(st.booleans())
    s_in, s_out = data.draw(scales(-8, 0)), data.draw(scales(-8, 0))
    # grid steps that reach [-1, 1] and somewhat beyond (zero padding) at either width
    s_grid = data.draw(st.sampled_from([1 / 100, 1 / 64, 1 / 20000, 1 / 16384]))
    check(lambda: ref.grid_sample(x, grid, align, s_in, s_grid, s_out, dtype), "grid_sample",
          [Arg(x, dtype, s_in), Arg(grid, grid_dtype, s_grid)], {"align_corners": align},
          [T((n, c, grid.shape[1], grid.shape[2]), dtype, s_out)])


@SETTINGS
@given(st.data())
def test_resize2d(data):
    dtype = data.draw(act_dtypes())
    x = data.draw(int_arrays((1, data.draw(st.integers(1, 2)), data.draw(st.integers(1, 5)),
                              data.draw(st.integers(1, 5))), dtype))
    size = [data.draw(st.integers(1, 9)), data.draw(st.integers(1, 9))]
    mode = data.draw(st.sampled_from(["nearest", "bilinear"]))
    cmode = data.draw(st.sampled_from(["half_pixel", "align_corners", "asymmetric"]))
    s_in = data.draw(scales(-8, 0))
    s_out = s_in if mode == "nearest" else data.draw(st.one_of(st.just(s_in), scales(-8, 0)))
    check(lambda: ref.resize2d(x, size, mode, cmode, s_in, s_out, dtype), "resize2d", [Arg(x, dtype, s_in)],
          {"size": size, "mode": mode, "coordinate_mode": cmode}, [T((*x.shape[:2], *size), dtype, s_out)])
