"""Model converters: the steps from a float model to the quantized one, each a callable
`model -> model`, run in order by `ModelConvertPipeline`. Usable from configs (registered in
hbdk_sim.registry.CONVERTERS) and from plain Python:

    pipeline = ModelConvertPipeline([
        LoadCheckpoint("work/float/best.pt"),
        Float2QAT(),
        LoadCheckpoint("work/calibration/best.pt"),
    ])
    qat_model = pipeline(build_model())
    int_model = QAT2Quantize(input_shape=(1, 3, 128, 256))(qat_model)

- `Float2Calibration`: fuse (the model's `fuse_model(mode)` when it has one), attach quantizers
  (`prepare_qat`), observers on and fake quantization off: forward calibration data, then switch
  to "validation" to evaluate the calibrated model.
- `Float2QAT`: the same preparation in the "qat" state (observers follow training, fake
  quantization on). Its default activation observer keeps the same statistics as calibration's,
  so a calibration checkpoint loads into it and QAT starts from the calibrated scales.
- `QAT2Quantize`: freezes the quantizers, traces the model with its scales to HBIR, runs the
  compiler's quantize pass and returns the integer torch model (`IntModel`) built from that
  integer graph, op for op: what `int_infer` evaluates and the compiled binary computes.
- `LoadCheckpoint`: weights (and quantizer statistics) from a checkpoint, loaded with
  `weights_only=True`.
- `SetFakeQuantState`: every quantizer into one state (e.g. "validation" for evaluation).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hbdk_sim.checkpoints import fit_state_dict
from hbdk_sim.errors import CheckpointError, UsageError, UsageTypeError
from hbdk_sim.quantization.fake_quantize import FakeQuantize, WeightFakeQuantize, set_fake_quant_state
from hbdk_sim.quantization.fuse_modules import MODES, prepare_qat, was_prepared
from hbdk_sim.quantization.observers import (
    KLObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MSEObserver,
    PercentileObserver,
)
from hbdk_sim.quantization.qconfig import QConfig, fake_quant_factory, qconfig_int16, weight_fake_quant
from hbdk_sim.quantization.qconfig_setters import set_qconfig
from hbdk_sim.registry import CONVERTERS

OBSERVERS = {
    "min_max": MinMaxObserver,
    "moving_average": MovingAverageMinMaxObserver,
    "percentile": PercentileObserver,
    "mse": MSEObserver,
    "kl": KLObserver,
}


def qconfig_for(observer: str = "min_max", dtype: str = "si8", **observer_kwargs) -> QConfig:
    """A QConfig with activation observer `observer` (one of OBSERVERS) at `dtype` and the default
    per-channel si8 weight quantizer."""
    if observer not in OBSERVERS:
        raise UsageError(f"expected an observer in {sorted(OBSERVERS)} but got {observer!r}")
    act = fake_quant_factory(OBSERVERS[observer], dtype=dtype, **observer_kwargs)
    return QConfig(input=act, weight=weight_fake_quant(), output=act)


def _fuse(model: nn.Module, mode: str) -> None:
    if mode not in MODES:
        raise UsageError(f"expected fuse_mode in {MODES} but got {mode!r}")
    fuse = getattr(model, "fuse_model", None)
    if fuse is None:
        bns = [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
        if bns:
            raise UsageError(
                f"{type(model).__name__} has BatchNorm2d modules ({bns[0]!r} and {len(bns) - 1} more) but no "
                "fuse_model(mode), so its conv+bn pairs would be quantized unfused (BN applied after the conv's "
                "rounding); prepare it in graph mode (graph_mode=True, or hbdk_sim.quantization.prepare_qat_fx), "
                "which fuses them, give it a fuse_model, or pass fuse=False to quantize it unfused on purpose")
        return
    if "mode" in inspect.signature(fuse).parameters:
        fuse(mode=mode)
    elif mode == "fuse_bn":
        fuse()
    else:
        raise UsageError(f"{type(model).__name__}.fuse_model() takes no mode, so it cannot fuse in {mode!r} mode")


class _Prepare:
    """Fuse, attach quantizers, set `state`.

    Eager (default, in place): the model's `fuse_model(mode)` when it has one, then `prepare_qat`.
    `graph_mode=True`: `prepare_qat_fx` on the model's graph traced on zeros of `input_shape`
    (no fuse_model, stubs or quantizer modules needed); with `submodule` (e.g. "network") only that
    part is prepared and put back, so a task model keeps its loss and host code around it. A task
    model that names its parts (`graph_mode_parts`, e.g. a tracker's two networks with several
    inputs each) has each part prepared on zeros of its own inputs, `input_shape` being the
    primary input's."""

    state = ""
    default_observer = ""

    def __init__(self, qconfig: QConfig | None = None, observer: str | None = None, fuse: bool = True,
                 fuse_mode: str = "fuse_bn", by_name: Mapping[str, QConfig | None] | None = None,
                 by_type: Mapping[type, QConfig | None] | None = None, graph_mode: bool = False,
                 input_shape: Sequence[int] | None = None, submodule: str | None = None,
                 observer_kwargs: Mapping[str, Any] | None = None) -> None:
        if qconfig is not None and (observer is not None or observer_kwargs):
            raise UsageError(f"{type(self).__name__}: give a qconfig or an observer (with observer_kwargs), not both")
        self.qconfig = qconfig if qconfig is not None else \
            qconfig_for(observer or self.default_observer, **dict(observer_kwargs or {}))
        # si16 outputs a model asks for (its `int16_outputs`) use the same observer at si16.
        self._wide_qconfig = qconfig_int16() if qconfig is not None else \
            qconfig_for(observer or self.default_observer, dtype="si16", **dict(observer_kwargs or {}))
        self.fuse, self.fuse_mode, self.by_name, self.by_type = fuse, fuse_mode, by_name, by_type
        if graph_mode and input_shape is None:
            raise UsageError(f"{type(self).__name__}(graph_mode=True) traces the model: give input_shape, e.g. "
                             "input_shape=[1, 3, 224, 224]")
        if submodule and not graph_mode:
            raise UsageError(f"{type(self).__name__}: submodule= selects what graph mode prepares; pass "
                             "graph_mode=True too")
        self.graph_mode, self.input_shape, self.submodule = graph_mode, input_shape, submodule

    def __call__(self, model: nn.Module) -> nn.Module:
        if was_prepared(model):
            raise UsageError(f"{type(model).__name__} already has quantizers; convert a float model")
        by_name = {**{name: self._wide_qconfig for name in getattr(model, "int16_outputs", ())},
                   **{name: self.qconfig for name in getattr(model, "int8_outputs", ())},
                   **(self.by_name or {})}
        if by_name or self.by_type:
            set_qconfig(model, self.qconfig, by_name=by_name, by_type=self.by_type)
        if self.graph_mode:
            return self._prepare_graph(model)
        if self.fuse:
            _fuse(model, self.fuse_mode)
        model = prepare_qat(model, self.qconfig, inplace=True)
        return set_fake_quant_state(model, self.state)

    def _prepare_graph(self, model: nn.Module) -> nn.Module:
        from hbdk_sim.nn.structures.base import GraphInput, TaskModel
        from hbdk_sim.quantization.prepare_fx import prepare_qat_fx

        shape = tuple(int(d) for d in self.input_shape)
        parts = model.graph_mode_parts(shape) if isinstance(model, TaskModel) and not self.submodule else None
        if parts is None:  # one part on zeros of input_shape: the model, or its `submodule`
            parts = {self.submodule or "": (GraphInput("input", shape),)}
        for path, inputs in parts.items():
            try:
                target = model.get_submodule(path)
            except AttributeError:
                raise UsageError(f"{type(self).__name__}: {type(model).__name__} has no submodule {path!r}") from None
            device = next((p.device for p in target.parameters()), torch.device("cpu"))
            prepared = prepare_qat_fx(target, tuple(x.zeros().to(device) for x in inputs), self.qconfig,
                                      mode=self.fuse_mode, state=self.state, name=path or type(model).__name__)
            if not path:
                return prepared
            parent, _, child = path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, prepared)
        return set_fake_quant_state(model, self.state)


