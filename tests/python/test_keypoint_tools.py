"""The car keypoint config (models/keypoint/keypoint_efficientnetb0_carfusion.py) through every tool on
a tiny synthetic CarFusion built by the project's own pipeline (generator -> converter -> packer):
train (float, calibration, qat), predict at every stage, calops, export_hbir, export_onnx,
model_checker, compile_perf, validation_hbir and infer. int_infer converts the calibration checkpoint
(no QAT needed), align_bpu equals `predict --stage int_infer` exactly, and infer draws the keypoints
over the original crop. The tools run in this process (their `main` under `run_tool`)."""

from __future__ import annotations

import math
import shutil
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
    compile_int_infer,
    last_json,
)
from hbdk_sim.data.datasets.carfusion import KEYPOINT_NAMES, convert_carfusion, pack_carfusion  # noqa: E402
from hbdk_sim.data.datasets.lmdb import LmdbDataset  # noqa: E402
from hbdk_sim.data.datasets.synthetic_carfusion import make_synthetic_carfusion  # noqa: E402
from hbdk_sim.engine.deploy import image_transforms, prepare_image, read_image  # noqa: E402
from hbdk_sim.engine.stages import build_task_model, deploy_graphs  # noqa: E402
from hbdk_sim.nn.postprocess import decode_heatmaps  # noqa: E402
from hbdk_sim.registry import TRANSFORMS, build_from_cfg  # noqa: E402
from hbdk_sim.visualize import draw_keypoints  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "models" / "keypoint" / "keypoint_efficientnetb0_carfusion.py"
TASK = "keypoint_efficientnetb0_carfusion"
SIZE = 128  # the model's input, H = W
MACS = 227_331_584  # EfficientNet-B0 + 3 deconvs + the final conv at 1x3x128x128
PAIRS = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)]


class Tools(ConfigTools):
    """The tools on the keypoint config shrunk to the tiny data set."""

    def __init__(self, root: Path, work: Path | None = None) -> None:
        self.work = work or root / "work"
        super().__init__(CONFIG, [f"data_root={root / 'packed'}", f"work_dir={self.work}", "batch_size=2",
                                  "val_batch_size=2", "num_workers=0", "float_epochs=1", "calibration_batches=1",
                                  "qat_epochs=1"])


@dataclass
class Run:
    root: Path
    float_summary: dict
    calibration_summary: dict


