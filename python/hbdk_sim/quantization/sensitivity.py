"""Quantization sensitivity: how much each quantized layer alone costs the model's accuracy.

For every layer of a calibrated fake-quant model, the data runs with only that layer's
fake-quantizers on (every other one off, all observers frozen) and the outputs are compared with
the float model's: cosine similarity and SQNR in dB. The layers come back worst first, with the
fully quantized model for reference; `int16_qconfig_for_sensitive` turns the k worst into
`set_qconfig(..., by_name=...)` entries with si16 activations. `sensitivity_html` (in
sensitivity_html.py) draws the report beside the layers' estimated cycles.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.quantization.fake_quantize import FakeQuantize
from hbdk_sim.quantization.qconfig import QConfig, qconfig_int16
from hbdk_sim.quantization.stubs import QuantStub

JSON_FORMAT = "hbdk-sim.sensitivity"
JSON_VERSION = 1
METRICS = ("cosine", "sqnr")
FULL_MODEL = "<full model>"


def cosine_similarity(ref: np.ndarray | torch.Tensor, test: np.ndarray | torch.Tensor) -> float:
    """Cosine of the angle between the two flattened arrays, in float64. Two all-zero arrays are
    identical (1.0); one all-zero array against a non-zero one shares no direction (0.0)."""
    a, b = _f64(ref), _f64(test)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def sqnr_db(ref: np.ndarray | torch.Tensor, test: np.ndarray | torch.Tensor) -> float:
    """`10 log10(sum(ref^2) / sum((ref - test)^2))` in float64; +inf when the arrays are equal."""
    a, b = _f64(ref), _f64(test)
    noise = float(np.sum((a - b) ** 2))
    if noise == 0.0:
        return math.inf
    signal = float(np.sum(a * a))
    return 10.0 * math.log10(signal / noise) if signal > 0.0 else -math.inf


def _f64(x: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    return a


@dataclass
class LayerSensitivity:
    """One quantized layer (or the full model): the error when only it is quantized."""

    name: str
    module_type: str
    dtype: str
    cosine: float
    sqnr: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "module_type": self.module_type, "dtype": self.dtype, "cosine": self.cosine,
                "sqnr_db": _json_float(self.sqnr)}


def _json_float(x: float) -> float | str:
    # JSON has no infinity; an exact match (SQNR +inf) is written as the string "inf".
    return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")


@dataclass
class SensitivityReport:
    """Layers ranked worst first by `metric`, and the fully quantized model."""

    model: str
    metric: str
    samples: int
    full: LayerSensitivity
    layers: list[LayerSensitivity] = field(default_factory=list)

    def most_sensitive(self, k: int) -> list[LayerSensitivity]:
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise UsageError(f"most_sensitive: expected a count k >= 0 but got {k!r}")
        return self.layers[:k]

    def to_dict(self) -> dict[str, Any]:
        return {"format": JSON_FORMAT, "version": JSON_VERSION, "model": self.model, "metric": self.metric,
                "samples": self.samples, "full": self.full.to_dict(),
                "layers": [layer.to_dict() for layer in self.layers]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent) + "\n"

    def to_table(self) -> str:
        head = ["#", "layer", "type", "dtype", "cosine", "SQNR dB"]
        rows = [[str(i), x.name, x.module_type, x.dtype, f"{x.cosine:.6f}", f"{x.sqnr:.2f}"]
                for i, x in enumerate(self.layers)]
        full = ["", self.full.name, "", "", f"{self.full.cosine:.6f}", f"{self.full.sqnr:.2f}"]
        widths = [max(len(r[j]) for r in [head, full, *rows]) for j in range(len(head))]
        right = {0, 4, 5}

        def line(cells: list[str]) -> str:
            return "  " + "  ".join(f"{c:>{w}}" if j in right else f"{c:<{w}}"
                                    for j, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

        rule = "  " + "-" * (sum(widths) + 2 * (len(widths) - 1))
        title = (f"quantization sensitivity  {self.model}  ({self.samples} samples, one layer quantized at a time, "
                 f"worst {self.metric} first)")
        return "\n".join([title, "", line(head), rule, *[line(r) for r in rows], rule, line(full)])


@dataclass
class _Layer:
    name: str
    module: nn.Module
    fake_quants: list[FakeQuantize]

    @property
    def dtype(self) -> str:
        post = getattr(self.module, "activation_post_process", None)
        return post.dtype if isinstance(post, FakeQuantize) else self.fake_quants[0].dtype


def quantized_layers(model: nn.Module) -> list[tuple[str, nn.Module, list[FakeQuantize]]]:
    """(name, module, its fake-quantizers) for every module owning a `weight_fake_quant` or an
    `activation_post_process` FakeQuantize, and every QuantStub, in module order."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, FakeQuantize):
            continue
        fqs = [fq for attr in ("weight_fake_quant", "activation_post_process")
               if isinstance(fq := getattr(module, attr, None), FakeQuantize)]
        if fqs or isinstance(module, QuantStub):
            out.append((name, module, fqs))
    return out


