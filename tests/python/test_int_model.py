"""The quantized torch model (IntModel) against the C++ executor, bit for bit: every value of the
integer graph that `quantize_module` produces (integer tensors equal, dequantized outputs equal as
floats), per op kind, at si8 and si16, at rounding ties and saturation, on random graphs, at batch
sizes other than the traced one, and on a traced MobileNet-style torch model.
"""

from __future__ import annotations

import hbdk_sim
import numpy as np
import pytest
import torch
import torch.nn as nn
from hbdk_sim import Module, TensorType, _core
from hbdk_sim.frontend.torch_tracer import trace_float
from hbdk_sim.quantization.int_model import (
    AFTER_QUANTIZE_PASSES,
    QUANTIZE_PASSES,
    IntModel,
    quantize_module,
)
from hbdk_sim.quantization.int_ops import SUPPORTED_OPS, apply_requant
from hypothesis import HealthCheck, given, settings
from numerics_oracle import softmax_exp_table
from test_random_graphs import _layers_of_every_kind, build, graph_recipe


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tensors here are tiny: on a busy machine, fanning each op out to worker threads costs
    far more (tenths of a second per conv) than it saves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- helpers -----------------------------------------------------------------------------------------


def assert_matches_executor(module: _core.Module, inputs: list[np.ndarray], model: IntModel | None = None) -> dict:
    """Every value IntModel computes equals the executor's (dtype, shape and bits); returns the
    executor's values."""
    model = model or IntModel.from_hbir(module)
    expected = _core.Executor(module, "main").run_all(inputs)
    got = model.forward_all(*[torch.from_numpy(x) for x in inputs])
    assert set(got) <= set(expected), set(got) - set(expected)
    fn = module.function("main")
    ops = [op for op in fn.ops if op.name != "constant"]
    assert len(got) == len(fn.arguments) + sum(len(op.results) for op in ops)
    for key, value in got.items():
        want = expected[key]
        have = value.numpy()
        assert have.dtype == want.dtype and have.shape == want.shape, (key, have.dtype, want.dtype, have.shape)
        if have.tobytes() != want.tobytes():  # bit for bit: NaN payloads and signed zeros included
            diff = np.argwhere(have != want)[0]
            raise AssertionError(f"value '{key}' differs at {diff.tolist()}: {have[tuple(diff)]} vs "
                                 f"{want[tuple(diff)]}")
    outputs = model(*[torch.from_numpy(x) for x in inputs])
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    for out, want in zip(outputs, _core.Executor(module, "main").run(inputs), strict=True):
        assert out.numpy().tobytes() == want.tobytes()
    return expected


class Graph:
    """A float graph built op by op (the Python builder API), calibrated and quantized."""

    def __init__(self, *shapes: list[int], seed: int = 0) -> None:
        self.module = Module("t")
        self.fn = self.module.add_function("main")
        self.rng = np.random.default_rng(seed)
        self.args = [self.fn.add_argument(TensorType(list(s), "f32"), f"x{i}") for i, s in enumerate(shapes)]
        self.count = 0

    def const(self, data: np.ndarray):
        self.count += 1
        data = data if data.dtype.kind in "iub" else data.astype(np.float32)
        return self.module.create_constant(self.fn, data, name=f"c{self.count}").result()

    def op(self, kind: str, operands: list, **attrs):
        self.count += 1
        op = self.module.create_op(self.fn, kind, operands, attrs, loc=f"layer{self.count}.{kind}",
                                   names=[f"t{self.count}_{i}" for i in range(4)])
        return op.result() if len(op.results) == 1 else op.results

    def conv(self, x, cout: int, kernel: int = 3, **attrs):
        cin = x.shape[1] // attrs.get("groups", 1)
        w = self.rng.standard_normal((cout, cin, kernel, kernel)).astype(np.float32) / np.sqrt(cin * kernel**2)
        pad = kernel // 2
        return self.op("conv2d", [x, self.const(w), self.const(self.rng.normal(0, 0.1, cout).astype(np.float32))],
                       padding=[pad] * 4, **attrs)

    def samples(self, n: int = 4) -> list[list[np.ndarray]]:
        return [[self.rng.uniform(-1, 1, a.shape).astype(np.float32) for a in self.args] for _ in range(n)]

    def quantized(self, outputs, int16: tuple[str, ...] = ()) -> tuple[_core.Module, list[np.ndarray]]:
        self.fn.returns = list(outputs)
        self.module.verify()
        samples = self.samples()
        hbdk_sim.calibrate(self.module, samples, int16_values=[v.name for v in int16])
        return quantize_module(self.module), samples[-1]


