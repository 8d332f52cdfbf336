"""The keypoint task's parts: the EfficientNet block tables, the heatmap target and decoder, the
loss, and PCK / mean distance against independent numpy statements of their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hbdk_sim.data.transforms import AddGaussianNoise, GenerateHeatmapTarget, RandomFlip, RandomPad, Resize
from hbdk_sim.errors import UsageError
from hbdk_sim.metrics import MeanKeypointDist, MetricCollection, PCKMetric
from hbdk_sim.nn.backbones import EfficientNet
from hbdk_sim.nn.backbones.efficientnet import block_table
from hbdk_sim.nn.losses import HeatmapMSELoss
from hbdk_sim.nn.postprocess import decode_heatmaps

# (kernel, stride, in, mid, out, residual) of every MBConv block.
B0_BLOCKS = [
    (3, 1, 32, 32, 16, False),
    (3, 2, 16, 96, 24, False), (3, 1, 24, 144, 24, True),
    (5, 2, 24, 144, 40, False), (5, 1, 40, 240, 40, True),
    (3, 2, 40, 240, 80, False), (3, 1, 80, 480, 80, True), (3, 1, 80, 480, 80, True),
    (5, 1, 80, 480, 112, False), (5, 1, 112, 672, 112, True), (5, 1, 112, 672, 112, True),
    (5, 2, 112, 672, 192, False), (5, 1, 192, 1152, 192, True), (5, 1, 192, 1152, 192, True),
    (5, 1, 192, 1152, 192, True),
    (3, 1, 192, 1152, 320, False),
]
B3_BLOCKS = [
    (3, 1, 40, 40, 24, False), (3, 1, 24, 24, 24, True),
    (3, 2, 24, 144, 32, False), (3, 1, 32, 192, 32, True), (3, 1, 32, 192, 32, True),
    (5, 2, 32, 192, 48, False), (5, 1, 48, 288, 48, True), (5, 1, 48, 288, 48, True),
    (3, 2, 48, 288, 96, False), *[(3, 1, 96, 576, 96, True)] * 4,
    (5, 1, 96, 576, 136, False), *[(5, 1, 136, 816, 136, True)] * 4,
    (5, 2, 136, 816, 232, False), *[(5, 1, 232, 1392, 232, True)] * 5,
    (3, 1, 232, 1392, 384, False), (3, 1, 384, 2304, 384, True),
]


@pytest.mark.parametrize(("model_type", "stem", "blocks"), [("b0", 32, B0_BLOCKS), ("b3", 40, B3_BLOCKS)])
def test_efficientnet_block_table(model_type, stem, blocks):
    got_stem, specs = block_table(model_type)
    assert got_stem == stem
    assert [(s.kernel, s.stride, s.in_channels, s.mid_channels, s.out_channels, s.residual) for s in specs] == blocks
    net = EfficientNet(model_type)
    assert net.stem.conv.out_channels == stem
    for block, (k, s, cin, mid, cout, _) in zip(net.blocks, blocks, strict=True):
        dw = block.depthwise.conv
        assert (dw.kernel_size, dw.stride, dw.padding, dw.groups) == ((k, k), (s, s), (k // 2, k // 2), mid)
        assert block.project.conv.out_channels == cout and block.project.has_act is False
        assert (mid == cin) == isinstance(block.expand, torch.nn.Identity)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bn.eps == 1e-5 and bn.momentum == 0.1 for bn in bns)
    assert not any(isinstance(m, (torch.nn.SiLU, torch.nn.Sigmoid)) for m in net.modules())  # ReLU, no SE


@pytest.mark.parametrize(("model_type", "size", "shapes"), [
    ("b0", (128, 128), [(16, 64, 64), (24, 32, 32), (40, 16, 16), (112, 8, 8), (320, 4, 4)]),
    ("b0", (512, 512), [(16, 256, 256), (24, 128, 128), (40, 64, 64), (112, 32, 32), (320, 16, 16)]),
    ("b0", (800, 1422), [(16, 400, 711), (24, 200, 356), (40, 100, 178), (112, 50, 89), (320, 25, 45)]),
    ("b3", (128, 128), [(24, 64, 64), (32, 32, 32), (48, 16, 16), (136, 8, 8), (384, 4, 4)]),
    ("b3", (512, 512), [(24, 256, 256), (32, 128, 128), (48, 64, 64), (136, 32, 32), (384, 16, 16)]),
    ("b3", (800, 1422), [(24, 400, 711), (32, 200, 356), (48, 100, 178), (136, 50, 89), (384, 25, 45)]),
])
def test_efficientnet_output_shapes(model_type, size, shapes):
    net = EfficientNet(model_type).to("meta")  # shapes only: nothing is computed
    features = net(torch.empty(1, 3, *size, device="meta"))
    assert [tuple(f.shape[1:]) for f in features] == shapes
    assert [net.channels[s] for s in (2, 4, 8, 16, 32)] == [c for c, _, _ in shapes]


def test_efficientnet_builds_only_what_it_returns():
    net = EfficientNet("b0", out_strides=(8,))
    assert len(net.blocks) == 5 and net.channels == {8: 40}
    with pytest.raises(UsageError, match="model_type"):
        EfficientNet("b9")


# ---- heatmaps -----------------------------------------------------------------------------------------------


def _decode_oracle(hm: np.ndarray, stride: int, window: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """decode_heatmaps' averaged mode, one heatmap at a time with explicit loops."""
    k_, h, w = hm.shape
    out, scores = np.zeros((k_, 2)), np.zeros(k_)
    r = window // 2
    for k in range(k_):
        i, j = np.unravel_index(np.argmax(hm[k]), (h, w))
        sx = sy = sv = 0.0
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                y, x = i + dy, j + dx
                v = max(hm[k, y, x], 0.0) if 0 <= y < h and 0 <= x < w else 0.0
                sx, sy, sv = sx + v * x, sy + v * y, sv + v
        cx, cy = (sx / sv, sy / sv) if sv > 0 else (j, i)
        out[k] = ((cx + 0.5) * stride, (cy + 0.5) * stride)
        scores[k] = min(max(hm[k, i, j], 0.0), 1.0)
    return out, scores


