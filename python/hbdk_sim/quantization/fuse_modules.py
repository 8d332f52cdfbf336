"""Module fusion for quantization: conv+bn(+relu), conv(+bn)+add(+relu), conv+relu, where the conv is
an nn.Conv2d or an nn.ConvTranspose2d, and `prepare_qat`, which attaches the qconfig's
fake-quantizers to conv, linear, fused and activation modules.

A fused group is quantized as one unit: the weight fake-quantizer sees the weight the NPU will hold
(BN folded in) and only the group's final output is fake-quantized. Fusion puts the fused module in
one slot of the parent and nn.Identity in the others, so the parent's forward runs unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name
from torch import nn

from hbdk_sim.errors import UnsupportedModelError, UsageError, UsageTypeError
from hbdk_sim.quantization.fake_quantize import FakeQuantize
from hbdk_sim.quantization.qconfig import QConfig, activation_fake_quant
from hbdk_sim.quantization.stubs import QuantStub

MODES = ("fuse_bn", "with_bn")
_ACTIVATIONS = (nn.ReLU, nn.ReLU6)
# The convolutions a fused group starts with. A transpose's weight is [Cin, Cout/groups, kh, kw]:
# its output channels lie along axis 1 within each group (conv_weight_axis).
CONVS = (nn.Conv2d, nn.ConvTranspose2d)
Conv = nn.Conv2d | nn.ConvTranspose2d


class Add(nn.Module):
    """`lhs + rhs` as a module, so that an addition can be named, fused and given a qconfig."""

    def forward(self, lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        return lhs + rhs


class Concat(nn.Module):
    """`torch.cat(tensors, dim)` as a module, so that a concatenation gets its own output scale
    (otherwise the traced graph concatenates at the largest input scale)."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.cat(tensors, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Mul(nn.Module):
    """`lhs * rhs` as a module, so that a product can be named and given its own output scale."""

    def forward(self, lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        return lhs * rhs


class Matmul(nn.Module):
    """`torch.matmul(lhs, rhs)` of two activations (rank >= 2) as a module, so that the product
    gets its own output scale (attention scores, for one)."""

    def forward(self, lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        return torch.matmul(lhs, rhs)


# Weightless modules that prepare_qat gives an output fake-quantizer of their own: the clamps, the
# arithmetic modules and the activations the compiler makes into lookup tables.
OUTPUT_QUANTIZED = (*_ACTIVATIONS, Add, Concat, Mul, Matmul, nn.Softmax, nn.Sigmoid, nn.Tanh, nn.SiLU, nn.Hardswish,
                    nn.Hardsigmoid, nn.GELU, nn.LeakyReLU, nn.LayerNorm)


def _bn_affine(bn: nn.BatchNorm2d, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(gamma, beta) of `bn`, ones and zeros when it is not affine."""
    c = bn.num_features
    gamma = bn.weight if bn.weight is not None else torch.ones(c, device=bn.running_var.device)
    beta = bn.bias if bn.bias is not None else torch.zeros(c, device=bn.running_var.device)
    return gamma.to(dtype), beta.to(dtype)


def _check_bn(conv: Conv, bn: nn.BatchNorm2d) -> None:
    if not bn.track_running_stats or bn.running_var is None:
        raise UnsupportedModelError("expected a BatchNorm2d that tracks running statistics but got "
                                    "track_running_stats=False")
    if bn.num_features != conv.out_channels:
        raise UnsupportedModelError(
            f"expected BatchNorm2d over the conv's {conv.out_channels} output channels but got {bn.num_features}"
        )


def conv_weight_axis(conv: Conv) -> int:
    """The axis of the conv's weight that holds its output channels: 0, or 1 for a transpose (within
    each group), the axis the compiler's quantize pass quantizes it along."""
    return 1 if isinstance(conv, nn.ConvTranspose2d) else 0


def _scale_out_channels(conv: Conv, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """`weight` (of `conv`'s layout) with each output channel's weights multiplied by scale[channel]."""
    if not isinstance(conv, nn.ConvTranspose2d):
        return weight * scale.reshape(-1, 1, 1, 1)
    # [Cin, Cout/g, kh, kw]: input rows of group i feed output channels i*Cout/g ... (i+1)*Cout/g - 1.
    g = conv.groups
    cin, cout_g = weight.shape[:2]
    grouped = weight.reshape(g, cin // g, cout_g, *weight.shape[2:])
    return (grouped * scale.reshape(g, 1, cout_g, 1, 1)).reshape(weight.shape)


def _conv_forward(conv: Conv, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`conv` computed with another weight and bias; a transpose with its own output_padding (a
    fused transpose takes no output_size)."""
    if isinstance(conv, nn.ConvTranspose2d):
        return F.conv_transpose2d(x, weight, bias, conv.stride, conv.padding, conv.output_padding, conv.groups,
                                  conv.dilation)
    return conv._conv_forward(x, weight, bias)


def _fold_params(conv: Conv, bn: nn.BatchNorm2d, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of conv followed by bn (eval statistics), computed in `dtype`; differentiable."""
    gamma, beta = _bn_affine(bn, dtype)
    inv_std = gamma / torch.sqrt(bn.running_var.to(dtype) + bn.eps)
    weight = _scale_out_channels(conv, conv.weight.to(dtype), inv_std)
    bias = conv.bias.to(dtype) if conv.bias is not None else torch.zeros_like(inv_std)
    return weight, (bias - bn.running_mean.to(dtype)) * inv_std + beta


def fold_conv_bn(conv: Conv, bn: nn.BatchNorm2d) -> Conv:
    """A new conv of `conv`'s class (Conv2d or ConvTranspose2d) equal to `bn(conv(x))` with bn's
    running statistics; folded in float64, stored in the conv's dtype."""
    _check_bn(conv, bn)
    with torch.no_grad():
        weight, bias = _fold_params(conv, bn, torch.float64)
    folded = copy.deepcopy(conv)
    folded.weight = nn.Parameter(weight.to(conv.weight.dtype))
    folded.bias = nn.Parameter(bias.to(conv.weight.dtype))
    return folded


class ConvFusion(nn.Module):
    """A conv (nn.Conv2d or nn.ConvTranspose2d), an optional BN kept live for QAT ("with_bn"), an
    optional activation, and the fake-quantizers `prepare_qat` attaches: `weight_fake_quant` (per
    channel along conv_weight_axis) and `activation_post_process`."""

    def __init__(self, conv: Conv, bn: nn.BatchNorm2d | None, act: nn.Module | None) -> None:
        super().__init__()
        if not isinstance(conv, CONVS):
            raise UsageTypeError(f"expected nn.Conv2d or nn.ConvTranspose2d but got {type(conv).__name__}")
        if bn is not None:
            _check_bn(conv, bn)
        if act is not None and not isinstance(act, _ACTIVATIONS):
            raise UsageTypeError(f"expected nn.ReLU or nn.ReLU6 but got {type(act).__name__}")
        self.conv = conv
        self.bn = bn
        self.act = act
        self.weight_fake_quant: FakeQuantize | None = None
        self.activation_post_process: FakeQuantize | None = None
        # ConvAdd2d only: the conv output before the residual add. The integer graph holds it as
        # a tensor of its own, so QAT must see its rounding too; si16 keeps that rounding small.
        self.conv_post_process: FakeQuantize | None = None

    def deploy_weight_and_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The conv's weight and bias as the deployed graph holds them, before weight fake-quant:
        BN (when kept live) folded with its running statistics, as the eval forward folds it."""
        conv = self.conv
        if self.bn is None:
            return conv.weight, conv.bias
        with torch.no_grad():
            return _fold_params(conv, self.bn, conv.weight.dtype)

    def _weight(self, weight: torch.Tensor) -> torch.Tensor:
        return self.weight_fake_quant(weight) if self.weight_fake_quant is not None else weight

    def _conv_out(self, x: torch.Tensor) -> torch.Tensor:
        conv, bn = self.conv, self.bn
        if bn is None:
            return _conv_forward(conv, x, self._weight(conv.weight), conv.bias)
        if not self.training:
            weight, bias = _fold_params(conv, bn, conv.weight.dtype)
            return _conv_forward(conv, x, self._weight(weight), bias)
        # Training: quantize the folded weight, then divide the fold back out so that BN sees
        # the plain conv output and updates its running statistics from batch statistics.
        gamma, _ = _bn_affine(bn, conv.weight.dtype)
        inv_std = gamma / torch.sqrt(bn.running_var + bn.eps)
        y = _conv_forward(conv, x, self._weight(_scale_out_channels(conv, conv.weight, inv_std)), None)
        y = y / inv_std.reshape(1, -1, 1, 1)
        if conv.bias is not None:
            y = y + conv.bias.reshape(1, -1, 1, 1)
        return bn(y)

    def _finish(self, y: torch.Tensor) -> torch.Tensor:
        if self.act is not None:
            y = self.act(y)
        if self.activation_post_process is not None:
            y = self.activation_post_process(y)
        return y

    def _folded_copy(self, cls, *args):
        if self.bn is None:
            fused = cls(copy.deepcopy(self.conv), *args)
        else:
            fused = cls(fold_conv_bn(self.conv, self.bn), *args)
        fused.weight_fake_quant = copy.deepcopy(self.weight_fake_quant)
        fused.activation_post_process = copy.deepcopy(self.activation_post_process)
        fused.conv_post_process = copy.deepcopy(self.conv_post_process)
        if hasattr(self, "qconfig"):
            fused.qconfig = self.qconfig
        return fused.train(self.training)


class FusedConv2d(ConvFusion):
    """`act(conv(x))` (act optional) with the BN, if any, already folded into the conv."""

    def __init__(self, conv: Conv, act: nn.Module | None = None) -> None:
        super().__init__(conv, None, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._finish(self._conv_out(x))


class ConvBn2d(ConvFusion):
    """`act(bn(conv(x)))` for QAT with BN: in training BN uses batch statistics and updates its
    running ones while the weight fake-quantizer sees the weight folded with the running
    statistics; in eval it is exactly the folded conv."""

    def __init__(self, conv: Conv, bn: nn.BatchNorm2d, act: nn.Module | None = None) -> None:
        if not isinstance(bn, nn.BatchNorm2d):
            raise UsageTypeError(f"expected nn.BatchNorm2d but got {type(bn).__name__}")
        super().__init__(conv, bn, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._finish(self._conv_out(x))

    def to_fused(self) -> FusedConv2d:
        """The equivalent FusedConv2d with BN folded (float64 fold), keeping the fake-quantizers."""
        return self._folded_copy(FusedConv2d, copy.deepcopy(self.act))


class ConvAdd2d(ConvFusion):
    """`act(conv(x) + residual)`; `bn` (with_bn mode) is kept live as in ConvBn2d."""

    def __init__(self, conv: Conv, relu: nn.Module | None = None, bn: nn.BatchNorm2d | None = None) -> None:
        super().__init__(conv, bn, relu)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        y = self._conv_out(x)
        if self.conv_post_process is not None:
            y = self.conv_post_process(y)
        return self._finish(y + residual)

    def to_fused(self) -> ConvAdd2d:
        """The same with BN folded into the conv (float64 fold)."""
        return self._folded_copy(ConvAdd2d, copy.deepcopy(self.act))


def _lookup(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise UsageError(f"expected a submodule named {name!r} but the model has none") from None


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def fuse_group(mods: list[nn.Module], mode: str) -> tuple[nn.Module, int]:
    """The fused module of a conv group (Conv2d or ConvTranspose2d, [BatchNorm2d], [Add],
    [ReLU|ReLU6]) and the index of the slot it takes."""
    kinds = [type(m).__name__ for m in mods]
    conv, rest = mods[0], list(mods[1:])
    if not isinstance(conv, CONVS) or not rest:
        raise UsageError(f"expected Conv2d or ConvTranspose2d followed by BatchNorm2d, Add or ReLU/ReLU6 but got "
                         f"{kinds}")
    bn = rest.pop(0) if isinstance(rest[0], nn.BatchNorm2d) else None
    add = rest.pop(0) if rest and isinstance(rest[0], Add) else None
    act = rest.pop(0) if rest and isinstance(rest[0], _ACTIVATIONS) else None
    if rest:
        raise UsageError(f"expected Conv2d or ConvTranspose2d, [BatchNorm2d], [Add], [ReLU|ReLU6] but got {kinds}")
    if bn is not None and mode == "fuse_bn":
        conv, bn = fold_conv_bn(conv, bn), None
    if add is not None:
        # The addition's slot: the parent calls add(conv_out, residual), which becomes
        # ConvAdd2d(x, residual) once the conv slot is an Identity.
        return ConvAdd2d(conv, act, bn), mods.index(add)
    if bn is not None:
        return ConvBn2d(conv, bn, act), 0
    return FusedConv2d(conv, act), 0


def fuse_modules(
    model: nn.Module, groups: Sequence[Sequence[str]], mode: str = "fuse_bn", inplace: bool = False
) -> nn.Module:
    """Fuse each group of submodule names, e.g. `[["conv", "bn", "relu"], ["conv2", "add"]]`.

    Groups are Conv2d or ConvTranspose2d (output_padding kept, no output_size), then optionally
    BatchNorm2d, Add and ReLU/ReLU6, in that order. In
    "fuse_bn" mode BN is folded into the conv now (eval statistics); in "with_bn" mode it stays a
    live BN for QAT (ConvBn2d / ConvAdd2d, `.to_fused()` folds it later). A group with an Add
    becomes a ConvAdd2d in the Add's slot and requires the parent to pass the conv output as the
    Add's first operand. The other slots become nn.Identity.
    """
    if mode not in MODES:
        raise UsageError(f"expected mode in {MODES} but got {mode!r}")
    if not inplace:
        model = copy.deepcopy(model)
    for names in groups:
        mods = [_lookup(model, n) for n in names]
        fused, slot = fuse_group(mods, mode)
        if hasattr(mods[0], "qconfig"):
            fused.qconfig = mods[0].qconfig
        fused.train(mods[0].training)
        for i, name in enumerate(names):
            _replace(model, name, fused if i == slot else nn.Identity())
    return model


class _QatWeighted:
    """What the QAT classes add to their float module: the weight through `weight_fake_quant` and the
    output through `activation_post_process`, each when attached."""

    weight_fake_quant: FakeQuantize | None
    activation_post_process: FakeQuantize | None

    def _qat_weight(self) -> torch.Tensor:
        return self.weight_fake_quant(self.weight) if self.weight_fake_quant is not None else self.weight

    def _qat_output(self, y: torch.Tensor) -> torch.Tensor:
        return self.activation_post_process(y) if self.activation_post_process is not None else y


class QATConv2d(_QatWeighted, nn.Conv2d):
    """nn.Conv2d with a weight and an output fake-quantizer; same parameter names as nn.Conv2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._qat_output(self._conv_forward(x, self._qat_weight(), self.bias))


class QATConvTranspose2d(_QatWeighted, nn.ConvTranspose2d):
    """nn.ConvTranspose2d with a weight and an output fake-quantizer; same parameter names. The
    weight, [Cin, Cout/groups, kh, kw], is fake-quantized per output channel along axis 1, the
    axis the compiler's quantize pass gives it."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        output_padding = self._output_padding(x, output_size, self.stride, self.padding, self.kernel_size,
                                              2, self.dilation)
        return self._qat_output(nn.functional.conv_transpose2d(x, self._qat_weight(), self.bias, self.stride,
                                                               self.padding, output_padding, self.groups,
                                                               self.dilation))


class QATLinear(_QatWeighted, nn.Linear):
    """nn.Linear with a weight and an output fake-quantizer; same parameter names as nn.Linear."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._qat_output(nn.functional.linear(x, self._qat_weight(), self.bias))


@dataclass(frozen=True)
class QatMapping:
    """What `prepare_qat` makes of a float module with a weight: the QAT class (same parameters,
    fake-quantizers added) and the weight's output-channel axis, where a per-channel weight
    quantizer observes it; the compiler's quantize pass uses the same axis for the same op."""

    qat_class: type[nn.Module]
    weight_axis: int


# Float module type -> its QAT counterpart. A subclass that keeps the base class's forward is
# converted as the base class (its extra attributes kept); one that overrides forward is refused
# (qat_mapping). Add a row here to teach prepare_qat a new weighted module.
QAT_MODULE_MAPPINGS: dict[type[nn.Module], QatMapping] = {
    nn.Conv2d: QatMapping(QATConv2d, 0),
    nn.ConvTranspose2d: QatMapping(QATConvTranspose2d, 1),
    nn.Linear: QatMapping(QATLinear, 0),
}


def keeps_forward_of(module: nn.Module, bases) -> type | None:
    """The first class of `bases` in the module's MRO when the module runs that class's own
    forward (it is the class, or a subclass that does not override forward); else None."""
    for cls in type(module).__mro__:
        if cls in bases:
            return cls if type(module).forward is cls.forward else None
    return None


def qat_mapping(module: nn.Module, path: str) -> QatMapping | None:
    """The QAT mapping of a float weighted module, a subclass keeping its base's forward included;
    None for a module no mapping covers. A subclass of a mapped class that overrides forward is an
    UnsupportedModelError: left in float it would reach the board unquantized."""
    if isinstance(module, tuple(m.qat_class for m in QAT_MODULE_MAPPINGS.values())):
        return None  # already prepared
    base = next((c for c in type(module).__mro__ if c in QAT_MODULE_MAPPINGS), None)
    if base is None:
        return None
    if keeps_forward_of(module, QAT_MODULE_MAPPINGS) is None:
        raise UnsupportedModelError(
            f"prepare_qat: module '{path}' ({type(module).__name__}) subclasses nn.{base.__name__} but overrides "
            f"forward, so its weight cannot be fake-quantized as a {base.__name__}'s; keep the base class's forward "
            "and move the extra work into a module of its own")
    return QAT_MODULE_MAPPINGS[base]


def _to_qat(module: nn.Module, qat_class: type[nn.Module]) -> nn.Module:
    """The `qat_class` instance sharing `module`'s parameters and buffers."""
    qat = qat_class.__new__(qat_class)
    qat.__dict__.update(module.__dict__)
    # Fresh containers: the QAT module must not register its fake-quantizers into the original.
    qat._modules = dict(module._modules)
    qat._parameters = dict(module._parameters)
    qat._buffers = dict(module._buffers)
    qat.weight_fake_quant = None
    qat.activation_post_process = None
    return qat


def _weight_quantizer(qc: QConfig, axis: int) -> FakeQuantize:
    """The qconfig's weight fake-quantizer, observing per channel along `axis` when it is per
    channel at all (the qconfig names axis 0, the axis of conv and linear weights)."""
    fq = qc.weight()
    if fq.observer.ch_axis is not None:
        fq.observer.ch_axis = axis
    return fq


def _post_process_hook(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    return module.activation_post_process(output)


def is_prepared(model: nn.Module) -> bool:
    """Whether `model` has quantizers beyond those of QuantStubs built with a qconfig, i.e. went
    through prepare_qat."""
    stub_owned = {id(m.activation_post_process) for m in model.modules() if isinstance(m, QuantStub)}
    return any(isinstance(m, FakeQuantize) and id(m) not in stub_owned for m in model.modules())


def was_prepared(model: nn.Module) -> bool:
    """Whether prepare_qat (or prepare_qat_fx) already ran on `model`: some module carries a weight
    fake-quantizer, or an output one that preparation attached. A FakeQuantize the user placed by
    hand, or a QuantStub's own, does not count: preparation keeps those."""
    for m in model.modules():
        if getattr(m, "weight_fake_quant", None) is not None:
            return True
        if not isinstance(m, QuantStub) and isinstance(getattr(m, "activation_post_process", None), FakeQuantize):
            return True
    return False


def prepare_qat(model: nn.Module, qconfig: QConfig | None = None, inplace: bool = False) -> nn.Module:
    """Attach fake-quantizers: a module's own `qconfig` attribute (see `set_qconfig`) wins over
    `qconfig`; a module whose qconfig is None is left in float.

    A module whose type is in QAT_MODULE_MAPPINGS (nn.Conv2d, nn.ConvTranspose2d, nn.Linear), or a
    subclass that keeps its forward, becomes its QAT class (a subclass that overrides forward is an
    UnsupportedModelError, never left in float), with a weight fake-quantizer on the mapping's axis and an
    output one; fused modules get both, the weight one along their conv's output-channel axis (1 for a
    transpose), and a ConvAdd2d also an si16 one for its conv output;
    QuantStubs and the standalone OUTPUT_QUANTIZED modules (ReLU, ReLU6, Add, Concat, Mul, Matmul,
    Softmax) get an output fake-quantizer. Modules
    inside a fused module are quantized by it and left alone. The fake-quantizers start in the
    "calibration" state; switch with `set_fake_quant_state`.
    """
    if not inplace:
        model = copy.deepcopy(model)

    def visit(parent: nn.Module, prefix: str = "") -> None:
        for name, child in list(parent.named_children()):
            path = f"{prefix}{name}"
            qc = getattr(child, "qconfig", qconfig)
            if isinstance(child, (FakeQuantize, nn.Identity)) or qc is None:
                if not isinstance(child, FakeQuantize):
                    visit(child, f"{path}.")
                continue
            if isinstance(child, ConvFusion):
                if child.weight_fake_quant is None and qc.weight is not None:
                    child.weight_fake_quant = _weight_quantizer(qc, conv_weight_axis(child.conv))
                if child.activation_post_process is None and qc.output is not None:
                    child.activation_post_process = qc.output()
                if isinstance(child, ConvAdd2d) and child.conv_post_process is None and qc.output is not None:
                    child.conv_post_process = activation_fake_quant("si16")()
                continue
            mapping = qat_mapping(child, path)
            if mapping is not None:
                child = _to_qat(child, mapping.qat_class)
                if qc.weight is not None:
                    child.weight_fake_quant = _weight_quantizer(qc, mapping.weight_axis)
                if qc.output is not None:
                    child.activation_post_process = qc.output()
                setattr(parent, name, child)
                continue
            if isinstance(child, QuantStub):
                if child.activation_post_process is None and qc.output is not None:
                    child.activation_post_process = qc.output()
                continue
            if isinstance(child, OUTPUT_QUANTIZED) and qc.output is not None:
                if getattr(child, "activation_post_process", None) is None:
                    child.activation_post_process = qc.output()
                    child.register_forward_hook(_post_process_hook)
                continue
            visit(child, f"{path}.")

    visit(model)
    return model
