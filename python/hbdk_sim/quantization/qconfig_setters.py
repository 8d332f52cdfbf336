"""Choosing a QConfig per module: a default, overridden by module type, overridden by module name.

`set_qconfig` writes the choice into each module's `qconfig` attribute, which `prepare_qat` reads.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from torch import nn

from hbdk_sim.errors import UsageError
from hbdk_sim.quantization.qconfig import QConfig


def _check_names(model: nn.Module, names: list[str]) -> None:
    known = [n for n, _ in model.named_modules() if n]
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise UsageError(f"expected a submodule name of the model but got {name!r}{hint}")


def _by_type(module: nn.Module, by_type: Mapping[type, QConfig | None]):
    """The entry for the module's exact type, else the first entry it is an instance of."""
    if type(module) in by_type:
        return True, by_type[type(module)]
    for cls, qc in by_type.items():
        if isinstance(module, cls):
            return True, qc
    return False, None


def set_qconfig(
    model: nn.Module,
    default: QConfig | None,
    by_name: Mapping[str, QConfig | None] | None = None,
    by_type: Mapping[type, QConfig | None] | None = None,
) -> nn.Module:
    """Set `qconfig` on every module of `model` (in place) and return it.

    A name in `by_name` covers that module and everything inside it, and the longest such name
    wins; a `by_name` entry beats a `by_type` entry, which beats `default`. `None` anywhere means
    "leave in float". Unknown names raise UsageError listing close matches.
    """
    by_name = dict(by_name or {})
    by_type = dict(by_type or {})
    _check_names(model, list(by_name))
    for name, module in model.named_modules():
        covering = [n for n in by_name if name == n or name.startswith(n + ".")]
        if covering:
            module.qconfig = by_name[max(covering, key=len)]
            continue
        found, qc = _by_type(module, by_type)
        module.qconfig = qc if found else default
    return model
