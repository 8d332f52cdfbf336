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
