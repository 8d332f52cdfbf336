"""The MOTR config (models/tracking/motr_efficientnetb3_mot17.py) through every tool on a tiny
synthetic MOT17 built by the project's own pipeline (generator -> half split -> packer): train
(float, calibration tracking clips as sequences, qat), predict at every stage, calops, export_hbir
and export_onnx of both board graphs, model_checker, compile_perf (each graph and the per-frame
sum), validation_hbir and infer over a short sequence. The birth, miss and report thresholds are
lowered to 0 so that the barely trained model tracks: every detect query is born, tracks fill the
slots and QIM runs on every frame, so align_bpu's tracks equal int_infer's row for row with both
graphs in the loop. The tools run in this process (their `main` under `run_tool`)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import hbdk_sim
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("motmetrics")

from conftest import (  # noqa: E402
    ConfigTools,
    assert_compiled_binary,
    assert_infer_refuses_a_missing_image,
    assert_model_checker_supported,
    assert_one_line_error,
    assert_predict_reproduces_validation,
    last_json,
    run_tool_here,
    train_stages,
)
from hbdk_sim.data.datasets.mot17 import pack_mot17, split_mot17_half  # noqa: E402
from hbdk_sim.data.datasets.synthetic_mot17 import make_synthetic_mot17  # noqa: E402
from hbdk_sim.engine.deploy import executor_runner, image_transforms, prepare_image, read_image  # noqa: E402
from hbdk_sim.engine.stages import build_model, deploy_graphs  # noqa: E402
from hbdk_sim.visualize import draw_boxes  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "models" / "tracking" / "motr_efficientnetb3_mot17.py"
TASK = "motr_efficientnetb3_mot17"
H, W = 64, 112  # the network input of these tests (the config's is 800x1422)
D, QUERIES, WIDTH = 32, 8, 4  # d_model, detect queries (and track slots), queries per row
METRICS = ("MOTA", "IDF1", "num_switches", "num_false_positives", "num_misses")


class Tools(ConfigTools):
    """The tools on the MOTR config shrunk to the tiny data set."""

    def __init__(self, root: Path) -> None:
        self.work = root / "work"
        super().__init__(CONFIG, [
            f"split_root={root / 'split'}", f"data_root={root / 'packed'}", f"work_dir={self.work}",
            f"image_size=[{H},{W}]", "backbone_type=b0", f"d_model={D}", "num_heads=4",
            "encoder_layers=1", "decoder_layers=2", "ffn_dim=64", f"num_queries={QUERIES}", f"query_width={WIDTH}",
            "multi_scale=False", "num_workers=0", "float_epochs=1", "float_validate_every=1", "clip_lengths=[2]", "clip_length_epochs=[]",
            "quant_clip_length_epochs=[]",
            "calibration_batches=2", "qat_epochs=1", "float_lr=1e-3", "qat_lr=1e-3",
            # the barely trained model's scores are low: every query is born, no track misses, all reported
            "model.score_thresh=0.0", "model.filter_score_thresh=0.0", "model.prob_threshold=0.0",
            "model.area_threshold=0.0"])


@dataclass
class Run:
    root: Path
    float_summary: dict
    calibration_summary: dict
    qat_summary: dict


def _metrics(out: str, stage: str) -> dict:
    m = last_json(out)
    assert m["stage"] == stage
    assert math.isfinite(m["MOTA"]) and m["MOTA"] <= 1.0 and 0.0 <= m["IDF1"] <= 1.0, m
    return m


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two sequences of 16 frames (160x96, 4 walkers): 8 train and 8 test frames each, packed raw;
    one float epoch, two calibration clips and one QAT epoch through tools/train.py, one torch
    thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("motr")
    make_synthetic_mot17(root / "raw", sequences=2, frames=16, pedestrians=4, width=160, height=96, seed=0)
    split_mot17_half(root / "raw", root / "split")
    for split in ("train", "test"):
        assert pack_mot17(root / "split" / split, root / "packed", split, image_codec="raw").num_samples == 16
    yield Run(root, *train_stages(Tools(root)))
    torch.set_num_threads(threads)


@pytest.fixture
def tools(run):
    return Tools(run.root)


# ---- train, predict --------------------------------------------------------------------------------------


def test_train_runs_every_stage_and_predict_reproduces_its_validation(run, tools):
    assert (run.float_summary["stage"], run.float_summary["epochs"], run.float_summary["steps"]) == ("float", 1, 16)
    assert run.calibration_summary == {"stage": "calibration", "epochs": 1, "steps": 2}
    assert (run.qat_summary["stage"], run.qat_summary["epochs"], run.qat_summary["steps"]) == ("qat", 1, 16)
    assert_predict_reproduces_validation(tools, {"float": run.float_summary, "qat": run.qat_summary}, METRICS,
                                         _metrics)
    assert run.float_summary["num_false_positives"] > 0  # tracks were reported (every query is born)


@pytest.mark.parametrize("stage", ["calibration", "int_infer"])
def test_predict_prints_mota_and_idf1(tools, stage):
    code, out, err = tools("predict", "--stage", stage)
    assert code == 0, err
    _metrics(out, stage)


def test_both_networks_are_prepared_in_graph_mode_with_the_int16_choices(tools, run):
    """Calibration and QAT prepare the network and QIM from their graphs at the deploy size; QAT
    starts from the float weights and calibration's scales; the transformer and QIM are si16 except
    the deformable attention's value/output projections (si8), the backbone si8."""
    cfg = tools.cfg()
    for stage in ("calibration", "qat"):
        prepare = [s for s in cfg[f"{stage}_trainer"]["model_convert_pipeline"] if s["type"].startswith("Float2")]
        assert [(s["graph_mode"], s["input_shape"]) for s in prepare] == [(True, [1, 3, H, W])]
    (base, qim) = deploy_graphs(cfg, "int_infer")
    _assert_int16_choices(base.module.hbir_text, qim.module.hbir_text)


