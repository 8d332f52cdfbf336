"""hbdk_sim.quantization fusion (fuse_bn / with_bn, conv+add, Conv2d and ConvTranspose2d), prepare_qat and
the qconfig setters, against the unfused float computation; a fused deconv decoder compiles bit-exactly."""

import copy
from collections import OrderedDict

import hbdk_sim
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hbdk_sim.errors import UnsupportedModelError
from hbdk_sim.frontend.api import compile_model
from hbdk_sim.quantization import (
    Add,
    ConvAdd2d,
    ConvBn2d,
    DeQuantStub,
    FakeQuantize,
    FusedConv2d,
    QAT2Quantize,
    QATConv2d,
    QATLinear,
    QConfig,
    QuantStub,
    default_qconfig,
    fold_conv_bn,
    fuse_modules,
    prepare_qat,
    qconfig_int16,
    set_fake_quant_state,
    set_qconfig,
)
from torch import nn


def randomize_bn(bn: nn.BatchNorm2d, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    c = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(c, generator=g))
        bn.running_mean.copy_(torch.randn(c, generator=g))
        bn.running_var.copy_(torch.rand(c, generator=g) + 0.25)


class Block(nn.Module):
    def __init__(self, act: type[nn.Module] = nn.ReLU, bias: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=bias)
        self.bn = nn.BatchNorm2d(8)
        self.relu = act()
        randomize_bn(self.bn, 1)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.add = Add()
        self.relu = nn.ReLU()
        randomize_bn(self.bn, 2)

    def forward(self, x):
        return self.relu(self.add(self.bn(self.conv(x)), x))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential()
        self.backbone.add_module("conv1", nn.Conv2d(3, 4, 3, padding=1))
        self.backbone.add_module("relu1", nn.ReLU())
        self.backbone.add_module("conv2", nn.Conv2d(4, 4, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.pool(self.backbone(x)).flatten(1))


@pytest.mark.parametrize("act", [nn.ReLU, nn.ReLU6])
@pytest.mark.parametrize("bias", [True, False])
def test_fuse_bn_matches_eval_conv_bn_relu(act, bias):
    torch.manual_seed(0)
    model = Block(act, bias).eval()
    x = torch.randn(2, 3, 10, 10) * 3
    fused = fuse_modules(model, [["conv", "bn", "relu"]], mode="fuse_bn")
    assert isinstance(fused.conv, FusedConv2d) and isinstance(fused.conv.act, act)
    assert isinstance(fused.bn, nn.Identity) and isinstance(fused.relu, nn.Identity)
    torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=0)
    assert isinstance(model.bn, nn.BatchNorm2d)  # not in place by default


def test_fuse_conv_bn_without_activation():
    model = Block().eval()
    model.relu = nn.Identity()
    x = torch.randn(1, 3, 6, 6)
    fused = fuse_modules(model, [["conv", "bn"]])
    assert fused.conv.act is None
    torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=0)


def test_with_bn_eval_equals_fuse_bn_and_to_fused():
    model = Block().eval()
    x = torch.randn(2, 3, 8, 8)
    with_bn = fuse_modules(model, [["conv", "bn", "relu"]], mode="with_bn")
    assert isinstance(with_bn.conv, ConvBn2d)
    fold = fuse_modules(model, [["conv", "bn", "relu"]], mode="fuse_bn")
    torch.testing.assert_close(with_bn(x), fold(x), atol=1e-5, rtol=0)
    folded = with_bn.conv.to_fused()
    assert isinstance(folded, FusedConv2d)
    torch.testing.assert_close(folded.conv.weight, fold.conv.conv.weight)
    torch.testing.assert_close(folded.conv.bias, fold.conv.conv.bias)


def test_with_bn_training_updates_stats_and_trains():
    torch.manual_seed(0)
    model = fuse_modules(Block().train(), [["conv", "bn", "relu"]], mode="with_bn")
    model = prepare_qat(model, QConfig())
    set_fake_quant_state(model, "qat")
    fused = model.conv
    mean0, var0 = fused.bn.running_mean.clone(), fused.bn.running_var.clone()
    x = torch.randn(4, 3, 8, 8) * 2 + 1
    out = model(x)
    assert not torch.equal(fused.bn.running_mean, mean0)
    assert not torch.equal(fused.bn.running_var, var0)
    out.square().mean().backward()
    for p in (fused.conv.weight, fused.conv.bias, fused.bn.weight, fused.bn.bias):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_with_bn_training_without_fake_quant_is_conv_then_batch_bn():
    torch.manual_seed(0)
    model = Block().train()
    x = torch.randn(4, 3, 8, 8)
    fused = fuse_modules(model, [["conv", "bn", "relu"]], mode="with_bn")
    torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused.conv.bn.running_mean, model.bn.running_mean)
    torch.testing.assert_close(fused.conv.bn.running_var, model.bn.running_var)


