"""Config files: Python files whose public top-level variables (plain dicts, lists, numbers, strings,
and classes a config imports) describe a run. `Config.fromfile` runs one, `apply_overrides` applies
`--opts key=value` changes, `Config.dump` writes the resolved config beside a run's checkpoints.

    cfg = Config.fromfile("models/segmentation/unet_mobilenetv1_cityscapes.py")
    apply_overrides(cfg, ["float_trainer.num_epochs=3", "image_size=[64,128]"])
    cfg.float_trainer.num_epochs          # 3: attribute or item access, nested dicts included
    cfg.dump("runs/unet/config.py")
"""

from __future__ import annotations

import ast
import difflib
import inspect
import json
import os
import pprint
import sys
import traceback
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hbdk_sim.errors import ConfigError
from hbdk_sim.files import write_file


class Config(dict):
    """A dict whose keys are also attributes (`cfg.float_trainer.num_epochs`); nested dicts become
    Configs too. Keys that shadow dict methods (`items`, `update`, ...) need item access."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key, value in self.items():
            dict.__setitem__(self, key, _wrap(value))
        self.__dict__["_source"] = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(_unknown_key_message(name, self, "config")) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, _wrap(value))

    def __delattr__(self, name: str) -> None:
        del self[name]

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts/lists (classes and other objects kept as they are)."""
        return _unwrap(self)

    @staticmethod
    def fromfile(path: str | os.PathLike, overrides: Iterable[str] = ()) -> Config:
        """Run the Python config file at `path` and return its public top-level variables
        (modules, functions and names starting with '_' are left out). The config's folder is on
        sys.path while it runs, so it can import a sibling file of shared settings.

        `overrides` are `key=value` strings. One whose key is a top-level name the file assigns
        (`image_size=[64,128]`) replaces the value of that assignment before the file runs, so
        everything the file derives from it follows; dotted keys (`float_trainer.num_epochs=3`)
        are applied afterwards by `apply_overrides`."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist" if not path.exists()
                              else f"config file {path} is not a file")
        source = path.read_text(encoding="utf-8")
        try:
            tree = ast.parse(source, str(path))
        except SyntaxError as e:
            raise ConfigError(f"{path}:{e.lineno}: syntax error in config file: {e.msg}") from None
        overrides = list(overrides)
        top = [o for o in overrides if "." not in o.partition("=")[0].strip()]
        dotted = [o for o in overrides if o not in top]
        _override_assignments(tree, top, path)
        code = compile(tree, str(path), "exec")
        namespace: dict[str, Any] = {"__file__": str(path.resolve()), "__name__": f"hbdk_sim_config.{path.stem}"}
        folder = str(path.resolve().parent)
        sys.path.insert(0, folder)
        try:
            exec(code, namespace)
        except Exception as e:
            line = _line_in(e, str(path))
            where = f"{path}:{line}" if line else str(path)
            raise ConfigError(f"{where}: running the config file raised {type(e).__name__}: {e}") from e
        finally:
            if sys.path and sys.path[0] == folder:
                del sys.path[0]
        cfg = Config({k: v for k, v in namespace.items() if _is_setting(k, v)})
        cfg.__dict__["_source"] = str(path)
        return apply_overrides(cfg, dotted)

    def dump(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the config as readable text: `.json` gives JSON, anything else Python assignments
        (`name = {...}`) that `fromfile` reads back. Classes and functions are written as
        'module.QualName' strings, other non-literal objects as their repr string."""
        path = Path(path)
        data = {k: _to_literal(v) for k, v in self.items()}
        if path.suffix == ".json":
            text = json.dumps(data, indent=2, default=str) + "\n"
        else:
            source = self.__dict__.get("_source")
            origin = f" from {source}" if source else ""
            lines = [f"# Resolved config{origin}; classes are written as 'module.QualName' strings.", ""]
            for key, value in data.items():
                lines.append(f"{key} = {pprint.pformat(value, indent=1, width=110, sort_dicts=False)}")
            text = "\n".join(lines) + "\n"
        return write_file(path, text.encode("utf-8"), overwrite=overwrite)


