"""The detection transforms: multi-scale Resize, RandomCrop (boxes clipped, dropped or marked
ignored), AugmentHSV, each on hand-made samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hbdk_sim.data.transforms import AugmentHSV, RandomCrop, Resize
from hbdk_sim.engine.deploy import image_transforms
from hbdk_sim.errors import ConfigError


def _boxes_sample(h=100, w=200):
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 0] = np.arange(w, dtype=np.uint8)[None, :]  # red = x, green = y: the crop offset is readable
    img[:, :, 1] = np.arange(h, dtype=np.uint8)[:, None]
    boxes = np.array([[10, 10, 50, 40], [150, 60, 199, 99], [0, 0, 200, 100]], np.float32)
    return {"img": img, "gt_boxes": boxes, "gt_classes": np.array([3, 5, 7]), "color_space": "rgb"}


def test_resize_ratio_range_draws_the_scale():
    g = torch.Generator().manual_seed(0)
    t = Resize((64, 64), keep_ratio=True, ratio_range=(0.5, 2.0), generator=g)
    sizes = {t(_boxes_sample())["img"].shape[:2] for _ in range(10)}
    assert len(sizes) > 5 and all(abs(w / h - 2.0) < 0.1 and 32 <= w <= 128 for h, w in sizes)
    assert t.random and not Resize((64, 64)).random
    out = Resize((64, 64), keep_ratio=True, ratio_range=(2.0, 2.0))(_boxes_sample())
    assert out["img"].shape[:2] == (64, 128)
    np.testing.assert_allclose(out["gt_boxes"][0], [6.4, 6.4, 32.0, 25.6], rtol=1e-6)


def test_random_crop_moves_clips_drops_and_ignores():
    g = torch.Generator().manual_seed(3)
    seen = 0
    for _ in range(20):
        out = RandomCrop((40, 60), generator=g)(_boxes_sample())
        assert out["img"].shape == (40, 60, 3)
        left, top = int(out["img"][0, 0, 0]), int(out["img"][0, 0, 1])
        src = _boxes_sample()["gt_boxes"] - np.array([left, top, left, top], np.float32)
        clipped = np.stack([src[:, 0].clip(0, 60), src[:, 1].clip(0, 40), src[:, 2].clip(0, 60),
                            src[:, 3].clip(0, 40)], 1)
        keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        np.testing.assert_allclose(out["gt_boxes"], clipped[keep])
        assert out["gt_classes"].tolist() == np.array([3, 5, 7])[keep].tolist()
        seen += int(keep.sum() < 3)
    assert seen > 0  # some crops dropped a box
    sliver = {**_boxes_sample(), "gt_boxes": np.array([[59.9995, 0, 70, 1]], np.float32), "gt_classes": np.array([2])}
    out = RandomCrop((100, 60), generator=torch.Generator().manual_seed(0))(
        {**sliver, "img": sliver["img"][:, :60].copy()})
    assert out["gt_classes"].tolist() == [-1]  # 0.0005 x 1 px^2 left of it: ignored, not dropped


def test_augment_hsv_scales_value_of_a_grey_image_and_is_random_for_the_board():
    img = np.full((4, 4, 3), 100, np.uint8)
    g = torch.Generator().manual_seed(0)
    r = 1.0 + (torch.rand(3, generator=torch.Generator().manual_seed(0), dtype=torch.float64).numpy() * 2 - 1) * \
        np.array([0.0, 0.0, 0.4])
    out = AugmentHSV(0.0, 0.0, 0.4, generator=g)({"img": img, "color_space": "rgb"})["img"]
    want = int(np.clip(np.float64(100) * r[2], 0, 255))  # grey: S = 0, so R = G = B = V
    assert (out == want).all() and want != 100
    same = AugmentHSV(0, 0, 0)({"img": img})
    assert same["img"] is img
    cfg = {"val_transforms": [dict(type="AugmentHSV")]}
    with pytest.raises(ConfigError, match="AugmentHSV"):
        image_transforms(cfg)
