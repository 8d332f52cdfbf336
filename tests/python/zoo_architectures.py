"""Public architectures restated from their papers' layer tables, written the way public zoos write
them (functional activations, `out += identity`, BN + activation modules, SE gates, slicing), for
the front-door tests: nothing here is shaped for hbdk-sim. Random weights; BN statistics are
randomized by `randomized` so that folding them is not the identity.

- ResNet-18 (He et al., 2016, table 1): 7x7 stem, max-pool, 4 stages of 2 basic blocks.
- MobileNetV2 (Sandler et al., 2018, table 2): inverted residuals, ReLU6, t/c/n/s rows.
- MobileNetV3-small (Howard et al., 2019, table 2): hardswish, SE with hardsigmoid gates.
- EfficientNet-B0 (Tan & Le, 2019, table 1): MBConv with SiLU and SE (ratio 0.25).
- RegNetX-200MF (Radosavovic et al., 2020): X blocks, group width 8, depths 1-1-4-7.
- GhostNet (Han et al., 2020, table 1, first rows): ghost modules (cheap depthwise features
  concatenated and sliced to the output width), ghost bottlenecks with SE.
- ConvNeXt-atto (Liu et al., 2022; the atto widths 40-80-160-320, depths 2-2-6-2): depthwise 7x7,
  channels-last LayerNorm, GELU MLP, layer scale; channels-first LayerNorm by permuting.
- DeiT-tiny (Touvron et al., 2021): 16x16 patches, width 192, 12 blocks of 3-head attention on
  F.scaled_dot_product_attention, class token and position embedding, pre-norm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn


def make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvBNAct(nn.Sequential):
    def __init__(self, cin, cout, k=3, s=1, groups=1, act=nn.ReLU):
        layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


# ---- ResNet-18 ---------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNet18(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, cin, stages = (64, 128, 256, 512), 64, []
        for i, w in enumerate(widths):
            stages.append(nn.Sequential(BasicBlock(cin, w, 1 if i == 0 else 2), BasicBlock(w, w, 1)))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---- MobileNetV2 -----------------------------------------------------------------------------------------


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [ConvBNAct(cin, hidden, 1, act=nn.ReLU6)]
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]  # t, c, n, s

    def __init__(self, num_classes=1000):
        super().__init__()
        layers, cin = [ConvBNAct(3, 32, 3, 2, act=nn.ReLU6)], 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(ConvBNAct(cin, 1280, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


# ---- MobileNetV3-small -------------------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    def __init__(self, channels, squeeze, act=nn.ReLU, gate=nn.Hardsigmoid):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)
        self.act, self.gate = act(), gate()

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class V3Block(nn.Module):
    def __init__(self, cin, k, exp, cout, se, act, stride):
        super().__init__()
        layers = [] if exp == cin else [ConvBNAct(cin, exp, 1, act=act)]
        layers.append(ConvBNAct(exp, exp, k, stride, groups=exp, act=act))
        if se:
            layers.append(SqueezeExcite(exp, make_divisible(exp // 4)))
        layers.append(ConvBNAct(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        if self.use_res:
            y += x
        return y


class MobileNetV3Small(nn.Module):
    RE, HS = nn.ReLU, nn.Hardswish
    SETTINGS = [(3, 16, 16, True, RE, 2), (3, 72, 24, False, RE, 2), (3, 88, 24, False, RE, 1),
                (5, 96, 40, True, HS, 2), (5, 240, 40, True, HS, 1), (5, 240, 40, True, HS, 1),
                (5, 120, 48, True, HS, 1), (5, 144, 48, True, HS, 1), (5, 288, 96, True, HS, 2),
                (5, 576, 96, True, HS, 1), (5, 576, 96, True, HS, 1)]  # k, exp, out, SE, NL, s

    def __init__(self, num_classes=1000):
        super().__init__()
        layers, cin = [ConvBNAct(3, 16, 3, 2, act=nn.Hardswish)], 16
        for k, exp, cout, se, act, s in self.SETTINGS:
            layers.append(V3Block(cin, k, exp, cout, se, act, s))
            cin = cout
        layers.append(ConvBNAct(cin, 576, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(576, 1024), nn.Hardswish(inplace=True), nn.Dropout(0.2),
                                        nn.Linear(1024, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ---- EfficientNet-B0 -------------------------------------------------------------------------------------


class MBConv(nn.Module):
    def __init__(self, cin, cout, k, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.expand = ConvBNAct(cin, hidden, 1, act=nn.SiLU) if expand != 1 else nn.Identity()
        self.depthwise = ConvBNAct(hidden, hidden, k, stride, groups=hidden, act=nn.SiLU)
        self.se = SqueezeExcite(hidden, max(1, cin // 4), act=nn.SiLU, gate=nn.Sigmoid)
        self.project = ConvBNAct(hidden, cout, 1, act=None)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return y + x if self.use_res else y


class EfficientNetB0(nn.Module):
    STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
              (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]  # expand, kernel, stride, channels, repeats

    def __init__(self, num_classes=1000):
        super().__init__()
        self.stem = ConvBNAct(3, 32, 3, 2, act=nn.SiLU)
        blocks, cin = [], 32
        for e, k, s, c, n in self.STAGES:
            for i in range(n):
                blocks.append(MBConv(cin, c, k, s if i == 0 else 1, e))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(cin, 1280, 1, act=nn.SiLU)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(x.mean((2, 3)))


# ---- RegNetX-200MF ----------------------------------------------------------------------------------------


class XBlock(nn.Module):
    def __init__(self, cin, cout, stride, group_width):
        super().__init__()
        self.a = ConvBNAct(cin, cout, 1)
        self.b = ConvBNAct(cout, cout, 3, stride, groups=cout // group_width)
        self.c = ConvBNAct(cout, cout, 1, act=None)
        self.proj = ConvBNAct(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else None

    def forward(self, x):
        shortcut = x if self.proj is None else self.proj(x)
        return F.relu(self.c(self.b(self.a(x))) + shortcut)


class RegNetX200MF(nn.Module):
    WIDTHS, DEPTHS, GROUP_WIDTH = (24, 56, 152, 368), (1, 1, 4, 7), 8

    def __init__(self, num_classes=1000):
        super().__init__()
        self.stem = ConvBNAct(3, 32, 3, 2)
        stages, cin = [], 32
        for w, d in zip(self.WIDTHS, self.DEPTHS, strict=True):
            stages.append(nn.Sequential(*[XBlock(cin if i == 0 else w, w, 2 if i == 0 else 1, self.GROUP_WIDTH)
                                          for i in range(d)]))
            cin = w
        self.trunk = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.trunk(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


# ---- GhostNet ----------------------------------------------------------------------------------------------


class GhostModule(nn.Module):
    def __init__(self, cin, cout, relu=True):
        super().__init__()
        self.cout = cout
        init = math.ceil(cout / 2)
        self.primary = ConvBNAct(cin, init, 1, act=nn.ReLU if relu else None)
        self.cheap = ConvBNAct(init, init, 3, groups=init, act=nn.ReLU if relu else None)

    def forward(self, x):
        x1 = self.primary(x)
        out = torch.cat([x1, self.cheap(x1)], dim=1)
        return out[:, :self.cout, :, :]


class GhostBottleneck(nn.Module):
    def __init__(self, cin, hidden, cout, k, stride, se):
        super().__init__()
        self.ghost1 = GhostModule(cin, hidden)
        self.dw = ConvBNAct(hidden, hidden, k, stride, groups=hidden, act=None) if stride > 1 else None
        self.se = SqueezeExcite(hidden, make_divisible(hidden // 4, 4), gate=nn.Hardsigmoid) if se else None
        self.ghost2 = GhostModule(hidden, cout, relu=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(ConvBNAct(cin, cin, k, stride, groups=cin, act=None),
                                          ConvBNAct(cin, cout, 1, act=None))

    def forward(self, x):
        residual = x if self.shortcut is None else self.shortcut(x)
        x = self.ghost1(x)
        if self.dw is not None:
            x = self.dw(x)
        if self.se is not None:
            x = self.se(x)
        return self.ghost2(x) + residual


class GhostNet(nn.Module):
    SETTINGS = [(3, 16, 16, False, 1), (3, 48, 24, False, 2), (3, 72, 24, False, 1), (5, 72, 40, True, 2),
                (5, 120, 40, True, 1), (3, 240, 80, False, 2)]  # k, exp, out, SE, s (the first rows)

    def __init__(self, num_classes=1000):
        super().__init__()
        self.stem = ConvBNAct(3, 16, 3, 2)
        blocks, cin = [], 16
        for k, exp, cout, se, s in self.SETTINGS:
            blocks.append(GhostBottleneck(cin, exp, cout, k, s, se))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(cin, 960, 1)
        self.classifier = nn.Linear(960, num_classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---- ConvNeXt-atto -------------------------------------------------------------------------------------


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of NCHW, by permuting to channels-last and back."""

    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        # the layer scale: 1e-6 at the paper's initialization, 0.1 here so that random blocks count
        self.gamma = nn.Parameter(torch.full((dim,), 0.1))

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXtAtto(nn.Module):
    DIMS, DEPTHS = (40, 80, 160, 320), (2, 2, 6, 2)

    def __init__(self, num_classes=1000):
        super().__init__()
        self.downsample = nn.ModuleList([nn.Sequential(nn.Conv2d(3, self.DIMS[0], 4, 4),
                                                       LayerNorm2d(self.DIMS[0], eps=1e-6))])
        for a, b in zip(self.DIMS[:-1], self.DIMS[1:], strict=True):
            self.downsample.append(nn.Sequential(LayerNorm2d(a, eps=1e-6), nn.Conv2d(a, b, 2, 2)))
        self.stages = nn.ModuleList([nn.Sequential(*[ConvNeXtBlock(d) for _ in range(n)])
                                     for d, n in zip(self.DIMS, self.DEPTHS, strict=True)])
        self.norm = nn.LayerNorm(self.DIMS[-1], eps=1e-6)
        self.head = nn.Linear(self.DIMS[-1], num_classes)

    def forward(self, x):
        for down, stage in zip(self.downsample, self.stages, strict=True):
            x = stage(down(x))
        return self.head(self.norm(x.mean((2, 3))))


# ---- DeiT-tiny -----------------------------------------------------------------------------------------------


class MultiHeadSelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), MultiHeadSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DeiTTiny(nn.Module):
    def __init__(self, img_size=224, num_classes=1000, dim=192, depth=12, heads=3, patch=16):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        tokens = (img_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[TransformerBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


ARCHITECTURES = {"resnet18": ResNet18, "mobilenet_v2": MobileNetV2, "mobilenet_v3_small": MobileNetV3Small,
                 "efficientnet_b0": EfficientNetB0, "regnetx_200mf": RegNetX200MF, "ghostnet": GhostNet,
                 "convnext_atto": ConvNeXtAtto, "deit_tiny": lambda: DeiTTiny(img_size=64)}


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """`model` in eval mode with seeded BN statistics and affine parameters (mean in [-0.1, 0.1],
    var in [0.5, 1.5], gamma in [0.5, 1.0], beta in [-0.1, 0.1]), so that BN folding does work."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_((torch.rand(c, generator=g) - 0.5) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) * 0.5 + 0.5)
                m.bias.copy_((torch.rand(c, generator=g) - 0.5) * 0.2)
    return model.eval()
