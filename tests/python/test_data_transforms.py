"""Segmentation transforms: the Cityscapes remap against cityscapesscripts' label table, YUV444 against
the BT.601 full-range matrix (and Pillow's YCbCr), flips, affine, resize, multi-scale labels,
normalization, and the batch transforms against their per-sample counterparts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hbdk_sim.data.transforms import (
    BatchNormalize,
    BatchPreprocessor,
    BatchRandomFlip,
    Compose,
    ImageBgrToYuv444,
    LabelRemap,
    MultiScaleLabels,
    Normalize,
    RandomFlip,
    Resize,
    SegRandomAffine,
    ToTensor,
)
from hbdk_sim.errors import ConfigError
from hbdk_sim.registry import TRANSFORMS, build_from_cfg
from PIL import Image


def _sample(h: int = 24, w: int = 40, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"img": rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
            "gt_seg": rng.integers(0, 19, (h, w), dtype=np.uint8), "color_space": "rgb"}


def test_label_remap_matches_cityscapesscripts():
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    expected = np.full(256, 255, dtype=np.uint8)
    for label in labels.labels:
        if 0 <= label.id < 256 and not label.ignoreInEval and label.trainId not in (255, -1):
            expected[label.id] = label.trainId
    ids = np.arange(256, dtype=np.uint8).reshape(16, 16)
    got = LabelRemap()({"gt_seg": ids})["gt_seg"]
    np.testing.assert_array_equal(got.ravel(), expected)
    assert sorted(set(got.ravel()) - {255}) == list(range(19))


def test_flip_twice_is_identity_and_once_mirrors():
    s = MultiScaleLabels(strides=[2])(_sample())
    flip = RandomFlip(p=1.0)
    once, twice = flip(s), flip(flip(s))
    for key in ("img", "gt_seg"):
        np.testing.assert_array_equal(twice[key], s[key])
        np.testing.assert_array_equal(once[key], s[key][:, ::-1])
    np.testing.assert_array_equal(once["gt_seg_scales"][0], s["gt_seg_scales"][0][:, ::-1])
    assert RandomFlip(p=0.0)(s) is s


def test_random_transforms_are_deterministic_given_a_seeded_generator():
    s = _sample(seed=3)
    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(11)
        t = Compose([SegRandomAffine(scale=(0.5, 2.0), generator=g), RandomFlip(generator=g)])
        outs.append([t(s) for _ in range(4)])
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a["img"], b["img"])
        np.testing.assert_array_equal(a["gt_seg"], b["gt_seg"])


def test_yuv444_is_the_bt601_full_range_matrix():
    s = _sample(seed=5)
    rgb = s["img"].astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    v = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    expected = np.clip(np.floor(np.stack([y, u, v], -1) + 0.5), 0, 255).astype(np.uint8)
    out = ImageBgrToYuv444()(s)
    assert out["color_space"] == "yuv444"
    np.testing.assert_array_equal(out["img"], expected)
    # The same pixels given in BGR order convert to the same YUV.
    bgr = {**s, "img": np.ascontiguousarray(s["img"][..., ::-1]), "color_space": "bgr"}
    np.testing.assert_array_equal(ImageBgrToYuv444()(bgr)["img"], expected)
    # Pillow's JPEG YCbCr is the same matrix in fixed point: within one step.
    pil = np.asarray(Image.fromarray(s["img"]).convert("YCbCr")).astype(int)
    assert np.abs(pil - expected.astype(int)).max() <= 1


def test_to_tensor_and_normalize():
    s = MultiScaleLabels(strides=[4])(_sample())
    t = ToTensor()(s)
    assert t["img"].shape == (3, 24, 40) and t["img"].dtype == torch.float32
    assert torch.equal(t["img"], torch.from_numpy(s["img"]).permute(2, 0, 1).float())
    assert t["gt_seg"].dtype == torch.int64 and t["gt_seg_scales"][0].shape == (6, 10)
    n = Normalize()(t)["img"]
    assert torch.equal(n, (t["img"] - 128) / 128) and n.min() >= -1 and n.max() < 1
    yuv = ToTensor(to_yuv=True, img_dtype="uint8")(s)["img"]
    assert yuv.dtype == torch.uint8
    assert torch.equal(yuv, torch.from_numpy(ImageBgrToYuv444()(s)["img"]).permute(2, 0, 1))
    with pytest.raises(TypeError, match="put ToTensor first"):
        Normalize()(s)


def test_seg_random_affine_geometry():
    s = _sample(32, 48, seed=2)
    same = SegRandomAffine(scale=(1.0, 1.0))(s)
    np.testing.assert_array_equal(same["img"], s["img"])
    np.testing.assert_array_equal(same["gt_seg"], s["gt_seg"])
    g = torch.Generator().manual_seed(0)
    up = SegRandomAffine(scale=(2.0, 2.0), generator=g)(s)
    assert up["gt_seg"].shape == (32, 48) and 255 not in up["gt_seg"]  # zoomed in: a crop, no padding
    assert set(np.unique(up["gt_seg"])) <= set(np.unique(s["gt_seg"]))  # nearest: no new label values
    down = SegRandomAffine(scale=(0.5, 0.5), generator=g)(s)
    # Zoomed out by 2: a quarter of the pixels carry labels, the rest is the ignore fill.
    assert int((down["gt_seg"] != 255).sum()) == 16 * 24
    assert int((down["img"].sum(-1) == 0).sum()) >= 32 * 48 - 16 * 24 - 48
    sized = SegRandomAffine(scale=(1.0, 1.0), size=(16, 20), generator=g)(s)
    assert sized["img"].shape == (16, 20, 3) and sized["gt_seg"].shape == (16, 20)


def test_resize_and_multi_scale_labels():
    s = _sample(32, 64, seed=4)
    r = Resize((16, 24))(s)
    assert r["img"].shape == (16, 24, 3) and set(np.unique(r["gt_seg"])) <= set(np.unique(s["gt_seg"]))
    m = MultiScaleLabels(strides=[4, 8, 16, 32])(s)
    assert [g.shape for g in m["gt_seg_scales"]] == [(8, 16), (4, 8), (2, 4), (1, 2)]
    for stride, g in zip([4, 8, 16, 32], m["gt_seg_scales"], strict=True):
        np.testing.assert_array_equal(g, s["gt_seg"][stride // 2::stride, stride // 2::stride])
    f = MultiScaleLabels(strides=None, factors=[0.5])(s)
    np.testing.assert_array_equal(f["gt_seg_scales"][0], s["gt_seg"][1::2, 1::2])
    with pytest.raises(ValueError, match="exactly one"):
        MultiScaleLabels(strides=[4], factors=[0.5])


def test_batch_transforms_match_per_sample_ones():
    raw = [MultiScaleLabels(strides=[4])(_sample(seed=i)) for i in range(6)]
    batch = torch.utils.data.default_collate([ToTensor(img_dtype="uint8")(s) for s in raw])
    flips = torch.rand(6, generator=torch.Generator().manual_seed(1)) < 0.5
    pre = BatchPreprocessor([BatchRandomFlip(generator=torch.Generator().manual_seed(1)), BatchNormalize()],
                            device="cpu")
    out = pre(batch)
    assert 0 < int(flips.sum()) < 6 and out["img"].dtype == torch.float32
    per_sample = Compose([RandomFlip(p=1.0), ToTensor(), Normalize()])
    for i, s in enumerate(raw):
        ref = per_sample(s) if flips[i] else Compose([ToTensor(), Normalize()])(s)
        assert torch.equal(out["img"][i], ref["img"])
        assert torch.equal(out["gt_seg"][i], ref["gt_seg"])
        assert torch.equal(out["gt_seg_scales"][0][i], ref["gt_seg_scales"][0])


def test_transforms_build_from_config_names():
    t = build_from_cfg(dict(type="Compose", transforms=[dict(type="LabelRemap"), dict(type="Resize", size=[8, 16]),
                                                        dict(type="ToTensor", to_yuv=True), dict(type="Normalize")]),
                       TRANSFORMS)
    out = t({"img": np.zeros((16, 32, 3), np.uint8), "gt_seg": np.full((16, 32), 7, np.uint8), "color_space": "rgb"})
    assert out["img"].shape == (3, 8, 16) and int(out["gt_seg"].max()) == 0
    assert torch.allclose(out["img"][1:], torch.zeros(2, 8, 16))  # black: Y 0, U and V 128 -> 0 after Normalize
    with pytest.raises(ConfigError, match="closest"):
        build_from_cfg(dict(type="LabelRemapp"), TRANSFORMS)


# ---- geometric fields move with the image ------------------------------------------------------------


def _boxes_sample(h: int = 64, w: int = 96) -> dict:
    """Three boxes, each also painted into gt_seg with its own label: the label pixels are the oracle
    for where a box must go."""
    boxes = np.array([[10, 8, 30, 20], [50, 30, 90, 60], [0, 0, 6, 5]], np.float32)
    gt = np.full((h, w), 255, np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        gt[y1:y2, x1:x2] = i
    keypoints = np.stack([boxes[:, :2], boxes[:, 2:]], axis=1)  # corners (x1, y1), (x2, y2)
    keypoints = np.concatenate([keypoints, np.ones((3, 2, 1), np.float32)], axis=2)
    return {"img": np.zeros((h, w, 3), np.uint8), "gt_seg": gt, "gt_boxes": boxes,
            "gt_classes": np.array([3, 5, 7]), "gt_track_ids": np.array([11, 12, 13]), "gt_keypoints": keypoints}


def _label_box(gt: np.ndarray, label: int) -> np.ndarray | None:
    ys, xs = np.nonzero(gt == label)
    return None if len(xs) == 0 else np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("seed", range(8))
def test_affine_and_resize_move_boxes_where_the_label_pixels_go(seed):
    sample = _boxes_sample()
    g = torch.Generator().manual_seed(seed)
    for t in (SegRandomAffine(scale=(1.0, 2.0), size=(48, 80), generator=g), Resize((32, 48)), Resize((128, 192))):
        out = t(sample)
        classes = list(out["gt_classes"])
        assert len(out["gt_boxes"]) == len(classes) == len(out["gt_track_ids"]) == len(out["gt_keypoints"])
        for box, cls, kp in zip(out["gt_boxes"], classes, out["gt_keypoints"], strict=True):
            label = {3: 0, 5: 1, 7: 2}[int(cls)]
            want = _label_box(out["gt_seg"], label)
            if want is None:  # a sliver narrower than a pixel holds no pixel centre
                assert min(box[2] - box[0], box[3] - box[1]) < 1.0 + 1e-4, box
                continue
            # nearest sampling of the label: the painted region lands within a pixel of the box
            assert np.abs(box - want).max() <= 1.0 + 1e-4, (type(t).__name__, box, want)
            # the corner keypoints moved like the box corners (the box is clipped, the keypoints not)
            h, w = out["img"].shape[:2]
            assert np.allclose(kp[0, :2].clip(0, [w, h]), box[:2], atol=1e-4)
            assert np.allclose(kp[1, :2].clip(0, [w, h]), box[2:], atol=1e-4)
        for label, cls in enumerate((3, 5, 7)):
            if cls not in classes:  # dropped with its per-object fields: nothing of it is left
                assert _label_box(out["gt_seg"], label) is None


def test_a_box_that_leaves_the_image_is_dropped_with_its_fields_and_its_keypoints_go_invisible():
    sample = _boxes_sample()
    dropped = 0
    for seed in range(10):  # scale 2, a 32x48 window: the small top-left box is often cropped away
        out = SegRandomAffine(scale=(2.0, 2.0), size=(32, 48), generator=torch.Generator().manual_seed(seed))(sample)
        if 7 not in list(out["gt_classes"]):
            dropped += 1
            assert 13 not in list(out["gt_track_ids"]) and len(out["gt_keypoints"]) == len(out["gt_boxes"])
            assert _label_box(out["gt_seg"], 2) is None
    assert dropped > 0
    single = {"img": np.zeros((10, 10, 3), np.uint8), "gt_keypoints": np.array([[2, 2, 2], [9.5, 9.5, 1]], np.float32)}
    moved = Resize((5, 5))(single)
    assert moved["gt_keypoints"].tolist() == [[1, 1, 2], [4.75, 4.75, 1]]
    crop = SegRandomAffine(scale=(2.0, 2.0), size=(5, 5), generator=torch.Generator().manual_seed(1))(single)
    x, y = crop["gt_keypoints"][1, :2]
    assert (crop["gt_keypoints"][1, 2] == 0) == bool(x < 0 or x > 5 or y < 0 or y > 5)


def test_flip_mirrors_boxes_and_swaps_keypoint_pairs_with_their_visibility():
    img = np.zeros((10, 20, 3), np.uint8)
    kp = np.array([[2.5, 4, 1], [15, 5, 0], [10, 1, 2]], np.float32)  # a left one, a right one, a centre one
    sample = {"img": img, "gt_boxes": np.array([[1, 2, 5, 8]], np.float32), "gt_keypoints": kp}
    out = RandomFlip(p=1.0, keypoint_flip_pairs=[[0, 1]])(sample)
    assert out["gt_boxes"].tolist() == [[15, 2, 19, 8]]
    # keypoint 0 is now the mirror of old keypoint 1, visibility and all
    assert out["gt_keypoints"].tolist() == [[5, 5, 0], [17.5, 4, 1], [10, 1, 2]]
    back = RandomFlip(p=1.0, keypoint_flip_pairs=[[0, 1]])(out)
    assert np.array_equal(back["gt_keypoints"], kp) and np.array_equal(back["gt_boxes"], sample["gt_boxes"])
    with pytest.raises(ValueError, match="keypoint_flip_pairs"):
        RandomFlip(p=1.0)(sample)
    with pytest.raises(ValueError, match="twice"):
        RandomFlip(keypoint_flip_pairs=[[0, 1], [1, 2]])


def test_transforms_declare_random_and_label_only():
    from hbdk_sim.engine.deploy import image_transforms

    assert SegRandomAffine.random and RandomFlip.random and not Resize.__dict__.get("random", False)
    assert LabelRemap.label_only and not Resize.__dict__.get("label_only", False)
    cfg = {"val_transforms": [dict(type="LabelRemap"), dict(type="Resize", size=[8, 8]), dict(type="ToTensor")]}
    out = image_transforms(cfg)({"img": np.zeros((4, 4, 3), np.uint8)})  # LabelRemap skipped: no label
    assert tuple(out["img"].shape) == (3, 8, 8)
    with pytest.raises(ConfigError, match="random ones \\(RandomFlip\\)"):
        image_transforms({"val_transforms": [dict(type="RandomFlip")]})
