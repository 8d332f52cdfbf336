"""HBIR -> ONNX: float exports run in onnxruntime like torch and like the float executor (max abs
error <= 1e-4); quantized exports are QDQ graphs that onnxruntime runs close to the bit-exact
integer executor (lookup tables exactly); bad requests get one clear error."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
nn = torch.nn
F = torch.nn.functional

import hbdk_sim  # noqa: E402
from hbdk_sim import _core  # noqa: E402
from hbdk_sim.frontend import trace_float  # noqa: E402
from hbdk_sim.onnx_export import (  # noqa: E402
    INT16_QDQ_OPSET,
    export_module,
    hbir_to_onnx,
    nearest_indices,
    onnxruntime_session,
    save_onnx,
)

EXAMPLE = Path(hbdk_sim.__file__).parent / "examples" / "mobilenet_v1_tiny.hbir"
INTEGER_PASSES = ["canonicalize", "fold-bn", "constant-fold", "canonicalize", "quantize", "canonicalize"]
TOL = 1e-4


def _run_onnx(proto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    return onnxruntime_session(proto).run(None, inputs)


def _check_torch(model, *inputs, tol=TOL):
    """Trace, export, run in onnxruntime and compare with torch; returns (module, proto)."""
    module = trace_float(model, inputs)
    proto = hbir_to_onnx(module)
    names = [a.name for a in module.function("main").arguments]
    assert [i.name for i in proto.graph.input] == names
    got = _run_onnx(proto, {n: t.numpy() for n, t in zip(names, inputs, strict=True)})
    with torch.no_grad():
        want = model(*inputs)
    want = list(want) if isinstance(want, (tuple, list)) else [want]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == tuple(w.shape)
        assert np.abs(g - w.numpy()).max() <= tol
    return module, proto


def _randomize_bn(model):
    g = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


class Mix(nn.Module):
    """Every layer kind of a perception net: stem, depthwise block, pools, both upsampling modes,
    a skip concat, a residual add, pad, transpose/reshape and two heads."""

    def __init__(self, align_corners: bool):
        super().__init__()
        self.align_corners = align_corners
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
                                nn.Conv2d(8, 8, 1))
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(3, 1, 1)
        self.fuse = nn.Conv2d(24, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4, 6)

    def forward(self, x):
        x = self.stem(x)
        skip = x + self.dw(x)
        deep = self.avg(self.pool(skip))
        near = F.interpolate(deep, scale_factor=2, mode="nearest")
        bil = F.interpolate(deep, scale_factor=2, mode="bilinear", align_corners=self.align_corners)
        y = torch.sigmoid(self.fuse(torch.cat([skip, near, bil], dim=1)))
        y = F.pad(y, (1, 0, 0, 1))  # 9x9: asymmetric
        y = F.adaptive_avg_pool2d(y, 1).flatten(1)  # [1, 8]
        t = x.mean((2, 3), keepdim=True).permute(0, 2, 3, 1).reshape(1, 8)
        z = torch.cat([y, t, y * t, y - t], dim=1)
        return torch.softmax(self.fc(z), dim=-1), y


@pytest.mark.parametrize("align_corners", [False, True])
def test_mixed_float_model_matches_torch(align_corners):
    torch.manual_seed(0)
    model = _randomize_bn(Mix(align_corners)).eval()
    module, proto = _check_torch(model, torch.randn(1, 3, 16, 16))
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "BatchNormalization", "Clip", "MaxPool", "AveragePool", "Resize", "Concat", "Add", "Sigmoid",
            "Pad", "GlobalAveragePool", "Transpose", "Reshape", "Gemm", "Softmax", "Mul", "Sub"} <= ops
    assert [o.name for o in proto.graph.output] == [v.name for v in module.function("main").returns]
    # every node names the torch module it came from
    conv_nodes = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert sorted(n.name for n in conv_nodes) == ["dw.0/Conv", "dw.3/Conv", "fuse/Conv", "stem.0/Conv"]
    assert all('loc("' in n.doc_string for n in proto.graph.node)


class Lambda(nn.Module):
    def __init__(self, fn, *modules):
        super().__init__()
        self.fn = fn
        self.mods = nn.ModuleList(modules)

    def forward(self, x):
        return self.fn(x, *self.mods)


PER_OP = {
    "conv_groups_dilation": (Lambda(lambda x, c: c(x), nn.Conv2d(4, 8, 3, 2, 2, dilation=2, groups=2)), (1, 4, 9, 9)),
    "conv_same_even_kernel": (Lambda(lambda x, c: c(x), nn.Conv2d(4, 4, 4, padding="same")), (1, 4, 7, 7)),
    "conv_transpose": (Lambda(lambda x, c: c(x), nn.ConvTranspose2d(4, 6, 3, 2, 1, output_padding=1, groups=2)),
                       (1, 4, 5, 5)),
    "conv_transpose_dilated": (Lambda(lambda x, c: c(x), nn.ConvTranspose2d(4, 3, 2, 1, 0, dilation=2, bias=False)),
                               (1, 4, 5, 5)),
    "linear_rank3": (Lambda(lambda x, fc: fc(x), nn.Linear(5, 7)), (2, 3, 5)),
    "linear_no_bias": (Lambda(lambda x, fc: fc(x), nn.Linear(5, 7, bias=False)), (3, 5)),
    "leaky_relu": (nn.LeakyReLU(0.2), (2, 9)),
    "tanh_exp": (Lambda(lambda x: torch.tanh(x) + torch.exp(x)), (2, 9)),
    "clamp": (Lambda(lambda x: torch.clamp(x, -0.5, 0.25) + F.hardtanh(x)), (2, 9)),
    "layer_norm": (nn.LayerNorm(9), (2, 3, 9)),
    "lut_activations": (Lambda(lambda x: F.silu(x) + F.hardswish(x) * 2 + F.hardsigmoid(x) * 3 + F.gelu(x) * 4),
                        (2, 3, 9)),
    "max_pool_ceil": (nn.MaxPool2d(3, 2, 1, dilation=1, ceil_mode=True), (1, 2, 8, 8)),
    "max_pool_dilated": (nn.MaxPool2d(3, 2, 1, dilation=2), (1, 2, 9, 9)),
    "avg_pool_ceil_pad": (nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=True), (1, 2, 8, 8)),
    "avg_pool_ceil_nopad": (nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), (1, 2, 8, 8)),
    "avg_pool_rect": (nn.AvgPool2d((2, 3), (2, 1), (1, 0)), (1, 2, 7, 6)),
    "nearest_fractional": (Lambda(lambda x: F.interpolate(x, size=(5, 11), mode="nearest")), (1, 2, 14, 7)),
    "bilinear_fractional": (Lambda(lambda x: F.interpolate(x, size=(5, 11), mode="bilinear")), (1, 2, 14, 7)),
    "bilinear_corners_fractional": (
        Lambda(lambda x: F.interpolate(x, size=(9, 4), mode="bilinear", align_corners=True)), (1, 2, 4, 7)),
    "pad_modes": (Lambda(lambda x: F.pad(x, (1, 2, 2, 0), mode="reflect") + F.pad(x, (1, 2, 2, 0), mode="replicate")
                         + F.pad(x, (1, 2, 2, 0), value=0.5)), (1, 2, 5, 5)),
    "softmax_channels": (nn.Softmax(dim=1), (1, 5, 3, 3)),
    "div_scalar": (Lambda(lambda x: x / 4.0 - 1.0), (2, 3)),
    "transpose_flatten": (Lambda(lambda x: x.transpose(1, 3).flatten(1, 2)), (1, 2, 3, 4)),
}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("name", sorted(PER_OP))
def test_float_op_matches_torch(name):
    torch.manual_seed(1)
    model, shape = PER_OP[name]
    _check_torch(model.eval(), torch.randn(*shape))


def _module(build) -> _core.Module:
    """A one-function module: `build(module, fn)` returns the values to return."""
    module = _core.Module("ops")
    fn = module.add_function("main")
    fn.returns = build(module, fn)
    module.verify()
    return module


def _check_executor(module, inputs: list[np.ndarray], tol=TOL):
    want = _core.Executor(module, "main").run(inputs)
    proto = hbir_to_onnx(module)
    got = _run_onnx(proto, {a.name: x for a, x in zip(module.function("main").arguments, inputs, strict=True)})
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert np.abs(g.astype(np.float64) - w).max() <= tol
    return proto


def test_ops_the_tracer_does_not_emit_match_the_executor():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 6)).astype(np.float32)
    b = rng.standard_normal((1, 3, 6, 5)).astype(np.float32)

    def build(m, fn):
        xa = fn.add_argument(_core.TensorType([2, 3, 4, 6], "f32"), "x")
        ba = fn.add_argument(_core.TensorType([1, 3, 6, 5], "f32"), "b")
        mm = m.create_op(fn, "matmul", [xa, ba], names=["mm"], loc="head.matmul").result()
        parts = m.create_op(fn, "split", [xa], {"axis": 3, "sizes": [2, 4]}, names=["p0", "p1"]).results
        sl = m.create_op(fn, "slice", [xa], {"axes": [2, 3], "starts": [-3, 0], "ends": [4, 100], "steps": [1, 2]},
                         names=["sl"]).result()
        idx = m.create_constant(fn, np.array([[2, -1], [0, 0]], np.int32), name="idx").result()
        ga = m.create_op(fn, "gather", [xa, idx], {"axis": 3}, names=["ga"]).result()
        am = m.create_op(fn, "argmax", [xa], {"axis": 3, "keepdim": False}, names=["am"]).result()
        tv, ti = m.create_op(fn, "topk", [xa], {"k": 3, "axis": 1, "largest": False}, names=["tv", "ti"]).results
        up = m.create_op(fn, "resize2d", [xa], {"size": [8, 5], "mode": "nearest", "coordinate_mode": "half_pixel"},
                         names=["up"]).result()
        return [mm, *parts, sl, ga, am, tv, ti, up, xa]

    proto = _check_executor(_module(build), [x, b])
    assert [o.name for o in proto.graph.output][:9] == ["mm", "p0", "p1", "sl", "ga", "am", "tv", "ti", "up"]
    assert [n.name for n in proto.graph.node if n.op_type == "MatMul"] == ["head.matmul/MatMul"]


@pytest.mark.parametrize("mode", ["asymmetric", "half_pixel", "align_corners"])
def test_nearest_resize_picks_the_rows_of_numerics_section_6(mode):
    # 28 -> 4 is where a float32 o / (out / in) lands below an integer; whole-factor upsampling is
    # a Resize node, other sizes gather the rows numerics.md §6 picks.
    for size_in, size_out in [(28, 4), (14, 2), (7, 21), (5, 3), (3, 8), (1, 4)]:
        module = _module(lambda m, fn, i=size_in, o=size_out: [m.create_op(
            fn, "resize2d", [fn.add_argument(_core.TensorType([1, 1, i, 2], "f32"), "x")],
            {"size": [o, 2], "mode": "nearest", "coordinate_mode": mode}, names=["y"]).result()])
        x = np.arange(size_in * 2, dtype=np.float32).reshape(1, 1, size_in, 2)
        proto = _check_executor(module, [x], tol=0)
        has_resize = any(n.op_type == "Resize" for n in proto.graph.node)
        assert has_resize == (size_out % size_in == 0)
    assert nearest_indices(28, 4, "asymmetric").tolist() == [0, 7, 14, 21]
    assert nearest_indices(5, 3, "half_pixel").tolist() == [0, 2, 4]
    assert nearest_indices(3, 5, "align_corners").tolist() == [0, 1, 1, 2, 2]


@pytest.mark.parametrize("align_corners", [True, False])
def test_grid_sample_is_onnx_grid_sample(align_corners):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    grid = (1.3 * rng.uniform(-1, 1, (2, 4, 6, 2))).astype(np.float32)  # some samples fall outside: zeros

    def build(m, fn):
        xa = fn.add_argument(_core.TensorType([2, 3, 5, 7], "f32"), "x")
        ga = fn.add_argument(_core.TensorType([2, 4, 6, 2], "f32"), "grid")
        return [m.create_op(fn, "grid_sample", [xa, ga], {"align_corners": align_corners}, names=["y"]).result()]

    proto = _check_executor(_module(build), [x, grid])
    assert [n.op_type for n in proto.graph.node] == ["GridSample"]


POOLS = [  # (op, kernel, stride, padding [top, left, bottom, right], ceil_mode, count_include_pad, H, W)
    ("max_pool2d", [3, 3], [2, 2], [1, 0, 0, 1], True, None, 8, 7),
    ("max_pool2d", [2, 3], [2, 2], [1, 1, 0, 0], True, None, 8, 8),
    ("max_pool2d", [3, 2], [3, 2], [0, 1, 1, 0], False, None, 8, 9),
    ("avg_pool2d", [3, 3], [2, 2], [1, 0, 0, 1], True, True, 8, 7),
    ("avg_pool2d", [3, 3], [2, 2], [0, 1, 1, 1], True, False, 8, 8),
    ("avg_pool2d", [2, 3], [2, 1], [1, 1, 0, 0], True, True, 7, 8),
    ("avg_pool2d", [3, 2], [3, 2], [1, 0, 1, 1], True, False, 5, 9),
    ("max_pool2d", [2, 2], [2, 2], [1, 1, 1, 1], True, None, 5, 5),  # ceil's last window would start in padding
]


@pytest.mark.parametrize("pool", POOLS, ids=lambda p: f"{p[0]}-{p[1]}-{p[3]}-ceil{p[4]}-cip{p[5]}")
def test_pooling_with_asymmetric_padding_matches_the_executor(pool):
    op, kernel, stride, padding, ceil_mode, count_include_pad, h, w = pool
    attrs = {"kernel": kernel, "stride": stride, "padding": padding, "ceil_mode": ceil_mode}
    if count_include_pad is not None:
        attrs["count_include_pad"] = count_include_pad
    module = _module(lambda m, fn: [m.create_op(fn, op, [fn.add_argument(_core.TensorType([1, 2, h, w], "f32"), "x")],
                                                attrs, names=["y"]).result()])
    x = np.random.default_rng(4).standard_normal((1, 2, h, w)).astype(np.float32)
    proto = _check_executor(module, [x], tol=1e-6)
    (node,) = [n for n in proto.graph.node if n.op_type in ("MaxPool", "AveragePool")]
    onnx_ceil = next(a.i for a in node.attribute if a.name == "ceil_mode")
    # Where ceil mode adds a window, only an average counting padding keeps ceil_mode; the others
    # give the same windows in floor mode with more end padding.
    floor_hw = [(size + padding[a] + padding[a + 2] - kernel[a]) // stride[a] + 1 for a, size in enumerate((h, w))]
    adds_window = list(module.function("main").returns[0].shape[2:]) != floor_hw
    assert adds_window == (pool in POOLS[:2] + POOLS[3:5])
    assert onnx_ceil == int(adds_window and bool(count_include_pad))


def test_example_mobilenet_matches_float_executor():
    module = hbdk_sim.load(EXAMPLE)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    proto = _check_executor(module, [x])
    assert [i.name for i in proto.graph.input] == ["input"]
    assert sum(n.op_type == "Conv" for n in proto.graph.node) == 13


# -- quantized graphs -----------------------------------------------------------------------------------


def _quantize(model, inputs, samples, int16_ops=()):
    """Calibrated and quantized; results of the op kinds in `int16_ops` become si16."""
    module = trace_float(model, inputs)
    wide = [r.name for op in module.function("main").ops if op.name in int16_ops for r in op.results]
    hbdk_sim.calibrate(module, [[s.numpy()] for s in samples], int16_values=wide)
    module.run_pipeline(INTEGER_PASSES)
    return module


def _compare_integer(module, x: np.ndarray):
    """(ONNX outputs, executor outputs, output scales) of an integer module on one input."""
    fn = module.function("main")
    scales = [v.owner.operands[0].type.scales[0] for v in fn.returns]
    want = _core.Executor(module, "main").run([x])
    got = _run_onnx(hbir_to_onnx(module), {fn.arguments[0].name: x})
    return got, want, scales


def _cosine(a, b) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_quantized_mixed_model_runs_as_qdq_close_to_the_executor():
    torch.manual_seed(0)
    model = _randomize_bn(Mix(False)).eval()
    samples = [torch.randn(1, 3, 16, 16) for _ in range(4)]
    module = _quantize(model, samples[:1], samples)
    proto = hbir_to_onnx(module)
    kinds = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gather"} <= kinds
    assert proto.opset_import[0].version == 17
    weight_dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == "stem.0.weight"]
    assert len(weight_dq) == 1 and weight_dq[0].attribute[0].name == "axis" and weight_dq[0].attribute[0].i == 0
    inits = {i.name: i for i in proto.graph.initializer}
    assert inits["stem.0.weight"].data_type == onnx.TensorProto.INT8
    assert inits["fuse.bias"].data_type == onnx.TensorProto.INT32
    got, want, scales = _compare_integer(module, samples[0].numpy())
    for g, w, s in zip(got, want, scales, strict=True):
        steps = np.abs(g - w) / s
        assert np.mean(steps <= 1.01) >= 0.99 and steps.max() <= 2.01
        assert _cosine(g, w) >= 0.99


def test_quantized_example_mobilenet_runs_as_qdq_close_to_the_executor():
    module = hbdk_sim.load(EXAMPLE)
    rng = np.random.default_rng(1)
    samples = [rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32) for _ in range(3)]
    hbdk_sim.calibrate(module, [[x] for x in samples])
    module.run_pipeline(INTEGER_PASSES)
    proto = hbir_to_onnx(module)
    assert sum(n.op_type == "Conv" for n in proto.graph.node) == 13
    assert sum(n.op_type == "QuantizeLinear" for n in proto.graph.node) >= 14
    for x in [*samples, rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)]:
        (got,), (want,), (scale,) = _compare_integer(module, x)
        steps = np.abs(got - want) / scale
        assert np.mean(steps <= 1.01) >= 0.99 and steps.max() <= 2.01 and _cosine(got, want) >= 0.99


def test_quantized_lut_is_exact_for_si8_and_si16():
    model = Lambda(lambda x: torch.sigmoid(x) * 2 + torch.tanh(x * 3))
    x = torch.linspace(-6, 6, 64).reshape(1, 64)
    module = _quantize(model, (x,), [x], int16_ops={"sigmoid", "tanh", "mul"})
    luts = [op for op in module.function("main").ops if op.name == "lut"]
    assert sorted(op.result().dtype for op in luts) == ["si16", "si16"]
    assert sorted(op.operands[0].dtype for op in luts) == ["si16", "si8"]
    proto = hbir_to_onnx(module)
    assert proto.opset_import[0].version == INT16_QDQ_OPSET
    # return the lut results themselves: the ONNX integer arithmetic must equal the executor's
    fn = module.function("main")
    fn.returns = [op.result() for op in luts]
    module.verify()
    want = _core.Executor(module, "main").run([x.numpy()])
    got = _run_onnx(hbir_to_onnx(module), {fn.arguments[0].name: x.numpy()})
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.int16
        np.testing.assert_array_equal(g, w)


def test_quantized_si16_activations_run_in_onnxruntime():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Softmax(dim=1)).eval()
    samples = [torch.randn(1, 3, 8, 8) for _ in range(3)]
    module = _quantize(model, samples[:1], samples, int16_ops={"relu", "conv2d"})
    dtypes = {r.dtype for op in module.function("main").ops for r in op.results}
    assert "si16" in dtypes
    proto = hbir_to_onnx(module)
    q16 = [n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[2].startswith("zero_point_si16")]
    assert q16
    got, want, scales = _compare_integer(module, samples[0].numpy())
    steps = np.abs(got[0] - want[0]) / scales[0]
    assert steps.max() <= 2.01 and _cosine(got[0], want[0]) >= 0.999


# -- errors and files ---------------------------------------------------------------------------------


def test_unsupported_op_names_op_and_loc():
    def build(m, fn):
        feats = fn.add_argument(_core.TensorType([3, 4], "f32"), "feats")
        coords = fn.add_argument(_core.TensorType([3, 4], "si32"), "coords")
        return [m.create_op(fn, "point_pillar_scatter", [feats, coords], {"grid": [4, 4]}, loc="pfn.scatter",
                            names=["bev"]).result()]

    with pytest.raises(ValueError, match=r"'point_pillar_scatter' op \(loc\(\"pfn.scatter\"\)\) %bev: has no ONNX"):
        hbir_to_onnx(_module(build))


def test_si16_needs_opset_21():
    x = torch.linspace(-1, 1, 16).reshape(1, 16)
    module = _quantize(nn.Sigmoid(), (x,), [x])
    assert hbir_to_onnx(module, opset=13).opset_import[0].version == 13  # si8 only: any opset from 13
    module16 = _quantize(nn.Sequential(nn.Linear(16, 4), nn.Sigmoid()), (x,), [x], int16_ops={"linear"})
    with pytest.raises(ValueError, match="si16 values.*opset >= 21 but opset 17"):
        hbir_to_onnx(module16, opset=17)


def test_save_refuses_to_overwrite(tmp_path):
    module = hbdk_sim.load(EXAMPLE)
    path = tmp_path / "model.onnx"
    export_module(module, path)
    first = path.read_bytes()
    assert onnx.load(str(path)).graph.name == "mobilenet_v1_tiny"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_onnx(hbir_to_onnx(module), path)
    assert path.read_bytes() == first
    save_onnx(hbir_to_onnx(module), path, overwrite=True)
    assert list(tmp_path.iterdir()) == [path]


def test_a_constant_read_twice_opens_in_onnxruntime(tmp_path):
    """hardswish written by hand twice: the merged `+ 3` and `/ 6` constants each feed two nodes;
    onnxruntime's s8->u8 QDQ pass used to refuse the export ("Attempt to replace the existing
    tensor")."""
    from hbdk_sim.onnx_export import onnxruntime_session
    from hbdk_sim.quantization import prepare_qat_fx, set_fake_quant_state

    class HandHardswish(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.d = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 1)

        def forward(self, x):
            y = self.c(x)
            z = self.d(y * F.relu6(y + 3) / 6)
            return z * F.relu6(z + 3) / 6

    torch.manual_seed(0)
    x = torch.randn(1, 3, 8, 8)
    prepared = prepare_qat_fx(HandHardswish().eval(), (x,))
    prepared(x)
    set_fake_quant_state(prepared, "validation")
    path = tmp_path / "hand_hardswish.onnx"
    hbdk_sim.export_onnx(prepared, (x,), path)
    session = onnxruntime_session(path)
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert got.shape == (1, 4, 8, 8)


def test_layer_norm_over_channels_matches_the_executor():
    """layer_norm on axis 1 of NCHW: ONNX normalizes from its axis to the end, so the export moves
    the axis last and back."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 5, 3, 4)) * 3).astype(np.float32)

    def build(m, fn):
        xa = fn.add_argument(_core.TensorType([2, 5, 3, 4], "f32"), "x")
        gamma = m.create_constant(fn, rng.uniform(0.5, 1.5, 5).astype(np.float32), name="gamma").result()
        beta = m.create_constant(fn, rng.uniform(-1, 1, 5).astype(np.float32), name="beta").result()
        return [m.create_op(fn, "layer_norm", [xa, gamma, beta], {"axis": 1, "eps": 1e-5}, []).result()]

    proto = _check_executor(_module(build), [x], tol=1e-4)
    assert [n.op_type for n in proto.graph.node] == ["Transpose", "LayerNormalization", "Transpose"]