def _metrics(out: str, stage: str) -> dict:
    """The tool's last JSON line, checked: PCK@0.1 a fraction, mean_dist a distance in input pixels."""
    m = last_json(out)
    assert m["stage"] == stage
    pck, dist = m["PCK@0.1"], m["mean_dist"]
    assert isinstance(pck, float | int) and math.isfinite(pck) and 0.0 <= pck <= 1.0, m
    assert isinstance(dist, float | int) and math.isfinite(dist) and 0.0 <= dist <= SIZE * math.sqrt(2), m
    return m


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """1 train and 1 test sequence of 2 frames with 2 cars at 640x360 (4 crops each), converted and
    packed raw to <root>/packed/{train,test}_lmdb; one float epoch and one calibration batch through
    tools/train.py. One torch thread: on a busy 2-core machine, threads cost more than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("keypoint")
    made = make_synthetic_carfusion(root / "raw", train_sequences=1, test_sequences=1, frames=2, cars=2, seed=0,
                                    width=640, height=360)
    assert {split: len(frames) for split, frames in made.items()} == {"train": 2, "test": 2}
    assert convert_carfusion(root / "raw", root / "crops") == {"train": 4, "test": 4}
    for split in ("train", "test"):
        assert pack_carfusion(root / "crops", root / "packed", split, image_codec="raw").num_samples == 4
    tools = Tools(root)
    torch.manual_seed(0)
    code, out, err = tools("train", "--stage", "float")
    assert code == 0, err
    float_summary = last_json(out)
    code, out, err = tools("train", "--stage", "calibration")
    assert code == 0, err
    yield Run(root, float_summary, last_json(out))
    torch.set_num_threads(threads)


@pytest.fixture
def tools(run):
    return Tools(run.root)


@pytest.fixture(scope="module")
def qat(run):
    """One QAT epoch from the calibration scales (tools/train.py --stage qat); its summary."""
    code, out, err = Tools(run.root)("train", "--stage", "qat")
    assert code == 0, err
    return last_json(out)


# ---- train, predict --------------------------------------------------------------------------------------


def test_train_runs_every_stage_and_predict_reproduces_its_validation(run, tools, qat):
    assert run.float_summary["stage"] == "float"
    assert (run.float_summary["epochs"], run.float_summary["steps"]) == (1, 2)  # 4 crops, batches of 2
    assert run.calibration_summary == {"stage": "calibration", "epochs": 1, "steps": 1}  # calibration_batches=1
    assert (qat["stage"], qat["epochs"], qat["steps"]) == ("qat", 1, 2)
    for stage, summary in (("float", run.float_summary), ("qat", qat)):
        # best.pt is the one epoch's weights: predict gives the validation the trainer printed
        code, out, err = tools("predict", "--stage", stage)
        assert code == 0, err
        m = _metrics(out, stage)
        # The trainer validates its channels-last model, predict a contiguous one: the same weights,
        # float sums in another order.
        assert m["PCK@0.1"] == pytest.approx(summary["PCK@0.1"], abs=1e-9)
        assert m["mean_dist"] == pytest.approx(summary["mean_dist"], rel=1e-5)
    work = run.root / "work"
    assert all((work / p).is_file() for p in ("float/best.pt", "calibration/last.pt", "qat/best.pt"))


@pytest.mark.parametrize("stage", ["float", "calibration", "qat", "int_infer"])
def test_predict_prints_pck_and_mean_dist(tools, qat, stage):
    code, out, err = tools("predict", "--stage", stage)
    assert code == 0, err
    m = _metrics(out, stage)
    assert set(m) == {"stage", "PCK@0.1", "mean_dist"}


def test_int_infer_converts_the_calibration_checkpoint(run, tools, qat):
    def loads(t: Tools) -> list[Path]:
        pipeline = t.cfg().int_infer_predictor["model_convert_pipeline"]
        return [Path(p["path"]) for p in pipeline if p["type"] == "LoadCheckpoint"]

    assert loads(tools) == [run.root / "work" / "calibration" / "last.pt"]
    # a work_dir that never saw QAT: float and calibration only
    alone = run.root / "work_no_qat"
    for stage in ("float", "calibration"):
        shutil.copytree(run.root / "work" / stage, alone / stage)
    solo = Tools(run.root, alone)
    assert loads(solo) == [alone / "calibration" / "last.pt"]
    code, out, err = solo("predict", "--stage", "int_infer")
    assert code == 0, err
    without_qat = _metrics(out, "int_infer")
    assert not (alone / "qat").exists()
    # beside a trained qat/best.pt, int_infer still converts the calibration model: the same numbers
    assert (run.root / "work" / "qat" / "best.pt").is_file()
    code, out, err = tools("predict", "--stage", "int_infer")
    assert code == 0, err
    assert _metrics(out, "int_infer") == without_qat


# ---- calops -------------------------------------------------------------------------------------------------


def _conv_macs(cfg) -> int:
    """MACs of every conv and transposed conv of the float network at 1x3x128x128, from forward hooks:
    a conv does (in/groups) x kh x kw per output element; a transposed conv scatters each input
    element to (out/groups) x kh x kw output taps."""
    network = build_task_model(cfg).network.eval()
    macs = []

    def conv(module, inputs, output):
        macs.append(output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size))

    def deconv(module, inputs, output):
        macs.append(inputs[0].numel() * (module.out_channels // module.groups) * math.prod(module.kernel_size))

    for m in network.modules():
        if isinstance(m, torch.nn.ConvTranspose2d):
            m.register_forward_hook(deconv)
        elif isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(conv)
    with torch.no_grad():
        heatmaps = network(torch.zeros(1, 3, SIZE, SIZE))
    assert tuple(heatmaps.shape) == (1, 12, SIZE // 4, SIZE // 4)
    assert len(macs) == 49 + 3  # the backbone's and final convs, the decoder's 3 deconvs
    return sum(macs)


def test_calops_counts_the_model_exactly(tools):
    code, out, err = tools("calops")
    assert code == 0, err
    assert _conv_macs(tools.cfg()) == MACS
    assert f"input 1x3x{SIZE}x{SIZE}" in out and f"MACs {MACS:,} " in out
    assert out.strip().splitlines()[-1].split()[:2] == ["total", f"{MACS:,}"]
    deconvs = [line.split() for line in out.splitlines() if "conv_transpose2d" in line]
    assert [d[0] for d in deconvs] == [f"head.deconvs.{i}.conv" for i in range(3)]


# ---- export_hbir, export_onnx, model_checker --------------------------------------------------------------


def test_export_hbir_writes_the_fused_integer_network(run, tools):
    out_dir = run.root / "hbir"
    code, out, err = tools("export_hbir", "--out-dir", out_dir)  # int_infer by default
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == [f"{TASK}_int_infer.hbir"]  # one board graph
    fn = hbdk_sim.load(out_dir / f"{TASK}_int_infer.hbir").function("main")
    ops = Counter(op.name for op in fn.ops)
    assert ops["conv_transpose2d"] == 3 and ops["conv2d"] == 49
    assert "batch_norm" not in ops  # every BN folded, the deconvs' included
    assert ops["requantize"] > 0
    assert [list(a.shape) for a in fn.arguments] == [[1, 3, SIZE, SIZE]]


def test_export_onnx_float_matches_torch(run, tools):
    out_dir = run.root / "onnx"
    code, out, err = tools("export_onnx", "--stage", "float", "--out-dir", out_dir)
    assert code == 0, err
    path = out_dir / f"{TASK}_float.onnx"
    assert sorted(p.name for p in out_dir.iterdir()) == [path.name]
    graphs = deploy_graphs(tools.cfg(), "float")
    assert [g.name for g in graphs] == ["network"]
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = graphs[0].module(x).numpy()
    assert got.shape == want.shape == (1, 12, SIZE // 4, SIZE // 4)
    assert np.abs(got - want).max() <= 1e-4


def test_model_checker_supported(tools):
    assert_model_checker_supported(tools, "calibration")


# ---- compile_perf, validation_hbir ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled(run):
    return compile_int_infer(Tools(run.root))


def test_compile_perf_writes_the_binary(compiled, run):
    assert_compiled_binary(compiled, run.root / "work" / "deploy" / f"{TASK}_int_infer.hbm")
    assert compiled["macs"] == MACS


def test_align_bpu_equals_int_infer_exactly(compiled, tools):
    hbm = compiled["hbm"]
    code, out, err = tools("validation_hbir", "--stage", "align_bpu", "--hbm", hbm)
    assert code == 0, err
    bpu = _metrics(out, "align_bpu")
    assert bpu["hbm"] == hbm
    code, out, err = tools("predict", "--stage", "int_infer")  # batches of 2, the binary sees 1 at a time
    assert code == 0, err
    ref = _metrics(out, "int_infer")
    assert bpu["PCK@0.1"] == ref["PCK@0.1"] and bpu["mean_dist"] == ref["mean_dist"]


# ---- infer --------------------------------------------------------------------------------------------------


@pytest.fixture
def crop(run) -> Path:
    """A car crop as the converter wrote it (a JPEG of the box's size, not 128x128)."""
    return sorted((run.root / "crops" / "test").rglob("crop_imgs/*.jpg"))[0]


@pytest.mark.parametrize("stage", ["float", "int_infer"])
def test_infer_draws_the_keypoints_over_the_crop(tools, run, crop, stage):
    save = run.root / f"infer_{stage}"
    code, out, err = tools("infer", "--stage", stage, "--model-inputs", f"img:{crop}", "--save-path", save)
    assert code == 0, err
    path = save / f"{crop.stem}_keypoints.png"
    assert sorted(p.name for p in save.iterdir()) == [path.name]
    assert f"{crop}: wrote {path}" in out
    rgb = read_image(crop)
    assert rgb.shape[:2] != (SIZE, SIZE)
    picture = np.array(Image.open(path))
    assert picture.shape == rgb.shape
    assert 0 < np.any(picture != rgb, axis=-1).mean() < 0.5  # drawn over the image, most of it untouched

    # the same picture from the stage's board graph: keypoints decoded in 128x128 input pixels, mapped
    # back by the ratio-keeping resize's factor
    cfg = tools.cfg()
    model = build_task_model(cfg)
    (graph,) = deploy_graphs(cfg, stage)
    with torch.no_grad():
        heatmaps = graph.module(prepare_image(rgb, image_transforms(cfg))["img"])
    keypoints, scores = decode_heatmaps(heatmaps, model.stride, model.window)
    scale = min(SIZE / rgb.shape[0], SIZE / rgb.shape[1])
    want = draw_keypoints(rgb, keypoints[0].numpy() / scale, scores[0].numpy(), model.skeleton, model.score_threshold)
    np.testing.assert_array_equal(picture, want)


def test_infer_bad_image_is_one_line(tools, run):
    assert_infer_refuses_a_missing_image(tools, run.root)


# ---- the training flip -----------------------------------------------------------------------------------------


def test_train_flip_swaps_the_six_left_right_pairs(tools, run):
    cfg = tools.cfg()
    flips = [t for t in cfg.train_data_loader["dataset"]["transforms"] if t["type"] == "RandomFlip"]
    assert len(flips) == 1
    pairs = [tuple(p) for p in flips[0]["keypoint_flip_pairs"]]
    assert pairs == PAIRS
    for right, left in pairs:
        assert KEYPOINT_NAMES[right].startswith("Right_")
        assert KEYPOINT_NAMES[left] == KEYPOINT_NAMES[right].replace("Right_", "Left_", 1)

    flip = build_from_cfg(dict(flips[0], p=1.0), TRANSFORMS)  # the config's flip, always taken
    sample = LmdbDataset(run.root / "packed" / "train_lmdb")[0]
    out = flip(dict(sample))
    k, f = np.asarray(sample["gt_keypoints"]), np.asarray(out["gt_keypoints"])
    order = np.arange(12)
    for right, left in pairs:
        order[right], order[left] = left, right
    np.testing.assert_array_equal(out["img"], sample["img"][:, ::-1])
    np.testing.assert_array_equal(f[:, 2], k[order, 2])  # visibility travels with the swapped point
    labelled = f[:, 2] > 0
    assert labelled.any()
    np.testing.assert_allclose(f[labelled, 0], sample["img"].shape[1] - k[order][labelled, 0], atol=1e-4)
    np.testing.assert_allclose(f[labelled, 1], k[order][labelled, 1])