def run_graph(body, *shapes, int16: bool = False, seed: int = 0) -> _core.Module:
    """Build `body(g, *args) -> [outputs]`, calibrate (every op result si16 when asked), quantize
    and compare."""
    g = Graph(*shapes, seed=seed)
    outs = body(g, *g.args)
    wide = [r for op in g.fn.ops if op.name != "constant" for r in op.results if r.dtype == "f32"] if int16 else []
    q, x = g.quantized(outs, int16=tuple(wide))
    assert ("xsi16" in q.print()) == int16
    assert_matches_executor(q, x)
    return q


def op_names(module: _core.Module) -> set[str]:
    return {op.name for op in module.function("main").ops}


# ---- the pipeline ----------------------------------------------------------------------------------


def test_quantize_passes_are_the_compile_prefix():
    compile_passes = next(p["passes"] for p in _core.pipelines() if p["name"] == "compile")
    assert QUANTIZE_PASSES == ["canonicalize", "fold-bn", "constant-fold", "canonicalize", "quantize", "canonicalize"]
    assert compile_passes == QUANTIZE_PASSES + AFTER_QUANTIZE_PASSES


def test_quantize_module_leaves_the_float_module_alone():
    g = Graph([1, 3, 6, 6])
    y = g.op("relu", [g.conv(g.args[0], 4)])
    g.fn.returns = [y]
    hbdk_sim.calibrate(g.module, g.samples())
    before = g.module.print()
    q = quantize_module(g.module)
    assert g.module.print() == before
    assert {"quantize", "conv2d", "requantize", "relu", "dequantize"} <= op_names(q)