@CONVERTERS.register
class Float2Calibration(_Prepare):
    """Fuse and attach quantizers for calibration (observers on, fake quantization off), in place.

    A model may name submodules whose outputs it wants at si16 in an `int16_outputs` attribute
    (module paths); they get the stage's observer at si16 unless `by_name` says otherwise. Its
    `int8_outputs` names submodules inside those that stay si8 (a name covers the module and
    everything inside it; the longest name wins).

    `qconfig` defaults to min-max activation observers (`observer` picks another: "percentile",
    "mse", "kl", "moving_average", with its arguments in `observer_kwargs`, e.g.
    `{"percentile": 99.975}`); `by_name` / `by_type` override it per module (see
    `set_qconfig`), e.g. `{"head": qconfig_for(dtype="si16")}`."""

    state = "calibration"
    default_observer = "min_max"


@CONVERTERS.register
class Float2QAT(_Prepare):
    """Fuse and attach quantizers for quantization-aware training ("qat" state), in place.

    The default activation observer is the moving-average min-max, whose statistics (min_val,
    max_val) are those of calibration's min-max observer: a calibration checkpoint loads into the
    QAT model and training starts from its scales.

    `activation_scales="frozen"` keeps every activation scale where it starts (load a calibration
    checkpoint after this step): the activation observers stop recording for good (a later state
    change does not restart them), fake quantization stays on, and only the weights' scales move,
    with the weights (they always follow the weight itself). The default "follow" lets the
    observers keep recording while training."""

    state = "qat"
    default_observer = "moving_average"

    def __init__(self, qconfig: QConfig | None = None, observer: str | None = None, fuse: bool = True,
                 fuse_mode: str = "fuse_bn", by_name: Mapping[str, QConfig | None] | None = None,
                 by_type: Mapping[type, QConfig | None] | None = None, graph_mode: bool = False,
                 input_shape: Sequence[int] | None = None, submodule: str | None = None,
                 observer_kwargs: Mapping[str, Any] | None = None, activation_scales: str = "follow") -> None:
        if activation_scales not in ("follow", "frozen"):
            raise UsageError(f"Float2QAT: activation_scales must be 'follow' or 'frozen' but got {activation_scales!r}")
        super().__init__(qconfig, observer, fuse, fuse_mode, by_name, by_type, graph_mode, input_shape, submodule,
                         observer_kwargs)
        self.activation_scales = activation_scales

    def __call__(self, model: nn.Module) -> nn.Module:
        model = super().__call__(model)
        if self.activation_scales == "frozen":
            for m in model.modules():
                if isinstance(m, FakeQuantize) and not isinstance(m, WeightFakeQuantize):
                    m.freeze_observer()
        return model


