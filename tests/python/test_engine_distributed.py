"""Data-parallel training on CPU: `torchrun --standalone --nproc_per_node=2` runs the toy training
with gloo; both ranks end with identical weights, equal (to float rounding) to one process training
on the union of the two ranks' batches; the validation metric is summed over the ranks; only rank 0
writes checkpoints and logs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import engine_toy
import pytest
import torch
import torch.distributed as dist
from hbdk_sim.engine import ShardSampler, distributed_session, init_distributed, reduce_metric
from hbdk_sim.engine.distributed import wrap_model

TOY = Path(engine_toy.__file__)
ARGS = ["--epochs", "3", "--dropout", "0", "--noise", "0"]


def test_torchrun_two_ranks_on_cpu_with_gloo(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TOY.parent), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(TOY),
           "--work-dir", str(tmp_path / "ddp"), "--batch-size", "8", "--out", str(tmp_path / "rankRANK.pt"), *ARGS]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for part in ("model", "ema"):
        for name, value in ranks[0][part].items():
            assert torch.equal(value, ranks[1][part][name]), f"{part}.{name} differs between the ranks"
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == 12  # 64 samples / 2 ranks / batch 8, 3 epochs
    for r in ranks:
        losses = r["losses"]
        assert torch.isfinite(losses).all() and losses[-4:].mean() < 0.5 * losses[:4].mean()
        metrics = json.loads(r["metrics"])
        assert metrics["count"] == 20  # 10 validation samples on each rank, summed
    assert json.loads(ranks[0]["metrics"]) == json.loads(ranks[1]["metrics"])

    # One process on batches of 16 in order sees the same samples per step as the two ranks together.
    engine_toy.main(["--work-dir", str(tmp_path / "single"), "--batch-size", "16", "--no-shuffle",
                     "--out", str(tmp_path / "single.pt"), *ARGS])
    single = torch.load(tmp_path / "single.pt", weights_only=True)
    for name, value in single["model"].items():
        torch.testing.assert_close(ranks[0]["model"][name], value, rtol=1e-5, atol=1e-6)
    assert json.loads(single["metrics"])["mse"] == pytest.approx(json.loads(ranks[0]["metrics"])["mse"], rel=1e-4)

    ckpt = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2 and not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
    assert not any(k.startswith("module.") for k in ckpt["model"])
    log = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "start" for r in log) == 1 and log[0]["world_size"] == 2


def test_shard_sampler_covers_every_sample_once():
    shards = [list(ShardSampler(range(11), rank=r, world_size=3)) for r in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert [len(ShardSampler(range(11), rank=r, world_size=3)) for r in range(3)] == [4, 4, 3]


def test_reduce_metric_is_a_no_op_in_one_process_and_checks_sum_states():
    assert not dist.is_initialized()
    metric = engine_toy.MSEMetric()
    metric.update(torch.ones(3), {"y": torch.zeros(3)})
    reduce_metric(metric)
    assert metric.compute() == {"mse": 1.0, "count": 3}


def test_single_process_session_and_bad_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed_session() as info:
        assert (info.rank, info.world_size, info.is_main) == (0, 1, True)
        assert info.device == torch.device("cpu") or torch.cuda.is_available()
        model = torch.nn.Linear(2, 2)
        assert wrap_model(model, info.device) is model
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not an integer"):
        init_distributed()
