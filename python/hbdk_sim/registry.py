"""Registries: names a config's `type=` can refer to, and `build_from_cfg`, which turns a nested
config dict into objects.

    MODELS = Registry("model")

    @MODELS.register
    class UNet(nn.Module): ...

    model = build_from_cfg(dict(type="UNet", num_classes=19), MODELS)

`type` is a registered name or the class/callable itself. Nested dicts that carry a `type` are
built first (depth first, lists and tuples included): a name is looked up in the caller's registry,
then in any other registry that holds it (a trainer's `optimizer=dict(type="SGD")` lives in
OPTIMIZERS). An unknown name fails listing the closest registered names.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from hbdk_sim.errors import ConfigError

_ALL: dict[str, Registry] = {}


class Registry:
    """A name -> class (or factory function) table for one kind of object."""

    def __init__(self, name: str) -> None:
        if name in _ALL:
            raise ValueError(f"a registry named {name!r} already exists")
        self.name = name
        self._entries: dict[str, Callable] = {}
        _ALL[name] = self

    def register(self, obj: Callable | None = None, *, name: str | None = None, force: bool = False):
        """Register `obj` under `name` (default: its __name__). Use bare (`@R.register`) or with
        arguments (`@R.register(name="x")`)."""

        def add(o: Callable) -> Callable:
            key = name or o.__name__
            if key in self._entries and self._entries[key] is not o and not force:
                raise KeyError(f"{self.name} registry: {key!r} is already registered to {self._entries[key]!r}")
            self._entries[key] = o
            return o

        return add(obj) if obj is not None else add

    def get(self, key: str) -> Callable:
        try:
            return self._entries[key]
        except KeyError:
            close = difflib.get_close_matches(key, list(self._entries), n=5, cutoff=0.4)
            hint = f"; closest: {', '.join(close)}" if close else f"; registered: {', '.join(sorted(self._entries))}"
            raise ConfigError(f"{self.name} registry: unknown type {key!r}{hint}") from None

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def build(self, cfg: Mapping[str, Any], **defaults) -> Any:
        return build_from_cfg(cfg, self, **defaults)

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {len(self._entries)} entries)"


def registry(name: str) -> Registry:
    """The registry called `name` (created on first use)."""
    return _ALL[name] if name in _ALL else Registry(name)


MODELS = registry("model")
DATASETS = registry("dataset")
TRANSFORMS = registry("transform")
LOSSES = registry("loss")
METRICS = registry("metric")
CALLBACKS = registry("callback")
OPTIMIZERS = registry("optimizer")
SCHEDULERS = registry("scheduler")
CONVERTERS = registry("converter")
TRAINERS = registry("trainer")


def _build_nested(value: Any, default: Registry | None) -> Any:
    if isinstance(value, Mapping) and "type" in value:
        return build_from_cfg(value, default)
    if isinstance(value, list):
        return [_build_nested(v, default) for v in value]
    if isinstance(value, tuple):
        return tuple(_build_nested(v, default) for v in value)
    return value


def _lookup(name: str, preferred: Registry) -> Callable:
    if name in preferred:
        return preferred.get(name)
    holders = [r for r in _ALL.values() if name in r]
    if len(holders) == 1:
        return holders[0].get(name)
    if len(holders) > 1:
        raise ConfigError(f"{preferred.name} registry: {name!r} is not registered here and is ambiguous elsewhere "
                          f"({', '.join(r.name for r in holders)}); pass the class itself")
    return preferred.get(name)  # raises, naming the closest


def build_from_cfg(cfg: Mapping[str, Any] | Any, registry: Registry | None = None, **defaults) -> Any:
    """Build the object `cfg` describes. `cfg["type"]` is a name in `registry` or a callable; the
    other keys (their nested configs built first) and `defaults` (overridden by `cfg`) are its
    keyword arguments. A value that is not a dict with `type` is returned as is (already built)."""
    if not isinstance(cfg, Mapping):
        return cfg
    if "type" not in cfg:
        raise ConfigError(f"expected a config with a 'type' key but got keys {sorted(cfg)}")
    kind = cfg["type"]
    if isinstance(kind, str):
        if registry is None:
            raise ConfigError(f"type {kind!r} given by name but no registry to look it up in; pass the class itself")
        factory = _lookup(kind, registry)
    elif callable(kind):
        factory = kind
    else:
        raise ConfigError(f"expected 'type' to be a registered name or a class but got {type(kind).__name__}")
    kwargs = dict(defaults)
    for key, value in cfg.items():
        if key != "type":
            kwargs[key] = _build_nested(value, registry)
    _check_arguments(factory, kwargs)
    return factory(**kwargs)


def _check_arguments(factory: Callable, kwargs: Mapping[str, Any]) -> None:
    """A keyword the factory does not take, or a required one the config lacks, is the config's
    mistake: checked against the signature before the call, so that a TypeError raised inside the
    factory stays a bug with its traceback."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to read (some builtins): the call checks for itself
        return
    name = getattr(factory, "__name__", repr(factory))
    params = signature.parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        keywords = [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [k for k in kwargs if k not in keywords]
        if unknown:
            close = difflib.get_close_matches(unknown[0], keywords, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; it takes {', '.join(keywords) or 'none'}"
            raise ConfigError(f"building {name}: got an unexpected keyword argument {unknown[0]!r}{hint}")
    try:
        signature.bind(**kwargs)
    except TypeError as e:  # bind raises TypeError only for arguments that do not fit: a missing one
        raise ConfigError(f"building {name}: {e}") from None