def test_decode_heatmaps_matches_the_loop_statement():
    g = torch.Generator().manual_seed(0)
    hm = torch.randn(3, 12, 32, 32, generator=g)
    hm[0, 0] = -1.0
    hm[0, 0, 0, 31] = 0.5  # a peak in the corner: taps off the map count 0
    hm[1, 1] = -0.5  # no positive value: the argmax pixel
    kp, sc = decode_heatmaps(hm, 4)
    for b in range(3):
        want_kp, want_sc = _decode_oracle(hm[b].numpy().astype(np.float64), 4)
        np.testing.assert_allclose(kp[b].numpy(), want_kp, rtol=0, atol=1e-4)
        np.testing.assert_allclose(sc[b].numpy(), want_sc, rtol=0, atol=1e-6)


def test_heatmap_target_round_trip_and_weights():
    k = np.zeros((12, 3), np.float32)
    k[:, 2] = 2
    k[:, 0] = np.linspace(10.3, 117.9, 12)
    k[:, 1] = np.linspace(100.1, 20.6, 12)
    k[3, 2] = 0  # unlabelled: no target, weight 0
    k[4, :2] = (140.0, 60.0)  # off the map
    out = GenerateHeatmapTarget(12, 4, (32, 32), 1.0)({"gt_keypoints": k})
    hm, wt = out["gt_heatmap"], out["gt_heatmap_weight"]
    assert hm.shape == wt.shape == (12, 32, 32)
    assert not hm[3].any() and not wt[3].any() and not wt[4].any()
    assert set(np.unique(wt[6])) == {np.float32(0.1), np.float32(1.0)} and (wt[6] == 1).sum() == 49
    assert (wt[0] == 1).sum() == 6 * 7  # x = 10.3 is heatmap column 2.075: the window loses a column
    i, j = np.unravel_index(np.argmax(hm[0]), (32, 32))
    assert (j, i) == (int(np.floor(10.3 / 4 - 0.5 + 0.5)), int(np.floor(100.1 / 4 - 0.5 + 0.5)))
    expected_peak = math.exp(-((j - (10.3 / 4 - 0.5)) ** 2 + (i - (100.1 / 4 - 0.5)) ** 2) / 2)
    assert hm[0, i, j] == pytest.approx(expected_peak, rel=1e-6)
    kp, _ = decode_heatmaps(torch.from_numpy(hm)[None], 4)
    keep = [n for n in range(12) if n not in (3, 4)]
    np.testing.assert_allclose(kp[0, keep].numpy(), k[keep, :2], atol=0.2)  # 5x5 of a sigma-1 Gaussian


