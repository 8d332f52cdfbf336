"""Executor speed against onnxruntime on the same int8 work, measured in one run.

Both sides run the same weights on the same input with 2 threads: ours is `conv2d` (si8 x si8 -> si32
accumulators) followed by `requantize` to si8 with per-channel multiplier/shift; onnxruntime's is one
`QLinearConv` per conv (int8 activations and per-channel int8 weights, int32 bias, zero points 0).
Cases: (a) one 3x3 64->64 conv at 56x56, (b) a MobileNet-style stack (3x3 stem, then depthwise 3x3 +
pointwise 1x1 blocks). Target, as ratios in one run: ours <= 1.5x onnxruntime for each.
Run with `make bench`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hbdk_sim import Module, TensorType
from hbdk_sim._core import Executor, compute_requant
from timing import interleaved_best

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

THREADS = 2
TARGET = 1.5


@dataclass(frozen=True)
class Conv:
    cin: int
    cout: int
    k: int
    stride: int = 1
    depthwise: bool = False

    @property
    def groups(self) -> int:
        return self.cin if self.depthwise else 1


LAYER = ([Conv(64, 64, 3)], (1, 64, 56, 56))


def _mobilenet() -> tuple[list[Conv], tuple[int, ...]]:
    convs = [Conv(3, 32, 3, 2)]
    for cin, cout, stride in [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
                              (256, 512, 2), (512, 512, 1), (512, 512, 1), (512, 1024, 2), (1024, 1024, 1)]:
        convs += [Conv(cin, cin, 3, stride, depthwise=True), Conv(cin, cout, 1)]
    return convs, (1, 3, 128, 128)


MODEL = _mobilenet()


@dataclass
class QuantConv:
    """One conv's integer parameters, shared by both implementations."""

    spec: Conv
    weight: np.ndarray  # si8 [cout, cin/groups, k, k]
    weight_scale: np.ndarray  # f32 [cout]
    bias: np.ndarray  # si32 [cout]
    in_scale: float
    out_scale: float


