"""Graph-mode preparation (hbdk_sim.quantization.prepare_qat_fx): a float model as a zoo writes it
(functional relu, BN+activation subclasses calling F.batch_norm, functional adds, muls and SE
gates, no stubs, no fuse_model) is fused and given every quantizer it needs by its graph; it
calibrates, converts with QAT2Quantize and compiles, and the executor equals int_infer bit for
bit."""

from __future__ import annotations

import copy

import hbdk_sim
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from hbdk_sim.frontend.api import compile_model  # noqa: E402
from hbdk_sim.quantization import (  # noqa: E402
    ConvAdd2d,
    ConvBn2d,
    FakeQuantize,
    FusedConv2d,
    QAT2Quantize,
    QuantStub,
    default_qconfig,
    prepare_qat_fx,
    qconfig_int16,
    set_fake_quant_state,
    set_qconfig,
)


class BNAct(nn.BatchNorm2d):
    """BN + ReLU in one module that calls F.batch_norm, as zoos write it."""

    def __init__(self, channels):
        super().__init__(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                         self.momentum, self.eps)
        return self.act(x)


class SEBlock(nn.Module):
    """conv-bn-relu (functional), conv-bn, a squeeze-excite gate (mean, conv, sigmoid, mul) and a
    functional residual add + relu."""

    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.gate = nn.Conv2d(c, c, 1)
        self.proj = nn.Conv2d(c, c, 1, bias=False)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y = y * torch.sigmoid(self.gate(y.mean((2, 3), keepdim=True)))
        return F.relu(self.proj(y) + x)


class ZooNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn = BNAct(16)
        self.block = SEBlock(16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.block(self.bn(self.stem(x)))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _with_random_bn(model: nn.Module) -> nn.Module:
    """`model` with seeded, non-trivial BN statistics and scales (a fresh BN folds to nothing)."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


def _zoo_net() -> ZooNet:
    torch.manual_seed(0)
    return _with_random_bn(ZooNet().eval())


def _batches(n=6, seed=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, 32, 32, generator=g) for _ in range(n)]


def _calibrated(model, qconfig=None):
    batches = _batches()
    prepared = prepare_qat_fx(model, (batches[0],), qconfig)
    with torch.no_grad():
        for x in batches:
            prepared(x)
    return set_fake_quant_state(prepared, "validation")


def test_the_graph_is_fused_and_every_value_gets_its_scale():
    model = _zoo_net()
    before = copy.deepcopy(model.state_dict())
    prepared = prepare_qat_fx(model, (torch.zeros(1, 3, 32, 32),))
    mods = dict(prepared.named_modules())
    assert isinstance(mods["stem"], FusedConv2d) and isinstance(mods["stem"].act, nn.ReLU)  # F.batch_norm + act
    assert isinstance(mods["block.conv1"], FusedConv2d)  # bn1 + functional relu
    assert isinstance(mods["block.proj"], ConvAdd2d)  # proj + add + relu
    assert "bn" not in mods and "block.bn1" not in mods
    quantized = {n for n, m in mods.items() if isinstance(m, FakeQuantize)}
    assert {"sigmoid_post_process", "mul_post_process"} <= quantized  # the SE gate and its product
    assert isinstance(mods["x_quant"], QuantStub)
    # the float model is untouched, and preparing again gives the same names (checkpoints load)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    again = prepare_qat_fx(model, (torch.zeros(1, 3, 32, 32),))
    again.load_state_dict(prepared.state_dict())


def test_calibrate_convert_compile_bit_exact():
    model = _zoo_net()
    prepared = _calibrated(model)
    int_model = QAT2Quantize(input_shape=(1, 3, 32, 32))(copy.deepcopy(prepared))
    hbm = hbdk_sim._core.load_hbm_bytes(compile_model(prepared, (torch.zeros(1, 3, 32, 32),), "bpu").hbm, "zoo")
    executor = hbdk_sim.Executor(hbm)
    g = torch.Generator().manual_seed(9)
    inputs = [torch.randn(1, 3, 32, 32, generator=g), torch.randn(1, 3, 32, 32, generator=g),
              4 * torch.randn(1, 3, 32, 32, generator=g)]  # the last beyond the calibrated range
    for x in inputs:
        (got,) = executor.run([x.numpy()]).values()
        with torch.no_grad():
            want = int_model(x)
            ref = model(x)
        np.testing.assert_array_equal(got, want.numpy())
    cosine = F.cosine_similarity(torch.from_numpy(got).flatten(), ref.flatten(), dim=0)
    assert cosine > 0.9  # even for the input 4x beyond calibration


def test_qconfig_by_name_reaches_the_functional_calls_inside():
    model = set_qconfig(_zoo_net(), default_qconfig(), by_name={"block": qconfig_int16()})
    prepared = prepare_qat_fx(model, (torch.zeros(1, 3, 32, 32),))
    mods = dict(prepared.named_modules())
    assert mods["mul_post_process"].dtype == "si16" and mods["block.conv1"].activation_post_process.dtype == "si16"
    assert mods["stem"].activation_post_process.dtype == "si8"


def test_with_bn_mode_trains():
    prepared = prepare_qat_fx(_zoo_net().train(), (torch.zeros(2, 3, 32, 32),), mode="with_bn", state="qat")
    assert isinstance(dict(prepared.named_modules())["block.conv1"], ConvBn2d)
    assert prepared.training
    loss = prepared(_batches(1)[0]).square().mean()
    loss.backward()
    assert prepared.block.conv1.conv.weight.grad is not None


def test_bad_mode_is_named():
    with pytest.raises(hbdk_sim.errors.UsageError, match="expected mode in"):
        prepare_qat_fx(_zoo_net(), (torch.zeros(1, 3, 32, 32),), mode="fold")


# ---- the converters in graph mode, and what the errors advise -------------------------------------


def test_converters_prepare_in_graph_mode_and_checkpoints_load():
    from hbdk_sim.quantization import Float2Calibration, Float2QAT

    shape = [1, 3, 32, 32]
    calibrated = Float2Calibration(graph_mode=True, input_shape=shape)(_zoo_net())
    with torch.no_grad():
        for x in _batches(2):
            calibrated(x)
    qat = Float2QAT(graph_mode=True, input_shape=shape)(_zoo_net())
    qat.load_state_dict(calibrated.state_dict())  # the same names: calibration's scales start QAT

    class Task(nn.Module):  # a task wrapper: only its network is prepared, the rest stays
        def __init__(self):
            super().__init__()
            self.network = _zoo_net()

        def forward(self, x):
            return self.network(x).softmax(-1)

    task = Float2Calibration(graph_mode=True, input_shape=shape, submodule="network")(Task())
    assert isinstance(task.network, torch.fx.GraphModule) and isinstance(task.network.stem, FusedConv2d)
    with pytest.raises(hbdk_sim.errors.UsageError, match="give input_shape"):
        Float2Calibration(graph_mode=True)
    with pytest.raises(hbdk_sim.errors.UsageError, match="already has quantizers"):
        Float2QAT(graph_mode=True, input_shape=shape)(qat)


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub(default_qconfig())
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        x = self.quant(x)
        return self.conv(x) + x


def test_a_value_without_scale_names_its_source_and_graph_mode():
    from hbdk_sim.frontend import UnsupportedOpError, trace_quant
    from hbdk_sim.quantization import Float2Calibration

    model = Float2Calibration()(_Residual())
    with torch.no_grad():
        model(torch.randn(1, 3, 8, 8))
    with pytest.raises(UnsupportedOpError) as err:
        trace_quant(model, (torch.randn(1, 3, 8, 8),))
    message = str(err.value)
    assert "no quantization scale for 'add'" in message and "prepare_qat_fx" in message
    assert "test_prepare_fx.py" in message and "return self.conv(x) + x" in message

    # the advice "put a FakeQuantize after it" is taken: preparation keeps a hand-placed quantizer
    class Advised(_Residual):
        def __init__(self):
            super().__init__()
            self.post = default_qconfig().output()

        def forward(self, x):
            x = self.quant(x)
            return self.post(self.conv(x) + x)

    advised = Float2Calibration()(Advised())
    with torch.no_grad():
        advised(torch.randn(1, 3, 8, 8))
    trace_quant(advised, (torch.randn(1, 3, 8, 8),))


def test_stub_only_quantizers_do_not_export_float_silently(tmp_path):
    with pytest.raises(hbdk_sim.errors.UsageError, match="the only quantizers are the QuantStubs'"):
        hbdk_sim.export_onnx(_Residual(), (torch.randn(1, 3, 8, 8),), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


class MixedActivations(nn.Module):
    """The LUT activations public zoos use: hardswish and a hardsigmoid SE gate (MobileNetV3),
    SiLU (EfficientNet), GELU in an MLP (ConvNeXt, ViT), as modules and functions."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.Hardswish())
        self.se_reduce, self.se_expand = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.mix = nn.Conv2d(8, 8, 1)
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 5)
        self.act = nn.GELU()

    def forward(self, x):
        x = self.stem(x)
        gate = F.hardsigmoid(self.se_expand(F.silu(self.se_reduce(F.adaptive_avg_pool2d(x, 1)))))
        x = F.silu(self.mix(x * gate))
        return self.fc2(F.gelu(self.act(self.fc1(x.mean((2, 3))))))


