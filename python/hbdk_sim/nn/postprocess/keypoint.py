"""Heatmap decoding: keypoint coordinates from per-keypoint heatmaps, on the host."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

from hbdk_sim.errors import UsageError


def decode_heatmaps(heatmaps: torch.Tensor, stride: int, window: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """("averaged" mode) Per heatmap (B, K, H, W): the argmax pixel, then the mean of the pixel
    coordinates of the `window` x `window` neighbourhood around it weighted by the heatmap values
    (taps outside the map count as 0). Returns `(keypoints (B, K, 2) as (x, y) in input pixels,
    scores (B, K) = the peak value clamped to [0, 1])`. Negative heatmap values weigh 0 (a
    window summing to about zero would otherwise throw the mean far off), and a window with no
    positive value gives its argmax pixel.

    Heatmap pixel (i, j) is the centre of input cell [stride*j, stride*(j+1)) x [stride*i, ...),
    i.e. input point (stride*(j + 0.5), stride*(i + 0.5)) in the sample schema's continuous
    coordinates; GenerateHeatmapTarget places targets by the same rule."""
    if heatmaps.dim() != 4:
        raise UsageError(f"decode_heatmaps: expected heatmaps (B, K, H, W) but got {tuple(heatmaps.shape)}")
    if window % 2 != 1 or window < 1:
        raise UsageError(f"decode_heatmaps: window must be a positive odd number but got {window}")
    b, k, h, w = heatmaps.shape
    hm = heatmaps.detach().float().reshape(b * k, 1, h, w)
    peak, index = hm.reshape(b * k, -1).max(dim=1)
    cy, cx = index // w, index % w
    r = window // 2
    padded = F.pad(hm, (r, r, r, r))
    offsets = torch.arange(-r, r + 1)
    rows = (cy[:, None] + offsets[None, :])  # (BK, window)
    cols = (cx[:, None] + offsets[None, :])
    patch = padded[torch.arange(b * k)[:, None, None], 0, rows[:, :, None] + r, cols[:, None, :] + r].clamp(min=0.0)
    total = patch.sum(dim=(1, 2))
    some = total > 0
    total = torch.where(some, total, torch.ones_like(total))
    x = torch.where(some, (patch * cols[:, None, :].float()).sum(dim=(1, 2)) / total, cx.float())
    y = torch.where(some, (patch * rows[:, :, None].float()).sum(dim=(1, 2)) / total, cy.float())
    keypoints = (torch.stack([x, y], dim=1) + 0.5) * stride
    return keypoints.reshape(b, k, 2), peak.clamp(0.0, 1.0).reshape(b, k)