def _assert_int16_choices(base_text: str, qim_text: str) -> None:
    def dtype(name: str) -> str:
        line = next(ln for ln in base_text.splitlines() if ln.strip().startswith(f"%{name} = "))
        return line.rpartition(" : tensor<")[2].split(",")[0].rpartition("x")[2]

    assert dtype("network_transformer_encoder_0_norm1") == "si16"
    assert dtype("network_transformer_decoder_0_ffn_norm") == "si16"
    assert dtype("network_transformer_encoder_0_self_attn_sampling_offsets") == "si16"
    assert dtype("network_transformer_encoder_0_self_attn_value_proj") == "si8"
    assert dtype("network_transformer_decoder_0_cross_attn_output_proj") == "si8"
    assert dtype("network_input_proj") == "si8"
    assert " si16" not in qim_text.replace("xsi16", "") and "xsi16" in qim_text


def test_the_random_init_estimate_keeps_the_int16_choices(tools):
    """compile_perf --random-init of a quantized stage prepares the untrained model as calibration
    does (graph mode, the int16 choices), calibrates it on random inputs and compiles that; the
    float stage stays the float graphs."""
    from hbdk_sim.engine.deploy import checked_graphs
    from hbdk_sim.frontend.api import model_kind, to_hbir
    from hbdk_sim.quantization.int_model import quantize_module

    cfg = tools.cfg()
    graphs, note = checked_graphs(cfg, "int_infer", random_init=True)
    assert note.startswith("--random-init: using the architecture at random initialization")
    texts = [quantize_module(to_hbir(g.module, inputs, g.name)).print() for g, inputs in graphs]
    _assert_int16_choices(*texts)
    float_graphs, _ = checked_graphs(cfg, "float", random_init=True)
    assert [model_kind(g.module) for g, _ in float_graphs] == ["float", "float"]


# ---- calops, export_hbir, export_onnx, model_checker ------------------------------------------------------


def test_calops_counts_both_graphs_and_their_sum(tools):
    code, out, err = tools("calops")
    assert code == 0, err
    assert f"{TASK}_base" in out and f"{TASK}_qim" in out
    totals = [int(line.split()[1].replace(",", "")) for line in out.splitlines() if line.strip().startswith("total")]
    assert len(totals) == 2 and all(t > 0 for t in totals)
    assert out.strip().splitlines()[-1].startswith(f"all 2 board graphs: {sum(totals):,} MACs")