@pytest.mark.parametrize("mode", ["fuse_bn", "with_bn"])
def test_conv_bn_add_relu(mode):
    model = Residual().eval()
    x = torch.randn(2, 4, 6, 6)
    fused = fuse_modules(model, [["conv", "bn", "add", "relu"]], mode=mode)
    assert isinstance(fused.add, ConvAdd2d)
    assert isinstance(fused.conv, nn.Identity) and isinstance(fused.bn, nn.Identity)
    torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=0)
    if mode == "with_bn":
        torch.testing.assert_close(fused.add.to_fused()(x, x), model(x), atol=1e-5, rtol=0)


def test_conv_add_module_equals_unfused():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, padding=1)
    x, r = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(ConvAdd2d(conv)(x, r), conv(x) + r)
    torch.testing.assert_close(ConvAdd2d(conv, nn.ReLU())(x, r), torch.relu(conv(x) + r))


def test_fuse_errors():
    model = Block()
    with pytest.raises(ValueError, match="mode"):
        fuse_modules(model, [["conv", "bn"]], mode="bogus")
    with pytest.raises(ValueError, match="Conv2d or ConvTranspose2d followed by"):
        fuse_modules(model, [["bn", "relu"]])
    with pytest.raises(ValueError, match="BatchNorm2d"):
        fuse_modules(model, [["conv", "relu", "bn"]])
    with pytest.raises(ValueError, match="'nope'"):
        fuse_modules(model, [["conv", "nope"]])


def test_set_qconfig_precedence():
    model = Net()
    default, q16, lin = QConfig(), qconfig_int16(), QConfig(output=None)
    set_qconfig(
        model,
        default,
        by_name={"backbone.conv1": q16, "head": None},
        by_type={nn.Linear: lin, nn.Conv2d: lin},
    )
    assert model.backbone.conv1.qconfig is q16  # name beats type
    assert model.backbone.conv2.qconfig is lin  # type beats default
    assert model.head.qconfig is None  # name beats type, None allowed
    assert model.backbone.relu1.qconfig is default
    assert model.pool.qconfig is default


def test_set_qconfig_name_covers_submodules():
    model = Net()
    q16 = qconfig_int16()
    set_qconfig(model, QConfig(), by_name={"backbone": q16}, by_type={nn.Conv2d: QConfig()})
    assert model.backbone.conv2.qconfig is q16 and model.backbone.relu1.qconfig is q16


def test_set_qconfig_unknown_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"'backbone\.conv3'.*backbone\.conv1") as e:
        set_qconfig(Net(), QConfig(), by_name={"backbone.conv3": None})
    assert "backbone.conv2" in str(e.value)
    with pytest.raises(ValueError, match="'zzz'$"):
        set_qconfig(Net(), QConfig(), by_name={"zzz": None})


def test_prepare_qat_attaches_and_switches():
    torch.manual_seed(0)
    model = Net()
    set_qconfig(model, QConfig(), by_name={"backbone.conv1": qconfig_int16()})
    qat = prepare_qat(model)
    assert type(model.backbone.conv1) is nn.Conv2d  # not in place by default
    c1, c2, head = qat.backbone.conv1, qat.backbone.conv2, qat.head
    assert isinstance(c1, QATConv2d) and isinstance(head, QATLinear)
    assert c1.weight_fake_quant.dtype == "si8" and c1.weight_fake_quant.ch_axis == 0
    assert c1.activation_post_process.dtype == "si16"
    assert c2.activation_post_process.dtype == "si8"
    assert isinstance(qat.backbone.relu1.activation_post_process, FakeQuantize)
    x = torch.randn(2, 3, 6, 6)
    # Calibration: outputs are the float ones, the observers record.
    set_fake_quant_state(qat, "calibration")
    torch.testing.assert_close(qat(x), model(x))
    fqs = [m for m in qat.modules() if isinstance(m, FakeQuantize)]
    assert len(fqs) == 3 * 2 + 1
    assert all(m.state == "calibration" for m in fqs)
    set_fake_quant_state(qat, "validation")
    assert all(m.state == "validation" for m in fqs)
    y = qat(x)
    assert not torch.equal(y, model(x))
    torch.testing.assert_close(y, model(x), atol=0.05, rtol=0.05)
    # The si8 weight fake-quant holds what the observer saw: one scale per output channel.
    assert c2.weight_fake_quant.calculate_qparams().shape == (4,)
    # Parameters are shared and keep their names.
    assert set(dict(qat.named_parameters())) == set(dict(model.named_parameters()))