def test_heatmap_mse_loss_is_the_stated_sum():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)
    weight = torch.where(target > 0.5, 1.0, 0.1)
    valid = torch.tensor([[True, False, True], [True, True, True]])
    want = sum(0.5 * float(((pred[b, k] - target[b, k]) ** 2 * weight[b, k]).sum())
               for b in range(2) for k in range(3) if valid[b, k]) / 2
    assert float(HeatmapMSELoss()(pred, target, weight, valid)) == pytest.approx(want, rel=1e-6)
    with pytest.raises(UsageError, match="validity mask"):
        HeatmapMSELoss()(pred, target, weight, valid[0])


# ---- metrics ------------------------------------------------------------------------------------------------


def _pck_oracle(pred: np.ndarray, gt: np.ndarray, alpha: float, size: float) -> tuple[float, float]:
    correct = labelled = 0
    dist_sum = 0.0
    for p, g in zip(pred, gt, strict=True):
        d = min(max(max(g[:, 0].max() - g[:, 0].min(), g[:, 1].max() - g[:, 1].min()), 0.0), size)
        for (px, py), (gx, gy, v) in zip(p, g, strict=True):
            if v > 0:
                dist = math.hypot(px - gx, py - gy)
                labelled += 1
                correct += dist < alpha * d
                dist_sum += dist
    return correct / (labelled + 1e-6), dist_sum / labelled


def test_pck_and_mean_distance_match_the_definition():
    rng = np.random.default_rng(0)
    metric = MetricCollection([PCKMetric(alpha=0.1, image_size=(128, 128)), MeanKeypointDist()])
    preds, gts = [], []
    for _ in range(4):  # batches
        gt = np.concatenate([rng.uniform(-20, 140, (8, 12, 2)), rng.integers(0, 3, (8, 12, 1))], -1)
        gt[0, 5, :2] = (-300.0, -300.0)  # an unlabelled point far away widens D (clamped to 128)
        gt[0, 5, 2] = 0
        pred = gt[..., :2] + rng.normal(0, 6, (8, 12, 2))
        metric.update({"keypoints": torch.from_numpy(pred)}, {"gt_keypoints": torch.from_numpy(gt)})
        preds.append(pred), gts.append(gt)
    want_pck, want_dist = _pck_oracle(np.concatenate(preds), np.concatenate(gts), 0.1, 128.0)
    got = metric.compute()
    assert got["PCK@0.1"] == pytest.approx(want_pck, abs=1e-12)
    assert got["mean_dist"] == pytest.approx(want_dist, rel=1e-12)
    assert 0.05 < want_pck < 0.95  # the case exercises both outcomes
    metric.reset()
    assert metric.compute()["PCK@0.1"] == 0.0 and math.isnan(metric.compute()["mean_dist"])


# ---- transforms ---------------------------------------------------------------------------------------------