def test_export_hbir_writes_both_integer_graphs(run, tools):
    out_dir = run.root / "hbir"
    code, out, err = tools("export_hbir", "--out-dir", out_dir)
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == [f"{TASK}_int_infer_base.hbir", f"{TASK}_int_infer_qim.hbir"]
    base = hbdk_sim.load(out_dir / f"{TASK}_int_infer_base.hbir").function("main")
    assert [list(a.shape) for a in base.arguments] == [[1, 3, H, W], [1, D, 2, WIDTH], [1, 1, 1, 2 * WIDTH],
                                                       [1, 4, 2, WIDTH]]
    ops = Counter(op.name for op in base.ops)
    assert ops["grid_sample"] == 3  # one encoder layer, two decoder layers
    assert ops["layer_norm"] == 2 + 2 * 4 and ops["softmax"] == 2 * 2  # two attentions per decoder layer
    assert "batch_norm" not in ops and ops["lut"] > 0
    assert len(base.returns) == 3
    qim = hbdk_sim.load(out_dir / f"{TASK}_int_infer_qim.hbir").function("main")
    assert [list(a.shape) for a in qim.arguments] == [[1, 1, 2 * WIDTH, D], [1, 1, 2 * WIDTH, D],
                                                      [1, 1, 1, 2 * WIDTH]]
    assert [list(r.shape) for r in qim.returns] == [[1, D, 1, 2 * WIDTH]]


def test_export_onnx_float_matches_torch(run, tools):
    out_dir = run.root / "onnx"
    code, out, err = tools("export_onnx", "--stage", "float", "--out-dir", out_dir)
    assert code == 0, err
    graphs = deploy_graphs(tools.cfg(), "float")
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f"{TASK}_float_{g.name}.onnx" for g in graphs)
    for graph in graphs:
        inputs = graph.example_inputs(torch.Generator().manual_seed(3))
        sess = ort.InferenceSession(str(out_dir / f"{TASK}_float_{graph.name}.onnx"),
                                    providers=["CPUExecutionProvider"])
        got = sess.run(None, {x.name: t.numpy() for x, t in zip(sess.get_inputs(), inputs, strict=True)})
        with torch.no_grad():
            want = graph.module(*inputs)
        want = [want] if isinstance(want, torch.Tensor) else list(want)
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g.shape == tuple(w.shape) and np.abs(g - w.numpy()).max() <= 1e-4


def test_model_checker_supported(tools):
    assert_model_checker_supported(tools, "qat")


# ---- compile_perf, validation_hbir ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled(run):
    code, out, err = Tools(run.root)("compile_perf", "--stage", "int_infer", "--march", "bpu", "--json")
    assert code == 0, err
    return last_json(out), out


def test_compile_perf_reports_each_graph_and_the_frame(compiled, run):
    summary, out = compiled
    graphs = {g["graph"]: g for g in summary["graphs"]}
    assert list(graphs) == ["base", "qim"]
    for name, g in graphs.items():
        assert_compiled_binary(g | {"march": summary["march"]},
                               run.root / "work" / "deploy" / f"{TASK}_int_infer_{name}.hbm")
    assert summary["latency_ms"] == pytest.approx(sum(g["latency_ms"] for g in graphs.values()), rel=1e-12)
    assert summary["macs"] == sum(g["macs"] for g in graphs.values())
    assert "per frame, all 2 board graphs (base, qim):" in out


def _sequence(run) -> list[Path]:
    """The first test sequence's frames, in order."""
    seq = sorted((run.root / "split" / "test").iterdir())[0]
    return sorted((seq / "img1").glob("*.jpg"))


def test_align_bpu_equals_int_infer_exactly(compiled, tools, run):
    summary, _ = compiled
    hbms = {g["graph"]: g["hbm"] for g in summary["graphs"]}
    code, out, err = tools("validation_hbir", "--stage", "align_bpu", "--hbm",
                           ",".join(f"{k}={v}" for k, v in hbms.items()))
    assert code == 0, err
    bpu = _metrics(out, "align_bpu")
    code, out, err = tools("predict", "--stage", "int_infer")
    assert code == 0, err
    ref = _metrics(out, "int_infer")
    # every number motmetrics gives (MOTP, the mean IoU of the matches, sees any box that moved)
    numbers = [k for k, v in ref.items() if isinstance(v, float | int)]
    assert len(numbers) > 15 and "motp" in numbers
    assert {k: bpu[k] for k in numbers} == pytest.approx({k: ref[k] for k in numbers}, abs=0, nan_ok=True)

    # Frame for frame over a sequence: the tracks through both binaries equal the integer models'.
    cfg = tools.cfg()
    a = build_model(cfg, "int_infer").eval()  # the host side reads the trained detect queries
    b = build_model(cfg, "int_infer").eval()
    graphs = a.board_runners()
    binaries = {k: executor_runner(hbdk_sim.Executor(hbdk_sim.load_hbm(v))) for k, v in hbms.items()}
    transforms = image_transforms(cfg)
    carried = 0
    for t, path in enumerate(_sequence(run)):
        batch = {**prepare_image(read_image(path), transforms), "sequence": ["S"], "frame": [t + 1]}
        with torch.no_grad():
            (want,) = a.predict(batch, graphs)["tracks"]
        (got,) = b.predict(batch, binaries)["tracks"]
        assert torch.equal(got, want)
        carried += int(a._inputs["mask_query"].sum())
    assert carried > 0  # tracks went through QIM into the next frame


