"""File-level helpers over the HBIR core: load and save `.hbir` files, and summarize a module."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hbdk_sim._core import Module, parse
from hbdk_sim.files import read_bytes, write_file


def load(path: str | os.PathLike) -> Module:
    """Parse and verify an `.hbir` file. Raises OSError, InputFileError (a device or an oversized
    file), ParseError or VerifyError."""
    path = Path(path)
    # Bytes go to the parser untouched so that a non-UTF-8 file gets a located parse error.
    return parse(read_bytes(path, "an .hbir file"), str(path))


def save(module: Module, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the module's canonical text. Refuses to replace an existing file unless `overwrite`.

    A failure never leaves a half-written file behind (see hbdk_sim.files).
    """
    return write_file(path, module.print().encode("utf-8"), overwrite=overwrite)


@dataclass
class ModuleSummary:
    """What a module contains: ops by kind, parameter count (elements of all constants), MACs."""

    name: str
    ops_by_kind: Counter = field(default_factory=Counter)
    parameters: int = 0
    parameter_bytes: int = 0
    macs: int = 0
    macs_by_kind: Counter = field(default_factory=Counter)

    @property
    def num_ops(self) -> int:
        return sum(self.ops_by_kind.values())

    def format(self) -> str:
        lines = [f"module @{self.name}: {self.num_ops} ops, {self.parameters:,} parameters "
                 f"({self.parameter_bytes / 1024:.1f} KiB), {self.macs:,} MACs"]
        width = max((len(k) for k in self.ops_by_kind), default=4)
        lines.append(f"  {'op':<{width}}  {'count':>5}  {'MACs':>14}")
        for kind, count in sorted(self.ops_by_kind.items(), key=lambda kv: (-kv[1], kv[0])):
            macs = self.macs_by_kind.get(kind, 0)
            lines.append(f"  {kind:<{width}}  {count:>5}  {macs:>14,}")
        return "\n".join(lines)


def summarize(module: Module) -> ModuleSummary:
    s = ModuleSummary(name=module.name)
    for fn in module.functions:
        for op in fn.ops:
            s.ops_by_kind[op.name] += 1
            if op.name == "constant":
                t = op.result().type
                s.parameters += t.numel
                s.parameter_bytes += t.nbytes
            else:
                macs = op.macs
                s.macs += macs
                if macs:
                    s.macs_by_kind[op.name] += macs
    return s
