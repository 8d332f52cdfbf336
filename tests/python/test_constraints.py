"""The constraint checker from Python: one quantized single-op module passing and one failing per
rule, and a module with several problems reporting all of them."""

import pytest
from hbdk_sim import Module, TensorType, _core
from hbdk_sim.march import load_march

TEST_MARCH = """{
  "name": "test_npu", "description": "small limits", "clock_mhz": 500,
  "mac_array": {"rows": 4, "cols": 4, "dataflow": "weight_stationary", "macs_per_cycle": {"int8": 16},
                "depthwise_macs_per_cycle": {"int8": 8}},
  "vector_unit": {"lanes": 4},
  "sram": {"size_kib": 64, "banks": 2, "bytes_per_cycle": 16},
  "ddr": {"bandwidth_gbps": 1.5, "latency_cycles": 10},
  "dma": {"engines": 1, "bytes_per_cycle": 8},
  "tensor": {"max_rank": 4, "max_dim": 1024},
  "ops": {
    "conv2d": {"dtypes": ["si8"], "kernel_max": 3, "strides": [1, 2], "dilation_max": 2, "channels_max": 64,
               "groups": "depthwise_or_1"},
    "linear": {"dtypes": ["si8"], "k_max": 128},
    "relu": {"dtypes": ["si8"]},
    "reshape": {"dtypes": ["si8"]},
    "resize2d": {"dtypes": ["si8"], "resize_factors": [2], "modes": ["nearest"]},
    "pad": {"dtypes": ["si8"], "modes": ["constant"]},
    "topk": {"dtypes": ["si8"], "k_max": 8},
    "quantize": {"dtypes": ["si8"]},
    "dequantize": {"dtypes": ["si8"]}
  },
  "fuse": {"conv_activation": true, "conv_add": false}
}"""


@pytest.fixture(scope="module")
def march():
    return _core.parse_march(TEST_MARCH, "test_npu.json")


def si8(*shape):
    return TensorType(list(shape), "si8", scale=0.5)


def single_op(op, arg_types, attrs=None, result_types=(), loc="the_op"):
    """A module `main(args) -> op(args)` built through the Python API."""
    m = Module("t")
    fn = m.add_function("main")
    args = [fn.add_argument(t, f"a{i}") for i, t in enumerate(arg_types)]
    o = m.create_op(fn, op, args, attrs or {}, list(result_types), loc=loc, names=["y"])
    fn.returns = list(o.results)
    m.verify()
    return m


def rules(march, module):
    return [v["rule"] for v in march.check(module)]


