"""The FCOS config (models/detection/fcos_efficientnetb0_mscoco.py) through every tool on a tiny
synthetic COCO built by the project's own pipeline (generator -> packer): train (float with EMA,
calibration, qat with frozen activation scales), predict at every stage, calops, export_hbir,
export_onnx, model_checker, compile_perf, validation_hbir and infer. The filter and score thresholds
are lowered so that the barely trained model detects something: align_bpu's detections equal
int_infer's row for row, and infer draws them over the original image. The tools run in this process
(their `main` under `run_tool`)."""

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

from conftest import (  # noqa: E402
    ConfigTools,
    assert_compiled_binary,
    assert_infer_refuses_a_missing_image,
    assert_model_checker_supported,
    assert_one_line_error,
    assert_predict_reproduces_validation,
    compile_int_infer,
    last_json,
    run_tool_here,
    train_stages,
)
from hbdk_sim.data.datasets.mscoco import COCO_CLASS_NAMES, pack_coco  # noqa: E402
from hbdk_sim.data.datasets.synthetic_coco import make_synthetic_coco  # noqa: E402
from hbdk_sim.engine.callbacks import load_checkpoint  # noqa: E402
from hbdk_sim.engine.deploy import executor_runner, image_transforms, prepare_image, read_image  # noqa: E402
from hbdk_sim.engine.stages import build_task_model, deploy_graphs  # noqa: E402
from hbdk_sim.metrics.detection import STAT_NAMES  # noqa: E402
from hbdk_sim.visualize import draw_boxes  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "models" / "detection" / "fcos_efficientnetb0_mscoco.py"
TASK = "fcos_efficientnetb0_mscoco"
SIZE = 128  # the network input of these tests, H = W (the config's is 512)
LEVELS = 5


class Tools(ConfigTools):
    """The tools on the FCOS config shrunk to the tiny data set."""

    def __init__(self, root: Path) -> None:
        self.work = root / "work"
        super().__init__(CONFIG, [
            f"coco_root={root / 'raw'}", f"data_root={root / 'packed'}", f"work_dir={self.work}",
            f"image_size=[{SIZE},{SIZE}]", "batch_size=2", "val_batch_size=2", "num_workers=0", "float_epochs=1",
            "warmup_epochs=0", "float_validate_every=1", "calibration_batches=1", "qat_epochs=1", "qat_lr=0.05",
            "ema_warmup_steps=10", "float_lr=0.01",
            # the barely trained model's scores sit near the 1% prior: let them through
            "model.filter_threshold=-6.0", "model.score_threshold=0.002"])


@dataclass
class Run:
    root: Path
    float_summary: dict
    calibration_summary: dict
    qat_summary: dict


