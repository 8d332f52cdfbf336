"""Random small float graphs, end to end: build with the Python API, calibrate, check and compile for
bpu, then run the .hbm through the optimized and the reference executor (bit for bit equal) and
against the float model (the integer model must track it).

A drawn graph is a list of shape-independent layer recipes; the builder fits each recipe to the
current tensor (e.g. a stride-2 layer on a 2x2 map keeps stride 1), so shrinking stays meaningful.
Only layers bpu accepts are drawn (python/hbdk_sim/marches/bpu.json): kernels <= 5, strides 1/2,
pad modes constant/edge, resize factor 2.
"""

from __future__ import annotations

import hbdk_sim
import numpy as np
import pytest
from hbdk_sim import Module, TensorType, Value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CALIBRATION_SAMPLES = 4
# The worst cosine seen over many more examples than the test draws is ~0.98 (an si8 softmax over
# 16 channels of a deep chain); each si8 layer adds about 1/127 of relative noise per value, and a
# chain of 8 layers with a sigmoid/tanh LUT or a softmax at the end stays far above 0.9. Below it
# something is wrong (a scale, a requant, a LUT), not merely noisy.
MIN_COSINE = 0.9
# A graph whose float output is (almost) constant, e.g. one value from a classifier head or a
# softmax over one channel, has no direction to compare; there the int output must be close in
# value instead: within 10% plus two steps of the output's scale per value (the cosine bound allows
# ~45% of error out of the output's direction; a single number is an average of many rounded
# values and drifts less, but it can be a small difference of large ones, whose rounding errors
# do not shrink with it: hence the steps).
MIN_SPREAD = 1e-3
MAX_RELATIVE_ERROR = 0.1
MAX_STEPS = 2


# ---- recipes ---------------------------------------------------------------------------------

conv_recipe = st.fixed_dictionaries(
    {
        "kind": st.just("conv"),
        "kernel": st.sampled_from([1, 3, 5]),
        "stride": st.sampled_from([1, 2]),
        "depthwise": st.booleans(),
        "cout": st.integers(1, 16),
        "dilation": st.sampled_from([1, 1, 2]),
        "bias": st.booleans(),
        "bn": st.booleans(),
    }
)
act_recipe = st.fixed_dictionaries(
    {
        "kind": st.just("act"),
        "fn": st.sampled_from(["relu", "relu6", "clip", "leaky_relu", "sigmoid", "tanh", "sin", "cos"]),
        "lo": st.sampled_from([-1.0, -0.5, 0.0]),
        "hi": st.sampled_from([0.5, 1.0, 3.0]),
        "alpha": st.sampled_from([0.01, 0.1, 0.3]),
    }
)
branch_recipe = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["add", "mul", "concat"]),
        "kernel": st.sampled_from([1, 3]),
        "identity": st.booleans(),  # one branch is the input itself
        "relu": st.booleans(),
        "cout": st.integers(1, 16),  # concat only: channels of the conv branch
    }
)
pool_recipe = st.fixed_dictionaries(
    {
        "kind": st.just("pool"),
        "max": st.booleans(),
        "kernel": st.sampled_from([2, 3]),
        "stride": st.sampled_from([1, 2]),
        "pad": st.booleans(),
        "ceil_mode": st.booleans(),
        "count_include_pad": st.booleans(),
    }
)
pad_recipe = st.fixed_dictionaries(
    {
        "kind": st.just("pad"),
        "pads": st.tuples(*[st.integers(0, 2)] * 4),
        "mode": st.sampled_from(["constant", "edge"]),
        "value": st.sampled_from([0.0, 0.25, -1.0]),
    }
)
resize_recipe = st.fixed_dictionaries(
    {
        "kind": st.just("resize"),
        "mode": st.sampled_from(["nearest", "bilinear"]),
        "coordinate_mode": st.sampled_from(["half_pixel", "align_corners", "asymmetric"]),
    }
)
simple_recipe = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["transpose", "reshape", "softmax", "head"]),
        "n": st.integers(1, 16),  # head only: classes
    }
)
layer_recipe = st.one_of(conv_recipe, act_recipe, branch_recipe, pool_recipe, pad_recipe, resize_recipe, simple_recipe)

graph_recipe = st.fixed_dictionaries(
    {
        "shape": st.tuples(st.integers(1, 16), st.integers(4, 24), st.integers(4, 24)),
        "layers": st.lists(layer_recipe, min_size=2, max_size=8),
        "seed": st.integers(0, 2**16),
        # Op results (by index, modulo their count) calibrated for si16 instead of si8.
        "si16": st.lists(st.integers(0, 63), max_size=3),
    }
)


# ---- building --------------------------------------------------------------------------------