def conv(k=3, stride=1, dilation=1, cin=8, cout=8, groups=1, hw=16):
    out = (hw - dilation * (k - 1) - 1) // stride + 1
    return single_op("conv2d", [si8(1, cin, hw, hw), si8(cout, cin // groups, k, k)],
                     {"stride": [stride, stride], "dilation": [dilation, dilation], "groups": groups},
                     [TensorType([1, cout, out, out], "si32")])


CASES = {
    "supported-op": (lambda: single_op("add", [si8(1, 8), si8(1, 8)], result_types=[si8(1, 8)]),
                     lambda: single_op("relu", [si8(1, 8)], result_types=[si8(1, 8)])),
    "quantized": (lambda: single_op("relu", [TensorType([1, 8], "f32")]),
                  lambda: single_op("quantize", [TensorType([1, 8], "f32")], result_types=[si8(1, 8)])),
    "dtype": (lambda: single_op("relu", [TensorType([1, 8], "si16", scale=0.5)],
                                result_types=[TensorType([1, 8], "si16", scale=0.5)]),
              lambda: single_op("relu", [si8(1, 8)], result_types=[si8(1, 8)])),
    "tensor-rank": (lambda: single_op("reshape", [si8(2, 3, 4, 5)], {"shape": [2, 3, 2, 2, 5]}),
                    lambda: single_op("reshape", [si8(2, 3, 4, 5)], {"shape": [6, 20]})),
    "tensor-dim": (lambda: single_op("reshape", [si8(2, 3, 4, 100)], {"shape": [2400]}),
                   lambda: single_op("reshape", [si8(2, 3, 4, 100)], {"shape": [24, 100]})),
    "kernel-size": (lambda: conv(k=5), lambda: conv(k=3)),
    "stride": (lambda: conv(stride=4), lambda: conv(stride=2)),
    "dilation": (lambda: conv(dilation=3), lambda: conv(dilation=2)),
    "channels": (lambda: conv(k=1, cin=128, cout=8, hw=4), lambda: conv(k=1, cin=64, cout=64, hw=4)),
    "groups": (lambda: conv(groups=2), lambda: conv(groups=8)),
    "resize-factor": (lambda: single_op("resize2d", [si8(1, 4, 8, 8)], {"size": [24, 24]}),
                      lambda: single_op("resize2d", [si8(1, 4, 8, 8)], {"size": [16, 16]})),
    "resize-mode": (lambda: single_op("resize2d", [si8(1, 4, 8, 8)], {"size": [16, 16], "mode": "bilinear"},
                                      [si8(1, 4, 16, 16)]),
                    lambda: single_op("resize2d", [si8(1, 4, 8, 8)], {"size": [4, 4], "mode": "nearest"})),
    "pad-mode": (lambda: single_op("pad", [si8(1, 4, 4, 4)], {"pads": [0, 0, 1, 1, 0, 0, 1, 1], "mode": "edge"}),
                 lambda: single_op("pad", [si8(1, 4, 4, 4)], {"pads": [0, 0, 1, 1, 0, 0, 1, 1]})),
    "topk-k": (lambda: single_op("topk", [si8(1, 100)], {"k": 9}),
               lambda: single_op("topk", [si8(1, 100)], {"k": 8})),
    "reduction-size": (lambda: single_op("linear", [si8(2, 200), si8(10, 200)],
                                         result_types=[TensorType([2, 10], "si32")]),
                       lambda: single_op("linear", [si8(2, 128), si8(10, 128)],
                                         result_types=[TensorType([2, 10], "si32")])),
}


def test_every_rule_has_a_case():
    assert set(CASES) == {r["name"] for r in _core.constraint_rules()}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_fails_then_passes(march, rule):
    failing, passing = CASES[rule]
    assert rules(march, failing()) == [rule]
    assert rules(march, passing()) == []


def test_violation_fields(march):
    [v] = march.check(conv(k=5))
    assert v == {
        "op": "conv2d", "value": "%y", "location": 'loc("the_op")', "rule": "kernel-size",
        "actual": "a 5x5 kernel", "limit": "a kernel of at most 3x3",
        "hint": "replace the large kernel by a stack of smaller ones (two 3x3 see as far as one 5x5)",
        "message": "loc(\"the_op\"): 'conv2d' op %y: kernel-size: expected a kernel of at most 3x3 but got a 5x5 "
                   "kernel; replace the large kernel by a stack of smaller ones (two 3x3 see as far as one 5x5)",
    }


def test_several_violations_are_all_reported(march):
    text = """module @t {
  func @main(%x: tensor<1x8x16x16xsi8, scale=0.5>, %w: tensor<8x8x5x5xsi8, scale=0.5>, %f: tensor<1x8xf32>)
      -> (tensor<1x8x4x4xsi32>, tensor<1x8xf32>) {
    %y = conv2d(%x, %w) {stride = [3, 3]} : tensor<1x8x4x4xsi32>
    %s = sigmoid(%f) : tensor<1x8xf32>
    return %y, %s
  }
}
"""
    found = march.check_text(text, "model.hbir")
    assert [(v["location"], v["rule"]) for v in found] == [
        ("model.hbir:4:5", "kernel-size"), ("model.hbir:4:5", "stride"),
        ("model.hbir:5:5", "supported-op"), ("model.hbir:5:5", "quantized")]


def test_quantized_example_model_fits_the_shipped_marches():
    text = """module @q {
  func @main(%image: tensor<1x3x8x8xf32>) -> (tensor<1x4x8x8xf32>) {
    %q = quantize(%image) : tensor<1x3x8x8xsi8, scale=0.03125>
    %w = constant {value = dense_resource<w>} : tensor<4x3x3x3xsi8, scale=0.01>
    %acc = conv2d(%q, %w) {padding = [1, 1, 1, 1]} : tensor<1x4x8x8xsi32, scale=0.0003125>
    %y = requantize(%acc) {multiplier = [1073741824], shift = [31]} : tensor<1x4x8x8xsi8, scale=0.0625>
    %r = relu(%y) : tensor<1x4x8x8xsi8, scale=0.0625>
    %out = dequantize(%r) : tensor<1x4x8x8xf32>
    return %out
  }
}

resources {
  w = "0x""" + "01" * 108 + """"
}
"""
    for name in ("bpu_nano", "bpu", "bpu_max"):
        assert load_march(name).check_text(text) == []


def test_validate_raises_one_report_with_every_violation(march):
    m = conv(k=5, stride=4)
    with pytest.raises(_core.ConstraintError) as info:
        march.validate(m)
    report = str(info.value).splitlines()
    assert report[0] == "2 violations of march 'test_npu'"
    assert [line.split(": ")[2] for line in report[1:]] == ["kernel-size", "stride"]
    assert [v["rule"] for v in info.value.violations] == ["kernel-size", "stride"]
    assert isinstance(info.value, _core.HbirError)
    march.validate(conv())  # fits: no exception