def test_align_bpu_tracks_with_the_stage_host_frame_for_frame(tools, run, tmp_path):
    """The host side around the binaries is the int_infer model with its weights (a newborn track's
    content query is its slot's trained detect query, which the host reads). Detect queries set by
    hand far from any initialization make a host with other weights track differently; the tracks
    validation_hbir writes (metric.results_dir) equal predict's at int_infer row for row."""
    state = torch.load(run.root / "work" / "qat" / "best.pt", weights_only=True)
    queries = state["model"]["network.query_embed.weight"]
    signs = torch.randint(0, 2, queries.shape, generator=torch.Generator().manual_seed(3)) * 2 - 1
    state["model"]["network.query_embed.weight"] = signs.to(queries.dtype) * 3.0
    hand = tmp_path / "hand.pt"
    torch.save(state, hand)
    opts = [*tools.opts, f"work_dir={tmp_path / 'work'}"]  # the binaries go there, not the module's
    tools.opts = [*opts, f"metric.results_dir={tmp_path / 'bpu'}"]
    code, _, err = tools("validation_hbir", "--stage", "align_bpu", "--ckpt", hand)
    assert code == 0, err
    tools.opts = [*opts, f"metric.results_dir={tmp_path / 'int'}"]
    code, _, err = tools("predict", "--stage", "int_infer", "--ckpt", hand)
    assert code == 0, err
    files = sorted(p.name for p in (tmp_path / "int").iterdir())
    assert files == sorted(f"{p.name}.txt" for p in (run.root / "split" / "test").iterdir())
    rows = 0
    for name in files:
        want = (tmp_path / "int" / name).read_text()
        assert (tmp_path / "bpu" / name).read_text() == want, name
        rows += len(want.splitlines())
    assert rows > 0


# ---- infer --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["float", "int_infer"])
def test_infer_draws_the_tracks_over_a_sequence(tools, run, stage):
    frames = _sequence(run)[:3]
    save = run.root / f"infer_{stage}"
    code, out, err = tools("infer", "--stage", stage, "--model-inputs", ",".join(f"img:{p}" for p in frames),
                           "--save-path", save)
    assert code == 0, err
    assert sorted(p.name for p in save.iterdir()) == [f"{p.stem}_tracks.png" for p in frames]
    # the same pictures from the stage's graphs with the tracks carried from frame to frame
    cfg = tools.cfg()
    model = build_model(cfg, stage).eval()
    graphs = model.board_runners()
    transforms = image_transforms(cfg)
    carried = 0
    for path in frames:
        rgb = read_image(path)
        with torch.no_grad():
            (rows,) = model.predict(prepare_image(rgb, transforms), graphs)["tracks"]
        rows = rows.numpy()
        assert len(rows) > 0
        carried += int(model._inputs["mask_query"].sum())
        want = draw_boxes(rgb, rows[:, :4], [f"id {int(i)}" for i in rows[:, 5]], rows[:, 5].astype(np.int64))
        np.testing.assert_array_equal(np.array(Image.open(save / f"{path.stem}_tracks.png")), want)
    assert carried > 0  # the tracks were carried from frame to frame (the sequence is one)


def test_infer_bad_image_is_one_line(tools, run):
    assert_infer_refuses_a_missing_image(tools, run.root)


def test_a_validation_batch_of_two_frames_is_one_line(tools):
    code, _, err = run_tool_here("predict", ["--stage", "float", "--config", str(CONFIG), "--opts", *tools.opts,
                                             "val_data_loader.batch_size=2"])
    assert_one_line_error(code, err, "predict", "one frame at a time", "batch size to 1")