class _Builder:
    def __init__(self, seed: int, shape):
        self.module = Module("random")
        self.fn = self.module.add_function("main")
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self.results: list[str] = []  # op results, the candidates for si16
        self.input = self.fn.add_argument(TensorType([1, *shape], "f32"), "input")

    def name(self, what: str) -> str:
        self.count += 1
        return f"{what}{self.count}"

    def const(self, data: np.ndarray) -> Value:
        return self.module.create_constant(self.fn, data.astype(np.float32), name=self.name("c")).result()

    def op(self, kind: str, operands: list[Value], **attrs) -> Value:
        y = self.module.create_op(self.fn, kind, operands, attrs, loc=self.name(kind)).result()
        y.name = f"t{len(self.results)}"
        self.results.append(y.name)
        return y

    def conv(
        self,
        x: Value,
        cout: int,
        kernel: int,
        stride: int = 1,
        depthwise: bool = False,
        bias: bool = True,
        bn: bool = False,
        dilation: int = 1,
    ) -> Value:
        cin = x.shape[1]
        groups = cin if depthwise else 1
        if depthwise:
            cout = cin
        fan_in = cin // groups * kernel * kernel
        w = self.rng.standard_normal((cout, cin // groups, kernel, kernel)) * np.sqrt(2.0 / fan_in)
        operands = [x, self.const(w)]
        if bias:
            operands.append(self.const(self.rng.normal(0.0, 0.1, cout)))
        pad = dilation * (kernel // 2)
        y = self.op(
            "conv2d", operands, stride=[stride, stride], padding=[pad] * 4, dilation=[dilation] * 2, groups=groups
        )
        if bn:
            params = [
                self.rng.normal(0.0, 0.1, cout),
                self.rng.uniform(0.5, 1.5, cout),
                self.rng.uniform(0.8, 1.2, cout),
                self.rng.normal(0.0, 0.1, cout),
            ]
            y = self.op("batch_norm", [y, *[self.const(p) for p in params]], eps=1e-5)
        return y

    def layer(self, x: Value, r: dict) -> tuple[Value, bool]:
        """Apply recipe `r` to `x`; the flag says the graph ends here (a classifier head)."""
        kind = r["kind"]
        _, c, h, w = x.shape
        if kind == "conv":
            stride = r["stride"] if min(h, w) >= 4 else 1
            return self.conv(
                x, r["cout"], r["kernel"], stride, r["depthwise"], r["bias"], r["bn"], r["dilation"]
            ), False
        if kind == "act":
            fn = r["fn"]
            if fn == "clip":
                return self.op("clip", [x], min=r["lo"], max=r["hi"]), False
            if fn == "leaky_relu":
                return self.op("leaky_relu", [x], alpha=r["alpha"]), False
            return self.op(fn, [x]), False
        if kind in ("add", "mul", "concat"):
            cout = r["cout"] if kind == "concat" else c
            b = self.conv(x, cout, r["kernel"])
            if r["relu"]:
                b = self.op("relu", [b])
            a = x if r["identity"] else self.conv(x, c, r["kernel"])
            if kind == "concat":
                return self.op("concat", [a, b], axis=1), False
            return self.op(kind, [a, b]), False
        if kind == "pool":
            k = min(r["kernel"], h, w)
            pad = k // 2 if r["pad"] else 0
            attrs = {"kernel": [k, k], "stride": [r["stride"]] * 2, "padding": [pad] * 4, "ceil_mode": r["ceil_mode"]}
            if r["max"]:
                return self.op("max_pool2d", [x], **attrs), False
            return self.op("avg_pool2d", [x], count_include_pad=r["count_include_pad"], **attrs), False
        if kind == "pad":
            t, left, b, right = r["pads"]
            return self.op("pad", [x], pads=[0, 0, t, left, 0, 0, b, right], mode=r["mode"], value=r["value"]), False
        if kind == "resize":
            if max(h, w) > 24:
                return x, False
            return self.op(
                "resize2d", [x], size=[2 * h, 2 * w], mode=r["mode"], coordinate_mode=r["coordinate_mode"]
            ), False
        if kind == "transpose":
            y = self.op("transpose", [x], perm=[0, 2, 3, 1])
            return self.op("transpose", [y], perm=[0, 3, 1, 2]), False
        if kind == "reshape":
            y = self.op("reshape", [x], shape=[1, c, h * w])
            return self.op("reshape", [y], shape=[1, c, h, w]), False
        if kind == "softmax":
            return self.op("softmax", [x], axis=1), False
        assert kind == "head", kind
        y = self.op("global_avg_pool2d", [x])
        y = self.op("flatten", [y], start_dim=1, end_dim=-1)
        wt = self.rng.standard_normal((r["n"], c)) * np.sqrt(1.0 / c)
        return self.op("linear", [y, self.const(wt), self.const(self.rng.normal(0.0, 0.1, r["n"]))]), True


def build(recipe: dict) -> tuple[Module, list[str]]:
    """The float module and the names of the op results to calibrate for si16."""
    b = _Builder(recipe["seed"], recipe["shape"])
    y = b.input
    for r in recipe["layers"]:
        y, done = b.layer(y, r)
        if done:
            break
    if y is b.input:  # every layer was a no-op: a graph must compute something
        y = b.op("relu", [y])
    b.fn.returns = [y]
    b.module.verify()
    return b.module, sorted({b.results[i % len(b.results)] for i in recipe.get("si16", [])})


# ---- the property ----------------------------------------------------------------------------


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def compile_and_compare(recipe: dict, tmp_path) -> None:
    module, si16 = build(recipe)
    shape = [1, *recipe["shape"]]
    rng = np.random.default_rng(recipe["seed"] + 1)
    samples = [[rng.uniform(-1.0, 1.0, shape).astype(np.float32)] for _ in range(CALIBRATION_SAMPLES)]
    # The test input is one of the calibration samples: an input beyond the calibrated range saturates
    # (rightly), and with a few samples and a tiny output that says nothing about the compiler.
    x = samples[-1][0]
    (expected,) = hbdk_sim.Executor(module).run([x]).values()

    scales = hbdk_sim.calibrate(module, samples, int16_values=si16)
    output_scale = scales[module.function("main").returns[0].name]
    report = hbdk_sim.check(module, "bpu")
    assert report.ok, report.format()
    out = tmp_path / "m.hbm"
    hbdk_sim.compile(module, "bpu", out, overwrite=True)
    model = hbdk_sim.load_hbm(out)
    (optimized,) = hbdk_sim.Executor(model).run({"input": x}).values()
    (reference,) = hbdk_sim.Executor(model, optimized=False).run({"input": x}).values()
    assert optimized.dtype == reference.dtype and optimized.shape == reference.shape
    np.testing.assert_array_equal(optimized, reference)

    assert reference.shape == expected.shape
    spread = float(np.std(expected))
    if spread > MIN_SPREAD * max(float(np.max(np.abs(expected))), 1.0):
        cos = cosine(expected, reference)
        assert cos > MIN_COSINE, f"cosine {cos:.4f}\n{module.print()}"
    else:
        error = float(np.linalg.norm(reference.astype(np.float64) - expected))
        bound = MAX_RELATIVE_ERROR * float(np.linalg.norm(expected)) + MAX_STEPS * output_scale * np.sqrt(expected.size)
        assert error <= bound, (error, bound, reference, expected)


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(recipe=graph_recipe)
def test_random_graph_compiles_and_runs(recipe, tmp_path):
    compile_and_compare(recipe, tmp_path)


def _layers_of_every_kind() -> list[dict]:
    """One recipe per layer kind and variant, with every field given."""
    conv = {
        "kind": "conv",
        "kernel": 3,
        "stride": 1,
        "depthwise": False,
        "cout": 4,
        "dilation": 1,
        "bias": True,
        "bn": True,
    }
    act = {"kind": "act", "lo": -0.5, "hi": 1.0, "alpha": 0.1}
    branch = {"kernel": 3, "identity": True, "relu": True, "cout": 3}
    pool = {"kind": "pool", "kernel": 3, "stride": 2, "pad": True, "ceil_mode": True, "count_include_pad": False}
    return [
        conv,
        {**conv, "depthwise": True, "stride": 2, "bn": False},
        {**conv, "kernel": 5, "dilation": 2},
        *[{**act, "fn": fn} for fn in ["relu", "relu6", "clip", "leaky_relu", "sigmoid", "tanh", "sin", "cos"]],
        *[{**branch, "kind": kind} for kind in ["add", "mul", "concat"]],
        {**branch, "kind": "concat", "identity": False},
        {**pool, "max": True},
        {**pool, "max": False},
        {"kind": "pad", "pads": (1, 0, 2, 1), "mode": "constant", "value": -1.0},
        {"kind": "pad", "pads": (0, 2, 1, 0), "mode": "edge", "value": 0.0},
        {"kind": "resize", "mode": "nearest", "coordinate_mode": "asymmetric"},
        {"kind": "resize", "mode": "bilinear", "coordinate_mode": "half_pixel"},
        *[{"kind": kind, "n": 5} for kind in ["transpose", "reshape", "softmax", "head"]],
    ]


@pytest.mark.parametrize("si16", [[], [1]], ids=["si8", "si16"])
@pytest.mark.parametrize(
    "layer",
    _layers_of_every_kind(),
    ids=lambda r: "-".join(str(r[k]) for k in ("kind", "fn", "mode", "kernel", "max", "identity") if k in r),
)
def test_every_layer_kind_compiles_and_runs(layer, si16, tmp_path):
    """Each layer kind at least once after a conv, whatever the random draw covers; with the second
    op result (the layer's first) calibrated for si16 or not."""
    first = {
        "kind": "conv",
        "kernel": 3,
        "stride": 1,
        "depthwise": False,
        "cout": 4,
        "dilation": 1,
        "bias": True,
        "bn": False,
    }
    recipe = {"shape": (3, 6, 5), "seed": 5, "layers": [first, layer], "si16": si16}
    compile_and_compare(recipe, tmp_path)
