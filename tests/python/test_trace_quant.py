"""Calibrated and QAT torch models traced to HBIR with their scales: what is recorded, what the
compiled binary computes against the fake-quant simulation, the converters, and the torch-model API
(check_model, compile_perf, export_hbir)."""

import hbdk_sim
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from hbdk_sim import quantization as Q  # noqa: E402
from hbdk_sim.frontend import UnsupportedOpError, trace_float, trace_quant  # noqa: E402


class Net(nn.Module):
    """conv-bn-relu, a depthwise conv-bn + residual add + relu, bilinear upsampling, a concat with
    the (quantized) input and a 1x1 head."""

    def __init__(self) -> None:
        super().__init__()
        self.quant, self.dequant = Q.QuantStub(), Q.DeQuantStub()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8)
        self.add, self.relu2 = Q.Add(), nn.ReLU()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear")
        self.cat = Q.Concat(1)
        self.head = nn.Conv2d(11, 4, 1)

    def forward(self, x):
        x = self.quant(x)
        y = self.relu1(self.bn1(self.conv1(x)))
        z = self.relu2(self.add(self.bn2(self.conv2(y)), y))
        return self.dequant(self.head(self.cat(self.up(z), x)))

    def fuse_model(self, mode="fuse_bn"):
        Q.fuse_modules(self, [["conv1", "bn1", "relu1"], ["conv2", "bn2", "add", "relu2"]], mode=mode, inplace=True)


def _float_net(seed=0):
    torch.manual_seed(seed)
    net = Net()
    for bn in (net.bn1, net.bn2):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


DATA = [torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(i)) for i in range(8)]


def _calibrated(net, converter=None):
    model = (converter or Q.Float2Calibration())(net)
    with torch.no_grad():
        for x in DATA:
            model(x)
    return Q.set_fake_quant_state(model, "validation")


def _ops(module):
    return [op for op in module.function("main").ops if op.name != "constant"]


def test_every_activation_carries_a_scale_and_convadd_keeps_its_conv_in_si16():
    model = _calibrated(_float_net())
    module = trace_quant(model, (DATA[0],))
    fn = module.function("main")
    assert all(a.type.scales is not None for a in fn.arguments)
    for op in _ops(module):
        for r in op.results:
            assert r.type.scales is not None and len(r.type.scales) == 1, (op.name, op.loc)
    (inner,) = [op for op in _ops(module) if op.loc == "add" and op.name == "conv2d"]
    assert inner.attrs.get("quant.dtype") == "si16"
    # the conv+relu of the fused group shares the group's output scale (one rounding)
    conv1, relu1 = [op for op in _ops(module) if op.loc == "conv1"]
    assert conv1.result().type.scales == relu1.result().type.scales
    scale = float(model.conv1.activation_post_process.calculate_qparams())
    assert relu1.result().type.scales[0] == pytest.approx(scale, rel=1e-7)
    # concat at its own quantizer's scale
    (cat,) = [op for op in _ops(module) if op.name == "concat"]
    assert cat.result().type.scales[0] == pytest.approx(float(model.cat.activation_post_process.scale), rel=1e-7)


def test_tracing_does_not_teach_the_observers_and_restores_the_mode():
    model = _calibrated(_float_net())
    Q.set_fake_quant_state(model, "calibration")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trace_quant(model, (100 * DATA[0],))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training
    assert all(fq.state == "calibration" for fq in model.modules() if isinstance(fq, Q.FakeQuantize))


def test_compiled_binary_tracks_the_fake_quant_simulation(tmp_path):
    net = _float_net()
    model = _calibrated(_float_net())
    module = trace_quant(model, (DATA[0],))
    hbm = tmp_path / "net.hbm"
    hbdk_sim.compile(module, march="bpu", output=hbm)
    executor = hbdk_sim.Executor(hbm)
    out_scale = float(model.head.activation_post_process.calculate_qparams())
    for x in DATA[:3]:
        (got,) = executor.run([x.numpy()]).values()
        with torch.no_grad():
            want = model(x).numpy()
            ref = net(x).numpy()
        # The simulation rounds each value once where the integer graph may round a second time
        # (bias, multiplier, the concat's finer input): a couple of output steps at most.
        assert np.abs(got - want).max() <= 2.0 * out_scale * (1 + 1e-6)
        cos = float((got * ref).sum() / np.linalg.norm(got) / np.linalg.norm(ref))
        assert cos >= 0.999


