"""The FCOS network's parts: BiFPN (nodes, laterals, P6/P7) and FCOSHead (towers sharing conv
weights across levels with a BN per level), their shapes at the deploy size, and quantization:
fused per level, calibrated, converted and compiled, the binary equal to the integer model."""

from __future__ import annotations

import copy
import math

import hbdk_sim
import numpy as np
import pytest
import torch
from hbdk_sim.errors import UsageError
from hbdk_sim.frontend.api import compile_model
from hbdk_sim.nn.backbones import EfficientNet
from hbdk_sim.nn.heads.fcos_head import FCOSHead
from hbdk_sim.nn.layers import fuse_blocks
from hbdk_sim.nn.necks.bifpn import NODES, BiFPN
from hbdk_sim.quantization import (
    DeQuantStub,
    QAT2Quantize,
    QuantStub,
    default_qconfig,
    prepare_qat,
    set_fake_quant_state,
)
from torch import nn


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.backbone = EfficientNet("b0")
        self.neck = BiFPN()
        self.head = FCOSHead()
        self.dequant = DeQuantStub()

    def forward(self, x):
        cls, reg, ctr = self.head(self.neck(self.backbone(self.quant(x))))
        return tuple(self.dequant(t) for t in (*cls, *reg, *ctr))


def test_bifpn_levels_and_laterals():
    neck = BiFPN()
    features = EfficientNet("b0").to("meta")(torch.empty(2, 3, 512, 512, device="meta"))
    out = neck.to("meta")(features)
    assert [tuple(o.shape) for o in out] == [(2, 64, 64, 64), (2, 64, 32, 32), (2, 64, 16, 16), (2, 64, 8, 8),
                                             (2, 64, 4, 4)]
    # Layer 0: one lateral per use of P3 (40 ch), P4 (112) and P5 (320): P3', P4', P4'', P5', P5''.
    assert sorted(neck.layers[0].laterals) == ["n10_0", "n6_0", "n7_0", "n8_0", "n9_0"]
    assert all(len(layer.laterals) == 0 for layer in neck.layers[1:])
    assert [len(n) for n in NODES] == [2, 2, 2, 2, 3, 3, 3, 2] and len(neck.layers) == 3
    assert neck.p6.conv.bias is not None and isinstance(neck.pool, nn.MaxPool2d)
    with pytest.raises(UsageError, match="strides 8, 16 and 32"):
        BiFPN(in_strides=(2, 4), stride2channels={2: 16, 4: 24})


def test_bifpn_sum_fusion_by_hand():
    """Node 5 of layer 0 is P6 + up(P7) -> ReLU -> depthwise -> pointwise -> BN, checked by hand."""
    torch.manual_seed(0)
    neck = BiFPN(out_channels=8, stride2channels={8: 8, 16: 8, 32: 8}, in_strides=(8, 16, 32), stack=1).eval()
    layer = neck.layers[0]
    levels = [torch.randn(1, 8, 16 // 2 ** i, 16 // 2 ** i) for i in range(5)]
    node = layer.nodes[0]
    up = torch.nn.functional.interpolate(levels[4], scale_factor=2, mode="bilinear", align_corners=False)
    want = node.bn(node.pointwise(node.depthwise(torch.relu(levels[3] + up))))
    with torch.no_grad():
        got = layer(levels)
        torch.testing.assert_close(layer.nodes[0](levels[3], up), want)
    assert len(got) == 5 and got[0].shape == levels[0].shape


def test_fcos_head_shares_convs_and_keeps_a_bn_per_level():
    head = FCOSHead().eval()
    for tower in (head.cls_tower, head.reg_tower):
        for i in range(4):
            convs = {id(tower.levels[level][i].pointwise) for level in range(5)}
            bns = {id(tower.levels[level][i].bn) for level in range(5)}
            assert len(convs) == 1 and len(bns) == 5
    assert head.conv_cls.bias.unique().tolist() == pytest.approx([-math.log(99.0)])
    unique = {id(p) for p in head.parameters()}
    # 2 towers x 4 x (dw w+b, pw w+b) + 5 levels x 2 towers x 4 BN (w, b) + 3 output convs (w, b)
    assert len(unique) == 2 * 4 * 4 + 5 * 2 * 4 * 2 + 3 * 2
    cls, reg, ctr = head([torch.randn(1, 64, s, s) for s in (16, 8, 4, 2, 1)])
    assert [c.shape[1] for c in cls] == [80] * 5 and all((r >= 0).all() for r in reg)
    assert [tuple(c.shape[2:]) for c in ctr] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]


@pytest.mark.parametrize("mode", ["fuse_bn", "with_bn"])
def test_fcos_network_fuses_per_level_and_compiles_bit_exact(mode):
    torch.manual_seed(0)
    net = _Net().eval()
    g = torch.Generator().manual_seed(1)
    for m in net.modules():  # non-trivial statistics, different per level
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    x = torch.rand(2, 3, 128, 128, generator=g) * 2 - 1
    with torch.no_grad():
        want = net(x)
    model = copy.deepcopy(net)
    fuse_blocks(model, mode)
    model.eval()
    with torch.no_grad():
        for a, b in zip(model(x), want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    if mode == "with_bn":  # QAT keeps the per-level blocks on one shared weight
        blocks = [model.head.cls_tower.levels[level][0].pointwise for level in range(5)]
        assert len({id(b.conv) for b in blocks}) == 1 and len({id(b.bn) for b in blocks}) == 5
        return
    model = prepare_qat(model, default_qconfig())
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(2, 3, 128, 128, generator=g) * 2 - 1)
    set_fake_quant_state(model, "validation")
    int_model = QAT2Quantize(input_shape=(1, 3, 128, 128))(copy.deepcopy(model))
    hbm = hbdk_sim._core.load_hbm_bytes(compile_model(model, (torch.zeros(1, 3, 128, 128),), "bpu").hbm, "fcos")
    outputs = list(hbdk_sim.Executor(hbm).run([x[:1].numpy()]).values())
    with torch.no_grad():
        expected = int_model(x[:1])
    assert len(outputs) == 15
    for got, exp in zip(outputs, expected, strict=True):
        np.testing.assert_array_equal(got, exp.numpy())