def test_lut_activations_prepare_calibrate_and_compile_bit_exact():
    torch.manual_seed(0)
    model = MixedActivations().eval()
    prepared = _calibrated(model)
    int_model = QAT2Quantize(input_shape=(1, 3, 32, 32))(copy.deepcopy(prepared))
    module = hbdk_sim.frontend.api.to_hbir(int_model, (torch.zeros(1, 3, 32, 32),))
    assert {"lut"} <= {op.name for op in module.function("main").ops}
    hbm = hbdk_sim._core.load_hbm_bytes(compile_model(prepared, (torch.zeros(1, 3, 32, 32),), "bpu").hbm, "mix")
    g = torch.Generator().manual_seed(5)
    for x in (torch.randn(1, 3, 32, 32, generator=g), 3 * torch.randn(1, 3, 32, 32, generator=g)):
        (got,) = hbdk_sim.Executor(hbm).run([x.numpy()]).values()
        with torch.no_grad():
            np.testing.assert_array_equal(got, int_model(x).numpy())
    with torch.no_grad():
        x = _batches(1)[0][:1]
        cosine = F.cosine_similarity(int_model(x).flatten(), model(x).flatten(), dim=0)
    assert cosine > 0.98


def test_eager_preparation_of_unfused_batch_norms_names_graph_mode():
    from hbdk_sim.quantization import Float2Calibration

    with pytest.raises(hbdk_sim.errors.UsageError, match=r"ZooNet has BatchNorm2d modules \('bn' and 2 more\) but "
                                                         r"no fuse_model.*graph_mode=True.*fuse=False"):
        Float2Calibration()(_zoo_net())
    assert Float2Calibration(fuse=False)(_zoo_net()) is not None  # unfused on purpose


class Attention(nn.Module):
    """Multi-head self-attention as ViT-style zoos write it, on F.scaled_dot_product_attention."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


def test_scaled_dot_product_attention_decomposes_and_quantizes():
    from hbdk_sim.frontend import UnsupportedOpError, trace_float

    torch.manual_seed(0)
    model = Attention().eval()
    x, mask = torch.randn(1, 8, 16), torch.randn(1, 2, 8, 8)
    module = trace_float(model, (x, mask))
    ops = [op.name for op in module.function("main").ops if op.name != "constant"]
    assert ops[ops.index("matmul"):ops.index("matmul") + 5] == ["matmul", "mul", "add", "softmax", "matmul"]
    (got,) = hbdk_sim.Executor(module).run([x.numpy(), mask.numpy()]).values()
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x, mask).numpy(), atol=1e-5)

    prepared = prepare_qat_fx(model, (x,))
    with torch.no_grad():
        for i in range(4):
            prepared(torch.randn(1, 8, 16, generator=torch.Generator().manual_seed(i)))
    set_fake_quant_state(prepared, "validation")
    names = {n for n, m in prepared.named_modules() if isinstance(m, FakeQuantize)}
    assert {"matmul_post_process", "mul_post_process", "softmax_post_process", "matmul_1_post_process"} <= names
    int_model = QAT2Quantize(input_shape=(1, 8, 16))(copy.deepcopy(prepared))
    hbm = hbdk_sim._core.load_hbm_bytes(compile_model(prepared, (x,), "bpu").hbm, "attention")
    (got,) = hbdk_sim.Executor(hbm).run([x.numpy()]).values()
    with torch.no_grad():
        np.testing.assert_array_equal(got, int_model(x).numpy())

    class Causal(nn.Module):
        def forward(self, q):
            return F.scaled_dot_product_attention(q, q, q, is_causal=True)

    with pytest.raises(UnsupportedOpError, match=r"is_causal=True \(pass the causal mask as an additive float"):
        trace_float(Causal(), (torch.randn(1, 2, 4, 8),))


def test_layer_norm_prepares_calibrates_and_compiles_bit_exact():
    torch.manual_seed(0)
    from zoo_architectures import ConvNeXtBlock

    model = nn.Sequential(nn.Conv2d(3, 16, 4, 4), ConvNeXtBlock(16), ConvNeXtBlock(16)).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.3, 0.3)
    prepared = _calibrated(model)
    int_model = QAT2Quantize(input_shape=(1, 3, 32, 32))(copy.deepcopy(prepared))
    assert "layer_norm" in {op.name for op in hbdk_sim.frontend.api.to_hbir(
        int_model, (torch.zeros(1, 3, 32, 32),)).function("main").ops}
    hbm = hbdk_sim._core.load_hbm_bytes(compile_model(prepared, (torch.zeros(1, 3, 32, 32),), "bpu").hbm, "convnext")
    g = torch.Generator().manual_seed(4)
    for x in (torch.randn(1, 3, 32, 32, generator=g), 4 * torch.randn(1, 3, 32, 32, generator=g)):
        (got,) = hbdk_sim.Executor(hbm).run([x.numpy()]).values()
        with torch.no_grad():
            np.testing.assert_array_equal(got, int_model(x).numpy())
    with torch.no_grad():
        x = _batches(1)[0][:1]
        assert F.cosine_similarity(int_model(x).flatten(), model(x).flatten(), dim=0) > 0.98


class TokenPooling(nn.Module):
    """Reductions as heads write them: the mean over tokens, a sum over channels, a max over a
    short axis."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):  # x: [N, tokens, 8]
        t = self.fc(x)
        return t.mean(1) + t.sum(-1, keepdim=True).mean(1) * 0.1 + torch.amax(t[:, :4], dim=1)


