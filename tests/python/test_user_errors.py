"""Bad input never reaches the user as a Python traceback: a table of hostile inputs to the
`hbdk-sim` subcommands and to the tools, each of which must end in one line on stderr that names
the place, with exit status 2 (a usage or input error) or 1 (a model the march rejects).

The cases run in this process (cli.main, and each tool's `main` under run_tool), so an exception
that escapes fails the test with its traceback; a few also run as real subprocesses.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import hbdk_sim  # noqa: E402
from conftest import REPO, run_tool_here  # noqa: E402
from hbdk_sim import cli  # noqa: E402
from hbdk_sim.data import make_synthetic_cityscapes, pack_cityscapes  # noqa: E402
from hbdk_sim.engine.batch_processor import num_batches  # noqa: E402
from hbdk_sim.engine.trainer import CHECKPOINT_FORMAT, CHECKPOINT_VERSION  # noqa: E402
from hbdk_sim.errors import ConfigError, UserError  # noqa: E402
from hbdk_sim.registry import build_from_cfg  # noqa: E402

EXAMPLE = REPO / "python" / "hbdk_sim" / "examples" / "mobilenet_v1_tiny.hbir"
CONFIG = REPO / "models" / "segmentation" / "unet_mobilenetv1_cityscapes.py"
H, W = 64, 128


@dataclass(frozen=True)
class Case:
    """argv (with {name} placeholders for the files of the `files` fixture), the exit status, and
    words the one error line must hold."""

    argv: tuple[str, ...]
    code: int
    words: tuple[str, ...]

    def __str__(self) -> str:
        return " ".join(self.argv)


def _assert_one_line(code: int, err: str, case: Case, files: dict[str, Path]) -> None:
    # A progress bar redraws its line with carriage returns: what stays on screen follows the last one.
    lines = [line.rsplit("\r", 1)[-1] for line in err.split("\n")]
    lines = [line for line in lines if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"{case}: expected one line on stderr, got:\n{err}"
    assert code == case.code, f"{case}: exit {code}, expected {case.code}: {lines[0]}"
    assert "error" in lines[0], lines[0]
    for word in case.words:
        assert word.format(**{k: str(v) for k, v in files.items()}) in lines[0], f"{word!r} not in {lines[0]!r}"


# ---- the files the cases read ------------------------------------------------------------------------


def _npy_with_header(header: str, data: bytes = b"") -> bytes:
    total = 10 + len(header) + 1
    header = header + " " * ((-total) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + data


def _poisoned(text: str, constant: str, hex_value: str) -> str:
    """`text` with the first f32 of resource `constant` replaced (little-endian hex)."""
    out, n = re.subn(rf'({re.escape(constant)} = "0x)[0-9A-F]{{8}}', rf"\g<1>{hex_value}", text, count=1)
    assert n == 1
    return out


def _with_bad_metadata(hbm: bytes) -> bytes:
    """`hbm` with the first byte of its first metadata key made 0xFF (not UTF-8), the section CRC
    and the file checksum recomputed so that the damage reaches the metadata parser."""
    b = bytearray(hbm)
    table = struct.unpack_from("<I", b, 24)[0]
    metadata = 5  # graph, constants, program, io, perf, metadata, source_hash
    entry = table + 24 * metadata
    off, size = struct.unpack_from("<QQ", b, entry + 8)
    b[off + 8] = 0xFF  # entry count (u32), key length (u32), key bytes
    struct.pack_into("<I", b, entry + 4, zlib.crc32(b[off:off + size]))
    struct.pack_into("<I", b, len(b) - 4, zlib.crc32(b[:-4]))
    return bytes(b)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_inputs")
    text = EXAMPLE.read_text()
    f = {"root": root, "hbir": root / "m.hbir", "hbm": root / "m.hbm"}
    f["hbir"].write_text(text)
    hbdk_sim.compile(f["hbir"], "bpu", f["hbm"])
    f["nan_weight"] = root / "nan_weight.hbir"
    f["nan_weight"].write_text(_poisoned(text, "stem.weight", "0000C07F"))
    f["inf_bias"] = root / "inf_bias.hbir"
    f["inf_bias"].write_text(_poisoned(text, "stem.bn.bias", "0000807F"))
    f["nan_scale"] = root / "nan_scale.hbir"
    f["nan_scale"].write_text(text.replace("scale=0.031972505", "scale=nan", 1))
    f["not_utf8"] = root / "not_utf8.hbir"
    f["not_utf8"].write_bytes(text.encode().replace(b"mobilenet_v1_tiny", b"mobilenet\xff", 1))
    f["text_hbm"] = root / "text.hbm"
    f["text_hbm"].write_text(text)
    f["cut_hbm"] = root / "cut.hbm"
    f["cut_hbm"].write_bytes(f["hbm"].read_bytes()[:100])
    f["bad_meta_hbm"] = root / "bad_meta.hbm"
    f["bad_meta_hbm"].write_bytes(_with_bad_metadata(f["hbm"].read_bytes()))
    f["bad_march"] = root / "march.json"
    f["bad_march"].write_text('{"name": "x", "clock_mhz": ')
    np.save(root / "x.npy", np.zeros((1, 3, 64, 64), np.float32))
    f["x"] = root / "x.npy"
    f["short_header"] = root / "short_header.npy"
    f["short_header"].write_bytes(_npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 64")[:40])
    f["open_paren"] = root / "open_paren.npy"  # tokenize.TokenError inside numpy's header parser
    f["open_paren"].write_bytes(_npy_with_header('{"descr": "<f4", "fortran_order": False, "shape": (1, 3, 64, '))
    f["huge_shape"] = root / "huge_shape.npy"
    f["huge_shape"].write_bytes(_npy_with_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 100000, 100000), }", b"\0" * 64))
    f["objects"] = root / "objects.npy"
    np.save(f["objects"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    f["out"] = root / "never.npz"
    return f


# ---- hbdk-sim ------------------------------------------------------------------------------------------

DEVICE = "/dev/zero"
CLI_CASES = [
    # files of every kind given where a model is expected
    *[Case((cmd, DEVICE), 2, (DEVICE, "is a device")) for cmd in ("dump", "check", "compile", "perf", "info", "run")],
    Case(("opt", DEVICE, "--passes", "default"), 2, (DEVICE, "is a device")),
    Case(("check", "{root}/missing.hbir"), 2, ("missing.hbir", "no such file")),
    Case(("compile", "{root}"), 2, ("is a directory",)),
    Case(("dump", "{not_utf8}"), 2, ("not_utf8.hbir:1:",)),
    Case(("info", "{text_hbm}"), 2, ("text.hbm",)),
    Case(("run", "{cut_hbm}"), 2, ("cut.hbm",)),
    Case(("check", "{hbir}", "--march", DEVICE), 2, (DEVICE, "not a regular file")),
    Case(("check", "{hbir}", "--march", "bpux"), 2, ("unknown march 'bpux'", "did you mean 'bpu'")),
    Case(("compile", "{hbir}", "--march", "{bad_march}"), 2, ("march.json:1:",)),
    Case(("opt", "{hbir}", "--passes", "canonicalise"), 2, ("unknown pass", "canonicalize")),
    # weights and biases that are not finite are refused by the passes that fold or quantize them,
    # naming the constant and the element; dump shows the file as it is
    *[Case((cmd, "{nan_weight}"), 2, ("nan_weight.hbir:", "%stem.weight", "'stem.weight'", "holds NaN at [0, 0, 0, 0]",
                                      "must be finite")) for cmd in ("check", "compile", "perf")],
    *[Case((cmd, "{inf_bias}"), 2, ("inf_bias.hbir:", "'stem.bn.bias'", "holds +Inf at [0]")) for cmd in ("check", "compile")],
    Case(("info", "{bad_meta_hbm}"), 2, ("bad_meta.hbm", "metadata key is not UTF-8 (byte 0xFF)")),
    # quantization scales that are not finite are refused by the parser
    Case(("check", "{nan_scale}"), 2, ("nan_scale.hbir:4:", "must be finite")),
    # the executor's flags and inputs
    Case(("run", "{hbm}", "--threads", "-1", "-o", "{out}"), 2, ("--threads", "from 0 to 256", "'-1'")),
    Case(("run", "{hbm}", "--threads", "99999999999999999999", "-o", "{out}"), 2, ("--threads", "from 0 to 256")),
    Case(("run", "{hbm}", "--threads", "100000", "-o", "{out}"), 2, ("--threads", "from 0 to 256")),
    Case(("run", "{hbm}", "--threads", "two", "-o", "{out}"), 2, ("--threads",)),
    Case(("run", "{hbm}", "--input", "input={short_header}", "-o", "{out}"), 2, ("short_header.npy", "malformed")),
    Case(("run", "{hbm}", "--input", "input={open_paren}", "-o", "{out}"), 2, ("open_paren.npy", "malformed")),
    Case(("run", "{hbm}", "--input", "input={huge_shape}", "-o", "{out}"), 2,
         ("huge_shape.npy", "(1, 3, 100000, 100000)", "120,000,000,000 bytes", "holds 64")),
    Case(("run", "{hbm}", "--input", "input={objects}", "-o", "{out}"), 2, ("objects.npy",)),
    Case(("run", "{hbm}", "--input", f"input={DEVICE}", "-o", "{out}"), 2, (DEVICE, "not a regular file")),
    Case(("run", "{hbm}", "--input", "input={hbir}", "-o", "{out}"), 2, ("m.hbir", "not a .npy file")),
    Case(("run", "{hbm}", "--input", "nope={x}", "-o", "{out}"), 2, ("'nope'", "inputs: input")),
    Case(("run", "{hbm}", "--input", "input", "-o", "{out}"), 2, ("NAME=FILE.npy",)),
    Case(("run", "{hbm}", "--input", "input={x}", "-o", "{root}"), 2, ("exists", "--force")),
    Case(("frobnicate",), 2, ("invalid choice",)),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=str)
def test_cli_bad_input_is_one_line(case: Case, files, capsys):
    code = cli.main([a.format(**{k: str(v) for k, v in files.items()}) for a in case.argv])
    _assert_one_line(code, capsys.readouterr().err, case, files)
    assert not files["out"].exists()


def test_cli_writes_outputs_whatever_their_names(tmp_path):
    """np.savez(file, **outputs) would refuse an output named `file`; the .npz holds it."""
    text = ("module @m {\n  func @main(%x: tensor<1x4xf32, scale=0.1>) -> (tensor<1x4xf32, scale=0.1>, "
            "tensor<1x4xf32, scale=0.1>) {\n    %file = relu(%x) : tensor<1x4xf32, scale=0.1>\n"
            "    %allow_pickle = relu6(%x) : tensor<1x4xf32, scale=0.1>\n    return %file, %allow_pickle\n  }\n}\n")
    (tmp_path / "m.hbir").write_text(text)
    assert cli.main(["compile", str(tmp_path / "m.hbir"), "-o", str(tmp_path / "m.hbm")]) == 0
    x = np.array([[-1.0, 0.2, 0.5, 9.0]], np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    assert cli.main(["run", str(tmp_path / "m.hbm"), "--input", f"x={tmp_path / 'x.npy'}", "-o", str(out)]) == 0
    with np.load(out) as saved:
        assert sorted(saved.files) == ["allow_pickle", "file"]
        np.testing.assert_allclose(saved["file"], [[0.0, 0.2, 0.5, 9.0]], atol=0.05)
        np.testing.assert_allclose(saved["allow_pickle"], [[0.0, 0.2, 0.5, 6.0]], atol=0.05)


def test_the_console_script_prints_no_traceback(files):
    for argv in (["run", str(files["hbm"]), "--threads", "-1"], ["info", DEVICE]):
        proc = subprocess.run([sys.executable, "-m", "hbdk_sim.cli", *argv], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# ---- the tools -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> dict[str, Path]:
    """A tiny packed synthetic Cityscapes, and checkpoints of every wrong kind."""
    from hbdk_sim import quantization as Q
    from hbdk_sim.nn import UNetMobileNetV1

    root = tmp_path_factory.mktemp("bad_tool_inputs")
    make_synthetic_cityscapes(root / "raw", train=4, val=2, height=H, width=W, seed=0)
    for split in ("train", "val"):
        pack_cityscapes(root / "raw", root / "packed", split, image_codec="raw")
    t = {"root": root, "data": root / "packed"}

    def segmentor(**kw) -> torch.nn.Module:
        from hbdk_sim.engine.stages import load_config
        from hbdk_sim.registry import MODELS, build_from_cfg

        cfg = load_config(CONFIG, [f"image_size=[{H},{W}]", *[f"{k}={v}" for k, v in kw.items()]])
        return build_from_cfg(cfg["model"], MODELS)

    torch.manual_seed(0)
    float_state = segmentor().state_dict()
    checkpoints = {
        "float": {"model": float_state},
        "empty": {},
        "list": [1, 2, 3],
        "five_classes": {"model": segmentor(num_classes=5).state_dict()},
        "nan": {"model": {k: (v.fill_(float("nan")) if k.endswith("stem.conv.weight") else v)
                          for k, v in segmentor().state_dict().items()}},
        "qat_resume": {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "epoch": 1, "global_step": 1,
                       "model": Q.Float2QAT()(segmentor()).state_dict()},
    }
    assert any(k.endswith("stem.conv.weight") for k in float_state)
    for name, state in checkpoints.items():
        t[name] = root / f"{name}.pt"
        torch.save(state, t[name])
    # a database whose pages are damaged after packing
    shutil.copytree(root / "packed" / "val_lmdb", root / "damaged" / "val_lmdb")
    data = bytearray((root / "damaged" / "val_lmdb" / "data.mdb").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = bytes(b ^ 0x5A for b in data[middle:middle + 4000])
    (root / "damaged" / "val_lmdb" / "data.mdb").write_bytes(bytes(data))
    t["damaged"] = root / "damaged"
    t["typo_config"] = root / "typo.py"
    t["typo_config"].write_text(CONFIG.read_text().replace("\nfloat_trainer = ", "\nfloat_trainr = ", 1))
    t["broken_config"] = root / "broken.py"
    t["broken_config"].write_text("model = dict(\n")
    del UNetMobileNetV1
    return t


def _opts(task: dict[str, Path], work: str = "work") -> list[str]:
    return [f"data_root={task['data']}", f"work_dir={task['root'] / work}", f"image_size=[{H},{W}]",
            "batch_size=2", "val_batch_size=2", "num_workers=0", "float_epochs=1", "warmup_steps=0"]


TOOL_CASES = [
    # sizes that cannot fit in memory are refused before anything of that size is allocated
    ("calops", ("--input-shape", "1,3,100000,100000"), (), 2, ("--input-shape [1, 3, 100000, 100000]", "GB")),
    ("model_checker", (), ("image_size=[100000,100000]",), 2, ("deploy_input_shape [1, 3, 100000, 100000]",)),
    ("compile_perf", (), ("image_size=[100000,100000]",), 2, ("activations take",)),
    ("train", ("--stage", "float"), ("image_size=[100000,100000]",), 2, ("a batch of train_data_loader",
                                                                          "[2, 3, 100000, 100000]", "GB")),
    ("predict", ("--stage", "float"), ("image_size=[100,100]",), 2, ("[2, 3, 100, 100]", "multiples", "stride 32")),
    ("model_checker", (), ("image_size=[100000]",), 2, ("deploy_input_shape", "4 positive ints")),
    # config mistakes
    ("model_checker", (), ("float_trainr.num_epochs=3",), 2, ("'float_trainr'", "float_trainer")),
    ("model_checker", ("--config", "{typo_config}"), (), 2, ("typo.py:", "'float_trainr'", "'float_trainer'")),
    ("train", ("--stage", "float", "--config", "{broken_config}"), (), 2, ("broken.py:1", "syntax error")),
    ("train", ("--stage", "float", "--config", "{root}/absent.py"), (), 2, ("absent.py does not exist",)),
    ("train", ("--stage", "floaty"), (), 2, ("--stage", "invalid choice")),
    # checkpoints that do not fit, named with what they look like and the first mismatch
    ("predict", ("--stage", "float", "--ckpt", "{empty}"), (), 2, ("empty.pt", "holds no weights")),
    ("predict", ("--stage", "float", "--ckpt", "{list}"), (), 2, ("list.pt", "found a list")),
    ("predict", ("--stage", "float", "--ckpt", "{five_classes}"), (), 2,
     ("five_classes.pt", "does not fit the float Segmentor", "[5, ", "[19, ")),
    ("predict", ("--stage", "float", "--ckpt", "{qat_resume}"), (), 2,
     ("qat_resume.pt", "calibration/QAT checkpoint", "the stage it came from")),
    ("predict", ("--stage", "float", "--ckpt", DEVICE), (), 2, (DEVICE, "not a regular file")),
    ("export_hbir", ("--stage", "float", "--ckpt", "{nan}", "--out", "{root}/nan.hbir"), (), 2,
     ("stem.conv.weight", "nan", "corrupt")),
    ("model_checker", ("--random-init", "--ckpt", "{empty}"), (), 2, ("exclude each other",)),
    # resuming from a last.pt that is not a training checkpoint of this stage
    ("train", ("--stage", "float"), ("RESUME=list",), 2, ("last.pt", "not an hbdk_sim checkpoint", "found a list")),
    ("train", ("--stage", "float"), ("RESUME=qat_resume",), 2,
     ("last.pt (model)", "does not fit the float Segmentor", "calibration/QAT checkpoint")),
    # a damaged database, read in this process and in DataLoader workers (whose traceback text is dropped)
    ("predict", ("--stage", "float", "--ckpt", "{nan}"), ("data_root={damaged}", "num_workers=0"), 2,
     ("damaged/val_lmdb", "re-pack")),
    ("predict", ("--stage", "float", "--ckpt", "{nan}"), ("data_root={damaged}", "num_workers=2", "val_batch_size=1"),
     2, ("damaged/val_lmdb", "re-pack")),
    # the dataset tools
    ("cityscapes_packer", ("--src-data-dir", "{root}/nowhere", "--target-data-dir", "{root}/p", "--split-name",
                           "train"), None, 2, ("nowhere",)),
    ("cityscapes_packer", ("--src-data-dir", "{root}", "--target-data-dir", "{root}/p", "--split-name", "train",
                           "--num-workers", "-3"), None, 2, ("--num-workers", "from 0 to 256")),
    ("make_synthetic_cityscapes", ("--out", "{root}/s", "--height", "100000"), None, 2, ("--height", "16 to 4096")),
]


@pytest.mark.parametrize("tool, argv, opts, code, words", TOOL_CASES,
                         ids=[f"{c[0]} {' '.join(c[1])} {' '.join(c[2] or ())}".strip() for c in TOOL_CASES])
def test_tool_bad_input_is_one_line(tool, argv, opts, code, words, task, tmp_path):
    names = {k: str(v) for k, v in task.items()}
    argv = [a.format(**names) for a in argv]
    if opts is not None:  # a config tool: the config (unless the case names one) and the small-run overrides
        resume = [o.partition("=")[2] for o in opts if o.startswith("RESUME=")]
        opts = [o.format(**names) for o in opts if not o.startswith("RESUME=")]
        work = tmp_path.name
        if resume:  # a last.pt where the float stage resumes from
            (task["root"] / work / "float").mkdir(parents=True)
            (task["root"] / work / "float" / "last.pt").write_bytes(task[resume[0]].read_bytes())
        if "--config" not in argv:
            argv += ["--config", str(CONFIG)]
        argv += ["--opts", *_opts(task, work), *opts]
    status, _, err = run_tool_here(tool, argv)
    _assert_one_line(status, err, Case(tuple(argv), code, words), task)


# ---- a bug is not a user error -------------------------------------------------------------------------


def test_a_key_error_in_a_forward_is_a_bug_with_its_traceback(task, tmp_path, monkeypatch):
    """A KeyError raised inside the model's forward is hbdk-sim's bug (or the model's), not a mistake
    the user can fix from one line: run_tool lets it through with its traceback instead of printing
    `predict: error: ...` and exiting 2."""
    from hbdk_sim.nn.structures.segmentation import Segmentor

    def forward(self, batch):
        return {"logits": batch["no such key"]}

    monkeypatch.setattr(Segmentor, "forward", forward)
    argv = ["--stage", "float", "--ckpt", str(task["float"]), "--config", str(CONFIG),
            "--opts", *_opts(task, tmp_path.name)]
    with pytest.raises(KeyError, match="no such key"):
        run_tool_here("predict", argv)


def test_a_bug_exits_with_its_traceback_not_with_status_2():
    code = ("from hbdk_sim.engine.toolkit import run_tool\n"
            "def main():\n"
            "    return {}['num_classes']  # an internal lookup gone wrong\n"
            "run_tool('predict', main)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" in proc.stderr and "KeyError: 'num_classes'" in proc.stderr
    assert "predict: error" not in proc.stderr


def test_building_from_a_config_blames_the_config_only_for_its_arguments():
    class Resize:
        def __init__(self, size: int) -> None:
            self.size = len(size)  # a bug: TypeError inside the constructor

    with pytest.raises(TypeError, match="has no len") as raised:
        build_from_cfg(dict(type=Resize, size=3))
    assert not isinstance(raised.value, UserError)
    with pytest.raises(ConfigError, match="unexpected keyword argument 'sise'; did you mean 'size'"):
        build_from_cfg(dict(type=Resize, sise=3))
    with pytest.raises(ConfigError, match="building Resize: missing a required argument: 'size'"):
        build_from_cfg(dict(type=Resize))


def test_a_len_that_raises_is_a_bug_not_a_loader_without_length():
    class Loader:
        def __iter__(self):
            return iter(())

        def __len__(self):
            raise TypeError("a bug in __len__")

    assert num_batches(iter([1, 2])) is None and num_batches(iter([1, 2]), 5) == 5
    assert num_batches([1, 2, 3]) == 3 and num_batches([1, 2, 3], 2) == 2
    with pytest.raises(TypeError, match="a bug in __len__"):
        num_batches(Loader())
