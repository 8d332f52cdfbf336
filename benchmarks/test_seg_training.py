"""Training step of the segmentation task, QAT against float, measured in one run.

Model: the main job's UNet-MobileNetV1 Segmentor (width 0.25, four output scales, focal loss),
batch 8 at 128x256, 2 threads. A step is forward, loss, backward and an AdamW step. The QAT model
is the same network after `Float2QAT` (fuse_bn mode, "qat" state: observers recording, fake
quantization on). Target: QAT step <= 1.6x the float step. Steps alternate between the two
models and each side keeps its best time, so a busy machine slows both alike. Measured on a quiet
2-core machine: float 97.5 ms, QAT 136.4 ms, 1.40x.
Run with `make bench`.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hbdk_sim.nn import Segmentor, UNetMobileNetV1
from hbdk_sim.quantization import Float2QAT
from timing import interleaved_best

THREADS = 2
BATCH, HEIGHT, WIDTH = 8, 128, 256
TARGET = 1.6
ROUNDS = 6


@pytest.fixture(scope="module")
def steps():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    float_model = Segmentor(UNetMobileNetV1(num_classes=19)).train()
    qat_model = Float2QAT()(copy.deepcopy(float_model)).train()
    batch = {"img": torch.randn(BATCH, 3, HEIGHT, WIDTH), "gt_seg": torch.randint(0, 19, (BATCH, HEIGHT, WIDTH))}

    def step_of(model):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = sum(model(batch).values())
            loss.backward()
            opt.step()

        step()  # warm-up: allocations, observers' first batch
        return step

    yield step_of(float_model), step_of(qat_model)
    torch.set_num_threads(before)


def test_float_step(benchmark, steps):
    benchmark.pedantic(steps[0], rounds=ROUNDS, iterations=1)


def test_qat_step(benchmark, steps):
    benchmark.pedantic(steps[1], rounds=ROUNDS, iterations=1)


def test_qat_step_ratio_against_float(benchmark, steps):
    f, q = interleaved_best(*steps, rounds=ROUNDS)
    ratio = q / f
    benchmark.extra_info.update(float_step_ms=round(1e3 * f, 1), qat_step_ms=round(1e3 * q, 1),
                                qat_over_float=round(ratio, 3), target=TARGET)
    benchmark.pedantic(lambda: None, rounds=1)
    assert ratio <= TARGET, f"QAT step {1e3 * q:.1f} ms is {ratio:.2f}x the float step {1e3 * f:.1f} ms"