def _metrics(out: str, stage: str) -> dict:
    """The tool's last JSON line, checked: COCOeval's twelve numbers, each in [0, 1] or -1 (no
    ground truth in that area range)."""
    m = last_json(out)
    assert m["stage"] == stage
    for name in STAT_NAMES:
        v = m[name]
        assert isinstance(v, float | int) and math.isfinite(v) and (0.0 <= v <= 1.0 or v == -1.0), m
    return m


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """4 train and 4 val images of 128x128 (one of each split empty, one with a crowd), packed raw;
    one float epoch, one calibration batch and one QAT epoch through tools/train.py. One torch
    thread: on a busy 2-core machine, threads cost more than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("fcos")
    make_synthetic_coco(root / "raw", train=4, val=4, height=SIZE, width=SIZE, seed=0)
    for split in ("train", "val"):
        assert pack_coco(root / "raw", root / "packed", split, image_codec="raw").num_samples == 4
    yield Run(root, *train_stages(Tools(root)))
    torch.set_num_threads(threads)


@pytest.fixture
def tools(run):
    return Tools(run.root)


# ---- train, predict --------------------------------------------------------------------------------------


def test_train_runs_every_stage_and_predict_reproduces_its_validation(run, tools):
    assert (run.float_summary["stage"], run.float_summary["epochs"], run.float_summary["steps"]) == ("float", 1, 2)
    assert run.calibration_summary == {"stage": "calibration", "epochs": 1, "steps": 1}
    assert (run.qat_summary["stage"], run.qat_summary["epochs"], run.qat_summary["steps"]) == ("qat", 1, 2)
    assert_predict_reproduces_validation(tools, {"float": run.float_summary, "qat": run.qat_summary}, STAT_NAMES,
                                         _metrics)


@pytest.mark.parametrize("stage", ["float", "calibration", "qat", "int_infer"])
def test_predict_prints_the_coco_numbers(tools, run, stage):
    code, out, err = tools("predict", "--stage", stage)
    assert code == 0, err
    assert set(_metrics(out, stage)) == {"stage", *STAT_NAMES}


def test_schedule_ema_and_frozen_qat_scales(run, tools):
    """The float stage keeps an EMA that best.pt holds and the later stages start from; QAT keeps
    calibration's activation scales and moves only the weights' scales; the optimizers carry the
    reference's groups (weight decay on names holding "weight")."""
    cfg = tools.cfg()
    work = run.root / "work"
    best = load_checkpoint(work / "float" / "best.pt")
    assert "ema" in best and int(best["ema"]["n_averaged"]) == 2
    loads = [step for step in cfg.calibration_trainer["model_convert_pipeline"] if step["type"] == "LoadCheckpoint"]
    assert [(Path(s["path"]), s["state_dict_key"]) for s in loads] == [(work / "float" / "best.pt", "ema")]
    opt = cfg.float_trainer["optimizer"]
    assert (opt["type"], opt["momentum"], opt["nesterov"], opt["weight_decay"]) == ("SGD", 0.937, True, 0.0)
    assert opt["param_groups"] == {"weight": {"weight_decay": 4e-5}}
    qat_steps = cfg.qat_trainer["model_convert_pipeline"]
    assert [s["type"] for s in qat_steps] == ["LoadCheckpoint", "Float2QAT", "LoadCheckpoint"]
    assert qat_steps[1]["activation_scales"] == "frozen" and qat_steps[1]["observer"] == "mse"
    assert cfg.qat_trainer["lr_scheduler"] == {"type": "MultiStepLR", "milestones": [5], "gamma": 0.1,
                                               "interval": "epoch"}

    calibrated = load_checkpoint(work / "calibration" / "last.pt")["model"]
    trained = load_checkpoint(work / "qat" / "best.pt")["model"]
    activation = [k for k in calibrated if k.endswith(".scale") and "weight_fake_quant" not in k]
    weight = [k for k in calibrated if k.endswith("weight_fake_quant.scale")]
    assert len(activation) > 100 and len(weight) > 100
    assert all(torch.equal(calibrated[k], trained[k]) for k in activation)
    assert sum(not torch.equal(calibrated[k], trained[k]) for k in weight) > len(weight) // 2
    si16 = [k for k in activation if any(f"head.{n}." in k for n in ("conv_cls", "conv_reg", "conv_centerness"))]
    assert si16  # the head outputs' quantizers are there (int16: tests/python/test_fcos_task.py)


# ---- calops -------------------------------------------------------------------------------------------------


def _conv_macs(cfg) -> int:
    """MACs of every conv call of the float network at 1x3x128x128, from forward hooks (a conv
    shared by the five levels counts once per level)."""
    network = build_task_model(cfg).network.eval()
    macs = []

    def conv(module, inputs, output):
        macs.append(output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size))

    for m in network.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv)
    with torch.no_grad():
        outputs = network(torch.zeros(1, 3, SIZE, SIZE))
    assert len(outputs) == 3 * LEVELS
    return sum(macs)


def test_calops_counts_the_model_exactly(tools):
    code, out, err = tools("calops")
    assert code == 0, err
    macs = _conv_macs(tools.cfg())
    assert f"input 1x3x{SIZE}x{SIZE}" in out and f"MACs {macs:,} " in out
    assert out.strip().splitlines()[-1].split()[:2] == ["total", f"{macs:,}"]


# ---- export_hbir, export_onnx, model_checker --------------------------------------------------------------


