"""The Python API over the C++ core: build, inspect, edit, print, parse, verify, run passes."""

import hbdk_sim
import numpy as np
import pytest
from hbdk_sim import Module, TensorType


def build_conv_bn():
    m = Module("t")
    fn = m.add_function("main")
    x = fn.add_argument(TensorType([1, 3, 8, 8], "f32"), "x")
    w = m.create_constant(fn, np.arange(4 * 3 * 3 * 3, dtype=np.float32).reshape(4, 3, 3, 3) / 100, name="w")
    conv = m.create_op(fn, "conv2d", [x, w.result()], {"padding": [1, 1, 1, 1], "stride": [2, 2]}, loc="conv")
    params = [m.create_constant(fn, v, name=n).result() for n, v in [
        ("mean", np.full(4, 0.5, np.float32)), ("var", np.full(4, 4.0, np.float32)),
        ("gamma", np.full(4, 2.0, np.float32)), ("beta", np.ones(4, np.float32))]]
    bn = m.create_op(fn, "batch_norm", [conv.result(), *params], loc="bn")
    fn.returns = [bn.result()]
    return m, fn, w, conv, bn


def test_build_and_inspect():
    m, fn, w, conv, bn = build_conv_bn()
    m.verify()
    assert [op.name for op in fn.ops] == ["constant", "conv2d", "constant", "constant", "constant",
                                          "constant", "batch_norm"]
    assert conv.result().shape == [1, 4, 4, 4]
    assert conv.result().dtype == "f32"
    assert conv.attrs == {"stride": [2, 2], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1}
    assert conv.loc == "conv"
    assert conv.operands[1] == w.result()
    assert conv.macs == 1 * 4 * 4 * 4 * 3 * 3 * 3
    assert conv.result().owner == conv
    assert fn.arguments[0].owner is None and fn.arguments[0].is_argument
    assert fn.uses(conv.result()) == [(bn, 0)]
    assert fn.uses(bn.result()) == [(None, 0)]


def test_weights_roundtrip_as_numpy():
    m, fn, w, conv, _ = build_conv_bn()
    arr = m.constant_value(w)
    assert arr.dtype == np.float32 and arr.shape == (4, 3, 3, 3)
    assert arr[1, 2, 0, 1] == np.float32((1 * 27 + 2 * 9 + 1) / 100)
    m.set_constant_value(w, np.zeros((4, 3, 3, 3)))
    assert not m.constant_value(w).any()
    with pytest.raises(ValueError, match="shape"):
        m.set_constant_value(w, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="not 'constant'"):
        m.constant_value(conv)


def test_attributes_set_and_type_errors():
    m, fn, w, conv, _ = build_conv_bn()
    conv.set_attr("dilation", [2, 2])
    assert conv.get_attr("dilation") == [2, 2]
    with pytest.raises(hbdk_sim.VerifyError, match="expected shape"):
        m.verify()  # dilation changes the output shape the result declares
    conv.set_attr("dilation", [1, 1])
    m.verify()
    with pytest.raises(TypeError, match="expects int"):
        conv.set_attr("groups", "two")
    with pytest.raises(KeyError, match="no attribute 'kernel'"):
        conv.set_attr("kernel", [3, 3])


def test_print_parse_roundtrip_and_resources():
    m, *_ = build_conv_bn()
    text = m.print()
    assert "resources {" in text and 'loc("conv")' in text
    again = hbdk_sim.parse(text)
    assert again.print() == text
    assert again.resource_keys == ["w", "mean", "var", "gamma", "beta"]


def test_quantized_types():
    t = TensorType([2, 4], "si8", scale=0.5)
    assert str(t) == "tensor<2x4xsi8, scale=0.5>" and t.scales == [0.5] and t.axis is None
    t = TensorType([4, 2], "si8", scale=[0.25, 0.5, 1.0, 2.0], axis=0)
    assert str(t) == "tensor<4x2xsi8, scale=[0.25, 0.5, 1.0, 2.0], axis=0>" and t.axis == 0
    assert TensorType([3], "si16").nbytes == 6
    with pytest.raises(ValueError, match="unknown element type"):
        TensorType([1], "int4")


def test_inference_errors_and_explicit_types():
    m = Module()
    fn = m.add_function("main")
    x = fn.add_argument(TensorType([1, 8], "f32"), "x")
    with pytest.raises(hbdk_sim.VerifyError, match="cannot be inferred"):
        m.create_op(fn, "quantize", [x])
    q = m.create_op(fn, "quantize", [x], result_types=[TensorType([1, 8], "si8", scale=0.1)], names=["q"])
    assert q.result().name == "q" and q.result().type.scales == [pytest.approx(0.1)]
    with pytest.raises(hbdk_sim.VerifyError, match="unknown op 'conv3d'"):
        m.create_op(fn, "conv3d", [x])


def test_run_pipeline_folds_bn_and_stale_handles():
    m, fn, w, conv, bn = build_conv_bn()
    result = m.run_pipeline(["default"])
    assert [t["pass"] for t in result["timings"]] == ["canonicalize", "fold-bn", "constant-fold", "canonicalize"]
    assert "fold-bn" in result["report"]
    ops = [op.name for op in m.functions[0].ops]
    assert "batch_norm" not in ops and ops.count("conv2d") == 1
    with pytest.raises(ValueError, match="stale handle"):
        _ = conv.name
    with pytest.raises(hbdk_sim.PassError, match="unknown pass"):
        m.run_pipeline(["fold-bm"])


def test_op_table_and_registries_are_exposed():
    names = [d["name"] for d in hbdk_sim.op_table()]
    for required in ["conv2d", "conv_transpose2d", "linear", "matmul", "batch_norm", "relu", "relu6", "clip",
                     "leaky_relu", "sigmoid", "tanh", "exp", "sin", "cos", "softmax", "add", "sub", "mul", "concat", "split",
                     "slice", "reshape", "transpose", "flatten", "max_pool2d", "avg_pool2d",
                     "global_avg_pool2d", "resize2d", "pad", "quantize", "dequantize", "requantize", "lut",
                     "point_pillar_scatter", "gather", "argmax", "topk", "constant"]:
        assert required in names
    assert {n for n, _ in hbdk_sim.passes()} >= {"canonicalize", "constant-fold", "fold-bn"}
    assert any(p["name"] == "default" for p in hbdk_sim.pipelines())