def test_apply_requant_is_exact_beyond_int64_products():
    """x * M reaches 2^66 here (2^35 * 2^31): the split form equals the 128-bit C++ rule."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.integers(-(2**35), 2**35, 2000), rng.integers(-(2**16), 2**16, 2000),
                        [0, 1, -1, 2**35 - 1, -(2**35), 2**53, -(2**53)]]).astype(np.int64)
    for shift in range(63):
        for multiplier in (0, 1, 2**30, 2**31 - 1, int(rng.integers(2**30, 2**31))):
            want = _core.apply_requant(x, multiplier, shift)
            got = apply_requant(torch.from_numpy(x), torch.tensor(multiplier), torch.tensor(shift))
            assert np.array_equal(got.numpy(), want), (shift, multiplier)


# ---- each op kind ----------------------------------------------------------------------------------


@pytest.mark.parametrize("si16", [[], [1]], ids=["si8", "si16"])
@pytest.mark.parametrize(
    "layer",
    _layers_of_every_kind(),
    ids=lambda r: "-".join(str(r[k]) for k in ("kind", "fn", "mode", "kernel", "max", "identity") if k in r),
)
def test_every_layer_kind_of_the_random_graphs(layer, si16):
    first = {"kind": "conv", "kernel": 3, "stride": 1, "depthwise": False, "cout": 4, "dilation": 1, "bias": True,
             "bn": False}
    module, wide = build({"shape": (3, 6, 5), "seed": 5, "layers": [first, layer], "si16": si16})
    rng = np.random.default_rng(2)
    samples = [[rng.uniform(-1, 1, (1, 3, 6, 5)).astype(np.float32)] for _ in range(4)]
    hbdk_sim.calibrate(module, samples, int16_values=wide)
    assert_matches_executor(quantize_module(module), samples[-1])


WIDTHS = pytest.mark.parametrize("int16", [False, True], ids=["si8", "si16"])


@WIDTHS
def test_conv_transpose2d(int16):
    def body(g, x):
        w = g.rng.standard_normal((4, 3, 3, 3)).astype(np.float32) / 6  # [Cin, Cout/groups, kh, kw], groups 2
        y = g.op("conv_transpose2d", [x, g.const(w), g.const(np.full(6, 0.1, np.float32))], stride=[2, 2],
                 padding=[1, 0, 2, 1], output_padding=[1, 1], dilation=[1, 2], groups=2)
        return [y]

    q = run_graph(body, [1, 4, 5, 6], int16=int16)
    assert "conv_transpose2d" in op_names(q)


@WIDTHS
def test_matmul_linear_sub_and_flatten(int16):
    def body(g, x):
        a = g.op("reshape", [x], shape=[1, 4, 12])
        b = g.op("transpose", [a], perm=[0, 2, 1])
        prod = g.op("matmul", [a, b])  # [1, 4, 4]
        flat = g.op("flatten", [prod], start_dim=1, end_dim=-1)
        w = g.rng.standard_normal((5, 16)).astype(np.float32) / 4
        lin = g.op("linear", [flat, g.const(w), g.const(np.zeros(5, np.float32))])
        return [g.op("sub", [lin, g.op("relu", [lin])])]

    q = run_graph(body, [1, 4, 3, 4], int16=int16)
    assert {"matmul", "linear", "sub", "flatten"} <= op_names(q)


@WIDTHS
def test_exp_split_slice_and_concat_of_mixed_widths(int16):
    def body(g, x):
        e = g.op("exp", [g.conv(x, 6)])
        p, r = g.op("split", [e], axis=1, sizes=[2, 4])
        s = g.op("slice", [r], axes=[2, 3], starts=[1, -5], ends=[6, 100], steps=[2, 3])
        c = g.op("concat", [g.op("slice", [p], axes=[2, 3], starts=[0, 0], ends=[3, 2]), s], axis=1)
        return [c]

    q = run_graph(body, [1, 3, 6, 7], int16=int16)
    assert {"lut", "split", "slice", "concat"} <= op_names(q)


@WIDTHS
def test_pools_and_pads(int16):
    def body(g, x):
        y = g.conv(x, 3)
        a = g.op("avg_pool2d", [y], kernel=[3, 2], stride=[2, 2], padding=[1, 1, 1, 0], ceil_mode=True,
                 count_include_pad=True)
        b = g.op("avg_pool2d", [y], kernel=[3, 3], stride=[2, 1], padding=[1, 1, 1, 1], count_include_pad=False)
        m = g.op("max_pool2d", [y], kernel=[3, 3], stride=[2, 2], padding=[1, 1, 1, 1], dilation=[2, 2],
                 ceil_mode=True)
        r = g.op("pad", [y], pads=[0, 0, 2, 1, 0, 0, 1, 3], mode="reflect")
        c = g.op("pad", [g.op("relu", [y])], pads=[0, 0, 1, 1, 0, 0, 1, 1], mode="constant", value=-2.5)
        return [a, b, m, r, c, g.op("global_avg_pool2d", [y])]

    q = run_graph(body, [1, 3, 7, 6], int16=int16)
    assert {"avg_pool2d", "max_pool2d", "pad", "global_avg_pool2d"} <= op_names(q)


@WIDTHS
@pytest.mark.parametrize("coordinate_mode", ["half_pixel", "align_corners", "asymmetric"])
def test_resize_modes_and_sizes(coordinate_mode, int16):
    def body(g, x):
        y = g.conv(x, 2)
        outs = []
        for mode in ("nearest", "bilinear"):
            for size in ([9, 13], [3, 2], [1, 1]):
                outs.append(g.op("resize2d", [y], size=size, mode=mode, coordinate_mode=coordinate_mode))
        return outs

    run_graph(body, [1, 2, 4, 5], int16=int16)


@WIDTHS
def test_softmax_argmax_topk_gather(int16):
    def body(g, x):
        y = g.conv(x, 5)
        sm = g.op("softmax", [y], axis=1)
        am = g.op("argmax", [y], axis=1, keepdim=False)
        values, indices = g.op("topk", [y], k=3, axis=-1, largest=False)
        gathered = g.op("gather", [y, g.const(np.array([[4, -1], [0, 2]], np.int32))], axis=1)
        return [sm, am, values, indices, gathered]

    q = run_graph(body, [1, 3, 4, 6], int16=int16)
    assert {"softmax", "argmax", "topk", "gather"} <= op_names(q)


def test_point_pillar_scatter_last_pillar_wins_and_outside_is_skipped():
    coords = np.array([[0, 0, 1, 2], [0, 0, 3, 3], [0, 0, 1, 2], [1, 0, 0, 0], [0, 0, -1, 0], [0, 0, 4, 0]],
                      np.int32)

    def body(g, x):
        return [g.op("point_pillar_scatter", [x, g.const(coords)], grid=[4, 5], batch=1)]

    q = run_graph(body, [6, 3])
    assert "point_pillar_scatter" in op_names(q)


# ---- rounding ties and saturation ----------------------------------------------------------------------


def parse(text: str) -> _core.Module:
    return _core.parse(text, "<test>")


def test_quantize_ties_nan_and_saturation():
    q = parse("""module @m {
  func @main(%x: tensor<1x16xf32>) -> (tensor<1x16xf32>, tensor<1x16xf32>) {
    %a = quantize(%x) : tensor<1x16xsi8, scale=0.5>
    %b = quantize(%x) : tensor<1x16xsi16, scale=0.003>
    %da = dequantize(%a) : tensor<1x16xf32>
    %db = dequantize(%b) : tensor<1x16xf32>
    return %da, %db
  }
}""")
    x = np.array([[0.25, 0.75, -0.25, -0.75, 1.25, 63.75, -64.25, 1e30, -1e30, np.inf, -np.inf, np.nan, 0.0015,
                   -0.0045, 98.3025, -0.0]], np.float32)
    values = assert_matches_executor(q, [x])
    assert values["a"].tolist()[0][:12] == [0, 2, 0, -2, 2, 127, -128, 127, -128, 127, -128, 0]


def test_requantize_ties_saturation_and_per_axis_from_types():
    """Every si16 value through explicit multipliers at exact halves, and through requantize with
    empty attributes (computeRequant of the types, per axis), lut and softmax at si16."""
    q = parse("""module @m {
  func @main(%x: tensor<2x32768xf32>) -> (tensor<2x32768xf32>, tensor<2x32768xf32>, tensor<2x32768xf32>,
                                         tensor<2x32768xf32>, tensor<2x32768xf32>, tensor<2x32768xf32>) {
    %q = quantize(%x) : tensor<2x32768xsi16, scale=1.0>
    %half = requantize(%q) {multiplier = [1073741824], shift = [31]} : tensor<2x32768xsi8, scale=2.0>
    %axis = requantize(%q) : tensor<2x32768xsi8, scale=[0.37, 3.1], axis=0>
    %tab = constant {value = dense_resource<tab>} : tensor<257xsi16>
    %l = lut(%q, %tab) : tensor<2x32768xsi16, scale=1.0>
    %et = constant {value = dense_resource<et>} : tensor<256xsi32>
    %s = softmax(%q, %et) {axis = 0} : tensor<2x32768xsi16, scale=0.0001>
    %d1 = dequantize(%half) : tensor<2x32768xf32>
    %d2 = dequantize(%axis) : tensor<2x32768xf32>
    %d3 = dequantize(%l) : tensor<2x32768xf32>
    %d4 = dequantize(%s) : tensor<2x32768xf32>
    %pa = quantize(%x) : tensor<2x32768xsi16, scale=[1.5, 0.75], axis=0>
    %both = requantize(%pa) : tensor<2x32768xsi8, scale=[100.0, 0.1], axis=0>
    %d5 = dequantize(%pa) : tensor<2x32768xf32>
    %d6 = dequantize(%both) : tensor<2x32768xf32>
    return %d1, %d2, %d3, %d4, %d5, %d6
  }
}
""" + "\nresources {\n  tab = \"0x" + np.random.default_rng(3).integers(-32768, 32768, 257).astype("<i2").tobytes()
        .hex().upper() + "\"\n  et = \"0x"
        + softmax_exp_table(1.0, "si16").astype("<i4").tobytes().hex().upper() + "\"\n}\n")
    x = np.arange(-32768, 32768, dtype=np.float32).reshape(2, 32768)
    values = assert_matches_executor(q, [x])
    # The exact half rounds up: -3 * 0.5 = -1.5 -> -1, 3 * 0.5 -> 2; big values saturate.
    row = values["half"].reshape(-1)
    assert row[32768 - 3] == -1 and row[32768 + 3] == 2 and row.min() == -128 and row.max() == 127


def test_bilinear_si16_accumulator_beyond_int64_products():
    """si16 bilinear: the accumulator reaches ~2^35 and x * M ~2^66; with a tiny output scale
    the results saturate, with a coarse one they round."""
    for out_scale in ("1.0e-4", "0.5", "40.0"):
        q = parse(f"""module @m {{
  func @main(%x: tensor<1x2x3x4xf32>) -> (tensor<1x2x7x9xf32>) {{
    %q = quantize(%x) : tensor<1x2x3x4xsi16, scale=1.0>
    %r = resize2d(%q) {{size = [7, 9], mode = "bilinear", coordinate_mode = "half_pixel"}} : tensor<1x2x7x9xsi16, scale={out_scale}>
    %d = dequantize(%r) : tensor<1x2x7x9xf32>
    return %d
  }}
}}""")
        x = np.random.default_rng(4).choice([32767.0, -32768.0, 32000.0, -1.0], (1, 2, 3, 4)).astype(np.float32)
        assert_matches_executor(q, [x])


@WIDTHS
@pytest.mark.parametrize("align_corners", [True, False])
def test_grid_sample(align_corners, int16):
    def body(g, x, grid):
        y = g.conv(x, 3)
        g_in = g.op("clip", [grid], min=-1.3, max=1.3)  # an activation of the graph (si16 with int16)
        return [g.op("grid_sample", [y, g_in], align_corners=align_corners)]

    q = run_graph(body, [1, 2, 5, 7], [1, 4, 6, 2], int16=int16)
    assert "grid_sample" in op_names(q)


# ---- random graphs -------------------------------------------------------------------------------------


@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recipe=graph_recipe)
def test_random_graphs_match_the_executor(recipe):
    module, wide = build(recipe)
    rng = np.random.default_rng(recipe["seed"] + 1)
    shape = [1, *recipe["shape"]]
    samples = [[rng.uniform(-1, 1, shape).astype(np.float32)] for _ in range(4)]
    hbdk_sim.calibrate(module, samples, int16_values=wide)
    q = quantize_module(module)
    model = IntModel.from_hbir(q)
    assert_matches_executor(q, samples[-1], model)
    # Batched: three samples at once equal three runs of the batch-1 graph.
    batch = np.concatenate([samples[0][0], samples[1][0], rng.uniform(-2, 2, shape).astype(np.float32)])
    got = model(torch.from_numpy(batch)).numpy()
    executor = _core.Executor(q, "main")
    want = np.concatenate([executor.run([batch[i: i + 1]])[0] for i in range(3)])
    assert np.array_equal(got, want)


# ---- batch size and a traced torch model -------------------------------------------------------------------


def rows_by_executor(module: _core.Module, x: np.ndarray, traced: int) -> list[np.ndarray]:
    """The executor on a batch of any size: chunks of the traced batch, the last one padded."""
    executor = _core.Executor(module, "main")
    outs = []
    for start in range(0, len(x), traced):
        chunk = x[start: start + traced]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], traced - len(chunk), axis=0)])
        outs.append([o[: len(chunk)] for o in executor.run([padded])])
    return [np.concatenate(parts) for parts in zip(*outs, strict=True)]


def test_batch_other_than_traced():
    def body(g, x):
        y = g.conv(x, 4, stride=[2, 2])
        r = g.op("reshape", [y], shape=[2, 4, 12])
        r = g.op("reshape", [g.op("softmax", [r], axis=-1)], shape=[2, 4, 3, 4])
        pooled = g.op("flatten", [g.op("global_avg_pool2d", [r])], start_dim=1, end_dim=-1)
        w = g.rng.standard_normal((3, 4)).astype(np.float32)
        return [g.op("linear", [pooled, g.const(w), g.const(np.zeros(3, np.float32))]), g.op("argmax", [r], axis=1)]

    g = Graph([2, 3, 6, 8])
    q, _ = g.quantized(body(g, g.args[0]))
    model = IntModel.from_hbir(q)
    for batch in (1, 2, 5):
        x = np.random.default_rng(batch).uniform(-1, 1, (batch, 3, 6, 8)).astype(np.float32)
        got = model(torch.from_numpy(x))
        for have, want in zip(got, rows_by_executor(q, x, 2), strict=True):
            assert np.array_equal(have.numpy(), want)


class TinyUNet(nn.Module):
    """MobileNet-style: conv/bn/relu6, depthwise separable blocks, a strided stage, nearest and
    bilinear upsampling, concat and a residual add."""

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())

        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.down = block(8, 16, 2)
        self.mid = block(16, 16, 1)
        self.up_nearest = nn.Upsample(scale_factor=2, mode="nearest")
        self.up_bilinear = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.fuse = nn.Conv2d(24, 8, 1)
        self.head = nn.Conv2d(8, 5, 3, padding=1)

    def forward(self, x):
        s = self.stem(x)
        d = self.down(s)
        d = d + self.mid(d)
        u = torch.cat([self.up_nearest(d), s], dim=1)
        f = self.fuse(u) + s
        return self.head(self.up_bilinear(f))


def test_traced_mobilenet_style_model():
    torch.manual_seed(0)
    net = TinyUNet()
    for m in net.modules():  # non-trivial batch norm statistics, as after training
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    net.eval()
    example = torch.randn(2, 3, 16, 16)
    module = trace_float(net, (example,), name="tiny_unet")
    samples = [[torch.randn(2, 3, 16, 16).numpy()] for _ in range(6)]
    hbdk_sim.calibrate(module, samples)
    q = quantize_module(module)
    assert {"conv2d", "requantize", "relu6", "add", "concat", "resize2d"} <= op_names(q)
    model = IntModel.from_hbir(q)
    # Submodules are named after the torch module paths.
    names = dict(model.named_children())
    assert "stem_0" in names and "down_3" in names and "head" in names
    assert model.input_names == ["x"] and len(model.output_names) == 1
    assert model.hbir_text == q.print()
    assert_matches_executor(q, samples[-1], model)
    # The compiled binary of the same integer graph agrees too.
    compiled = _core.parse(model.hbir_text, "<tiny_unet>")
    binary = compiled.run_pipeline(AFTER_QUANTIZE_PASSES, march=hbdk_sim.load_march("bpu"),
                                   source_text=model.hbir_text, source_name="tiny_unet")["binary"]
    (from_hbm,) = hbdk_sim.Executor(_core.load_hbm_bytes(binary, "tiny_unet")).run({"x": samples[-1][0]}).values()
    assert from_hbm.tobytes() == model(torch.from_numpy(samples[-1][0])).numpy().tobytes()
    x = torch.randn(3, 3, 16, 16)
    (want,) = rows_by_executor(q, x.numpy(), 2)
    got = model(x)
    assert np.array_equal(got.numpy(), want)
    # A calibration sample (fresh random inputs may lie beyond the few calibrated ranges).
    calibrated = model(torch.from_numpy(samples[-1][0])).numpy()
    with torch.no_grad():
        ref = net(torch.from_numpy(samples[-1][0])).numpy()
    cos = float((calibrated * ref).sum() / (np.linalg.norm(calibrated) * np.linalg.norm(ref)))
    assert cos > 0.99, cos


# ---- errors and the torch side ----------------------------------------------------------------------------


def test_a_float_graph_is_refused_with_the_op_and_loc():
    g = Graph([1, 3, 4, 4])
    g.fn.returns = [g.op("sigmoid", [g.conv(g.args[0], 2)])]
    with pytest.raises(ValueError, match=r"op 'conv2d' at loc 'layer3.conv2d'.*quantize_module"):
        IntModel.from_hbir(g.module)
    g2 = Graph([1, 3])
    g2.fn.returns = [g2.op("sigmoid", [g2.args[0]])]
    with pytest.raises(ValueError, match=r"op 'sigmoid' at loc 'layer1.sigmoid': has no integer torch"):
        IntModel.from_hbir(g2.module)


def test_wrong_input_shape_is_named():
    g = Graph([2, 3, 4, 4])
    q, _ = g.quantized([g.op("relu", [g.args[0]])])
    model = IntModel.from_hbir(q)
    with pytest.raises(ValueError, match=r"input 'x0' expects shape \[N, 3, 4, 4\]"):
        model(torch.zeros(2, 4, 4, 4))
    with pytest.raises(ValueError, match=r"input 'x0' is on meta but the model is on cpu; move the model"):
        model(torch.zeros(2, 3, 4, 4, device="meta"))


def test_buffers_survive_dtype_casts_and_state_dict():
    g = Graph([1, 3, 5, 5])
    q, (x,) = g.quantized([g.op("relu6", [g.conv(g.args[0], 4)])])
    model = IntModel.from_hbir(q)
    want = model(torch.from_numpy(x))
    model.double()  # must not touch the f32 scales or the integer weights
    assert torch.equal(model(torch.from_numpy(x)), want)
    keys = set(model.state_dict())
    assert any(k.endswith(".weight") for k in keys) and any(k.endswith(".multiplier") for k in keys)
    assert all(b.dtype != torch.float64 for b in model.buffers())


def test_every_op_the_executor_runs_as_integer_is_supported():
    # folded (batch_norm), made into lut (the activations) or data: none reaches the integer graph
    integer_ops = {d["name"] for d in _core.op_table()
                   if d["traits"]["quant_rule"] not in ("constant", "fold_first", "lut")}
    assert integer_ops == set(SUPPORTED_OPS)
