"""Resume after a kill continues where it stopped: a training process that dies abruptly (os._exit)
in the middle of epoch 2 is resumed from its last checkpoint, and the final weights, EMA weights and
per-step losses equal an uninterrupted run's bit for bit (same seed, CPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import engine_toy
import pytest
import torch

TOY = Path(engine_toy.__file__)


@pytest.fixture
def one_thread():
    # The killed run is a separate process with one thread; the in-process runs use the same kernels.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_resume_after_kill_is_bit_exact(tmp_path, one_thread):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TOY.parent), os.environ.get("PYTHONPATH", "")]))
    # 8 steps per epoch: step 13 is in the middle of epoch 2, after epoch 1's checkpoint.
    killed = subprocess.Popen([sys.executable, str(TOY), "--work-dir", str(tmp_path / "killed"), "--epochs", "3",
                               "--kill-at-step", "13", "--out", str(tmp_path / "never.pt")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    engine_toy.main(["--work-dir", str(tmp_path / "full"), "--epochs", "3", "--out", str(tmp_path / "full.pt")])
    out, _ = killed.communicate(timeout=120)
    assert killed.returncode == 3, out
    assert not (tmp_path / "never.pt").exists()
    saved = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)
    assert saved["epoch"] == 1 and saved["global_step"] == 8

    with pytest.raises(FileExistsError, match="pass resume=True"):
        engine_toy.main(["--work-dir", str(tmp_path / "killed"), "--epochs", "3", "--out", str(tmp_path / "x.pt")])
    engine_toy.main(["--work-dir", str(tmp_path / "killed"), "--epochs", "3", "--resume",
                     "--out", str(tmp_path / "resumed.pt")])

    full = torch.load(tmp_path / "full.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert full["global_step"] == resumed["global_step"] == 24
    for part in ("model", "ema"):
        assert full[part].keys() == resumed[part].keys()
        for name, value in full[part].items():
            assert torch.equal(value, resumed[part][name]), f"{part}.{name} differs after resume"
    # The resumed process ran exactly epochs 2 and 3, with the same losses as the uninterrupted run.
    assert len(resumed["losses"]) == 16
    assert torch.equal(resumed["losses"], full["losses"][8:])
    assert json.loads(resumed["metrics"]) == json.loads(full["metrics"])
    first, last = full["losses"][:8].mean(), full["losses"][-8:].mean()
    assert torch.isfinite(full["losses"]).all() and last < first

    log = [json.loads(line) for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    starts = [r for r in log if r["event"] == "start"]
    assert [(r["epoch"], r["step"]) for r in starts] == [(0, 0), (1, 8)]
    assert [r["epoch"] for r in log if r["event"] == "epoch"] == [1, 2, 3]
    for name in ("last.pt", "best.pt", "config.py", "log.jsonl"):
        assert (tmp_path / "killed" / name).is_file()
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == ["best.pt", "config.py", "last.pt", "log.jsonl"]
