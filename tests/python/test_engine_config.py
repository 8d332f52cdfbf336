"""Config files: loading, --opts overrides, the resolved-config dump, and the messages for bad files."""

import copy
import json
import textwrap

import pytest
import torch
from hbdk_sim.engine import Config, ConfigError, apply_overrides, parse_value

CONFIG = """
import math
import torch
from torch import nn

_private = 3
image_size = (1024, 2048)
work_dir = "runs/demo"
data = dict(root="/data/cityscapes", batch_size=4, scales=[1, 2, 4])

def helper(x):
    return x

model = dict(type=nn.Conv2d, in_channels=3, out_channels=8, kernel_size=3)
float_trainer = dict(
    type="Trainer",
    num_epochs=300,
    optimizer=dict(type="SGD", lr=0.1 * math.sqrt(4), momentum=0.9),
    callbacks=[dict(type="Checkpoint", dir=work_dir + "/float"), dict(type="Logger", interval=10)],
)
"""


def write(tmp_path, text, name="cfg.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_fromfile_keeps_public_settings_only(tmp_path):
    cfg = Config.fromfile(write(tmp_path, CONFIG))
    assert list(cfg) == ["image_size", "work_dir", "data", "model", "float_trainer"]
    assert cfg.image_size == (1024, 2048)
    assert cfg.float_trainer.optimizer.lr == 0.2
    assert cfg["float_trainer"]["callbacks"][0].dir == "runs/demo/float"
    assert cfg.model.type is torch.nn.Conv2d
    assert isinstance(cfg.data, Config) and isinstance(cfg.data, dict)
    with pytest.raises(AttributeError, match="closest: data"):
        _ = cfg.date


def test_config_imports_a_sibling_file(tmp_path):
    write(tmp_path, "batch_size = 16\n", name="base_settings.py")
    cfg = Config.fromfile(write(tmp_path, "from base_settings import batch_size\ndata = dict(bs=batch_size * 2)\n"))
    assert cfg.data.bs == 32 and cfg.batch_size == 16


def test_overrides_dotted_paths_lists_and_literals(tmp_path):
    cfg = Config.fromfile(write(tmp_path, CONFIG))
    apply_overrides(cfg, ["data.root=/x/y", "float_trainer.num_epochs=3", "image_size=[64,128]",
                          "data.scales.1=8", "float_trainer.callbacks.1.interval=5", "float_trainer.optimizer.type=AdamW",
                          "work_dir='quoted string'", "data.batch_size=None"])
    assert cfg.data.root == "/x/y"
    assert cfg.float_trainer.num_epochs == 3
    assert cfg.image_size == [64, 128]
    assert cfg.data.scales == [1, 8, 4]
    assert cfg.float_trainer.callbacks[1]["interval"] == 5
    assert cfg.float_trainer.optimizer.type == "AdamW"
    assert cfg.work_dir == "quoted string"
    assert cfg.data.batch_size is None
    assert parse_value("1e-3") == 1e-3 and parse_value("True") is True and parse_value("a,b") == "a,b"
    apply_overrides(cfg, ["data={'root': '/z'}"])
    assert cfg.data.root == "/z"


@pytest.mark.parametrize("override, message", [
    ("float_trainer.num_epoch=3", "float_trainer has no key 'num_epoch'; closest: num_epochs"),
    ("dta.root=/x", "config has no key 'dta'; closest: data"),
    ("data.scales.3=1", "data.scales has no index '3'; it is a list of 3 items"),
    ("data.root.x=1", "data.root is a str, not a dict or list"),
    ("image_size.0=1", "image_size is a tuple"),
    ("num_epochs", "is not key=value"),
])
def test_override_errors_name_the_place(tmp_path, override, message):
    cfg = Config.fromfile(write(tmp_path, CONFIG))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_overrides(cfg, [override])


def test_dump_round_trips_and_names_classes(tmp_path):
    cfg = Config.fromfile(write(tmp_path, CONFIG))
    (tmp_path / "run").mkdir()
    out = cfg.dump(tmp_path / "run" / "config.py")
    text = out.read_text()
    assert text.startswith("# Resolved config from")
    assert "'type': 'torch.nn.modules.conv.Conv2d'" in text
    back = Config.fromfile(out)
    expected = cfg.to_dict()
    expected["model"]["type"] = "torch.nn.modules.conv.Conv2d"
    assert back.to_dict() == expected
    with pytest.raises(FileExistsError, match="overwrite=True"):
        cfg.dump(out)
    cfg.dump(tmp_path / "run" / "config.json")
    loaded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert loaded["float_trainer"]["optimizer"] == {"type": "SGD", "lr": 0.2, "momentum": 0.9}
    assert loaded["image_size"] == [1024, 2048]


def test_deepcopy_keeps_attribute_access(tmp_path):
    cfg = Config.fromfile(write(tmp_path, CONFIG))
    dup = copy.deepcopy(cfg)
    dup.float_trainer.num_epochs = 1
    assert cfg.float_trainer.num_epochs == 300 and dup.float_trainer.num_epochs == 1
    assert isinstance(dup.data, Config)


def test_bad_files_get_one_message_naming_the_file(tmp_path):
    missing = tmp_path / "nope.py"
    with pytest.raises(ConfigError, match=f"config file {missing} does not exist"):
        Config.fromfile(missing)
    bad = write(tmp_path, "a = 1\nb = dict(x=1,\nc = 3 3\n", name="bad_syntax.py")
    with pytest.raises(ConfigError, match=rf"{bad}:\d+: syntax error in config file"):
        Config.fromfile(bad)
    raising = write(tmp_path, "a = 1\nb = dict(x=undefined_name)\n", name="raises.py")
    with pytest.raises(ConfigError, match=rf"{raising}:2: running the config file raised NameError: "
                                          "name 'undefined_name' is not defined"):
        Config.fromfile(raising)


def test_top_level_overrides_apply_before_the_file_derives_from_them(tmp_path):
    path = tmp_path / "cfg.py"
    path.write_text("image_size = [1024, 2048]\nepochs: int = 3\n"
                    "data = dict(size=image_size, crops=[[s // 2 for s in image_size] for _ in range(2)])\n"
                    "trainer = dict(num_epochs=epochs)\n")
    cfg = Config.fromfile(path, ["image_size=[64,128]", "trainer.num_epochs=7", "epochs=5"])
    assert cfg.data.size == [64, 128] and cfg.data.crops == [[32, 64], [32, 64]]
    assert cfg.trainer.num_epochs == 7 and cfg.epochs == 5
    with pytest.raises(ConfigError, match="assigns no top-level 'image_sze'; closest: image_size"):
        Config.fromfile(path, ["image_sze=[1]"])


def test_the_shared_stage_recipe_follows_top_level_overrides():
    """The segmentation config builds its stages with engine.recipes: an override of a top-level
    number flows into every stage built from it, and each stage reads the previous one's checkpoint."""
    from conftest import REPO

    path = REPO / "models" / "segmentation" / "unet_mobilenetv1_cityscapes.py"
    cfg = Config.fromfile(path, ["float_epochs=3", "work_dir=/tmp/w", "image_size=[64,128]"])
    assert cfg.float_trainer.num_epochs == 3
    assert cfg.qat_trainer.model_convert_pipeline[0].path == "/tmp/w/float/best.pt"
    assert cfg.qat_trainer.model_convert_pipeline[2].path == "/tmp/w/calibration/last.pt"
    assert cfg.int_infer_predictor.model_convert_pipeline[2].input_shape == [1, 3, 64, 128]
    assert "_stages" not in cfg and "quantization_stages" not in cfg
