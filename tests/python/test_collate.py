"""Batches of samples with different object counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hbdk_sim.data.collate import collate_function, collate_objects
from hbdk_sim.errors import ConfigError


def test_per_object_fields_stay_lists_the_rest_collates():
    samples = [{"img": torch.zeros(3, 8, 8), "gt_boxes": np.zeros((n, 4), np.float32),
                "gt_classes": np.arange(n), "image_id": i, "name": f"im{i}"} for i, n in enumerate((2, 0, 5))]
    batch = collate_objects(samples)
    assert batch["img"].shape == (3, 3, 8, 8) and batch["image_id"].tolist() == [0, 1, 2]
    assert batch["name"] == ["im0", "im1", "im2"]
    assert [tuple(b.shape) for b in batch["gt_boxes"]] == [(2, 4), (0, 4), (5, 4)]
    assert [c.tolist() for c in batch["gt_classes"]] == [[0, 1], [], [0, 1, 2, 3, 4]]
    assert collate_function("default") is None and collate_function("objects") is collate_objects
    with pytest.raises(ConfigError, match="unknown collate"):
        collate_function("lists")


def test_clips_collate_into_lists_of_frames():
    clip = [{"img": torch.zeros(3, 8, 8), "gt_boxes": np.zeros((n, 4), np.float32), "sequence": "S", "frame": t}
            for t, n in enumerate((2, 3))]
    batch = collate_function("clips")([clip, clip[:1]])
    assert [len(c) for c in batch] == [2, 1]
    assert isinstance(batch[0][1]["gt_boxes"], torch.Tensor) and batch[0][1]["gt_boxes"].shape == (3, 4)
    assert batch[0][0]["sequence"] == "S" and batch[1][0]["frame"] == 0
    with pytest.raises(ConfigError, match="not a clip"):
        collate_function("clips")([clip[0]])
