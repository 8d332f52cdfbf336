"""The deployment tools (calops, export_hbir, export_onnx, model_checker, compile_perf, infer,
validation_hbir) on the segmentation config shrunk to 64x128 and a tiny synthetic Cityscapes: each
writes what it promises, align_bpu's mIoU equals `predict --stage int_infer` exactly, and user
errors are one line with exit status 2. The tools run in this process (their `main` under
`run_tool` with sys.argv patched); one runs as a subprocess to show the command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import hbdk_sim
import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from conftest import assert_one_line_error, run_tool_here  # noqa: E402
from hbdk_sim.data import PALETTE, make_synthetic_cityscapes, pack_cityscapes  # noqa: E402
from hbdk_sim.engine.deploy import image_transforms, prepare_image, read_image  # noqa: E402
from hbdk_sim.engine.stages import build_data_loader, build_task_model, deploy_graphs, load_config  # noqa: E402
from hbdk_sim.registry import MODELS, build_from_cfg  # noqa: E402
from hbdk_sim.visualize import overlay  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "models" / "segmentation" / "unet_mobilenetv1_cityscapes.py"
TASK = "unet_mobilenetv1_cityscapes"
H, W = 64, 128


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: on a busy 2-core machine, worker threads cost far more than they save (the
    int model's float64 convolutions slow down a hundredfold)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Tools:
    """Runs tools/<name>.py in this process; returns (exit status, stdout, stderr)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opts = [f"data_root={root / 'packed'}", f"work_dir={root / 'work'}", f"image_size=[{H},{W}]",
                     "batch_size=2", "val_batch_size=2", "num_workers=0", "calibration_batches=1"]

    def __call__(self, name: str, *args: str) -> tuple[int, str, str]:
        return run_tool_here(name, [*map(str, args), "--config", str(CONFIG), "--opts", *self.opts])

    def cfg(self):
        return load_config(CONFIG, self.opts)


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    """Synthetic data (8 train, 4 val at 64x128, packed raw), a float checkpoint of a freshly built
    model, calibration (one batch) through tools/train.py, and its checkpoint as the QAT weights."""
    root = tmp_path_factory.mktemp("tools")
    make_synthetic_cityscapes(root / "raw", train=8, val=4, height=H, width=W, seed=0)
    for split in ("train", "val"):
        pack_cityscapes(root / "raw", root / "packed", split, image_codec="raw")
    tools = Tools(root)
    torch.manual_seed(0)
    model = build_from_cfg(tools.cfg()["model"], MODELS)
    (root / "work" / "float").mkdir(parents=True)
    torch.save({"model": model.state_dict()}, root / "work" / "float" / "best.pt")
    code, out, err = tools("train", "--stage", "calibration")
    assert code == 0, err
    (root / "work" / "qat").mkdir()
    shutil.copy(root / "work" / "calibration" / "last.pt", root / "work" / "qat" / "best.pt")
    return root


@pytest.fixture
def tools(run_root):
    return Tools(run_root)


def _deploy(run_root) -> Path:
    return run_root / "work" / "deploy"


# ---- calops -------------------------------------------------------------------------------------------


