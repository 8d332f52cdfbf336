"""Loading a state dict into a model with one-line errors: a checkpoint that does not fit says which
file, what it looks like (a float or a fake-quantized checkpoint, how many weights) and the first
name that does not fit, instead of torch's many lines of missing, unexpected and mismatched keys.

Used by every place that loads weights: the LoadCheckpoint converter, resuming a Trainer, and
engine.load_weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hbdk_sim.errors import CheckpointError

# Keys only a model prepared by Float2Calibration / Float2QAT has.
_FAKE_QUANT_MARKS = ("weight_fake_quant.", "activation_post_process.", "fake_quant.")


def _is_fake_quant_state(state: Mapping[str, Any]) -> bool:
    return any(mark in str(k) for k in state for mark in _FAKE_QUANT_MARKS)


def describe_state(state: Mapping[str, Any]) -> str:
    """What a state dict looks like: 'a calibration/QAT checkpoint (...) of N tensors' or 'a float ...'."""
    kind = ("a calibration/QAT checkpoint (it holds fake-quantization scales)" if _is_fake_quant_state(state)
            else "a float checkpoint")
    return f"{kind} of {len(state)} tensors"


def _model_kind(model: nn.Module) -> str:
    from hbdk_sim.quantization.fuse_modules import is_prepared

    return f"the {'calibration/QAT' if is_prepared(model) else 'float'} {type(model).__name__}"


def _fix(state: Mapping[str, Any], model: nn.Module) -> str:
    from hbdk_sim.quantization.fuse_modules import is_prepared

    quantized_state = _is_fake_quant_state(state)
    if quantized_state and not is_prepared(model):
        return "load it into the stage it came from (calibration or qat), or give the float stage's checkpoint"
    if not quantized_state and is_prepared(model):
        return "load a float checkpoint before Float2Calibration/Float2QAT, or give this stage's own checkpoint"
    return "check that the config builds the model the checkpoint was trained with (class count, width)"


def fit_state_dict(model: nn.Module, state: Any, source: str, *, strict: bool = True) -> nn.Module:
    """Load `state` into `model`; a state that is not a dict of tensors, is empty, or (with `strict`)
    does not fit the model's names and shapes raises one CheckpointError naming `source`."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source}: expected a dict of weights but found a {type(state).__name__}; "
                              "save checkpoints with the Checkpoint callback or torch.save(model.state_dict())")
    if not state:
        raise CheckpointError(f"{source}: holds no weights (an empty state dict); train the stage again or give "
                              "another checkpoint")
    not_tensors = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        kind = type(state[not_tensors[0]]).__name__
        raise CheckpointError(f"{source}: '{not_tensors[0]}' is a {kind}, not a tensor; not a state dict of weights")
    own = model.state_dict()
    for name, value in state.items():
        # An empty buffer (a quantizer's scale before calibration) takes its shape from the state.
        if name in own and own[name].numel() and tuple(own[name].shape) != tuple(value.shape):
            raise CheckpointError(f"{source}: does not fit {_model_kind(model)}: '{name}' is {list(value.shape)} there "
                                  f"but {list(own[name].shape)} in the model ({describe_state(state)}); "
                                  f"{_fix(state, model)}")
    result = model.load_state_dict(state, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        missing, unexpected = result.missing_keys, result.unexpected_keys
        first = (f"the model's '{missing[0]}' is not there" if missing
                 else f"its '{unexpected[0]}' is not in the model")
        counts = ", ".join(p for p in (f"{len(missing)} missing" if missing else "",
                                       f"{len(unexpected)} unexpected" if unexpected else "") if p)
        raise CheckpointError(f"{source}: does not fit {_model_kind(model)}: {first} ({counts}; "
                              f"{describe_state(state)}); {_fix(state, model)}")
    return model