def test_reductions_quantize_and_compile_bit_exact():
    torch.manual_seed(0)
    model = TokenPooling().eval()
    batches = [torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    prepared = prepare_qat_fx(model, (batches[0],))
    with torch.no_grad():
        for x in batches:
            prepared(x)
    set_fake_quant_state(prepared, "validation")
    int_model = QAT2Quantize(input_shape=(1, 6, 8))(copy.deepcopy(prepared))
    hbm = hbdk_sim._core.load_hbm_bytes(compile_model(prepared, (torch.zeros(1, 6, 8),), "bpu").hbm, "pool")
    x = torch.randn(1, 6, 8, generator=torch.Generator().manual_seed(9))
    (got,) = hbdk_sim.Executor(hbm).run([x.numpy()]).values()
    with torch.no_grad():
        np.testing.assert_array_equal(got, int_model(x).numpy())
        assert F.cosine_similarity(int_model(x).flatten(), model(x).flatten(), dim=0) > 0.99


class TorchAttention(nn.Module):
    """torch's nn.MultiheadAttention as DETR-style models call it (sequence first), with a channel
    LayerNorm on an NCHW feature map before it."""

    def __init__(self, dim=16):
        super().__init__()
        from hbdk_sim.nn.layers import ChannelLayerNorm

        self.norm = ChannelLayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, 2)

    def forward(self, x):  # x: [N, C, H, W]
        tokens = self.norm(x).flatten(2).permute(2, 0, 1)  # [HW, N, C]
        out, _ = self.attn(tokens, tokens, tokens)
        return out


