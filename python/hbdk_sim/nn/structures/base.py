"""The task contract: what a task model (a "structure") gives the stages and the deployment tools.

A structure is an `nn.Module` that holds every layer of its task and provides

- `forward(batch)`: in training, the loss dict; in eval, `predict(batch, self.board_runners())`;
- `board_modules()`: one or more named board graphs, each the module a board runs (a view over the
  structure's own layers, built on each call, so a converter that swaps a layer is seen by it);
- `board_inputs(input_shape)`: each graph's named, typed inputs at the deploy size (`input_shape` is
  the config's `deploy_input_shape`, the primary input; a structure derives the others from it);
- `predict(batch, runners)`: the host side: pre-processing, the graphs (called through `runners`,
  name -> callable on tensors), what happens between them (state across frames allowed) and the
  post-processing, giving the predictions the metric reads. The same code runs around the float,
  fake-quant and integer torch graphs and around the compiled binaries in the executor, so
  `int_infer` and `align_bpu` can differ only where the graphs differ;
- `visualize(image, prediction)`: the pictures `tools/infer.py` writes for one input image, one
  per name of the class attribute `visual_names`.

A stage's converters work on the whole structure (in graph mode, on the parts `graph_mode_parts`
names); `QAT2Quantize` replaces each board graph by its
integer model (`set_integer_graph`), which `board_graphs` and `board_runners` then return.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hbdk_sim.errors import UsageError

# name -> a board graph as a callable: tensors in, a tuple of output tensors out.
Runner = Callable[..., tuple[torch.Tensor, ...]]

_DTYPES = {"float32": torch.float32, "int32": torch.int32}


@dataclass(frozen=True)
class GraphInput:
    """One input of a board graph: its name, shape and element type, and the range random example
    values span (a normalized image: [-1, 1); an index input: [low, high) of whole numbers)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    value_range: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise UsageError(f"board input {self.name!r}: dtype {self.dtype!r} is not one of {', '.join(_DTYPES)}")
        if not self.shape or any(not isinstance(d, int) or isinstance(d, bool) or d <= 0 for d in self.shape):
            raise UsageError(f"board input {self.name!r}: expected a shape of positive ints but got {self.shape}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    def zeros(self) -> torch.Tensor:
        return torch.zeros(self.shape, dtype=self.torch_dtype)

    def random(self, generator: torch.Generator) -> torch.Tensor:
        """Seeded uniform values of the input's range (whole numbers for an integer input)."""
        low, high = self.value_range
        if self.dtype == "float32":
            return torch.rand(self.shape, generator=generator) * (high - low) + low
        return torch.randint(int(low), int(high), self.shape, generator=generator, dtype=self.torch_dtype)


@dataclass(frozen=True)
class BoardGraph:
    """A named board graph of a structure: the module the board runs and its inputs."""

    name: str
    module: nn.Module
    inputs: tuple[GraphInput, ...]

    def example_inputs(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Zeros of every input, or seeded random values with `generator`."""
        return tuple(x.zeros() if generator is None else x.random(generator) for x in self.inputs)


def as_outputs(outputs: Any) -> tuple[torch.Tensor, ...]:
    """A graph's result as a tuple of tensors (a module may return one tensor)."""
    return (outputs,) if isinstance(outputs, torch.Tensor) else tuple(outputs)


class TaskModel(nn.Module, abc.ABC):
    """Base class of the structures; see the module docstring for the contract."""

    # The pictures `visualize` draws, by name (a file suffix).
    visual_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        # The integer models QAT2Quantize made of the board graphs, by graph name (empty before).
        self.integer_graphs = nn.ModuleDict()

    # ---- what a structure defines -------------------------------------------------------------------

    @abc.abstractmethod
    def board_modules(self) -> dict[str, nn.Module]:
        """Graph name -> the module the board runs, over this structure's layers."""

    @abc.abstractmethod
    def board_inputs(self, input_shape: Sequence[int]) -> dict[str, tuple[GraphInput, ...]]:
        """Graph name -> its inputs when the primary input has `input_shape`."""

    @abc.abstractmethod
    def predict(self, batch: Mapping[str, Any], runners: Mapping[str, Runner]) -> dict[str, Any]:
        """The predictions of a batch, the board graphs called through `runners`."""

    @abc.abstractmethod
    def visualize(self, image: np.ndarray, prediction: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Pictures of one prediction over its HxWx3 uint8 RGB `image`: each of `visual_names` -> an
        HxWx3 uint8 picture."""

    # ---- what the stages and tools use ---------------------------------------------------------------

    def graph_names(self) -> list[str]:
        return list(self.board_modules())

    def graph_mode_parts(self, input_shape: Sequence[int]) -> dict[str, tuple[GraphInput, ...]] | None:
        """What graph-mode preparation (`Float2Calibration(graph_mode=True)`, `Float2QAT`) traces
        when it is given the whole structure: submodule path -> that submodule's inputs when the
        primary input has `input_shape`. Each part is prepared on zeros of its inputs and put back in
        its place, so the host code around it keeps working. None (the default): the structure names
        no parts; prepare one with `submodule=`."""
        return None

    def board_graphs(self, input_shape: Sequence[int]) -> list[BoardGraph]:
        """Every board graph at the deploy size, as this stage runs it (integer once converted)."""
        inputs = self.board_inputs(input_shape)
        modules = self._current_modules()
        if set(inputs) != set(modules):
            raise RuntimeError(f"{type(self).__name__}: board_inputs names {sorted(inputs)} but board_modules "
                               f"{sorted(modules)}")
        return [BoardGraph(name, module, tuple(inputs[name])) for name, module in modules.items()]

    def board_runners(self) -> dict[str, Runner]:
        """The board graphs as torch runners (what eval's `predict` calls)."""
        return {name: _module_runner(module) for name, module in self._current_modules().items()}

    def set_integer_graph(self, name: str, module: nn.Module) -> None:
        if name not in self.board_modules():
            raise UsageError(f"{type(self).__name__} has no board graph {name!r} (graphs: "
                             f"{', '.join(self.board_modules())})")
        self.integer_graphs[name] = module

    def _current_modules(self) -> dict[str, nn.Module]:
        modules = self.board_modules()
        return {name: self.integer_graphs[name] if name in self.integer_graphs else m for name, m in modules.items()}


class SingleGraphTask(TaskModel):
    """A task whose board runs one graph, "network": the structure's `network` module, with the image
    under `image_key` as its one input."""

    network: nn.Module
    image_key: str

    def board_modules(self) -> dict[str, nn.Module]:
        return {"network": self.network}

    def board_inputs(self, input_shape: Sequence[int]) -> dict[str, tuple[GraphInput, ...]]:
        return {"network": (GraphInput(self.image_key, tuple(int(d) for d in input_shape)),)}


def _module_runner(module: nn.Module) -> Runner:
    def run(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return as_outputs(module(*inputs))

    return run