def _conv_macs_and_tensors(cfg, shape) -> tuple[int, int]:
    """MACs of every conv the board graph runs (from forward hooks) and the elements of its parameters
    and BN statistics."""
    network = build_task_model(cfg).network.eval()
    macs = []

    def hook(module, inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1]
        macs.append(output.numel() * (module.in_channels // module.groups) * k)

    for m in network.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        network.head.convs[0](network.neck(network.backbone(torch.zeros(shape)))[0])
    used = network.head.convs[0]  # the board graph runs the finest head only
    unused = sum(p.numel() for c in network.head.convs if c is not used for p in c.parameters())
    tensors = sum(t.numel() for name, t in network.state_dict().items() if not name.endswith("num_batches_tracked"))
    return sum(macs), tensors - unused


def test_calops_counts_every_conv_of_the_deploy_network(tools):
    code, out, _ = tools("calops")
    assert code == 0
    macs, params = _conv_macs_and_tensors(tools.cfg(), (1, 3, H, W))
    assert f"input 1x3x{H}x{W}" in out
    assert f"MACs {macs:,} " in out and f"params {params:,}" in out
    assert "backbone.stem.conv" in out and "head.convs.0" in out
    total = out.strip().splitlines()[-1].split()
    assert total[:3] == ["total", f"{macs:,}", f"{params:,}"]

    code, out, err = tools("calops", "--input-shape", f"1,3,{H // 2},{W // 2}")
    assert code == 0, err
    assert f"MACs {macs // 4:,} " in out  # every conv's work scales with the pixels


@pytest.mark.parametrize("shape, words", [("1,3,x,128", ["comma-separated ints"]), ("1,3,64", ["4 positive"]),
                                          ("1,4,64,128", ["3 channels"]), ("1,3,64,100", ["stride 32"])])
def test_calops_bad_input_shape_is_one_line(tools, shape, words):
    code, _, err = tools("calops", "--input-shape", shape)
    assert_one_line_error(code, err, "calops", "--input-shape", *words)


# ---- export_hbir / export_onnx -----------------------------------------------------------------------------


def test_export_hbir_gives_each_stage_its_graph(tools, run_root):
    code, out, _ = tools("export_hbir")  # int_infer by default
    assert code == 0
    int_path = _deploy(run_root) / f"{TASK}_int_infer.hbir"
    assert f"wrote {int_path}" in out
    int_ops = {op.name for op in hbdk_sim.load(int_path).function("main").ops}
    assert "requantize" in int_ops

    exports = run_root / "exports"
    float_path = exports / f"{TASK}_float.hbir"
    code, _, _ = tools("export_hbir", "--stage", "float", "--out-dir", exports)
    assert code == 0
    fn = hbdk_sim.load(float_path).function("main")
    assert "requantize" not in {op.name for op in fn.ops}
    assert [list(a.shape) for a in fn.arguments] == [[1, 3, H, W]]

    before = float_path.read_bytes()
    code, _, err = tools("export_hbir", "--stage", "float", "--out-dir", exports)
    assert_one_line_error(code, err, "export_hbir", str(float_path), "--force")
    assert float_path.read_bytes() == before
    code, _, _ = tools("export_hbir", "--stage", "qat", "--out-dir", exports)
    assert code == 0
    qat = hbdk_sim.load(exports / f"{TASK}_qat.hbir")
    assert qat.print() != before.decode()  # the qat graph, with its scales


def test_export_hbir_missing_checkpoint_is_one_line(tools, run_root):
    missing = run_root / "nowhere" / "best.pt"
    code, _, err = tools("export_hbir", "--stage", "float", "--ckpt", missing, "--out-dir", run_root / "x")
    assert_one_line_error(code, err, "export_hbir", str(missing), "not found")
    assert not (run_root / "x").exists()


def test_export_onnx_float_matches_torch_and_qat_is_qdq(tools, run_root):
    code, out, _ = tools("export_onnx", "--stage", "float")
    assert code == 0
    path = _deploy(run_root) / f"{TASK}_float.onnx"
    assert f"wrote {path}" in out
    x = torch.randn(1, 3, H, W, generator=torch.Generator().manual_seed(3))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        (graph,) = deploy_graphs(tools.cfg(), "float")
        want = graph.module(x).numpy()
    assert got.shape == (1, 19, H // 4, W // 4)
    assert np.abs(got - want).max() <= 1e-4

    qdq = run_root / "exports" / f"{TASK}_qat.onnx"
    code, _, _ = tools("export_onnx", "--stage", "qat", "--out-dir", qdq.parent)
    assert code == 0
    import onnx

    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(qdq)).graph.node)
    sess = ort.InferenceSession(str(qdq), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    assert got.shape == (1, 19, H // 4, W // 4)


# ---- model_checker ---------------------------------------------------------------------------------------


def test_model_checker_supported(tools):
    code, out, _ = tools("model_checker")  # the float network, calibrated on the example input
    assert (code, out.strip()) == (0, "This model is supported!")
    code, out, _ = tools("model_checker", "--stage", "qat", "--march", "bpu")
    assert (code, out.strip()) == (0, "This model is supported!")


def test_untrained_config_is_checked_and_estimated_at_random_initialization(tools, tmp_path):
    """Check before you train: no checkpoint under a fresh work_dir."""
    tools.opts = [*tools.opts, f"work_dir={tmp_path / 'work'}"]  # the later work_dir wins
    code, out, err = tools("model_checker")
    note, verdict = out.strip().splitlines()
    assert (code, verdict) == (0, "This model is supported!"), err
    assert note.startswith(f"model_checker: no checkpoint at {tmp_path / 'work' / 'float' / 'best.pt'} ")
    assert f"random initialization (model, seed 0), calibrated on random inputs of deploy_input_shape " \
           f"[1, 3, {H}, {W}]" in note
    code, out, err = tools("compile_perf")
    assert code == 0, err
    assert "qat/best.pt (stage int_infer is not trained yet)" in out.splitlines()[0]
    assert (tmp_path / "work" / "deploy" / f"{TASK}_int_infer.hbm").is_file()
    # --random-init asks for it with checkpoints present; it gives the same binary as the fallback
    code, out, err = tools("compile_perf", "--random-init", "--out-dir", tmp_path / "again")
    assert code == 0 and out.startswith("compile_perf: --random-init: using the architecture"), err
    assert (tmp_path / "again" / f"{TASK}_int_infer.hbm").read_bytes() == \
        (tmp_path / "work" / "deploy" / f"{TASK}_int_infer.hbm").read_bytes()
    code, _, err = tools("model_checker", "--random-init", "--ckpt", tmp_path / "x.pt")
    assert_one_line_error(code, err, "model_checker", "--random-init and --ckpt exclude each other")


def test_model_checker_prints_every_violation(tools, run_root):
    march = json.loads((Path(hbdk_sim.__file__).parent / "marches" / "bpu.json").read_text())
    march["name"] = "bpu_narrow"
    march["ops"]["conv2d"]["channels_max"] = 16
    path = run_root / "bpu_narrow.json"
    path.write_text(json.dumps(march))
    network = build_task_model(tools.cfg()).network
    used = [m for name, m in network.named_modules() if isinstance(m, torch.nn.Conv2d)
            and not (name.startswith("head.convs.") and name != "head.convs.0")]
    wide = sum(1 for m in used if max(m.in_channels, m.out_channels) > 16)

    code, out, _ = tools("model_checker", "--stage", "qat", "--march", path)
    lines = out.strip().splitlines()
    assert code == 1
    assert lines[0] == f"{wide} violation(s) of march 'bpu_narrow':"
    assert len(lines) == 1 + wide and all("'conv2d' channels" in line for line in lines[1:])


# ---- compile_perf, validation_hbir --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled(run_root):
    """tools/compile_perf.py of the int_infer network into <work_dir>/deploy."""
    code, out, err = Tools(run_root)("compile_perf")
    assert code == 0, err
    return _deploy(run_root) / f"{TASK}_int_infer.hbm", out


def test_compile_perf_writes_binary_and_reports(compiled, tools):
    hbm, out = compiled
    json_path, html_path = hbm.with_name(f"{TASK}_int_infer.perf.json"), hbm.with_name(f"{TASK}_int_infer.perf.html")
    assert hbm.is_file() and json_path.is_file() and html_path.is_file()
    perf = hbdk_sim.PerfReport.from_json(json_path.read_text())
    assert perf.total_cycles > 0
    assert perf.total_cycles == hbdk_sim.compile_perf(hbm, march="bpu").total_cycles  # the binary's own estimate
    assert f"latency  {perf.latency_ms:.3f} ms" in out
    assert f"FPS      {perf.fps:.1f}" in out
    assert f"DDR      {perf.ddr_bytes_per_frame / 1e6:.3f} MB/frame" in out
    assert hbdk_sim.load_hbm(hbm).march == "bpu"
    assert html_path.read_text().lstrip().lower().startswith("<!doctype html")

    before = hbm.read_bytes()
    code, _, err = tools("compile_perf")
    assert_one_line_error(code, err, "compile_perf", str(hbm), "--force")
    assert hbm.read_bytes() == before


def test_align_bpu_equals_int_infer_exactly(compiled, tools):
    hbm, _ = compiled
    code, out, _ = tools("validation_hbir", "--stage", "align_bpu", "--hbm", hbm)
    assert code == 0
    bpu = json.loads(out.strip().splitlines()[-1])
    code, out, _ = tools("predict", "--stage", "int_infer")  # batches of 2, the binary sees 1 at a time
    assert code == 0
    ref = json.loads(out.strip().splitlines()[-1])
    assert bpu["stage"] == "align_bpu" and bpu["hbm"] == str(hbm)
    assert 0.0 < bpu["mIoU"] <= 1.0
    assert bpu["mIoU"] == ref["mIoU"] and bpu["pixel_acc"] == ref["pixel_acc"]

    before = hbm.read_bytes()
    code, out, err = tools("validation_hbir", "--stage", "align_bpu")  # compiles: the same bytes as compile_perf's
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == bpu
    assert hbm.read_bytes() == before

    hbm.write_bytes(b"another binary")
    code, _, err = tools("validation_hbir", "--stage", "align_bpu")
    assert_one_line_error(code, err, "validation_hbir", "differs", f"--hbm {hbm}", "--force")
    assert hbm.read_bytes() == b"another binary"
    code, out, err = tools("validation_hbir", "--stage", "align_bpu", "--force")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == bpu
    assert hbm.read_bytes() == before
    code, _, err = tools("validation_hbir", "--stage", "align_bpu", "--hbm", hbm, "--march", "bpu_nano")
    assert_one_line_error(code, err, "validation_hbir", "'bpu'", "'bpu_nano'")


# ---- infer ----------------------------------------------------------------------------------------------


def test_infer_preprocessing_is_the_validation_pipeline(tools, run_root):
    cfg = tools.cfg()
    batch = next(iter(build_data_loader(cfg, "val_data_loader", train=False, batch_size=1)))
    png = next((run_root / "raw" / "leftImg8bit" / "val").rglob(f"{batch['name'][0]}_leftImg8bit.png"))
    x = prepare_image(read_image(png), image_transforms(cfg))["img"]
    assert torch.equal(x, batch["img"])


def test_infer_paints_predictions_at_the_image_size(tools, run_root):
    png = sorted((run_root / "raw" / "leftImg8bit" / "val").rglob("*.png"))[0]
    jpg = run_root / "street.jpg"
    Image.open(png).resize((150, 100)).save(jpg)  # another size and format: resized in, resized back
    save = run_root / "infer"
    code, out, _ = tools("infer", "--stage", "qat", "--model-inputs", f"img:{png},img:{jpg}", "--save-path", save)
    assert code == 0
    cfg = tools.cfg()
    (graph,) = deploy_graphs(cfg, "qat")
    palette = np.asarray(PALETTE, np.uint8)
    for image in (png, jpg):
        rgb = read_image(image)
        color = np.array(Image.open(save / f"{image.stem}_color.png"))
        pred = np.array(Image.open(save / f"{image.stem}_pred.png"))
        assert color.shape == pred.shape == rgb.shape
        with torch.no_grad():
            logits = graph.module(prepare_image(rgb, image_transforms(cfg))["img"])
        ids = torch.nn.functional.interpolate(logits, size=rgb.shape[:2], mode="bilinear").argmax(1)[0].numpy()
        np.testing.assert_array_equal(color, palette[ids])
        np.testing.assert_array_equal(pred, overlay(rgb, palette[ids]))
        assert f"{image}: wrote" in out

    before = (save / f"{jpg.stem}_pred.png").read_bytes()
    code, _, err = tools("infer", "--stage", "qat", "--model-inputs", f"img:{jpg}", "--save-path", save)
    assert_one_line_error(code, err, "infer", f"{jpg.stem}_pred.png", "--force")
    assert (save / f"{jpg.stem}_pred.png").read_bytes() == before


def test_infer_int_infer_paints_what_the_binary_predicts(compiled, tools, run_root):
    hbm, _ = compiled
    png = sorted((run_root / "raw" / "leftImg8bit" / "val").rglob("*.png"))[1]
    save = run_root / "infer_int"
    code, _, err = tools("infer", "--model-inputs", f"img:{png}", "--save-path", save)  # int_infer by default
    assert code == 0, err
    rgb = read_image(png)
    image = prepare_image(rgb, image_transforms(tools.cfg()))["img"]
    (logits,) = hbdk_sim.Executor(hbm).run([image.numpy()]).values()
    ids = torch.nn.functional.interpolate(torch.from_numpy(logits), size=rgb.shape[:2], mode="bilinear").argmax(1)
    color = np.array(Image.open(save / f"{png.stem}_color.png"))
    np.testing.assert_array_equal(color, np.asarray(PALETTE, np.uint8)[ids[0].numpy()])


@pytest.mark.parametrize("inputs, words", [("street.png", ["img:PATH"]), ("img:a.png,img:b/a.png", ["a"]),
                                           ("img:missing.png", ["missing.png", "not found"])])
def test_infer_bad_inputs_are_one_line(tools, run_root, inputs, words):
    code, _, err = tools("infer", "--model-inputs", inputs, "--save-path", run_root / "never")
    assert_one_line_error(code, err, "infer", *words)
    assert not (run_root / "never").exists()


# ---- the command line ---------------------------------------------------------------------------------------


def test_command_line_entry_point(run_root):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "calops.py"), "--config", str(CONFIG),
                           "--input-shape", "1,3,64,100", "--opts", f"work_dir={run_root / 'work'}",
                           f"image_size=[{H},{W}]"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "calops: error: --input-shape '1,3,64,100': H and W must be multiples of the network's stride 32"]


def test_torchrun_two_processes_train_the_segmentation_config(run_root, tmp_path):
    """tools/train.py under torchrun: 2 CPU processes (gloo) train one float epoch of the real
    config; rank 0 writes the checkpoints, the resolved config and the log."""
    work = tmp_path / "work"
    opts = [f"data_root={run_root / 'packed'}", f"work_dir={work}", f"image_size=[{H},{W}]", "batch_size=2",
            "val_batch_size=2", "num_workers=0", "float_epochs=1", "warmup_steps=1"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        str(REPO / "tools" / "train.py"), "--stage", "float", "--config", str(CONFIG),
                        "--opts", *opts], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
    assert summary["stage"] == "float" and summary["steps"] == 2  # 8 images, 2 ranks, batch 2
    state = torch.load(work / "float" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["global_step"] == 2
    assert "mIoU" in summary and (work / "float" / "config.py").exists()
    assert not any(k.startswith("module.") for k in state["model"])