def _example(example_inputs, input_shape, model: nn.Module) -> tuple[torch.Tensor, ...]:
    if example_inputs is not None:
        return (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)
    if input_shape is None:
        raise UsageError("QAT2Quantize needs example_inputs or input_shape (e.g. input_shape=(1, 3, 128, 256)) "
                         "to trace the model")
    shapes = [input_shape] if isinstance(input_shape[0], int) else list(input_shape)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return tuple(torch.zeros([int(d) for d in s], device=device) for s in shapes)


@CONVERTERS.register
class QAT2Quantize:
    """A calibrated or QAT model -> the integer torch model (`IntModel`) of its compiled graph.

    The quantizers are frozen ("validation"), the model is traced with `example_inputs` (or zeros
    of `input_shape`) into HBIR carrying every scale, the compiler's quantize pipeline makes the
    integer graph, and the IntModel runs that graph in torch bit for bit like the executor. The
    result is on the model's device and in eval mode.

    A task model (`hbdk_sim.nn.structures.TaskModel`) converts each of its board graphs, traced on
    zeros of the graph's inputs at `input_shape` (the primary input, e.g. the config's
    deploy_input_shape), into the integer model the task then runs them with: its host side (losses,
    post-processing, what runs between graphs) stays in torch.

    With `submodule` (e.g. "network"), only that part of a model is converted and put back in its
    place."""

    def __init__(self, example_inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
                 input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None, name: str = "model",
                 submodule: str | None = None) -> None:
        self.example_inputs, self.input_shape, self.name = example_inputs, input_shape, name
        self.submodule = submodule

    def __call__(self, model: nn.Module) -> nn.Module:
        from hbdk_sim.frontend.torch_tracer import trace_quant
        from hbdk_sim.quantization.int_model import IntModel, quantize_module

        if self.submodule:
            try:
                target = model.get_submodule(self.submodule)
            except AttributeError:
                raise UsageError(f"QAT2Quantize: {type(model).__name__} has no submodule {self.submodule!r}") from None
            converted = QAT2Quantize(self.example_inputs, self.input_shape, self.name)(target)
            parent, _, child = self.submodule.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, converted)
            set_fake_quant_state(model, "validation")
            return model.eval()
        from hbdk_sim.nn.structures.base import TaskModel

        if isinstance(model, TaskModel):
            return self._convert_board_graphs(model)
        inputs = _example(self.example_inputs, self.input_shape, model)
        set_fake_quant_state(model, "validation")
        float_graph = trace_quant(model, tuple(x.cpu() for x in inputs), self.name)
        device = inputs[0].device
        return IntModel.from_hbir(quantize_module(float_graph)).to(device).eval()

    def _convert_board_graphs(self, model) -> nn.Module:
        if self.input_shape is None or self.example_inputs is not None:
            raise UsageError(f"QAT2Quantize: the task model {type(model).__name__} traces its board graphs at "
                             "input_shape (its primary input, e.g. deploy_input_shape); give input_shape, "
                             "not example_inputs")
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        set_fake_quant_state(model, "validation")
        for graph in model.board_graphs([int(d) for d in self.input_shape]):
            inputs = tuple(x.to(device) for x in graph.example_inputs())
            converted = QAT2Quantize(inputs, name=f"{self.name}_{graph.name}")(graph.module.eval())
            model.set_integer_graph(graph.name, converted)
        return model.eval()