def test_prepare_qat_fused_and_none():
    model = fuse_modules(Block().eval(), [["conv", "bn", "relu"]], mode="with_bn")
    set_qconfig(model, QConfig(), by_name={"conv": None})
    qat = prepare_qat(model)
    assert qat.conv.weight_fake_quant is None and qat.conv.activation_post_process is None
    qat = prepare_qat(model, QConfig(), inplace=False)
    assert qat.conv.weight_fake_quant is None  # the module's own None wins over the argument
    del model.conv.qconfig
    qat = prepare_qat(model, QConfig())
    assert isinstance(qat.conv.weight_fake_quant, FakeQuantize)
    assert isinstance(qat.conv.activation_post_process, FakeQuantize)
    set_fake_quant_state(qat, "qat")
    x = torch.randn(1, 3, 6, 6)
    y = qat(x)
    s = qat.conv.activation_post_process.calculate_qparams()
    torch.testing.assert_close(torch.round(y / s) * s, y)
    set_fake_quant_state(qat, "validation")
    folded = qat.conv.to_fused()
    assert folded.weight_fake_quant is not None
    torch.testing.assert_close(folded(x), qat(x), atol=1e-5, rtol=0)


def test_every_mapped_module_becomes_its_qat_class_sharing_parameters():
    from hbdk_sim.quantization import QAT_MODULE_MAPPINGS

    torch.manual_seed(0)
    examples = {nn.Conv2d: (nn.Conv2d(3, 4, 3), torch.randn(1, 3, 6, 6)),
                nn.ConvTranspose2d: (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
                                     torch.randn(1, 4, 5, 5)),
                nn.Linear: (nn.Linear(5, 3), torch.randn(2, 5))}
    assert set(examples) == set(QAT_MODULE_MAPPINGS)
    for float_cls, (module, x) in examples.items():
        mapping = QAT_MODULE_MAPPINGS[float_cls]
        holder = nn.Sequential(module)
        qat = prepare_qat(holder, QConfig())[0]
        assert type(qat) is mapping.qat_class and isinstance(qat, float_cls)
        assert qat.weight_fake_quant.ch_axis == mapping.weight_axis
        assert set(dict(qat.named_parameters())) == {"weight", "bias"}
        set_fake_quant_state(qat, "calibration")
        torch.testing.assert_close(qat(x), module(x))  # the float computation while calibrating
        set_fake_quant_state(qat, "validation")
        scales = qat.weight_fake_quant.calculate_qparams()
        assert scales.shape == (module.weight.shape[mapping.weight_axis],)


def test_prepare_qat_converts_subclasses_that_keep_the_base_forward():
    class TaggedConv(nn.Conv2d):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.tag = "stem"

    class TaggedLinear(nn.Linear):
        pass

    class SameConv(nn.Conv2d):  # overrides forward: cannot be fake-quantized as a Conv2d
        def forward(self, x):
            return F.conv2d(F.pad(x, (1, 1, 1, 1)), self.weight, self.bias)

    model = nn.Sequential(TaggedConv(3, 4, 3, padding=1), nn.Flatten(), TaggedLinear(4 * 4 * 4, 2))
    prepared = prepare_qat(model, default_qconfig())
    assert type(prepared[0]) is QATConv2d and prepared[0].tag == "stem"
    assert type(prepared[2]) is QATLinear and prepared[2].weight_fake_quant is not None
    assert torch.equal(prepared[0].weight, model[0].weight)
    with pytest.raises(UnsupportedModelError, match=r"module 'body\.0' \(SameConv\) subclasses nn\.Conv2d but "
                                                    r"overrides forward"):
        prepare_qat(nn.Sequential(OrderedDict(body=nn.Sequential(SameConv(3, 4, 3)))), default_qconfig())