def test_export_hbir_writes_the_fused_integer_network(run, tools):
    out_dir = run.root / "hbir"
    code, out, err = tools("export_hbir", "--out-dir", out_dir)  # int_infer by default
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == [f"{TASK}_int_infer.hbir"]  # one board graph
    fn = hbdk_sim.load(out_dir / f"{TASK}_int_infer.hbir").function("main")
    ops = Counter(op.name for op in fn.ops)
    assert "batch_norm" not in ops  # every BN folded, the head's per-level ones included
    assert ops["max_pool2d"] == 2 + 3 * 4  # P6, P7, and each BiFPN layer's four down-samplings
    assert ops["resize2d"] == 3 * 4  # each BiFPN layer's four bilinear up-samplings
    assert [list(a.shape) for a in fn.arguments] == [[1, 3, SIZE, SIZE]]
    assert len(fn.returns) == ops["dequantize"] == 3 * LEVELS  # the outputs leave the board as si16
    assert [op.operands[0].dtype for op in fn.ops if op.name == "dequantize"] == ["si16"] * (3 * LEVELS)
    assert [list(op.operands[0].shape) for op in fn.ops if op.name == "dequantize"][:LEVELS] == [
        [1, 80, SIZE // s, SIZE // s] for s in (8, 16, 32, 64, 128)]


def test_export_onnx_float_matches_torch(run, tools):
    out_dir = run.root / "onnx"
    code, out, err = tools("export_onnx", "--stage", "float", "--out-dir", out_dir)
    assert code == 0, err
    path = out_dir / f"{TASK}_float.onnx"
    assert sorted(p.name for p in out_dir.iterdir()) == [path.name]
    (graph,) = deploy_graphs(tools.cfg(), "float")
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = [t.numpy() for t in graph.module(x)]
    assert len(got) == len(want) == 3 * LEVELS
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and np.abs(g - w).max() <= 1e-4


def test_model_checker_supported(tools):
    assert_model_checker_supported(tools, "qat")


# ---- compile_perf, validation_hbir ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled(run):
    return compile_int_infer(Tools(run.root))


def test_compile_perf_writes_the_binary(compiled, run):
    assert_compiled_binary(compiled, run.root / "work" / "deploy" / f"{TASK}_int_infer.hbm")
    assert compiled["macs"] == _conv_macs(Tools(run.root).cfg())


def test_align_bpu_equals_int_infer_exactly(compiled, tools, run):
    hbm = compiled["hbm"]
    code, out, err = tools("validation_hbir", "--stage", "align_bpu", "--hbm", hbm)
    assert code == 0, err
    bpu = _metrics(out, "align_bpu")
    assert bpu["hbm"] == hbm
    code, out, err = tools("predict", "--stage", "int_infer")  # batches of 2, the binary sees 1 at a time
    assert code == 0, err
    ref = _metrics(out, "int_infer")
    assert {k: bpu[k] for k in STAT_NAMES} == {k: ref[k] for k in STAT_NAMES}

    # Row for row: the binary's 15 outputs equal the integer model's, and so do the detections.
    cfg = tools.cfg()
    model = build_task_model(cfg).eval()
    (graph,) = deploy_graphs(cfg, "int_infer")
    runner = executor_runner(hbdk_sim.Executor(hbdk_sim.load_hbm(hbm)))
    transforms = image_transforms(cfg)
    found = 0
    for path in sorted((run.root / "raw" / "val2017").glob("*.jpg")):
        batch = prepare_image(read_image(path), transforms)
        with torch.no_grad():
            want = graph.module(batch["img"])
        got = runner(batch["img"])
        assert len(got) == len(want) == 3 * LEVELS
        for g, w in zip(got, want, strict=True):
            assert torch.equal(g.to(w.dtype), w)
        (a,) = model.predict(batch, {"network": runner})["detections"]
        (b,) = model.predict(batch, {"network": graph.module})["detections"]
        assert torch.equal(a, b)
        found += len(a)
    assert found > 0  # the lowered thresholds let detections through


# ---- infer --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["float", "int_infer"])
def test_infer_draws_labelled_boxes_over_the_image(tools, run, stage):
    # a val image enlarged to 256x200: the network sees it at 128x100 (padded to 128x128), and the
    # boxes go back to the enlarged image's pixels
    source = sorted((run.root / "raw" / "val2017").glob("*.jpg"))[0]
    image = run.root / f"enlarged_{stage}.png"
    Image.open(source).convert("RGB").resize((200, 256), Image.BILINEAR).save(image)
    save = run.root / f"infer_{stage}"
    code, out, err = tools("infer", "--stage", stage, "--model-inputs", f"img:{image}", "--save-path", save)
    assert code == 0, err
    path = save / f"{image.stem}_detections.png"
    assert sorted(p.name for p in save.iterdir()) == [path.name]
    assert f"{image}: wrote {path}" in out
    rgb = read_image(image)
    picture = np.array(Image.open(path))
    assert picture.shape == rgb.shape == (256, 200, 3)

    # the same picture from the stage's board graph and the host post-processing in input pixels,
    # mapped back by the resize's factor and drawn independently
    cfg = tools.cfg()
    model = build_task_model(cfg).eval()
    (graph,) = deploy_graphs(cfg, stage)
    batch = prepare_image(rgb, image_transforms(cfg))
    assert batch["img"].shape == (1, 3, SIZE, SIZE)
    with torch.no_grad():
        (rows,) = model.predict({"img": batch["img"]}, {"network": graph.module})["detections"]
    rows = rows.numpy()
    assert len(rows) > 0
    boxes = rows[:, :4] / np.float32(SIZE / 256)
    labels = [f"{COCO_CLASS_NAMES[int(k)]} {s:.2f}" for s, k in rows[:, 4:6]]
    np.testing.assert_array_equal(picture, draw_boxes(rgb, boxes, labels, rows[:, 5].astype(np.int64)))


def test_infer_bad_image_is_one_line(tools, run):
    assert_infer_refuses_a_missing_image(tools, run.root)


def test_missing_annotation_file_is_one_line(tools, run):
    code, _, err = run_tool_here("predict", ["--stage", "float", "--config", str(CONFIG), "--opts", *tools.opts,
                                             f"coco_root={run.root / 'nowhere'}"])
    assert_one_line_error(code, err, "predict", "instances_val2017.json", "not found")