def _state_dict_of(checkpoint, key: str | None, path: Path) -> Mapping[str, torch.Tensor]:
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{path}: expected a checkpoint dict but found a {type(checkpoint).__name__}; save "
                              "checkpoints with the Checkpoint callback or torch.save(model.state_dict())")
    if key is not None:
        if key not in checkpoint:
            raise CheckpointError(f"{path}: no '{key}' entry (entries: {', '.join(sorted(map(str, checkpoint)))})")
        return checkpoint[key]
    for k in ("model", "state_dict"):
        if isinstance(checkpoint.get(k), Mapping):
            return checkpoint[k]
    return checkpoint


def _strip_prefixes(state: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p):]
                break
        out[k] = v
    return out


@CONVERTERS.register
class LoadCheckpoint:
    """Load a checkpoint's weights into the model (`weights_only=True`: no code runs).

    The state dict is `checkpoint[state_dict_key]`, by default the "model" or "state_dict" entry
    or the whole file; `state_dict_key="ema"` loads the EMA weights the EMA callback saved.
    DistributedDataParallel's (and the EMA's AveragedModel's) "module." prefix is stripped. With `prefix`
    (e.g. "network."), only the keys under it load, without it: a task model's checkpoint into its
    network. With `strict`, a missing or unexpected key is an error that names a few of each."""

    def __init__(self, path: str | os.PathLike, state_dict_key: str | None = None, strict: bool = True,
                 map_location: str | torch.device = "cpu", prefix: str = "") -> None:
        self.path, self.state_dict_key = Path(path), state_dict_key
        self.strict, self.map_location, self.prefix = strict, map_location, prefix

    def __call__(self, model: nn.Module) -> nn.Module:
        if self.path.exists() and not self.path.is_file():
            raise CheckpointError(f"{self.path}: not a regular file; give the path of a checkpoint (.pt)")
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: checkpoint not found; train the previous stage first or fix the "
                                    "path")
        try:
            checkpoint = torch.load(self.path, map_location=self.map_location, weights_only=True)
        except Exception as e:  # an unpickling error names the offending global; keep it to one line
            raise CheckpointError(f"{self.path}: not a loadable checkpoint ({str(e).splitlines()[0]})") from None
        state = _strip_prefixes(_state_dict_of(checkpoint, self.state_dict_key, self.path), ["module."])
        if self.state_dict_key == "ema":
            state.pop("n_averaged", None)  # AveragedModel's update count, not a weight
        if self.prefix:
            state = {k[len(self.prefix):]: v for k, v in state.items() if k.startswith(self.prefix)}
            if not state:
                raise CheckpointError(f"{self.path}: no weights under {self.prefix!r}; check the prefix")
        return fit_state_dict(model, state, str(self.path), strict=self.strict)


@CONVERTERS.register
class SetFakeQuantState:
    """Put every quantizer of the model into `state` ("calibration", "qat" or "validation"), e.g.
    "validation" to evaluate a calibrated or QAT model with frozen scales."""

    def __init__(self, state: str = "validation") -> None:
        from hbdk_sim.quantization.fake_quantize import STATES

        if state not in STATES:
            raise UsageError(f"expected a state in {STATES} but got {state!r}")
        self.state = state

    def __call__(self, model: nn.Module) -> nn.Module:
        return set_fake_quant_state(model, self.state)


@CONVERTERS.register
class ModelConvertPipeline:
    """Run converters in order; each is a callable `model -> model` or a config dict built from
    the CONVERTERS registry."""

    def __init__(self, converters: Sequence) -> None:
        from hbdk_sim.registry import build_from_cfg

        self.converters = [build_from_cfg(c, CONVERTERS) for c in converters]
        for c in self.converters:
            if not callable(c):
                raise UsageTypeError(f"expected a converter (callable model -> model) but got {type(c).__name__}")

    def __call__(self, model: nn.Module) -> nn.Module:
        for c in self.converters:
            model = c(model)
            if not isinstance(model, nn.Module):
                raise UsageTypeError(f"converter {type(c).__name__} returned {type(model).__name__}, not an nn.Module")
        return model