def _override_assignments(tree: ast.Module, overrides: list[str], path: Path) -> None:
    """Replace the value of each top-level `name = ...` named by an override with the override's
    value (parsed as by `parse_value`), every such assignment of the name."""
    assigned: dict[str, list[ast.Assign | ast.AnnAssign]] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) and node.value is not None else []
        for t in targets:
            if isinstance(t, ast.Name):
                assigned.setdefault(t.id, []).append(node)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value (e.g. float_trainer.num_epochs=3)")
        if key not in assigned:
            close = difflib.get_close_matches(key, list(assigned), n=5, cutoff=0.4)
            hint = f"closest: {', '.join(close)}" if close else f"names there: {', '.join(sorted(assigned))}"
            raise ConfigError(f"override {key!r}: {path} assigns no top-level {key!r}; {hint}")
        value = ast.parse(repr(parse_value(text)), mode="eval").body
        for node in assigned[key]:
            node.value = ast.copy_location(value, node.value)
    ast.fix_missing_locations(tree)


def _is_setting(name: str, value: Any) -> bool:
    if name.startswith("_"):
        return False
    return not isinstance(value, types.ModuleType | types.FunctionType | types.BuiltinFunctionType)


def _line_in(exc: BaseException, filename: str) -> int | None:
    """The last line of `filename` in the traceback of `exc` (where the config itself failed)."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


def _wrap(value: Any) -> Any:
    if isinstance(value, Config):
        return value
    if isinstance(value, Mapping):
        return Config(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    return value


def qualified_name(obj: Any) -> str:
    """'module.QualName' of a class or function."""
    return f"{obj.__module__}.{obj.__qualname__}"


def _to_literal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _to_literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_literal(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_literal(v) for v in value)
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
        return qualified_name(value)
    return repr(value)


def _unknown_key_message(key: Any, container: Any, where: str) -> str:
    if isinstance(container, Mapping):
        keys = [str(k) for k in container]
        close = difflib.get_close_matches(str(key), keys, n=5, cutoff=0.4)
        hint = f"closest: {', '.join(close)}" if close else f"keys there: {', '.join(sorted(keys)) or '(none)'}"
        return f"{where} has no key {key!r}; {hint}"
    return f"{where} has no index {key!r}; it is a list of {len(container)} items"


def parse_value(text: str) -> Any:
    """A command-line value: a Python literal (`3`, `[64, 128]`, `True`, `'a'`) or else the text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def apply_overrides(cfg: Config, overrides: Iterable[str]) -> Config:
    """Apply `key=value` overrides in place and return `cfg`. The key is a dotted path into nested
    dicts and lists (`float_trainer.callbacks.0.interval=5`); the value is parsed by `parse_value`.
    A path that does not exist fails naming the closest keys; overrides never add new keys."""
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value (e.g. float_trainer.num_epochs=3)")
        parts = key.split(".")
        node: Any = cfg
        where = "config"
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, Mapping):
                if part not in node:
                    raise ConfigError(f"override {key!r}: {_unknown_key_message(part, node, where)}")
                if last:
                    node[part] = parse_value(text)
                else:
                    node = node[part]
            elif isinstance(node, list | tuple):
                if not (part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node)):
                    raise ConfigError(f"override {key!r}: {_unknown_key_message(part, node, where)}")
                if last:
                    if isinstance(node, tuple):
                        raise ConfigError(f"override {key!r}: {where} is a tuple; override the whole tuple instead")
                    node[int(part)] = _wrap(parse_value(text))
                else:
                    node = node[int(part)]
            else:
                raise ConfigError(f"override {key!r}: {where} is a {type(node).__name__}, not a dict or list, "
                                  f"so it has no {part!r}")
            where = ".".join(parts[: i + 1])
    return cfg
