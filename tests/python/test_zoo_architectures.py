"""Public architectures through the front door with no edits (tests/python/zoo_architectures.py, at
64x64, random weights): the float model compiles as written; graph-mode preparation, calibration,
QAT2Quantize and compile give a binary whose executor output equals int_infer bit for bit on
three inputs, one four times beyond the calibration range; the QDQ ONNX export run by
onnxruntime stays within the output steps docs/quantization.md states."""

from __future__ import annotations

import copy

import hbdk_sim
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from hbdk_sim import _core  # noqa: E402
from hbdk_sim.frontend.api import compile_model  # noqa: E402
from hbdk_sim.onnx_export import onnxruntime_session  # noqa: E402
from hbdk_sim.quantization import QAT2Quantize, prepare_qat_fx, set_fake_quant_state  # noqa: E402
from zoo_architectures import ARCHITECTURES, randomized  # noqa: E402

SIZE = 64
# docs/quantization.md, "Measured": the QDQ export in onnxruntime differs from the executor by at
# most this many output steps (it requantizes in float arithmetic, and normalizes layer_norm in
# float where the board rounds the mean and works in Q16).
QDQ_MAX_STEPS = {"convnext_atto": 6, "deit_tiny": 12}
QDQ_MAX_STEPS_CNN = 2


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _output_step(int_model) -> float:
    """The scale of the integer graph's (first) output before its dequantize."""
    fn = _core.parse(int_model.hbir_text, "<int>").function("main")
    (scale,) = fn.returns[0].owner.operands[0].type.scales
    return float(scale)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_architecture_through_the_front_door(name, tmp_path):
    torch.manual_seed(0)
    model = randomized(ARCHITECTURES[name]())
    g = torch.Generator().manual_seed(1)
    calibration = [torch.randn(2, 3, SIZE, SIZE, generator=g) for _ in range(4)]
    zeros = torch.zeros(1, 3, SIZE, SIZE)

    assert hbdk_sim.compile_perf(model, (calibration[0][:1],), march="bpu").latency_ms > 0  # as written

    prepared = prepare_qat_fx(model, (calibration[0],))
    with torch.no_grad():
        for x in calibration:
            prepared(x)
    set_fake_quant_state(prepared, "validation")
    int_model = QAT2Quantize(input_shape=(1, 3, SIZE, SIZE))(copy.deepcopy(prepared))
    executor = hbdk_sim.Executor(_core.load_hbm_bytes(compile_model(prepared, (zeros,), "bpu").hbm, name))
    inputs = [torch.randn(1, 3, SIZE, SIZE, generator=g) for _ in range(2)] + \
        [4 * torch.randn(1, 3, SIZE, SIZE, generator=g)]
    for x, floor in zip(inputs, (0.985, 0.985, 0.9), strict=True):
        (got,) = executor.run([x.numpy()]).values()
        with torch.no_grad():
            want = int_model(x)
            ref = model(x)
        np.testing.assert_array_equal(got, want.numpy())
        cosine = torch.nn.functional.cosine_similarity(want.flatten().double(), ref.flatten().double(), dim=0)
        assert cosine > floor, cosine  # docs/quantization.md records each

    path = tmp_path / f"{name}.onnx"
    hbdk_sim.export_onnx(prepared, (zeros,), path)
    session = onnxruntime_session(path)
    (qdq,) = session.run(None, {session.get_inputs()[0].name: inputs[0].numpy()})
    with torch.no_grad():
        steps = np.abs(qdq - int_model(inputs[0]).numpy()).max() / _output_step(int_model)
    assert steps <= QDQ_MAX_STEPS.get(name, QDQ_MAX_STEPS_CNN) + 1e-3, steps