def _sample(h: int, w: int) -> dict:
    k = np.array([[10.0, 20.0, 2.0], [30.0, 5.0, 1.0], [-4.0, -9.0, 0.0]], np.float32)
    return {"img": np.zeros((h, w, 3), np.uint8), "gt_keypoints": k}


def test_resize_keep_ratio_and_pad_move_keypoints():
    s = Resize((128, 128), keep_ratio=True)(_sample(100, 200))
    assert s["img"].shape == (64, 128, 3) and s["scale_factor"].tolist() == pytest.approx([0.64, 0.64])
    assert Resize((32, 32))(s)["scale_factor"].tolist() == pytest.approx([0.64 * 0.25, 0.64 * 0.5])
    np.testing.assert_allclose(s["gt_keypoints"][:2, :2], [[6.4, 12.8], [19.2, 3.2]], rtol=1e-6)
    g = torch.Generator().manual_seed(3)
    padded = RandomPad((128, 128), generator=g)(s)
    top = int(np.argmax(padded["img"].any(axis=(1, 2)))) if padded["img"].any() else None
    assert padded["img"].shape == (128, 128, 3) and top is None  # black image: find the offset by the keypoints
    shift = padded["gt_keypoints"][:2, :2] - s["gt_keypoints"][:2, :2]
    assert shift[0].tolist() == shift[1].tolist() and 0 <= shift[0, 0] <= 0 and 0 <= shift[0, 1] <= 64
    assert RandomPad((128, 128), random=False)(s)["gt_keypoints"].tolist() == s["gt_keypoints"].tolist()
    with pytest.raises(UsageError, match="keep_ratio"):
        RandomPad((32, 32))(s)


def test_random_pad_offset_is_drawn_and_applied_to_image_and_keypoints():
    img = np.full((10, 20, 3), 200, np.uint8)
    sample = {"img": img, "gt_keypoints": np.array([[1.0, 2.0, 2.0]], np.float32)}
    offsets = set()
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        out = RandomPad((16, 24), generator=g)(sample)
        rows, cols = np.nonzero(out["img"][..., 0])
        top, left = rows.min(), cols.min()
        assert out["gt_keypoints"][0, :2].tolist() == [1.0 + left, 2.0 + top]
        offsets.add((top, left))
    assert len(offsets) > 5


def test_flip_swaps_visibility_with_the_pair():
    s = _sample(40, 50)
    out = RandomFlip(p=1.0, keypoint_flip_pairs=[(0, 1)])(s)
    np.testing.assert_allclose(out["gt_keypoints"][0], [50 - 30.0, 5.0, 1.0])
    np.testing.assert_allclose(out["gt_keypoints"][1], [50 - 10.0, 20.0, 2.0])


def test_gaussian_noise_is_one_map_for_all_channels():
    img = np.full((8, 8, 3), 100, np.uint8)
    out = AddGaussianNoise(p=1.0, sigma=5.0, generator=torch.Generator().manual_seed(0))({"img": img})["img"]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all() and (out != 100).any()
    same = AddGaussianNoise(p=0.0)({"img": img})["img"]
    assert same is img


def test_metrics_do_not_depend_on_batching():
    rng = np.random.default_rng(5)
    gt = np.concatenate([rng.uniform(0, 128, (30, 12, 2)), rng.integers(0, 3, (30, 12, 1))], -1)
    pred = gt[..., :2] + rng.normal(0, 7, (30, 12, 2))
    results = []
    for size in (1, 7, 30):
        metric = MetricCollection([PCKMetric(), MeanKeypointDist()])
        for i in range(0, 30, size):
            metric.update({"keypoints": torch.from_numpy(pred[i:i + size])},
                          {"gt_keypoints": torch.from_numpy(gt[i:i + size])})
        results.append(metric.compute())
    assert results[0] == results[1] == results[2]  # exactly: align_bpu (batch 1) is compared with ==
