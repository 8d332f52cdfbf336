"""Issue 5's whole path on a MobileNetV1 backbone with a UNet neck: a float nn.Module goes
through calibration, QAT and QAT2Quantize; the quantized torch model and the executor running the
compiled .hbm agree bit for bit; the ONNX exports run in onnxruntime; compile_perf takes the model."""

import copy

import hbdk_sim
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from hbdk_sim import quantization as Q  # noqa: E402
from hbdk_sim.nn.structures.segmentation import UNetMobileNetV1  # noqa: E402
from hbdk_sim.quantization.fake_quantize import WeightFakeQuantize  # noqa: E402

SHAPE = (2, 3, 32, 64)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    torch.manual_seed(0)
    net = UNetMobileNetV1(num_classes=5, width=0.25, out_strides=(4, 8), upsample_mode="bilinear")
    net.train()
    with torch.no_grad():  # running statistics that are not the identity
        for _ in range(3):
            net(torch.randn(4, 3, 32, 64))
    net.eval()
    gen = torch.Generator().manual_seed(1)
    data = [torch.randn(*SHAPE, generator=gen) for _ in range(8)]

    calibrated = Q.Float2Calibration()(copy.deepcopy(net))
    with torch.no_grad():
        for x in data:
            calibrated(x)
    Q.set_fake_quant_state(calibrated, "validation")
    torch.save({"model": calibrated.state_dict()}, tmp / "calibration.pt")

    qat = Q.ModelConvertPipeline([Q.Float2QAT(), Q.LoadCheckpoint(tmp / "calibration.pt")])(copy.deepcopy(net))
    qat.train()
    opt = torch.optim.SGD([p for p in qat.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    for x in data[:4]:  # distil the float outputs
        with torch.no_grad():
            target = net(x)
        loss = sum(torch.nn.functional.mse_loss(y, t) for y, t in zip(qat(x), target, strict=True))
        opt.zero_grad()
        loss.backward()
        opt.step()
    qat.eval()
    int_model = Q.QAT2Quantize(example_inputs=data[0])(qat)
    return dict(tmp=tmp, net=net, qat=qat, int_model=int_model, data=data)


def test_int_model_and_compiled_binary_agree_bit_for_bit(stages):
    tmp, int_model = stages["tmp"], stages["int_model"]
    hbir = tmp / "unet_int.hbir"
    module = hbdk_sim.export_hbir(int_model, stages["data"][0], hbir)
    assert any(op.name == "requantize" for op in module.function("main").ops)  # the integer graph
    result = hbdk_sim.compile(hbir, march="bpu", output=tmp / "unet.hbm")
    executor = hbdk_sim.Executor(result.output)
    gen = torch.Generator().manual_seed(7)
    for _ in range(3):
        x = torch.randn(*SHAPE, generator=gen) * 1.5  # beyond the calibrated range: saturation too
        got = list(executor.run([x.numpy()]).values())
        with torch.no_grad():
            want = int_model(x)
        assert len(got) == len(want) == 2
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w.numpy())


def test_every_intermediate_value_agrees_with_the_reference_executor(stages):
    int_model = stages["int_model"]
    module = hbdk_sim.parse(int_model.hbir_text)
    x = stages["data"][3]
    want = hbdk_sim._core.Executor(module, "main").run_all([x.numpy()])
    with torch.no_grad():
        got = int_model.forward_all(x)
    assert len(got) > 50
    assert set(got) <= set(want)
    for name, value in got.items():
        np.testing.assert_array_equal(value.cpu().numpy(), want[name], err_msg=name)


def test_quantized_model_tracks_float_and_qat(stages):
    net, qat, int_model = stages["net"], stages["qat"], stages["int_model"]
    x = stages["data"][5]
    with torch.no_grad():
        ref, sim, got = net(x), qat(x), int_model(x)
    for r, s, g in zip(ref, sim, got, strict=True):
        assert _cos(g.numpy(), r.numpy()) >= 0.999
        assert _cos(g.numpy(), s.numpy()) >= 0.9999


def test_int_model_runs_any_batch(stages):
    int_model = stages["int_model"]
    x = torch.cat(stages["data"][:2])  # 4 images; traced with 2
    with torch.no_grad():
        whole = int_model(x)
        halves = [int_model(x[:2]), int_model(x[2:])]
    for i, w in enumerate(whole):
        assert torch.equal(w, torch.cat([halves[0][i], halves[1][i]]))


def test_onnx_exports_run_in_onnxruntime(stages, tmp_path):
    net, qat, x = stages["net"], stages["qat"], stages["data"][2]
    hbdk_sim.export_onnx(net, x, tmp_path / "float.onnx")
    sess = ort.InferenceSession(str(tmp_path / "float.onnx"), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        ref = net(x)
    for o, r in zip(outs, ref, strict=True):
        assert np.abs(o - r.numpy()).max() <= 1e-4

    hbdk_sim.export_onnx(qat, x, tmp_path / "qdq.onnx")
    sess = ort.InferenceSession(str(tmp_path / "qdq.onnx"), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        ints = stages["int_model"](x)
    assert any(n.op_type == "QuantizeLinear" for n in __import__("onnx").load(str(tmp_path / "qdq.onnx")).graph.node)
    for o, i in zip(outs, ints, strict=True):  # onnxruntime rounds half to even where the BPU rounds half up
        assert _cos(o, i.numpy()) >= 0.999


def test_compile_perf_takes_the_model(stages):
    report = hbdk_sim.compile_perf(stages["int_model"], stages["data"][0], march="bpu")
    same = hbdk_sim.compile_perf(stages["qat"], stages["data"][0], march="bpu")
    assert report.total_cycles == same.total_cycles > 0
    assert report.fps > 0


def test_frozen_activation_scales_stay_at_calibration_while_weight_scales_follow(stages):
    tmp, net, data = stages["tmp"], stages["net"], stages["data"]
    qat = Q.ModelConvertPipeline([Q.Float2QAT(activation_scales="frozen"),
                                  Q.LoadCheckpoint(tmp / "calibration.pt")])(copy.deepcopy(net))
    calibrated = torch.load(tmp / "calibration.pt", weights_only=True)["model"]
    qat.train()
    opt = torch.optim.SGD([p for p in qat.parameters() if p.requires_grad], lr=1e-2, momentum=0.9)
    for x in data[:3]:
        loss = sum(y.square().mean() for y in qat(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
    qat(data[3])
    state = qat.state_dict()
    weights = [k for k in state if k.endswith("weight_fake_quant.scale")]
    activations = [k for k in state if k.endswith(".scale") and k not in weights]
    assert weights and activations
    for k in activations:  # no activation scale or statistic moved
        assert torch.equal(state[k], calibrated[k]), k
    for k in (k for k in state if k.endswith(("observer.min_val", "observer.max_val")) and "weight" not in k):
        assert torch.equal(state[k], calibrated[k]), k
    assert any(not torch.equal(state[k], calibrated[k]) for k in weights)  # the weights moved, their scales too
    # Every activation quantizer still fake-quantizes and no longer observes, even after a state change.
    Q.set_fake_quant_state(qat, "qat")
    acts = [m for m in qat.modules() if isinstance(m, Q.FakeQuantize) and not isinstance(m, WeightFakeQuantize)]
    assert acts and all(bool(m.fake_quant_enabled) and not bool(m.observer_enabled) for m in acts)
    # Following (the default) moves the activation scales on the same steps.
    follow = Q.ModelConvertPipeline([Q.Float2QAT(), Q.LoadCheckpoint(tmp / "calibration.pt")])(copy.deepcopy(net))
    follow.train()
    for x in data[:2]:
        follow(x)
    moved = follow.state_dict()
    assert any(not torch.equal(moved[k], calibrated[k]) for k in activations)
    with pytest.raises(hbdk_sim.errors.UsageError, match="activation_scales must be"):
        Q.Float2QAT(activation_scales="fixed")
    from hbdk_sim.registry import CONVERTERS, build_from_cfg

    with pytest.raises(hbdk_sim.errors.ConfigError, match="observer"):  # a misspelt option is named
        build_from_cfg(dict(type="Float2QAT", observr="mse"), CONVERTERS)
