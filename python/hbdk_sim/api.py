"""The public Python API of the compiler back end: compile, check, load and run `.hbm` binaries.

    result = hbdk_sim.compile("model.hbir", march="bpu", output="model.hbm")
    report = hbdk_sim.check("model.hbir", march="bpu")      # every violation, not just the first
    model = hbdk_sim.load_hbm("model.hbm")
    outputs = hbdk_sim.Executor(model).run({"input": x})
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hbdk_sim import _core
from hbdk_sim.ir import ModuleSummary, load, summarize
from hbdk_sim.march import load_march

COMPILE_PIPELINE = "compile"
# The compile pipeline up to (not including) this pass prepares the integer graph that `check` judges.
CHECK_PASS = "check-constraints"

ModelLike = str | os.PathLike | _core.Module


def _as_module(model: ModelLike) -> tuple[_core.Module, str | None, str]:
    """(a private copy of the module, its source text, a name for messages)."""
    if isinstance(model, _core.Module):
        text = model.print()
        return _core.parse(text, f"<module @{model.name}>"), text, f"@{model.name}"
    path = Path(model)
    text_bytes = path.read_bytes()
    module = _core.parse(text_bytes, str(path))
    return module, text_bytes.decode("utf-8"), str(path)


def _pipeline_passes(name: str) -> list[str]:
    for p in _core.pipelines():
        if p["name"] == name:
            return list(p["passes"])
    raise _core.PassError(f"error: unknown pipeline '{name}'")


def _as_march(march: str | os.PathLike | _core.March) -> _core.March:
    return march if isinstance(march, _core.March) else load_march(march)


@dataclass
class CheckResult:
    """The verdict of `check`: `ok` when the model fits the march, else every violation."""

    march: str
    violations: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def format(self) -> str:
        if self.ok:
            return f"This model is supported on march '{self.march}'."
        lines = [f"{len(self.violations)} violation(s) of march '{self.march}':"]
        for v in self.violations:
            lines.append(f"  {v['location']}: '{v['op']}' {v['rule']}: {v['actual']} "
                         f"(limit: {v['limit']}); {v['hint']}")
        return "\n".join(lines)


def check(model: ModelLike, march: str | os.PathLike | _core.March = "bpu") -> CheckResult:
    """Prepare the integer graph as `compile` would and report every constraint violation."""
    module, _, _ = _as_module(model)
    target = _as_march(march)
    passes = _pipeline_passes(COMPILE_PIPELINE)
    module.run_pipeline(passes[: passes.index(CHECK_PASS)], march=target)
    return CheckResult(march=target.name, violations=target.check(module))


@dataclass
class CompileResult:
    """What `compile` produced: the `.hbm` bytes, where they were written, and what went in."""

    hbm: bytes
    march: str
    output: Path | None
    source: str
    summary: ModuleSummary  # of the input graph
    pass_report: str
    instructions: int

    def format(self) -> str:
        s = self.summary
        lines = [
            f"compiled {self.source} for march '{self.march}'",
            f"  ops {s.num_ops} ({', '.join(f'{k} {n}' for k, n in sorted(s.ops_by_kind.items()))})",
            f"  parameters {s.parameters:,}   MACs {s.macs:,}",
            "  constraints: supported",
            f"  instructions {self.instructions}   binary {len(self.hbm):,} bytes",
        ]
        if self.output:
            lines.append(f"  wrote {self.output}")
        return "\n".join(lines)


def _write_new(path: Path, data: bytes, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (or --force) to replace it")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compile(  # noqa: A001 - the product's name for it
    model: ModelLike,
    march: str | os.PathLike | _core.March = "bpu",
    output: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
) -> CompileResult:
    """Compile a calibrated float (or already quantized) HBIR model to `.hbm` bytes.

    Raises ConstraintError (with `.violations`) when the model does not fit the march, and
    ParseError / VerifyError / PassError for a bad model. Writes `output` when given, refusing to
    replace an existing file unless `overwrite`."""
    module, text, source = _as_module(model)
    summary = summarize(module)
    target = _as_march(march)
    result = module.run_pipeline([COMPILE_PIPELINE], march=target, source_text=text, source_name=source)
    hbm = result["binary"]
    out = Path(output) if output is not None else None
    if out is not None:
        _write_new(out, hbm, overwrite)
    model_loaded = _core.load_hbm_bytes(hbm, source)
    return CompileResult(hbm=hbm, march=target.name, output=out, source=source, summary=summary,
                         pass_report=result["report"], instructions=len(model_loaded.program))


def load_hbm(path: str | os.PathLike) -> _core.HbmModel:
    """Load and verify an `.hbm` file (raises HbmError naming what is wrong)."""
    return _core.load_hbm(str(path))


class Executor:
    """Runs an `.hbm` model (or an HBIR module) bit-exactly: the integer results the BPU computes.

    Inputs are given by name (a mapping) or in order (a sequence); outputs come back by name."""

    def __init__(self, model: _core.HbmModel | _core.Module | str | os.PathLike, *, optimized: bool = True,
                 threads: int = 0):
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            model = load_hbm(path) if path.suffix == ".hbm" else load(path)
        self.module = model.module if isinstance(model, _core.HbmModel) else model
        fn = self.module.function("main")
        self.input_names = [a.name for a in fn.arguments]
        self.output_names = [v.name for v in fn.returns]
        self._executor = _core.Executor(self.module, "main", optimized=optimized, threads=threads)

    def run(self, inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        if isinstance(inputs, Mapping):
            missing = [n for n in self.input_names if n not in inputs]
            unknown = [n for n in inputs if n not in self.input_names]
            if missing or unknown:
                raise ValueError(f"inputs: missing {missing}, unknown {unknown}; the model takes {self.input_names}")
            args = [inputs[n] for n in self.input_names]
        else:
            args = list(inputs)
        outputs = self._executor.run(args)
        return dict(zip(self.output_names, outputs, strict=True))