# ---- ConvTranspose2d -> BatchNorm2d (-> ReLU/ReLU6) -------------------------------------------------------


class DeconvBlock(nn.Module):
    """ConvTranspose2d -> BN -> act, as a deconv decoder stage writes it."""

    def __init__(self, cin=4, cout=6, groups=1, act=nn.ReLU, bias=False, output_padding=0, seed=3) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, output_padding=output_padding,
                                         groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = act()
        randomize_bn(self.bn, seed)

    def forward(self, x):
        return self.relu(self.bn(self.deconv(x)))


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("act", [nn.ReLU, nn.ReLU6])
@pytest.mark.parametrize("bias,output_padding", [(False, 0), (True, 1)])
def test_deconv_bn_act_folds_to_the_float_chain(groups, act, bias, output_padding):
    torch.manual_seed(0)
    model = DeconvBlock(groups=groups, act=act, bias=bias, output_padding=output_padding).eval()
    x = torch.randn(2, 4, 5, 5) * 2
    want = model(x)
    fuse_bn = fuse_modules(model, [["deconv", "bn", "relu"]], mode="fuse_bn")
    with_bn = fuse_modules(model, [["deconv", "bn", "relu"]], mode="with_bn")
    assert type(fuse_bn.deconv) is FusedConv2d and type(fuse_bn.deconv.conv) is nn.ConvTranspose2d
    assert type(with_bn.deconv) is ConvBn2d and isinstance(fuse_bn.bn, nn.Identity)
    for fused in (fuse_bn, with_bn, with_bn.deconv.to_fused()):
        got = fused(x)
        assert got.shape == want.shape == (2, 6, 10 + output_padding, 10 + output_padding)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    folded = fold_conv_bn(model.deconv, model.bn)
    assert type(folded) is nn.ConvTranspose2d and folded.output_padding == model.deconv.output_padding
    torch.testing.assert_close(F.relu(folded(x)) if act is nn.ReLU else F.relu6(folded(x)), want, atol=1e-5, rtol=0)
    # deploy_weight_and_bias is the fold the eval forward computes
    weight, bias_ = with_bn.deconv.deploy_weight_and_bias()
    torch.testing.assert_close(weight, folded.weight, atol=1e-6, rtol=0)
    torch.testing.assert_close(bias_, folded.bias, atol=1e-6, rtol=0)