def test_weights_are_traced_through_their_fake_quantizer():
    model = _calibrated(_float_net())
    module = trace_quant(model, (DATA[0],))
    (head,) = [op for op in _ops(module) if op.loc == "head"]
    weight = module.constant_value(head.operands[1].owner)
    with torch.no_grad():
        want = model.head.weight_fake_quant(model.head.weight).numpy()
    np.testing.assert_array_equal(weight, want)


def test_untraceable_quantization_gets_one_message():
    class NoStub(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x)

    model = _calibrated(NoStub())
    with pytest.raises(UnsupportedOpError, match="model input 'x' has no quantization scale; put a .*QuantStub"):
        trace_quant(model, (DATA[0],))

    class PlainAdd(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = Q.QuantStub()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)

        def forward(self, x):
            x = self.quant(x)
            return self.a(x) + self.b(x)

    model = _calibrated(PlainAdd())
    with pytest.raises(UnsupportedOpError, match=r"no quantization scale for 'add'.*HBIR 'add'.*"
                                                 r"test_trace_quant.py:\d+ .*prepare_qat_fx.*Add, Mul, Concat"):
        trace_quant(model, (DATA[0],))
    with pytest.raises(ValueError, match="has no quantizers; prepare it"):
        trace_quant(_float_net(), (DATA[0],))
    fresh = Q.Float2Calibration()(_float_net())  # never saw data
    with pytest.raises(UnsupportedOpError, match="has no scale .*observed no data"):
        trace_quant(fresh, (DATA[0],))


def test_float_trace_ignores_quantizers():
    model = _calibrated(_float_net())
    module = trace_float(model, (DATA[0],))
    assert all(r.type.scales is None for op in _ops(module) for r in op.results)


# ---- converters --------------------------------------------------------------------------------


def test_float2calibration_fuses_through_fuse_model_and_sets_states():
    model = Q.Float2Calibration(observer="percentile")(_float_net())
    assert isinstance(model.conv1, Q.FusedConv2d) and isinstance(model.bn1, nn.Identity)
    assert isinstance(model.add, Q.ConvAdd2d)
    assert isinstance(model.add.conv_post_process, Q.FakeQuantize) and model.add.conv_post_process.dtype == "si16"
    states = {fq.state for fq in model.modules() if isinstance(fq, Q.FakeQuantize)}
    assert states == {"calibration"}
    assert isinstance(model.quant.activation_post_process.observer, Q.PercentileObserver)
    with pytest.raises(ValueError, match="already has quantizers"):
        Q.Float2QAT()(model)
    qat = Q.Float2QAT(fuse_mode="with_bn")(_float_net())
    assert isinstance(qat.conv1, Q.ConvBn2d)
    assert {fq.state for fq in qat.modules() if isinstance(fq, Q.FakeQuantize)} == {"qat"}


def test_calibration_checkpoint_loads_into_the_qat_model(tmp_path):
    calibrated = _calibrated(_float_net())
    torch.save({"model": calibrated.state_dict(), "epoch": 3}, tmp_path / "calib.pt")
    torch.save({"module." + k: v for k, v in _float_net(1).state_dict().items()}, tmp_path / "float_ddp.pt")
    pipeline = Q.ModelConvertPipeline([
        dict(type="LoadCheckpoint", path=tmp_path / "float_ddp.pt"),
        dict(type="Float2QAT"),
        Q.LoadCheckpoint(tmp_path / "calib.pt"),
    ])
    qat = pipeline(Net())
    assert {fq.state for fq in qat.modules() if isinstance(fq, Q.FakeQuantize)} == {"qat"}  # not calibration's
    for name, fq in qat.named_modules():
        if isinstance(fq, Q.FakeQuantize):
            want = dict(calibrated.named_modules())[name]
            assert torch.equal(fq.calculate_qparams(), want.calculate_qparams()), name
    # and it traces to the same scales as the calibrated model
    a, b = trace_quant(qat, (DATA[0],)), trace_quant(calibrated, (DATA[0],))
    assert [r.type.scales for op in _ops(a) for r in op.results] == [r.type.scales for op in _ops(b) for r in op.results]


class Evil:
    """Not a tensor: a checkpoint holding it needs unpickling code, which weights_only refuses."""


