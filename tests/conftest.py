"""Shared fixtures: repository paths, a helper that runs the `hbdk-sim` CLI in a subprocess, and
one that runs a tools/*.py script in this process."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Tools installed beside this interpreter (hbdk-sim, cmake, ctest) must be found even when the
# virtual environment is not activated, as under `make test`.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])

REPO = Path(__file__).resolve().parent.parent
IR_TESTS = REPO / "tests" / "ir"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hbdk_sim.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def cli():
    return run_cli


_TOOLS: dict[str, object] = {}


def tool_module(name: str):
    """tools/<name>.py (or tools/datasets/ or tools/dataset_converters/<name>.py) imported once."""
    if name not in _TOOLS:
        path = next((p for p in (REPO / "tools" / f"{name}.py", REPO / "tools" / "datasets" / f"{name}.py",
                                 REPO / "tools" / "dataset_converters" / f"{name}.py") if p.exists()),
                    REPO / "tools" / f"{name}.py")
        spec = importlib.util.spec_from_file_location(f"hbdk_sim_tool_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _TOOLS[name] = module
    return _TOOLS[name]


def run_tool_here(name: str, argv: list[str]) -> tuple[int, str, str]:
    """Run tools/<name>.py with `argv` in this process as its `__main__` block does; returns (exit
    status, stdout, stderr). Any exception other than SystemExit propagates: a traceback fails the test."""
    from hbdk_sim.engine.toolkit import run_tool

    module = tool_module(name)
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = [f"{name}.py", *map(str, argv)]
    code: int | str | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                run_tool(name, module.main)
            except SystemExit as e:
                code = e.code
    finally:
        sys.argv = saved
    return int(code or 0), out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, tool: str, *words: str) -> None:
    """A tool's user error: exit 2 and one stderr line, `<tool>: error: ...`, holding each of `words`."""
    lines = err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: error: "), err
    for w in words:
        assert w in lines[0]


class PackInterrupted(Exception):
    """Raised by an encoder a test breaks on purpose, to interrupt a pack part way."""


def assert_interrupted_pack_resumes(monkeypatch, module, encoder: str, pack, src, tmp_path, total: int) -> None:
    """Interrupt `pack(src, target, "train")` after 66 records by breaking `module.<encoder>`: the
    database is refused as interrupted, a plain re-run refuses to overwrite it, `resume=True`
    keeps the 64 committed records (one commit of 64) and writes the rest, and the result equals an
    uninterrupted pack record for record."""
    import pytest
    from hbdk_sim.data.datasets.lmdb import LmdbDataset
    from hbdk_sim.errors import DatasetError

    encode = getattr(module, encoder)
    calls = []

    def encode_until(sample, image_codec="source"):
        calls.append(sample)
        if len(calls) > 66:
            raise PackInterrupted
        return encode(sample, image_codec)

    monkeypatch.setattr(module, encoder, encode_until)
    with pytest.raises(PackInterrupted):
        pack(src, tmp_path / "cut", "train")
    monkeypatch.setattr(module, encoder, encode)
    with pytest.raises(DatasetError, match="interrupted pack.*--resume"):
        LmdbDataset(tmp_path / "cut" / "train_lmdb")
    with pytest.raises(FileExistsError, match="--resume"):
        pack(src, tmp_path / "cut", "train")
    resumed = pack(src, tmp_path / "cut", "train", resume=True)
    assert (resumed.skipped, resumed.written) == (64, total - 64)
    whole = LmdbDataset(pack(src, tmp_path / "whole", "train").path)
    cut = LmdbDataset(resumed.path)
    assert len(cut) == len(whole) == total
    assert all(cut.read_record(i) == whole.read_record(i) for i in range(total))


class ConfigTools:
    """Runs tools/<name>.py in this process on one task config with `opts` appended after `--opts`;
    a call returns (exit status, stdout, stderr), `cfg()` the config as the tools resolve it."""

    def __init__(self, config: Path, opts: list[str]) -> None:
        self.config, self.opts = config, opts

    def __call__(self, name: str, *args: object) -> tuple[int, str, str]:
        return run_tool_here(name, [*map(str, args), "--config", str(self.config), "--opts", *self.opts])

    def cfg(self):
        from hbdk_sim.engine.stages import load_config

        return load_config(self.config, self.opts)


def last_json(out: str) -> dict:
    """The JSON object a tool prints as its last line."""
    import json

    return json.loads(out.strip().splitlines()[-1])


def train_stages(tools: ConfigTools, stages: tuple[str, ...] = ("float", "calibration", "qat")) -> list[dict]:
    """tools/train.py --stage S for each of `stages` in order, from torch's seed 0: each summary."""
    import torch

    torch.manual_seed(0)
    summaries = []
    for stage in stages:
        code, out, err = tools("train", "--stage", stage)
        assert code == 0, err
        summaries.append(last_json(out))
    return summaries


def assert_predict_reproduces_validation(tools: ConfigTools, summaries: dict[str, dict], metrics, parse) -> None:
    """tools/predict.py at each stage of `summaries` prints the `metrics` its training's last
    validation printed (`parse(out, stage)` reads and checks the tool's JSON line)."""
    import pytest

    for stage, summary in summaries.items():
        code, out, err = tools("predict", "--stage", stage)
        assert code == 0, err
        m = parse(out, stage)
        assert {k: m[k] for k in metrics} == pytest.approx({k: summary[k] for k in metrics}, abs=1e-12, nan_ok=True)


def assert_model_checker_supported(tools: ConfigTools, trained_stage: str) -> None:
    """model_checker on the float network (the default) and on a fake-quant stage's, for bpu."""
    for args in ((), ("--stage", trained_stage, "--march", "bpu")):
        code, out, err = tools("model_checker", *args)
        assert (code, out.strip()) == (0, "This model is supported!"), err


def assert_infer_refuses_a_missing_image(tools: ConfigTools, root: Path) -> None:
    """infer on an image that does not exist: one error line naming it, and no output folder made."""
    missing = root / "no_such_image.jpg"
    code, _, err = tools("infer", "--model-inputs", f"img:{missing}", "--save-path", root / "never")
    assert_one_line_error(code, err, "infer", str(missing), "not found")
    assert not (root / "never").exists()


def compile_int_infer(tools: ConfigTools) -> dict:
    """tools/compile_perf.py --stage int_infer --march bpu --json into <work_dir>/deploy: its summary."""
    code, out, err = tools("compile_perf", "--stage", "int_infer", "--march", "bpu", "--json")
    assert code == 0, err
    return last_json(out)


def assert_compiled_binary(compiled: dict, hbm: Path) -> None:
    """compile_perf wrote `hbm` for bpu, and its summary is the binary's own estimate."""
    import hbdk_sim

    assert compiled["hbm"] == str(hbm) and hbm.is_file()
    assert hbdk_sim.load_hbm(hbm).march == "bpu" and compiled["march"] == "bpu"
    assert compiled["latency_ms"] > 0 and compiled["ddr_mb_per_frame"] > 0
    assert compiled["latency_ms"] == hbdk_sim.compile_perf(hbm, march="bpu").latency_ms