def test_deconv_add_relu_folds_to_the_float_chain():
    torch.manual_seed(0)
    deconv, bn = nn.ConvTranspose2d(4, 6, 4, 2, 1, groups=2), nn.BatchNorm2d(6)
    randomize_bn(bn, 4)
    bn.eval()
    x, r = torch.randn(2, 4, 5, 5), torch.randn(2, 6, 10, 10)
    want = torch.relu(bn(deconv(x)) + r)
    fused = fuse_modules(nn.Sequential(deconv, bn, Add(), nn.ReLU()).eval(), [["0", "1", "2", "3"]],
                         mode="with_bn")[2]  # the Add's slot
    assert type(fused) is ConvAdd2d and type(fused.conv) is nn.ConvTranspose2d
    torch.testing.assert_close(fused(x, r), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(fused.to_fused()(x, r), want, atol=1e-5, rtol=0)


def test_deconv_with_bn_training_updates_stats_and_to_fused_equals_eval():
    torch.manual_seed(0)
    float_model = DeconvBlock().train()
    x = torch.randn(4, 4, 6, 6) * 2 + 1
    # Without fake-quantization the training forward is the float chain with batch statistics.
    plain = fuse_modules(float_model, [["deconv", "bn", "relu"]], mode="with_bn")
    torch.testing.assert_close(plain(x), float_model(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(plain.deconv.bn.running_var, float_model.bn.running_var)

    model = prepare_qat(fuse_modules(DeconvBlock().train(), [["deconv", "bn", "relu"]], mode="with_bn"), QConfig())
    set_fake_quant_state(model, "qat")
    fused = model.deconv
    mean0, var0 = fused.bn.running_mean.clone(), fused.bn.running_var.clone()
    out = model(x)
    assert not torch.equal(fused.bn.running_mean, mean0) and not torch.equal(fused.bn.running_var, var0)
    out.square().mean().backward()
    for p in (fused.conv.weight, fused.bn.weight, fused.bn.bias):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    set_fake_quant_state(model.eval(), "validation")
    folded = fused.to_fused()
    assert type(folded) is FusedConv2d and type(folded.conv) is nn.ConvTranspose2d
    assert folded.weight_fake_quant.ch_axis == 1
    torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("groups", [1, 2])
def test_fused_deconv_weight_quantizer_observes_axis_1(groups):
    model = prepare_qat(fuse_modules(DeconvBlock(groups=groups).eval(), [["deconv", "bn", "relu"]], mode="with_bn"),
                        default_qconfig())
    fq = model.deconv.weight_fake_quant
    assert fq.ch_axis == 1
    x = torch.randn(1, 4, 5, 5)
    model(x)  # calibration
    set_fake_quant_state(model, "validation")
    model(x)
    # [Cin, Cout/groups, kh, kw]: one scale per output channel of a group, as the quantize pass computes
    # from the deployed (folded) weight
    weight, _ = model.deconv.deploy_weight_and_bias()
    scales = fq.calculate_qparams()
    assert scales.shape == (6 // groups,)
    torch.testing.assert_close(scales, weight.abs().amax(dim=(0, 2, 3)) / 127)
    conv_model = prepare_qat(fuse_modules(Block().eval(), [["conv", "bn", "relu"]], mode="with_bn"), QConfig())
    assert conv_model.conv.weight_fake_quant.ch_axis == 0


class DeconvDecoder(nn.Module):
    """A stem conv, two ConvTranspose2d(k4, s2, p1) -> BN -> ReLU stages and a head conv."""

    def __init__(self) -> None:
        super().__init__()
        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.stem, self.stem_bn, self.stem_relu = nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        self.up1, self.bn1, self.relu1 = nn.ConvTranspose2d(8, 8, 4, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        self.up2, self.bn2, self.relu2 = nn.ConvTranspose2d(8, 4, 4, 2, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU()
        self.head = nn.Conv2d(4, 3, 1)
        for i, bn in enumerate((self.stem_bn, self.bn1, self.bn2)):
            randomize_bn(bn, 10 + i)

    def forward(self, x):
        x = self.stem_relu(self.stem_bn(self.stem(self.quant(x))))
        x = self.relu1(self.bn1(self.up1(x)))
        x = self.relu2(self.bn2(self.up2(x)))
        return self.dequant(self.head(x))


def test_deconv_decoder_fused_eagerly_compiles_bit_exact():
    torch.manual_seed(0)
    net = DeconvDecoder().eval()
    groups = [["stem", "stem_bn", "stem_relu"], ["up1", "bn1", "relu1"], ["up2", "bn2", "relu2"]]
    model = prepare_qat(fuse_modules(net, groups, mode="with_bn"), default_qconfig())
    assert [type(model.up1), type(model.up2)] == [ConvBn2d, ConvBn2d]
    assert model.up1.weight_fake_quant.ch_axis == 1 and model.stem.weight_fake_quant.ch_axis == 0
    g = torch.Generator().manual_seed(5)
    data = [torch.randn(2, 3, 16, 16, generator=g) for _ in range(4)]
    with torch.no_grad():  # calibration
        for x in data:
            model(x)
    set_fake_quant_state(model.train(), "qat")  # a few QAT steps: BN sees batch statistics
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    for x in data[:2]:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), net(x)).backward()
        opt.step()
    set_fake_quant_state(model.eval(), "validation")

    int_model = QAT2Quantize(input_shape=(1, 3, 16, 16))(copy.deepcopy(model))
    assert int_model.hbir_text.count("conv_transpose2d") >= 2 and "batch_norm" not in int_model.hbir_text
    hbm = hbdk_sim._core.load_hbm_bytes(compile_model(model, (torch.zeros(1, 3, 16, 16),), "bpu").hbm, "deconv")
    executor = hbdk_sim.Executor(hbm)
    for x in [data[0][:1], 3 * torch.randn(1, 3, 16, 16, generator=g)]:  # the last beyond calibration
        (got,) = executor.run([x.numpy()]).values()
        with torch.no_grad():
            want = int_model(x)
            qat = model(x)
        np.testing.assert_array_equal(got, want.numpy())
    assert F.cosine_similarity(want.flatten(), qat.flatten(), dim=0) > 0.95