@contextlib.contextmanager
def _frozen(models: Iterable[nn.Module]) -> Iterator[list[FakeQuantize]]:
    """Eval mode and every FakeQuantize switched off with its observer frozen; modes and
    fake-quant switches come back as they were, also on error."""
    models = list(models)
    modes = [(m, m.training) for model in models for m in model.modules()]
    fqs = [m for model in models for m in model.modules() if isinstance(m, FakeQuantize)]
    saved = [(fq, fq.observer_enabled.clone(), fq.fake_quant_enabled.clone()) for fq in fqs]
    try:
        for model in models:
            model.eval()
        for fq in fqs:
            fq.enable_observer(False).enable_fake_quant(False)
        yield fqs
    finally:
        for fq, observe, quantize in saved:
            fq.observer_enabled.copy_(observe)
            fq.fake_quant_enabled.copy_(quantize)
        for m, training in modes:
            m.training = training


def _flatten_outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out.detach().float().reshape(-1).cpu()]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flatten_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _flatten_outputs(o)]
    raise UsageTypeError(f"sensitivity: expected model outputs made of tensors (or tuples, lists, dicts of them) "
                         f"but got {type(out).__name__}")


def _run(model: nn.Module, data: list) -> torch.Tensor:
    parts: list[torch.Tensor] = []
    with torch.no_grad():
        for sample in data:
            out = model(*sample) if isinstance(sample, (tuple, list)) else model(sample)
            parts += _flatten_outputs(out)
    return torch.cat(parts)


def _score(name: str, module_type: str, dtype: str, ref: torch.Tensor, test: torch.Tensor) -> LayerSensitivity:
    if test.shape != ref.shape:
        raise UsageError(f"sensitivity: the quantized model gives {test.numel()} output values but the float model "
                         f"{ref.numel()}; expected the same model before and after prepare_qat")
    return LayerSensitivity(name, module_type, dtype, cosine_similarity(ref, test), sqnr_db(ref, test))


def sensitivity(float_model: nn.Module, quant_model: nn.Module, data: Iterable,
                metric: str = "cosine") -> SensitivityReport:
    """Rank the quantized layers of `quant_model` (prepared with prepare_qat and calibrated) by the
    error each alone adds to the outputs, compared with `float_model` on `data` (input tensors, or
    tuples of them for several inputs). Lower cosine / SQNR is worse; `metric` picks the ranking.

    Both models run in eval mode under no_grad; their modes and every FakeQuantize's state are
    restored afterwards."""
    if metric not in METRICS:
        raise UsageError(f"sensitivity: expected metric in {METRICS} but got {metric!r}")
    samples = list(data)
    if not samples:
        raise UsageError("sensitivity: expected at least one input sample in data but got none")
    layers = [_Layer(n, m, fqs) for n, m, fqs in quantized_layers(quant_model) if fqs]
    if not layers:
        raise UsageError("sensitivity: the quantized model has no fake-quantizers; prepare it with prepare_qat "
                         "and calibrate it first")
    with _frozen([float_model, quant_model]) as all_fqs:
        ref = _run(float_model, samples)
        # A layer the data never reaches (e.g. an unused head) has observed nothing and no error.
        reached, first_error = [], None
        for layer in layers:
            missing = []
            for fq in layer.fake_quants:
                try:
                    fq.calculate_qparams()
                except RuntimeError as e:
                    missing.append(e)
            if missing and len(missing) < len(layer.fake_quants):
                raise UsageError(f"sensitivity: layer '{layer.name}' has no scale yet ({missing[0]})")
            if missing:
                first_error = first_error or f"layer '{layer.name}': {missing[0]}"
            else:
                reached.append(layer)
        if not reached:
            raise UsageError(f"sensitivity: every quantized layer has no scale yet ({first_error}); calibrate first")
        layers = reached
        results = []
        for layer in layers:
            for fq in layer.fake_quants:
                fq.enable_fake_quant(True)
            try:
                out = _run(quant_model, samples)
            finally:
                for fq in layer.fake_quants:
                    fq.enable_fake_quant(False)
            results.append(_score(layer.name, type(layer.module).__name__, layer.dtype, ref, out))
        for fq in all_fqs:
            fq.enable_fake_quant(True)
        full = _score(FULL_MODEL, type(quant_model).__name__, "", ref, _run(quant_model, samples))
    key = (lambda r: r.cosine) if metric == "cosine" else (lambda r: r.sqnr)
    results.sort(key=key)  # stable: equal scores keep the model's order
    return SensitivityReport(model=type(quant_model).__name__, metric=metric, samples=len(samples), full=full,
                             layers=results)


def int16_qconfig_for_sensitive(report: SensitivityReport, k: int) -> dict[str, QConfig]:
    """`{name: qconfig_int16()}` for the k most sensitive layers, for `set_qconfig(model, default,
    by_name=...)` before `prepare_qat`.

    QuantStubs are passed over: a stub builds its fake-quantizer when it is constructed (raise one
    with `QuantStub(qconfig_int16())`), so a qconfig set later would not change it."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise UsageError(f"int16_qconfig_for_sensitive: expected a count k >= 0 but got {k!r}")
    names = [x.name for x in report.layers if x.module_type != QuantStub.__name__][:k]
    return {name: qconfig_int16() for name in names}
