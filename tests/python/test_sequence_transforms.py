"""Clip transforms: Seq gives every frame of a clip the same random draw (each frame's output equals
the frame transformed alone from the same random state), RandomChoice draws its branches with
their probabilities, ResizeShortSide's sizes and box factors, RandomSizeCrop's window and boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hbdk_sim.data.transforms import (
    Compose,
    RandomChoice,
    RandomFlip,
    RandomSizeCrop,
    ResizeShortSide,
    Seq,
    ToTensor,
)
from hbdk_sim.errors import UsageError, UsageTypeError


def _frame(seed: int, h: int = 90, w: int = 160) -> dict:
    rng = np.random.default_rng(seed)
    boxes = np.array([[10, 10, 50, 80], [100, 20, 150, 60], [70, 40, 90, 88]], np.float32) + rng.uniform(-5, 5, (3, 4))
    return {"img": rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "gt_boxes": boxes.astype(np.float32),
            "gt_classes": np.zeros(3, np.int64), "gt_track_ids": np.array([7, 8, 9], np.int64)}


def _chain() -> list:
    return [
        RandomFlip(p=0.5),
        RandomChoice([[ResizeShortSide([48, 64, 80], max_long=150, divisor=2)],
                      [ResizeShortSide([60, 70]), RandomSizeCrop(40, 70),
                       ResizeShortSide([48, 64, 80], max_long=150, divisor=2)]]),
        ToTensor(),
    ]


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y), k
        else:
            np.testing.assert_array_equal(x, y, err_msg=k)


def test_every_frame_gets_the_clip_draw():
    clip = [_frame(i) for i in range(4)]
    transform = Seq(_chain())
    shapes, flipped = set(), set()
    for seed in range(40):
        torch.manual_seed(seed)
        out = transform(clip)
        assert len(out) == len(clip)
        for frame, got in zip(clip, out, strict=True):
            torch.manual_seed(seed)  # the frame alone, from the clip's random state
            _assert_same(got, Compose(_chain())(frame))
        shapes.add(tuple(out[0]["img"].shape))
        assert len({tuple(o["img"].shape) for o in out}) == 1
        flipped.add(bool(out[0]["gt_boxes"][0, 0] > 80))  # box 0 starts on the left unless flipped
    assert len(shapes) > 3 and flipped == {True, False}  # the draw changes from clip to clip


def test_own_generators_are_rewound_too():
    g = torch.Generator().manual_seed(5)
    transform = Seq([RandomFlip(p=0.5, generator=g), RandomSizeCrop(30, 60, generator=g)])
    for _ in range(10):
        out = transform([_frame(1), _frame(1)])
        _assert_same(out[0], out[1])


def test_random_choice_draws_with_its_probabilities():
    picks = []
    choice = RandomChoice([[lambda s: {**s, "k": 0}], [lambda s: {**s, "k": 1}]], p=[1, 3],
                          generator=torch.Generator().manual_seed(0))
    for _ in range(4000):
        picks.append(choice({})["k"])
    assert abs(np.mean(picks) - 0.75) < 0.03
    with pytest.raises(UsageError, match="p must hold 2"):
        RandomChoice([[], []], p=[1])


def test_resize_short_side_sizes_and_boxes():
    frame = _frame(0, 100, 150)
    out = ResizeShortSide(33, divisor=4)(frame)  # scale 0.33: 33 x 49.5 -> 32 x 48 (multiples of 4)
    assert out["img"].shape == (32, 48, 3)
    np.testing.assert_allclose(out["scale_factor"], [48 / 150, 32 / 100])
    np.testing.assert_allclose(out["gt_boxes"][:, 0::2], np.clip(frame["gt_boxes"][:, 0::2] * 48 / 150, 0, 48),
                               rtol=1e-6)
    np.testing.assert_allclose(out["gt_boxes"][:, 1::2], np.clip(frame["gt_boxes"][:, 1::2] * 32 / 100, 0, 32),
                               rtol=1e-6)
    assert ResizeShortSide(80, max_long=90)(frame)["img"].shape == (60, 90, 3)  # the long side caps it
    assert ResizeShortSide([50])(_frame(0, 200, 100))["img"].shape == (100, 50, 3)
    with pytest.raises(UsageError, match="max_long 40 is below"):
        ResizeShortSide([50], max_long=40)
    with pytest.raises(UsageTypeError, match="before ToTensor"):
        ResizeShortSide(50)(ToTensor()(_frame(0)))


def test_random_size_crop_window_and_boxes():
    h, w = 90, 160
    frame = _frame(3, h, w)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    frame["img"] = np.stack([rows, cols, rows + cols], axis=-1).astype(np.uint8)  # a pixel names its place
    crop = RandomSizeCrop(40, 70, generator=torch.Generator().manual_seed(1))
    for _ in range(20):
        out = crop(frame)
        ch, cw = out["img"].shape[:2]
        assert 40 <= ch <= 70 and 40 <= cw <= 70
        top, left = int(out["img"][0, 0, 0]), int(out["img"][0, 0, 1])
        np.testing.assert_array_equal(out["img"], frame["img"][top:top + ch, left:left + cw])
        moved = frame["gt_boxes"] - np.array([left, top, left, top], np.float32)
        moved[:, 0::2] = moved[:, 0::2].clip(0, cw)
        moved[:, 1::2] = moved[:, 1::2].clip(0, ch)
        keep = (moved[:, 2] > moved[:, 0]) & (moved[:, 3] > moved[:, 1])
        np.testing.assert_allclose(out["gt_boxes"], moved[keep], rtol=1e-6)
        np.testing.assert_array_equal(out["gt_track_ids"], frame["gt_track_ids"][keep])


def test_seq_needs_a_clip():
    with pytest.raises(UsageTypeError, match="expected a clip"):
        Seq([RandomFlip()])(_frame(0))
