"""The task contract through every deployment tool, on a task model with two board graphs and host
code between them (tests/python/tasks/two_graph_task.py): calops, export_hbir, export_onnx,
model_checker, compile_perf, validation_hbir and infer each handle both graphs, compile_perf adds
them up per frame, and align_bpu (the two binaries in the executor, the host code between them)
equals `predict --stage int_infer` (the two integer torch graphs, the same host code) exactly."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import hbdk_sim
import numpy as np
import pytest

torch = pytest.importorskip("torch")

TASKS = Path(__file__).resolve().parent / "tasks"
sys.path.insert(0, str(TASKS))

from conftest import run_tool_here  # noqa: E402
from hbdk_sim.data import make_synthetic_cityscapes, pack_cityscapes  # noqa: E402
from hbdk_sim.engine.stages import build_task_model, deploy_graphs, load_config  # noqa: E402
from hbdk_sim.errors import UsageError  # noqa: E402
from hbdk_sim.nn.structures.base import GraphInput  # noqa: E402
from PIL import Image  # noqa: E402

CONFIG = TASKS / "two_graph_config.py"
TASK = "two_graph"
GRAPHS = ("encoder", "decoder")


class Tools:
    def __init__(self, root: Path) -> None:
        self.opts = [f"data_root={root / 'packed'}", f"work_dir={root / 'work'}"]

    def __call__(self, name: str, *args: str) -> tuple[int, str, str]:
        return run_tool_here(name, [*map(str, args), "--config", str(CONFIG), "--opts", *self.opts])

    def cfg(self):
        return load_config(CONFIG, self.opts)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """4 train / 2 val synthetic images at 32x64, a fresh float checkpoint, calibration through
    tools/train.py, and its checkpoint as the QAT weights."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("two_graph")
    make_synthetic_cityscapes(root / "raw", train=4, val=2, height=32, width=64, seed=0)
    for split in ("train", "val"):
        pack_cityscapes(root / "raw", root / "packed", split, image_codec="raw")
    tools = Tools(root)
    torch.manual_seed(0)
    (root / "work" / "float").mkdir(parents=True)
    torch.save({"model": build_task_model(tools.cfg()).state_dict()}, root / "work" / "float" / "best.pt")
    code, _, err = tools("train", "--stage", "calibration")
    assert code == 0, err
    (root / "work" / "qat").mkdir()
    shutil.copy(root / "work" / "calibration" / "last.pt", root / "work" / "qat" / "best.pt")
    yield root
    torch.set_num_threads(threads)


@pytest.fixture
def tools(root):
    return Tools(root)


def test_every_graph_has_its_typed_inputs(tools):
    graphs = deploy_graphs(tools.cfg(), "int_infer")
    assert [g.name for g in graphs] == list(GRAPHS)
    assert [(x.name, x.shape, x.dtype) for g in graphs for x in g.inputs] == [
        ("img", (1, 3, 32, 64), "float32"), ("features", (1, 8, 8, 16), "float32")]
    assert all(g.module.hbir_text for g in graphs)  # int_infer: each graph is its integer model
    index = GraphInput("coords", (4, 2), "int32", (0, 7))
    values = index.random(torch.Generator().manual_seed(0))
    assert values.dtype == torch.int32 and 0 <= int(values.min()) and int(values.max()) < 7
    with pytest.raises(UsageError, match="'int8' is not one of float32, int32"):
        GraphInput("x", (1,), "int8")


def test_calops_counts_each_graph_and_their_sum(tools):
    code, out, err = tools("calops")
    assert code == 0, err
    totals = [int(line.split()[1].replace(",", "")) for line in out.splitlines() if line.split()[:1] == ["total"]]
    assert len(totals) == 2
    assert f"all 2 board graphs: {sum(totals):,} MACs" in out
    # encoder: 3x3 convs 3->8 at 16x32 and 8->8 at 8x16; decoder: 1x1 8->8 and 8->19 at 8x16
    assert totals == [16 * 32 * 8 * 27 + 8 * 16 * 8 * 72, 8 * 16 * (8 * 8 + 19 * 8)]


