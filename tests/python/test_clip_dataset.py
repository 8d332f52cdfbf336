"""ClipDataset: clips of one sequence whose length follows the epoch, frames `interval` (or a
random 1..interval) apart, fitted inside their sequence; the clip transforms' one random draw per
clip; the trainer's set_epoch; a database without sequence lengths is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hbdk_sim.data.datasets.clips import ClipDataset
from hbdk_sim.data.packer import pack_lmdb
from hbdk_sim.data.sample import encode_array
from hbdk_sim.data.transforms import RandomFlip
from hbdk_sim.errors import DatasetError, UsageError

LENGTHS = [("A", 30), ("B", 7), ("C", 1)]  # frames per sequence, stored in this order
W = 16


def _encode(item: tuple[str, int]) -> dict:
    sequence, frame = item
    img = np.full((8, W, 3), frame, np.uint8)
    img[:, : W // 2, 1] = 255  # the left half marked: a flip moves it
    return {"img": img.tobytes(), "img_format": "raw", "shape": [8, W], "sequence": sequence, "frame": frame,
            "gt_boxes": encode_array("gt_boxes", np.array([[1.0, 1.0, 5.0, 6.0]], np.float32)),
            "gt_track_ids": encode_array("gt_track_ids", np.array([frame], np.int64))}


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "train_lmdb"
    items = [(name, f) for name, n in LENGTHS for f in range(1, n + 1)]
    pack_lmdb(items, _encode, path, name="toy", split="train", source_names=[f"{s}/{f}" for s, f in items],
              extra_meta={"sequence_lengths": [[name, n] for name, n in LENGTHS]})
    return path


def _where(clip) -> list[tuple[str, int]]:
    return [(s["sequence"], int(s["frame"])) for s in clip]


def test_clip_lengths_follow_the_epoch_and_stay_in_their_sequence(frames):
    data = ClipDataset(frames, lengths=[2, 3, 5], length_epochs=[2, 4], interval=4, random_interval=False)
    assert len(data) == 38
    for epoch, length in ((0, 2), (1, 2), (2, 3), (3, 3), (4, 5), (50, 5)):
        data.set_epoch(epoch)
        assert data.clip_length == length
        for i in range(len(data)):
            clip = _where(data[i])
            assert len(clip) == length and len({s for s, _ in clip}) == 1
    data.set_epoch(4)  # length 5, step 4: a span of 16 frames
    assert _where(data[0]) == [("A", f) for f in (1, 5, 9, 13, 17)]
    assert _where(data[20]) == [("A", f) for f in (14, 18, 22, 26, 30)]  # moved back to end at A's last frame
    # B has 7 frames: the step shrinks to 1 to fit 5 frames, and a late start moves back
    assert _where(data[30]) == [("B", f) for f in (1, 2, 3, 4, 5)]
    assert _where(data[31]) == [("B", f) for f in (2, 3, 4, 5, 6)]
    assert _where(data[36]) == [("B", f) for f in (3, 4, 5, 6, 7)]
    assert _where(data[37]) == [("C", 1)] * 5  # a one-frame sequence repeats its frame


def test_random_interval_draws_every_step(frames):
    data = ClipDataset(frames, lengths=[3], length_epochs=[], interval=5, generator=torch.Generator().manual_seed(0))
    steps = set()
    for _ in range(200):
        (s0, f0), (_, f1), (_, f2) = _where(data[3])
        assert s0 == "A" and f1 - f0 == f2 - f1
        steps.add(f1 - f0)
    assert steps == {1, 2, 3, 4, 5}


def test_one_random_draw_per_clip(frames):
    data = ClipDataset(frames, transforms=[RandomFlip(p=0.5)], lengths=[4], length_epochs=[], interval=2,
                       random_interval=False)
    flips = []
    for i in range(20):
        clip = data[i]
        marked_left = [bool(s["img"][0, 0, 1] == 255) for s in clip]
        assert len(set(marked_left)) == 1  # every frame flipped, or none
        flips.append(marked_left[0])
        boxes = {tuple(s["gt_boxes"][0].tolist()) for s in clip}
        assert len(boxes) == 1
    assert set(flips) == {True, False}


def test_bad_settings_and_databases(frames, tmp_path):
    with pytest.raises(UsageError, match="length_epochs must hold 1"):
        ClipDataset(frames, lengths=[2, 3], length_epochs=[])
    with pytest.raises(UsageError, match="interval must be"):
        ClipDataset(frames, interval=0)
    plain = tmp_path / "plain_lmdb"
    pack_lmdb([("A", 1)], _encode, plain, name="toy", split="train", source_names=["A/1"])
    with pytest.raises(DatasetError, match="no sequence_lengths"):
        ClipDataset(plain)


def test_trainer_sets_the_epoch_of_the_dataset(frames):
    from hbdk_sim.engine import Callback, Trainer
    from torch.utils.data import DataLoader

    data = ClipDataset(frames, lengths=[1, 2], length_epochs=[1], interval=1, random_interval=False)
    seen = []

    class Record(Callback):
        def on_step_begin(self, trainer, batch):
            seen.append((trainer.epoch, len(batch)))

    model = torch.nn.Linear(1, 1)
    model.forward = lambda batch: {"loss": model.weight.sum() * 0}
    trainer = Trainer(model, DataLoader(data, batch_size=None, collate_fn=lambda clip: clip), num_epochs=2,
                      steps_per_epoch=2, device="cpu", optimizer=dict(type="SGD", lr=0.1), callbacks=[Record()])
    trainer.fit()
    assert seen == [(0, 1), (0, 1), (1, 2), (1, 2)]
