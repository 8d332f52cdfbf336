"""Builds the bundled example: a small MobileNetV1-style network in HBIR.

A 3x3 stem, six depthwise-separable blocks (depthwise 3x3 + batch_norm + relu6, pointwise 1x1 +
batch_norm + relu6), global average pooling and a linear classifier, on a 1x3x64x64 input.
Weights are He-initialized from a fixed seed, and every activation carries a calibration scale
measured on 16 seeded random inputs, so the model compiles as it is and the output is the same
on every run:
    python -m hbdk_sim.examples.mobilenet_v1_tiny [-o PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hbdk_sim import Module, TensorType, Value
from hbdk_sim.calibration import calibrate

# (out_channels, stride) of each depthwise-separable block, after a 16-channel stride-2 stem.
BLOCKS = [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1)]
NUM_CLASSES = 10
INPUT_SHAPE = [1, 3, 64, 64]
CALIBRATION_SAMPLES = 16


class _Builder:
    def __init__(self, seed: int):
        self.module = Module("mobilenet_v1_tiny")
        self.fn = self.module.add_function("main")
        self.rng = np.random.default_rng(seed)

    def const(self, name: str, data: np.ndarray) -> Value:
        return self.module.create_constant(self.fn, data.astype(np.float32), name=name).result()

    def op(self, kind: str, operands: list[Value], name: str = "", **attrs) -> Value:
        return self.module.create_op(self.fn, kind, operands, attrs, loc=name).result()

    def conv_bn_relu6(self, x: Value, name: str, cout: int, kernel: int, stride: int, groups: int = 1) -> Value:
        cin = x.shape[1]
        fan_in = cin // groups * kernel * kernel
        w = self.rng.standard_normal((cout, cin // groups, kernel, kernel)) * np.sqrt(2.0 / fan_in)
        pad = kernel // 2
        y = self.op("conv2d", [x, self.const(f"{name}.weight", w)], name,
                    stride=[stride, stride], padding=[pad] * 4, dilation=[1, 1], groups=groups)
        bn = [
            self.const(f"{name}.bn.mean", self.rng.normal(0.0, 0.1, cout)),
            self.const(f"{name}.bn.var", self.rng.uniform(0.5, 1.5, cout)),
            self.const(f"{name}.bn.weight", self.rng.uniform(0.8, 1.2, cout)),
            self.const(f"{name}.bn.bias", self.rng.normal(0.0, 0.1, cout)),
        ]
        y = self.op("batch_norm", [y, *bn], f"{name}.bn", eps=1e-5)
        return self.op("relu6", [y], f"{name}.relu")


def calibration_inputs(seed: int = 1, count: int = CALIBRATION_SAMPLES) -> list[list[np.ndarray]]:
    """Seeded stand-ins for images normalized to [-1, 1]."""
    rng = np.random.default_rng(seed)
    return [[rng.uniform(-1.0, 1.0, INPUT_SHAPE).astype(np.float32)] for _ in range(count)]


def build(seed: int = 0, calibrated: bool = True) -> Module:
    b = _Builder(seed)
    x = b.fn.add_argument(TensorType(INPUT_SHAPE, "f32"), "input")
    y = b.conv_bn_relu6(x, "stem", 16, kernel=3, stride=2)
    for i, (cout, stride) in enumerate(BLOCKS, start=1):
        y = b.conv_bn_relu6(y, f"block{i}.dw", y.shape[1], kernel=3, stride=stride, groups=y.shape[1])
        y = b.conv_bn_relu6(y, f"block{i}.pw", cout, kernel=1, stride=1)
    y = b.op("global_avg_pool2d", [y], "pool")
    y = b.op("flatten", [y], "flatten", start_dim=1, end_dim=-1)
    w = b.rng.standard_normal((NUM_CLASSES, y.shape[1])) * np.sqrt(1.0 / y.shape[1])
    y = b.op("linear", [y, b.const("fc.weight", w), b.const("fc.bias", np.zeros(NUM_CLASSES))], "fc")
    b.fn.returns = [y]
    b.module.verify()
    if calibrated:
        calibrate(b.module, calibration_inputs())
    return b.module


def main() -> None:
    default = Path(__file__).with_suffix(".hbir")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=default, help=f"output file (default: {default})")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.output.write_text(build(args.seed).print(), encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
