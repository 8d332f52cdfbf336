"""hbdk_sim.quantization: the PyTorch quantization front end (observers, fake quantization,
qconfigs, stubs, fusion, prepare_qat, qconfig setters). It follows docs/numerics.md: symmetric
scales, zero point 0, si8 or si16 activations per tensor and si8 weights per output channel."""

from hbdk_sim.quantization.fake_quantize import STATES, FakeQuantize, fake_quantize, set_fake_quant_state
from hbdk_sim.quantization.fuse_modules import (
    Add,
    ConvAdd2d,
    ConvBn2d,
    FusedConv2d,
    QATConv2d,
    QATLinear,
    fold_conv_bn,
    fuse_modules,
    prepare_qat,
)
from hbdk_sim.quantization.observers import (
    MIN_SCALE,
    QMAX,
    QMIN,
    HistogramObserverBase,
    KLObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MSEObserver,
    ObserverBase,
    PercentileObserver,
)
from hbdk_sim.quantization.qconfig import (
    QConfig,
    activation_fake_quant,
    default_qconfig,
    fake_quant_factory,
    qconfig_int16,
    weight_fake_quant,
)
from hbdk_sim.quantization.qconfig_setters import set_qconfig
from hbdk_sim.quantization.stubs import DeQuantStub, QuantStub

__all__ = [
    "MIN_SCALE",
    "QMAX",
    "QMIN",
    "STATES",
    "Add",
    "ConvAdd2d",
    "ConvBn2d",
    "DeQuantStub",
    "FakeQuantize",
    "FusedConv2d",
    "HistogramObserverBase",
    "KLObserver",
    "MSEObserver",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "ObserverBase",
    "PercentileObserver",
    "QATConv2d",
    "QATLinear",
    "QConfig",
    "QuantStub",
    "activation_fake_quant",
    "default_qconfig",
    "fake_quant_factory",
    "fake_quantize",
    "fold_conv_bn",
    "fuse_modules",
    "prepare_qat",
    "qconfig_int16",
    "set_fake_quant_state",
    "set_qconfig",
    "weight_fake_quant",
]
