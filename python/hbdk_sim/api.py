"""The public Python API of the compiler back end: compile, check, load and run `.hbm` binaries.

    result = hbdk_sim.compile("model.hbir", march="bpu", output="model.hbm")  # + model.perf.{json,html}
    perf = hbdk_sim.compile_perf("model.hbm")                # cycle estimate: latency, fps, DDR, layers
    report = hbdk_sim.check("model.hbir", march="bpu")      # every violation, not just the first
    model = hbdk_sim.load_hbm("model.hbm")
    outputs = hbdk_sim.Executor(model).run({"input": x})
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hbdk_sim import _core
from hbdk_sim.calibration import calibrate
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.files import read_bytes, refuse_existing, write_file
from hbdk_sim.ir import ModuleSummary, load, summarize
from hbdk_sim.march import load_march
from hbdk_sim.perf_report import PerfReport

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
    text_bytes = read_bytes(path, "an .hbir file")
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
    perf: PerfReport | None = None  # the cycle estimate of the binary on its march
    perf_files: list[Path] = field(default_factory=list)  # <name>.perf.json and .perf.html, when written

    def format(self) -> str:
        s = self.summary
        lines = [
            f"compiled {self.source} for march '{self.march}'",
            f"  ops {s.num_ops} ({', '.join(f'{k} {n}' for k, n in sorted(s.ops_by_kind.items()))})",
            f"  parameters {s.parameters:,}   MACs {s.macs:,}",
            "  constraints: supported",
            f"  instructions {self.instructions}   binary {len(self.hbm):,} bytes",
        ]
        if self.perf is not None:
            lines.append(f"  estimate: {self.perf.summary()}")
        if self.output:
            lines.append(f"  wrote {self.output}")
        lines += [f"  wrote {p}" for p in self.perf_files]
        return "\n".join(lines)


def program_listing(hbm: bytes, perf: PerfReport) -> str:
    """The lowered program of compiled `hbm` as text: one line per instruction (unit, opcode and
    fused post-ops, op index, layer, output shape, tile shape and count, MACs, elements, bytes, DDR
    traffic) ending with the cycles the schedule gives it, `@[start,end)`, then the SRAM plan and
    the cycle totals of `perf`. What `hbdk-sim compile --print-program` prints and tests/ir/lower/
    pins."""
    lines = _core.load_hbm_bytes(hbm, "<compiled>").program_text.splitlines()
    cycles = {e.instruction: (e.start, e.end) for e in perf.timeline}
    out = []
    for line in lines:
        index, sep, _ = line.strip().partition(":")
        if line.startswith("  ") and sep and index.isdigit() and int(index) in cycles:
            start, end = cycles[int(index)]
            line = f"{line} @[{start},{end})"
        out.append(line)
    out.append(f"cycles: total={perf.total_cycles} compute={perf.compute_cycles} memory={perf.memory_cycles} "
               f"stall={perf.stall_cycles}")
    return "\n".join(out) + "\n"


def perf_report_paths(hbm_path: str | os.PathLike) -> tuple[Path, Path]:
    """Where the reports of `<name>.hbm` go: `<name>.perf.json` and `<name>.perf.html` beside it."""
    path = Path(hbm_path)
    stem = path.stem if path.suffix == ".hbm" else path.name
    return path.with_name(f"{stem}.perf.json"), path.with_name(f"{stem}.perf.html")


def estimate(model: _core.HbmModel, march: str | os.PathLike | _core.March | None = None,
             name: str = "") -> PerfReport:
    """The cycle model's estimate for a loaded `.hbm` (on its own march unless one is given)."""
    target = _as_march(march if march is not None else model.march)
    result = _core.estimate_hbm(model, target)  # its timeline names each instruction's opcode and layer
    return PerfReport.from_estimate(result, model=name)


def compile(  # noqa: A001 - the product's name for it
    model: ModelLike,
    march: str | os.PathLike | _core.March = "bpu",
    output: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
) -> CompileResult:
    """Compile a calibrated float (or already quantized) HBIR model to `.hbm` bytes, with its cycle
    estimate in `.perf`.

    Raises ConstraintError (with `.violations`) when the model does not fit the march, and
    ParseError / VerifyError / PassError for a bad model (DataError, a PassError, for a float
    constant holding NaN or Inf). Writes `output` when given, and `<name>.perf.json` and
    `<name>.perf.html` beside it, refusing to replace an existing file unless `overwrite`."""
    module, text, source = _as_module(model)
    return _compile_module(module, text, source, _as_march(march), output, overwrite)


def _model_name(source: str) -> str:
    return source.lstrip("@") if source.startswith("@") else Path(source).stem


def _compile_module(module: _core.Module, text: str | None, source: str, target: _core.March,
                    output: str | os.PathLike | None, overwrite: bool) -> CompileResult:
    out = Path(output) if output is not None else None
    perf_files = list(perf_report_paths(out)) if out is not None else []
    if out is not None:
        refuse_existing([out, *perf_files], overwrite)  # before the work, not after it
    summary = summarize(module)
    result = module.run_pipeline([COMPILE_PIPELINE], march=target, source_text=text, source_name=source)
    hbm = result["binary"]
    model_loaded = _core.load_hbm_bytes(hbm, source)
    perf = estimate(model_loaded, target, _model_name(str(out) if out is not None else source))
    if out is not None:
        write_file(out, hbm, overwrite=True)
        _write_reports(perf, perf_files)
    return CompileResult(hbm=hbm, march=target.name, output=out, source=source, summary=summary,
                         pass_report=result["report"], instructions=int(model_loaded.perf_summary["instructions"]),
                         perf=perf, perf_files=perf_files)