def _quantize_stack(convs: list[Conv], seed: int = 0) -> list[QuantConv]:
    rng = np.random.default_rng(seed)
    out, scale = [], 0.05
    for c in convs:
        w = rng.integers(-127, 128, size=(c.cout, c.cin // c.groups, c.k, c.k), dtype=np.int8)
        ws = rng.uniform(0.5, 1.5, size=c.cout).astype(np.float32) * 0.01
        b = rng.integers(-5000, 5000, size=c.cout).astype(np.int32)
        fan_in = c.cin // c.groups * c.k * c.k
        # Output scale that keeps the activations spread over the si8 range.
        out_scale = float(np.float32(scale * 0.01 * 60 * np.sqrt(fan_in) / 40))
        out.append(QuantConv(c, w, ws, b, scale, out_scale))
        scale = out_scale
    return out


def _out_hw(size: int, c: Conv) -> int:
    return (size + 2 * (c.k // 2) - c.k) // c.stride + 1


def build_ours(stack: list[QuantConv], input_shape: tuple[int, ...]) -> Module:
    m = Module("bench")
    fn = m.add_function("main")
    x = fn.add_argument(TensorType(list(input_shape), "si8", stack[0].in_scale), "x")
    n, _, h, w = input_shape
    for i, q in enumerate(stack):
        c = q.spec
        h, w = _out_hw(h, c), _out_hw(w, c)
        acc_scales = [float(q.in_scale * s) for s in q.weight_scale]
        wt = m.create_constant(fn, q.weight, name=f"w{i}", dtype="si8", scale=q.weight_scale.tolist(), axis=0)
        bias = m.create_constant(fn, q.bias, name=f"b{i}", dtype="si32", scale=acc_scales, axis=0)
        p = c.k // 2
        conv = m.create_op(fn, "conv2d", [x, wt.result(), bias.result()],
                           {"stride": [c.stride] * 2, "padding": [p] * 4, "groups": c.groups},
                           result_types=[TensorType([n, c.cout, h, w], "si32", acc_scales, axis=1)])
        params = [compute_requant(s / q.out_scale) for s in acc_scales]
        req = m.create_op(fn, "requantize", [conv.result()],
                          {"multiplier": [mm for mm, _ in params], "shift": [s for _, s in params], "axis": 1},
                          result_types=[TensorType([n, c.cout, h, w], "si8", q.out_scale)])
        x = req.result()
    fn.returns = [x]
    m.verify()
    return m


def build_onnx(stack: list[QuantConv], input_shape: tuple[int, ...]) -> bytes:
    nodes, inits = [], []
    name = "x"
    n, _, h, w = input_shape
    zero = numpy_helper.from_array(np.array(0, np.int8), "zp")
    inits.append(zero)
    for i, q in enumerate(stack):
        c = q.spec
        h, w = _out_hw(h, c), _out_hw(w, c)
        inits += [numpy_helper.from_array(np.array(q.in_scale, np.float32), f"xs{i}"),
                  numpy_helper.from_array(q.weight, f"w{i}"),
                  numpy_helper.from_array(q.weight_scale, f"ws{i}"),
                  numpy_helper.from_array(np.zeros(c.cout, np.int8), f"wz{i}"),
                  numpy_helper.from_array(np.array(q.out_scale, np.float32), f"ys{i}"),
                  numpy_helper.from_array(q.bias, f"b{i}")]
        out = f"y{i}"
        p = c.k // 2
        nodes.append(helper.make_node("QLinearConv", [name, f"xs{i}", "zp", f"w{i}", f"ws{i}", f"wz{i}", f"ys{i}", "zp",
                                                      f"b{i}"], [out], kernel_shape=[c.k, c.k], pads=[p] * 4,
                                      strides=[c.stride] * 2, group=c.groups))
        name = out
    graph = helper.make_graph(nodes, "bench", [helper.make_tensor_value_info("x", TensorProto.INT8, list(input_shape))],
                              [helper.make_tensor_value_info(name, TensorProto.INT8, [n, stack[-1].spec.cout, h, w])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


class Pair:
    """Both implementations of one case, ready to run."""

    def __init__(self, case: tuple[list[Conv], tuple[int, ...]]):
        convs, shape = case
        stack = _quantize_stack(convs)
        self.module = build_ours(stack, shape)
        self.ours = Executor(self.module, threads=THREADS)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = THREADS
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(build_onnx(stack, shape), opts, providers=["CPUExecutionProvider"])
        self.x = np.random.default_rng(1).integers(-128, 128, size=shape, dtype=np.int8)

    def run_ours(self) -> np.ndarray:
        return self.ours.run([self.x])[0]

    def run_onnxruntime(self) -> np.ndarray:
        return self.session.run(None, {"x": self.x})[0]


CASES = {"conv_layer": LAYER, "mobilenet": MODEL}
_pairs: dict[str, Pair] = {}


def pair(case: str) -> Pair:
    if case not in _pairs:
        _pairs[case] = Pair(CASES[case])
    return _pairs[case]


@pytest.mark.parametrize("case", list(CASES))
def test_ours(case, benchmark):
    p = pair(case)
    y = benchmark(p.run_ours)
    assert y.dtype == np.int8 and y.shape == p.run_onnxruntime().shape


@pytest.mark.parametrize("case", list(CASES))
def test_onnxruntime(case, benchmark):
    benchmark(pair(case).run_onnxruntime)


def test_layer_agrees_with_onnxruntime(benchmark):
    # Rounding differs (ours: fixed-point half-up; onnxruntime: float, half-even), by one step at most.
    p = pair("conv_layer")
    diff = np.abs(p.run_ours().astype(np.int32) - p.run_onnxruntime().astype(np.int32))
    benchmark.extra_info["max_abs_diff"] = int(diff.max())
    benchmark.pedantic(lambda: None, rounds=1)
    assert diff.max() <= 1


@pytest.mark.parametrize("case", list(CASES))
def test_ratio_against_onnxruntime(case, benchmark):
    p = pair(case)
    for _ in range(3):  # warm both up
        p.run_ours()
        p.run_onnxruntime()
    ours, theirs = interleaved_best(p.run_ours, p.run_onnxruntime, rounds=30)
    ratio = ours / theirs
    benchmark.extra_info.update(ours_ms=round(ours * 1e3, 3), onnxruntime_ms=round(theirs * 1e3, 3),
                                ours_over_onnxruntime=round(ratio, 3))
    benchmark.pedantic(lambda: None, rounds=1)
    assert ratio <= TARGET, f"{case}: ours {ours * 1e3:.2f} ms is {ratio:.2f}x onnxruntime {theirs * 1e3:.2f} ms " \
                            f"(target <= {TARGET}x)"