def test_load_checkpoint_errors_are_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt: checkpoint not found"):
        Q.LoadCheckpoint(tmp_path / "missing.pt")(Net())
    torch.save(_float_net().state_dict(), tmp_path / "float.pt")
    with pytest.raises(ValueError, match=r"does not fit the calibration/QAT Net: the model's '.*activation_post_process.*' is not "
                       r"there .*a float checkpoint of .*before Float2Calibration"):
        Q.LoadCheckpoint(tmp_path / "float.pt")(_calibrated(_float_net()))
    with pytest.raises(ValueError, match="float.pt: no weights under 'network.'"):
        Q.LoadCheckpoint(tmp_path / "float.pt", prefix="network.")(Net())
    torch.save({"model": {"network." + k: v for k, v in _float_net(2).state_dict().items()}}, tmp_path / "task.pt")
    inner = Q.LoadCheckpoint(tmp_path / "task.pt", prefix="network.")(Net())
    assert torch.equal(inner.head.weight, _float_net(2).head.weight)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: not a loadable checkpoint"):
        Q.LoadCheckpoint(tmp_path / "junk.pt")(Net())
    torch.save({"model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="evil.pt: not a loadable checkpoint"):  # weights_only refuses the class
        Q.LoadCheckpoint(tmp_path / "evil.pt")(Net())
    with pytest.raises(ValueError, match="input_shape"):
        Q.QAT2Quantize()(_calibrated(_float_net()))


# ---- the torch-model API ---------------------------------------------------------------------------


def test_check_model_and_compile_perf_take_torch_models(tmp_path):
    x = DATA[0]
    assert hbdk_sim.check_model(_float_net(), (x,)).ok
    assert hbdk_sim.check_model(_calibrated(_float_net()), x).ok
    report = hbdk_sim.compile_perf(_calibrated(_float_net()), (x,), march="bpu", out_dir=tmp_path)
    assert report.fps > 0 and report.layers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Net.hbm", "Net.perf.html", "Net.perf.json"]
    float_report = hbdk_sim.compile_perf(_float_net(), x)
    assert float_report.total_cycles > 0
    with pytest.raises(ValueError, match="needs example_inputs"):
        hbdk_sim.compile_perf(_float_net())
    with pytest.raises(TypeError, match="pass the march by keyword"):
        hbdk_sim.compile_perf(_float_net(), "bpu")

    class Wide(nn.Module):
        def forward(self, x):
            return nn.functional.max_pool2d(x, 11, 1)

    result = hbdk_sim.check_model(Wide(), torch.randn(1, 3, 16, 16))
    assert not result.ok and "max_pool2d" in result.format()


def test_export_hbir_writes_the_scaled_graph_and_refuses_to_overwrite(tmp_path):
    model = _calibrated(_float_net())
    path = tmp_path / "net.hbir"
    module = hbdk_sim.export_hbir(model, (DATA[0],), path)
    assert hbdk_sim.parse(path.read_text()).print() == module.print()
    assert "scale=" in path.read_text()
    with pytest.raises(FileExistsError):
        hbdk_sim.export_hbir(model, (DATA[0],), path)
    hbdk_sim.export_hbir(_float_net(), (DATA[0],), path, overwrite=True)
    assert "scale=" not in path.read_text()


class Deconv(nn.Module):
    """A grouped deconv whose output channels have very different weight ranges."""

    def __init__(self) -> None:
        super().__init__()
        self.quant, self.dequant = Q.QuantStub(), Q.DeQuantStub()
        self.deconv = nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, groups=2)

    def forward(self, x):
        return self.dequant(self.deconv(self.quant(x)))


def test_deconv_deploys_with_the_weight_scales_qat_trained():
    torch.manual_seed(0)
    net = Deconv()
    with torch.no_grad():
        net.deconv.weight[:, 1] *= 8.0  # weight [Cin, Cout/groups, kh, kw]: output channels 1 and 4
    model = Q.Float2QAT()(net).train()
    assert isinstance(model.deconv, Q.QATConvTranspose2d) and model.deconv.weight_fake_quant.ch_axis == 1
    data = [torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for x in data:
        optimizer.zero_grad()
        model(x).square().mean().backward()
        optimizer.step()
    model = Q.set_fake_quant_state(model.eval(), "validation")
    with torch.no_grad():
        model(data[0])  # the scales the trained weights compute with
    trained = model.deconv.weight_fake_quant.calculate_qparams().clone()
    assert trained.shape == (3,) and float(trained[1]) > 4 * float(trained[0])

    module = Q.quantize_module(trace_quant(model, (data[0],)))
    (deconv,) = [op for op in _ops(module) if op.name == "conv_transpose2d"]
    weight = deconv.operands[1]
    assert weight.type.axis == 1
    np.testing.assert_array_equal(np.float32(weight.type.scales), trained.numpy())
    # The integer weights are the ones QAT computed with: q * s == fake_quant(w), exactly.
    with torch.no_grad():
        want = model.deconv.weight_fake_quant(model.deconv.weight).numpy()
    q = module.constant_value(weight.owner).astype(np.float32)
    np.testing.assert_array_equal(q * trained.numpy().reshape(1, 3, 1, 1), want)


class Attention(nn.Module):
    """softmax(q k^T) v with the Mul, Matmul and Softmax modules, each given its own output scale."""

    def __init__(self) -> None:
        super().__init__()
        self.quant, self.dequant = Q.QuantStub(), Q.DeQuantStub()
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.scores, self.mix = Q.Matmul(), Q.Matmul()
        self.gate = Q.Mul()
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        x = self.quant(x)
        attn = self.softmax(self.scores(self.q(x), self.k(x).transpose(1, 2)))
        return self.dequant(self.gate(self.mix(attn, self.v(x)), x))


def test_mul_matmul_softmax_modules_get_scales_and_compile_close_to_the_simulation(tmp_path):
    torch.manual_seed(0)
    data = [torch.randn(1, 6, 8, generator=torch.Generator().manual_seed(i)) for i in range(6)]
    model = Q.Float2Calibration()(Attention().eval())
    for name in ("scores", "mix", "gate", "softmax"):
        assert isinstance(getattr(model, name).activation_post_process, Q.FakeQuantize), name
    with torch.no_grad():
        for x in data:
            model(x)
    model = Q.set_fake_quant_state(model, "validation")
    module = trace_quant(model, (data[0],))
    by_name = {op.name for op in _ops(module)}
    assert {"matmul", "mul", "softmax"} <= by_name
    for op in _ops(module):
        if op.loc in ("scores", "mix", "gate"):
            want = float(getattr(model, op.loc).activation_post_process.calculate_qparams())
            assert op.results[0].type.scales == [pytest.approx(want, rel=1e-6)], op.loc
    hbm = tmp_path / "attention.hbm"
    hbdk_sim.compile(module, march="bpu", output=hbm)
    (got,) = hbdk_sim.Executor(hbm).run([data[0].numpy()]).values()
    with torch.no_grad():
        want = model(data[0]).numpy()
    out_scale = float(model.gate.activation_post_process.calculate_qparams())
    assert np.abs(got - want).max() <= 3.0 * out_scale


def test_a_constant_behind_an_si16_quantizer_stays_si16_in_the_integer_graph():
    """A learned table behind an si16 QuantStub (MOTR's queries and position tables) is an
    activation at its quantizer's scale and width: the integer graph holds it as si16 (at si8 its
    values would saturate at +-128 LSB of the si16 scale), and the integer model follows the fake
    quantization within a rounding step."""
    from hbdk_sim.quantization import QAT2Quantize, prepare_qat_fx, set_fake_quant_state
    from hbdk_sim.quantization.qconfig import qconfig_int16

    class Table(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.nn.Parameter(torch.linspace(-3.0, 3.0, 64).reshape(1, 4, 4, 4))
            self.stub = Q.QuantStub()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.stub(self.table).transpose(2, 3)

    model = Table()
    model.stub.qconfig = qconfig_int16()
    x = torch.rand(1, 4, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.1
    prepared = prepare_qat_fx(model, (x,))
    with torch.no_grad():
        prepared(x)
    set_fake_quant_state(prepared, "validation")
    int_model = QAT2Quantize(example_inputs=(x,))(prepared)
    constants = [line for line in int_model.hbir_text.splitlines() if "transpose(" in line]
    assert len(constants) == 1 and "xsi16, scale=" in constants[0]
    with torch.no_grad():
        want, got = prepared(x), int_model(x)
    assert (got - want).abs().max() <= 0.05  # the result's si8 step is 3.1 / 127