def test_exports_write_one_file_per_graph(tools, root):
    code, out, err = tools("export_hbir", "--out-dir", root / "hbir")
    assert code == 0, err
    for name in GRAPHS:
        assert f"wrote {root / 'hbir' / f'{TASK}_int_infer_{name}.hbir'}" in out
    args = [list(a.shape) for a in hbdk_sim.load(root / "hbir" / f"{TASK}_int_infer_decoder.hbir")
            .function("main").arguments]
    assert args == [[1, 8, 8, 16]]
    code, out, err = tools("export_onnx", "--stage", "qat", "--out-dir", root / "onnx")
    assert code == 0, err
    assert sorted(p.name for p in (root / "onnx").iterdir()) == [f"{TASK}_qat_decoder.onnx", f"{TASK}_qat_encoder.onnx"]


def test_model_checker_checks_every_graph(tools, root):
    code, out, err = tools("model_checker", "--stage", "qat")
    assert (code, out.strip()) == (0, "This model is supported!"), err
    march = json.loads((Path(hbdk_sim.__file__).parent / "marches" / "bpu.json").read_text())
    march["name"] = "bpu_few_channels"
    march["ops"]["conv2d"]["channels_max"] = 16  # the decoder's classifier has 19 output channels
    path = root / "bpu_few_channels.json"
    path.write_text(json.dumps(march))
    code, out, _ = tools("model_checker", "--stage", "qat", "--march", path)
    lines = out.strip().splitlines()
    assert code == 1
    assert lines[0] == "board graph 'decoder':" and "'conv2d' channels" in lines[2]


@pytest.fixture(scope="module")
def compiled(root):
    code, out, err = Tools(root)("compile_perf", "--json")
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1]), out


def test_compile_perf_compiles_each_graph_and_adds_them_up(compiled, root):
    summary, out = compiled
    assert [g["graph"] for g in summary["graphs"]] == list(GRAPHS)
    for g in summary["graphs"]:
        hbm = root / "work" / "deploy" / f"{TASK}_int_infer_{g['graph']}.hbm"
        assert g["hbm"] == str(hbm) and hbm.is_file()
        assert hbdk_sim.compile_perf(hbm, march="bpu").latency_ms == g["latency_ms"]  # the binary's own estimate
    assert summary["latency_ms"] == sum(g["latency_ms"] for g in summary["graphs"])
    assert summary["macs"] == sum(g["macs"] for g in summary["graphs"])
    assert f"per frame, all 2 board graphs (encoder, decoder):\n  latency  {summary['latency_ms']:.3f} ms" in out


def test_align_bpu_runs_the_host_code_between_the_binaries(compiled, tools, root):
    summary, _ = compiled
    hbms = {g["graph"]: g["hbm"] for g in summary["graphs"]}
    code, out, err = tools("validation_hbir", "--stage", "align_bpu", "--hbm",
                           f"decoder={hbms['decoder']},encoder={hbms['encoder']}")
    assert code == 0, err
    bpu = json.loads(out.strip().splitlines()[-1])
    code, out, err = tools("predict", "--stage", "int_infer")
    assert code == 0, err
    ref = json.loads(out.strip().splitlines()[-1])
    assert bpu["hbm"] == hbms
    assert bpu["mIoU"] == ref["mIoU"] and bpu["pixel_acc"] == ref["pixel_acc"]
    code, out, err = tools("validation_hbir", "--stage", "align_bpu")  # compiles both: the same bytes, kept
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == bpu

    code, _, err = tools("validation_hbir", "--stage", "align_bpu", "--hbm", hbms["encoder"])
    assert code == 2 and "expected GRAPH=PATH for each board graph (encoder, decoder)" in err
    code, _, err = tools("validation_hbir", "--stage", "align_bpu", "--hbm", f"encoder={hbms['encoder']}")
    assert code == 2 and "no binary for board graph(s) decoder" in err


def test_infer_draws_what_the_task_visualizes(tools, root):
    png = sorted((root / "raw" / "leftImg8bit" / "val").rglob("*.png"))[0]
    code, out, err = tools("infer", "--stage", "qat", "--model-inputs", f"img:{png}", "--save-path", root / "infer")
    assert code == 0, err
    picture = np.array(Image.open(root / "infer" / f"{png.stem}_color.png"))
    assert picture.shape == np.array(Image.open(png).convert("RGB")).shape
    assert sorted(p.name for p in (root / "infer").iterdir()) == [f"{png.stem}_color.png"]
