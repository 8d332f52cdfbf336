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
from hbdk_sim.engine import SequenceShardSampler, ShardSampler, distributed_session, init_distributed, reduce_metric
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


def test_sequence_shard_sampler_gives_each_rank_whole_sequences_in_order():
    lengths = [5, 2, 7, 3, 3]  # frames 0-4, 5-6, 7-13, 14-16, 17-19
    shards = [list(SequenceShardSampler(lengths, rank=r, world_size=2)) for r in range(2)]
    # longest first to the least loaded: 7 -> rank 0, 5 -> 1, 3 -> 1 (5 < 7), 3 -> 0 (7 < 8), 2 -> 1 (8 < 10)
    assert shards == [[*range(7, 14), 17, 18, 19], [*range(0, 7), 14, 15, 16]]
    assert [len(SequenceShardSampler(lengths, rank=r, world_size=2)) for r in range(2)] == [10, 10]
    assert list(SequenceShardSampler(lengths, rank=0, world_size=1)) == list(range(20))
    assert list(SequenceShardSampler([4], rank=1, world_size=2)) == []  # more ranks than sequences


def _frame_record(i: int) -> dict:
    return {"x": i}


def test_evaluation_on_several_ranks_splits_a_video_database_by_sequence(tmp_path, monkeypatch):
    from hbdk_sim.data.packer import pack_lmdb
    from hbdk_sim.engine import distributed as distributed_module
    from hbdk_sim.engine.stages import build_data_loader

    path = tmp_path / "frames_lmdb"
    pack_lmdb(range(4), _frame_record, path, name="toy", split="test",
              extra_meta={"sequence_lengths": [["A", 3], ["B", 1]]})
    monkeypatch.setattr(distributed_module, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed_module, "get_rank", lambda: 1)
    monkeypatch.setattr(distributed_module, "get_world_size", lambda: 2)
    cfg = {"loader": {"dataset": {"type": "LmdbDataset", "path": str(path)}, "batch_size": 1, "shuffle": False}}
    loader = build_data_loader(cfg, "loader", train=False)
    assert isinstance(loader.sampler, SequenceShardSampler) and list(loader.sampler) == [3]
    pack_lmdb(range(4), _frame_record, tmp_path / "images_lmdb", name="toy", split="test")  # not a video
    cfg["loader"]["dataset"]["path"] = str(tmp_path / "images_lmdb")
    sampler = build_data_loader(cfg, "loader", train=False).sampler
    assert isinstance(sampler, ShardSampler) and list(sampler) == [1, 3]