def test_multihead_attention_and_channel_layer_norm_compile_bit_exact():
    from hbdk_sim.frontend import UnsupportedOpError, trace_float

    torch.manual_seed(0)
    model = TorchAttention().eval()
    x = torch.randn(1, 16, 3, 4)
    module = trace_float(model, (x,))
    ops = [op for op in module.function("main").ops if op.name != "constant"]
    assert ops[0].name == "layer_norm" and ops[0].attrs["axis"] == 1
    assert [op.name for op in ops].count("linear") == 4 and "softmax" in [op.name for op in ops]
    (got,) = hbdk_sim.Executor(module).run([x.numpy()]).values()
    with torch.no_grad():
        np.testing.assert_allclose(got, model(x).numpy(), atol=1e-5)

    prepared = prepare_qat_fx(model, (x,))
    with torch.no_grad():
        for i in range(4):
            prepared(torch.randn(1, 16, 3, 4, generator=torch.Generator().manual_seed(i)))
    set_fake_quant_state(prepared, "validation")
    int_model = QAT2Quantize(example_inputs=(x,))(copy.deepcopy(prepared))
    hbm = hbdk_sim._core.load_hbm_bytes(compile_model(prepared, (x,), "bpu").hbm, "mha")
    (got,) = hbdk_sim.Executor(hbm).run([x.numpy()]).values()
    with torch.no_grad():
        np.testing.assert_array_equal(got, int_model(x).numpy())

    class Weights(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

        def forward(self, t):
            return self.attn(t, t, t)[1]

    with pytest.raises(UnsupportedOpError, match="reading its attention weights"):
        trace_float(Weights().eval(), (torch.randn(1, 6, 16),))


class DeconvDecoder(nn.Module):
    """A deconv decoder as written: conv-bn-relu, then ConvTranspose2d(k4, s2, p1) -> BN -> ReLU twice (the
    second with a functional relu6), then a head conv; no stubs, no fusion."""

    def __init__(self):
        super().__init__()
        self.stem, self.stem_bn = nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8)
        self.up1, self.bn1 = nn.ConvTranspose2d(8, 8, 4, 2, 1, bias=False), nn.BatchNorm2d(8)
        self.up2, self.bn2 = nn.ConvTranspose2d(8, 4, 4, 2, 1, bias=False), nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = F.relu(self.bn1(self.up1(x)))
        return self.head(F.relu6(self.bn2(self.up2(x))))


def _deconv_decoder() -> DeconvDecoder:
    torch.manual_seed(0)
    return _with_random_bn(DeconvDecoder().eval())


@pytest.mark.parametrize("mode", ["fuse_bn", "with_bn"])
def test_deconv_bn_relu_fuses_in_graph_mode_and_compiles_bit_exact(mode):
    model = _deconv_decoder()
    g = torch.Generator().manual_seed(3)
    batches = [torch.randn(2, 3, 16, 16, generator=g) for _ in range(4)]
    prepared = prepare_qat_fx(model, (batches[0],), mode=mode)
    mods = dict(prepared.named_modules())
    fused_cls = FusedConv2d if mode == "fuse_bn" else ConvBn2d
    for name, act in (("up1", nn.ReLU), ("up2", nn.ReLU6)):
        assert type(mods[name]) is fused_cls and type(mods[name].conv) is nn.ConvTranspose2d
        assert isinstance(mods[name].act, act) and mods[name].weight_fake_quant.ch_axis == 1
    assert type(mods["stem"]) is fused_cls and mods["stem"].weight_fake_quant.ch_axis == 0
    assert not any(isinstance(m, nn.BatchNorm2d) and n.startswith("bn") for n, m in mods.items())
    _calibrate_compile_bit_exact(model, prepared, batches, transposes=2)


def _calibrate_compile_bit_exact(model, prepared, batches, transposes):
    """Calibrate `prepared` on `batches`, convert it with QAT2Quantize and compile it: the executor equals
    the integer model bit for bit, on a calibrated input and on one 3x beyond."""
    with torch.no_grad():
        for x in batches:
            prepared(x)
    set_fake_quant_state(prepared, "validation")
    shape = (1, *batches[0].shape[1:])
    int_model = QAT2Quantize(input_shape=shape)(copy.deepcopy(prepared))
    assert int_model.hbir_text.count("conv_transpose2d") >= transposes
    hbm = hbdk_sim._core.load_hbm_bytes(compile_model(prepared, (torch.zeros(shape),), "bpu").hbm, "deconv")
    executor = hbdk_sim.Executor(hbm)
    for x in (batches[0][:1], 3 * torch.randn(shape, generator=torch.Generator().manual_seed(9))):
        (got,) = executor.run([x.numpy()]).values()
        with torch.no_grad():
            want = int_model(x)
            ref = model(x)
        np.testing.assert_array_equal(got, want.numpy())
    assert F.cosine_similarity(torch.from_numpy(got).flatten(), ref.flatten(), dim=0) > 0.9