def _write_reports(perf: PerfReport, paths: Sequence[Path]) -> None:
    json_path, html_path = paths
    write_file(json_path, perf.to_json().encode("utf-8"), overwrite=True)
    write_file(html_path, perf.to_html().encode("utf-8"), overwrite=True)


def check_march_by_keyword(example_inputs) -> None:
    """compile_perf's second argument is example_inputs: a march there was meant by keyword."""
    if isinstance(example_inputs, (str, _core.March)):
        raise UsageTypeError("compile_perf(model, example_inputs=None, march='bpu', ...): pass the march by keyword, "
                             f"march={example_inputs!r}")


def compile_perf(
    model_or_path: str | os.PathLike | _core.Module,
    example_inputs=None,
    march: str | os.PathLike | _core.March = "bpu",
    out_dir: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
) -> PerfReport:
    """Estimate how fast a model runs on a march: latency, fps, DDR traffic, per-layer cycles.

    `model_or_path` is an `.hbm` file (estimated as compiled; `march` must be the one it was
    compiled for), an `.hbir` file or a Module (compiled first); `hbdk_sim.compile_perf` also takes
    a torch model (through hbdk_sim.frontend, which calls this). For HBIR, `example_inputs`
    calibrates a float graph that carries no activation scales: samples as `calibrate` takes them,
    each the list of the model's inputs. With `out_dir`, writes `<name>.hbm`, `<name>.perf.json`
    and `<name>.perf.html` there, refusing to replace an existing file unless `overwrite`."""
    check_march_by_keyword(example_inputs)
    if not isinstance(model_or_path, (str, os.PathLike, _core.Module)):
        raise UsageTypeError(f"expected an .hbm or .hbir path or a Module but got {type(model_or_path).__name__}; "
                             "hbdk_sim.compile_perf takes torch models")
    target = _as_march(march)
    path = None if isinstance(model_or_path, _core.Module) else Path(model_or_path)
    if path is not None and path.suffix == ".hbm":
        if example_inputs is not None:
            raise UsageError(f"{path}: example_inputs calibrate a float model; an .hbm is already compiled")
        model = load_hbm(path)
        if model.march != target.name:
            raise UsageError(f"{path}: expected a binary for march '{target.name}' but it was compiled for "
                             f"'{model.march}'; pass march='{model.march}' or recompile the .hbir")
        report = estimate(model, target, path.stem)
        if out_dir is not None:
            hbm_out = Path(out_dir) / path.name
            perf_files = list(perf_report_paths(hbm_out))
            same_file = hbm_out.exists() and hbm_out.resolve() == path.resolve()
            refuse_existing(perf_files if same_file else [hbm_out, *perf_files], overwrite)
            if not same_file:
                write_file(hbm_out, path.read_bytes(), overwrite=True)
            _write_reports(report, perf_files)
        return report
    module, text, source = _as_module(model_or_path)
    if example_inputs is not None:
        calibrate(module, example_inputs)
        text = None  # the calibrated graph, not the file, is what gets compiled
    name = _model_name(source)
    output = Path(out_dir) / f"{name}.hbm" if out_dir is not None else None
    return _compile_module(module, text, source, target, output, overwrite).perf


def load_hbm(path: str | os.PathLike) -> _core.HbmModel:
    """Load and verify an `.hbm` file (raises HbmError naming what is wrong)."""
    return _core.load_hbm_bytes(read_bytes(path, "an .hbm file"), str(path))


# More worker threads than this only cost the time to start them (a request for 100,000 once hung).
MAX_EXECUTOR_THREADS = 256


def check_threads(threads: object) -> int:
    """`threads` as the executor takes it: an int from 0 (one per hardware thread) to
    MAX_EXECUTOR_THREADS; anything else is a UsageError that says the range."""
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or not (
            0 <= threads <= MAX_EXECUTOR_THREADS):
        raise UsageError(f"threads must be an integer from 0 (one per hardware thread) to {MAX_EXECUTOR_THREADS} "
                         f"but got {threads!r}")
    return int(threads)


class Executor:
    """Runs an `.hbm` model (or an HBIR module) bit-exactly: the integer results the BPU computes.

    Inputs are given by name (a mapping) or in order (a sequence); outputs come back by name."""

    def __init__(self, model: _core.HbmModel | _core.Module | str | os.PathLike, *, optimized: bool = True,
                 threads: int = 0):
        threads = check_threads(threads)
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
                raise UsageError(f"inputs: missing {missing}, unknown {unknown}; the model takes {self.input_names}")
            args = [inputs[n] for n in self.input_names]
        else:
            args = list(inputs)
        try:
            outputs = self._executor.run(args)
        except TypeError as e:  # the binding's check of the arrays: not an array, a dtype that does not cast
            raise UsageTypeError(str(e)) from None
        except ValueError as e:  # the binding's check of the arrays: their number or shapes
            raise UsageError(str(e)) from None
        return dict(zip(self.output_names, outputs, strict=True))
