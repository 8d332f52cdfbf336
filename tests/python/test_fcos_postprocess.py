"""FCOS post-processing on hand-made head outputs: the filter, decoding, the per-level top-k, the
score, class-aware NMS, the top-k per image and the inverse resize."""

from __future__ import annotations

import math

import pytest
import torch
from hbdk_sim.errors import UsageError
from hbdk_sim.nn.postprocess.fcos import fcos_postprocess

LOW = -10.0  # a logit far below every threshold


def _level(h, w, classes=3):
    return torch.full((1, classes, h, w), LOW), torch.zeros(1, 4, h, w), torch.zeros(1, 1, h, w)


def _logit(p):
    return math.log(p / (1 - p))


def test_decoding_filter_score_and_inverse_resize():
    c8, r8, t8 = _level(4, 4)
    c16, r16, t16 = _level(2, 2)
    # Level s8, position (h=1, w=2): point (2*8+4, 1*8+4) = (20, 12); distances (1, 1, 2, 0.5) x 8.
    c8[0, 1, 1, 2] = _logit(0.8)
    r8[0, :, 1, 2] = torch.tensor([1.0, 1.0, 2.0, 0.5])
    t8[0, 0, 1, 2] = _logit(0.5)
    # Level s16, position (0, 0): point (8, 8), class 2 at 0.6, class 0 at 0.04 (no candidate: <= 0.05).
    c16[0, 2, 0, 0] = _logit(0.6)
    c16[0, 0, 0, 0] = _logit(0.04)
    r16[0, :, 0, 0] = torch.tensor([1.0, 1.0, 1.0, 1.0])
    t16[0, 0, 0, 0] = _logit(0.9)
    # On the filter's threshold: kept (sigmoid(-2.944) = 0.05002 > 0.05), a zero-size box at (24, 24).
    c16[0, 1, 1, 1] = -2.944
    (out,) = fcos_postprocess([c8, c16], [r8, r16], [t8, t16], [8, 16], (64, 64), torch.tensor([2.0]))
    assert out.shape == (3, 6)
    torch.testing.assert_close(out[2], torch.tensor([12.0, 12.0, 12.0, 12.0,
                                                     math.sqrt(0.5 / (1 + math.exp(2.944))), 1.0]))
    (cut,) = fcos_postprocess([c8, c16], [r8, r16], [t8, t16], [8, 16], (64, 64), torch.tensor([2.0]),
                              logit_threshold=-2.9)
    assert cut.shape == (2, 6)  # the filter drops it before the 0.05 score test would keep it
    s1, s2 = math.sqrt(0.8 * 0.5), math.sqrt(0.6 * 0.9)
    # Sorted by score: the s16 box (sqrt(0.54) = 0.735) before the s8 one (sqrt(0.4) = 0.632).
    torch.testing.assert_close(out[0], torch.tensor([-8 + 8.0, -8 + 8.0, 24.0, 24.0, s2, 2.0]) / torch.tensor(
        [2.0, 2.0, 2.0, 2.0, 1.0, 1.0]))
    torch.testing.assert_close(out[1], torch.tensor([(20 - 8) / 2, (12 - 8) / 2, (20 + 16) / 2, (12 + 4) / 2, s1, 1.0]))


def test_nms_per_class_top_k_and_clamping():
    c, r, t = _level(2, 2)
    # Two overlapping boxes of class 0 and one of class 1 at the same place; a box leaving the image.
    for (h, w), cls, p in (((0, 0), 0, 0.9), ((0, 1), 0, 0.8), ((0, 0), 1, 0.7), ((1, 1), 2, 0.95)):
        c[0, cls, h, w] = _logit(p)
    r[0, :, 0, 0] = torch.tensor([1.0, 1.0, 2.0, 1.0])  # point (4, 4): box (-4, -4, 20, 12) -> clamped
    r[0, :, 0, 1] = torch.tensor([2.0, 1.0, 1.0, 1.0])  # point (12, 4): box (-4, -4, 20, 12), the same
    r[0, :, 1, 1] = torch.tensor([0.5, 0.5, 10.0, 10.0])  # point (12, 12): box (8, 8, 92, 92) -> (8, 8, 16, 16)
    (out,) = fcos_postprocess([c], [r], [t], [8], (16, 16))
    center = 0.5  # sigmoid(0)
    want = [(2, 0.95), (0, 0.9), (1, 0.7)]  # class 0's second box is suppressed; class 1's is not
    assert [(int(row[5]), round(float(row[4]) ** 2 / center, 4)) for row in out] == [(k, p) for k, p in want]
    torch.testing.assert_close(out[0, :4], torch.tensor([8.0, 8.0, 16.0, 16.0]))
    torch.testing.assert_close(out[1, :4], torch.tensor([0.0, 0.0, 16.0, 12.0]))
    (top1,) = fcos_postprocess([c], [r], [t], [8], (16, 16), max_per_image=1)
    assert top1.shape == (1, 6) and int(top1[0, 5]) == 2


def test_per_level_pre_nms_top_k_and_empty_images():
    c, r, t = _level(1, 4, classes=1)
    c[0, 0, 0] = torch.tensor([_logit(p) for p in (0.3, 0.9, 0.5, 0.7)])
    r[0] = 0.25  # disjoint boxes
    (out,) = fcos_postprocess([c], [r], [t], [8], (8, 32), nms_pre=2)
    assert [round(float(x) ** 2 / 0.5, 4) for x in out[:, 4]] == [0.9, 0.7]
    empty, _ = _level(2, 2)[0], None
    (none,) = fcos_postprocess([empty], [torch.zeros(1, 4, 2, 2)], [torch.zeros(1, 1, 2, 2)], [8], (16, 16))
    assert none.shape == (0, 6)
    with pytest.raises(UsageError, match="one class, box and centerness map per stride"):
        fcos_postprocess([c], [r], [], [8], (8, 32))