def test_deconv_bn_add_relu_fuses_in_graph_mode_and_compiles_bit_exact():
    class SkipDecoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.skip = nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(3, 4, 1)
            self.up, self.bn = nn.ConvTranspose2d(8, 4, 4, 2, 1, bias=False), nn.BatchNorm2d(4)
            self.head = nn.Conv2d(4, 2, 1)

        def forward(self, x):
            return self.head(F.relu(self.bn(self.up(F.relu(self.stem(x)))) + self.skip(x)))

    torch.manual_seed(0)
    model = SkipDecoder().eval()
    g = torch.Generator().manual_seed(3)
    batches = [torch.randn(2, 3, 16, 16, generator=g) for _ in range(4)]
    prepared = prepare_qat_fx(model, (batches[0],), mode="with_bn")
    up = dict(prepared.named_modules())["up"]
    assert type(up) is ConvAdd2d and type(up.conv) is nn.ConvTranspose2d and up.weight_fake_quant.ch_axis == 1
    _calibrate_compile_bit_exact(model, prepared, batches, transposes=1)


def test_deconv_called_with_output_size_is_not_fused():
    class Sized(nn.Module):
        def __init__(self):
            super().__init__()
            self.up, self.bn = nn.ConvTranspose2d(4, 4, 3, 2, 1), nn.BatchNorm2d(4)

        def forward(self, x):
            return F.relu(self.bn(self.up(x, output_size=[10, 10])))

    prepared = prepare_qat_fx(Sized().eval(), (torch.randn(1, 4, 5, 5),))
    assert not isinstance(dict(prepared.named_modules())["up"], (FusedConv2d, ConvBn2d))


class _Sampler(nn.Module):
    """Offsets predicted from the features move a grid of sampling points (deformable attention's
    pattern): grid_sample of a conv's output at tanh-bounded positions, sin/cos features beside it."""

    def __init__(self) -> None:
        super().__init__()
        self.value = nn.Conv2d(3, 8, 3, padding=1)
        self.offsets = nn.Conv2d(3, 2, 3, stride=4, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = torch.tanh(self.offsets(x)).permute(0, 2, 3, 1) * 1.1  # a little beyond [-1, 1]: zero padding
        sampled = F.grid_sample(self.value(x), grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return torch.cat([sampled, torch.sin(sampled * 3), torch.cos(sampled)], dim=1)


def test_grid_sample_and_sin_cos_prepare_calibrate_and_compile_bit_exact():
    torch.manual_seed(0)
    model = _Sampler().eval()
    prepared = _calibrated(model)
    int_model = QAT2Quantize(input_shape=(1, 3, 32, 32))(copy.deepcopy(prepared))
    assert "grid_sample" in int_model.hbir_text and int_model.hbir_text.count("lut(") >= 3  # tanh, sin, cos
    hbm = hbdk_sim._core.load_hbm_bytes(compile_model(prepared, (torch.zeros(1, 3, 32, 32),), "bpu").hbm, "sampler")
    executor = hbdk_sim.Executor(hbm)
    in_range = _batches(1)[0][:1]
    for x in (in_range, 3 * torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(9))):
        (got,) = executor.run([x.numpy()]).values()
        with torch.no_grad():
            np.testing.assert_array_equal(got, int_model(x).numpy())
    with torch.no_grad():
        want, ref = int_model(in_range), model(in_range)
    for k in range(3):  # the samples, their sines and cosines track the float model in range
        assert F.cosine_similarity(want[:, 8 * k:8 * k + 8].flatten(), ref[:, 8 * k:8 * k + 8].flatten(), dim=0) > 0.95


class _LearnedTable(nn.Module):
    """A learned table (an embedding's weight) enters the graph through a QuantStub, is reshaped and
    added to the features: the stub's scale makes the constant an activation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.table = nn.Embedding(64, 4)
        self.table_stub = QuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        table = self.table_stub(self.table.weight).transpose(0, 1).reshape(1, 4, 8, 8)
        return self.conv(x) + table


def test_a_constant_behind_a_quant_stub_is_an_activation_bit_exact():
    torch.manual_seed(0)
    model = _LearnedTable().eval()
    prepared = _calibrated(model)
    int_model = QAT2Quantize(input_shape=(1, 3, 32, 32))(copy.deepcopy(prepared))
    hbm = hbdk_sim._core.load_hbm_bytes(compile_model(prepared, (torch.zeros(1, 3, 32, 32),), "bpu").hbm, "table")
    x = _batches(1)[0][:1]
    (got,) = hbdk_sim.Executor(hbm).run([x.numpy()]).values()
    with torch.no_grad():
        want, ref = int_model(x), model(x)
    np.testing.assert_array_equal(got, want.numpy())
    assert F.cosine_similarity(want.flatten(), ref.flatten(), dim=0) > 0.99
