"""FCOS post-processing on the host: from the head's per-level outputs of one batch to detections in
original image pixels.

Per image and level: keep the positions whose largest class logit reaches `logit_threshold` (the
board's filter; -2.944 is the logit of 0.05); decode each kept point's box, (x - l, y - t, x + r,
y + b) with the distances times the stride, clamped to the padded input; if a level keeps more than
`nms_pre` positions, keep the `nms_pre` with the largest max-over-classes of score x centerness.
Then over all levels: every (box, class) pair whose sigmoid score exceeds `score_threshold` is a
candidate scored sqrt(score x sigmoid(centerness)); class-aware NMS at `iou_threshold`; the best
`max_per_image`; boxes divided by the image's resize factor into original pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hbdk_sim.errors import UsageError
from hbdk_sim.nn.postprocess.nms import batched_nms
from hbdk_sim.nn.targets.fcos import fcos_points

LOGIT_OF_0_05 = -2.944  # log(0.05 / 0.95), rounded as the board's filter threshold is


def fcos_postprocess(cls: Sequence[torch.Tensor], reg: Sequence[torch.Tensor], ctr: Sequence[torch.Tensor],
                     strides: Sequence[int], input_size: Sequence[int], scale_factors: torch.Tensor | None = None,
                     *, logit_threshold: float = LOGIT_OF_0_05, nms_pre: int = 1000, score_threshold: float = 0.05,
                     iou_threshold: float = 0.6, max_per_image: int = 100) -> list[torch.Tensor]:
    """`cls` (N, C, h, w), `reg` (N, 4, h, w) in stride units and `ctr` (N, 1, h, w) logits per level
    -> per image a (K, 6) tensor of rows (x1, y1, x2, y2, score, label), best first. `input_size`
    (H, W) is the padded network input the boxes are clamped to; `scale_factors` (N,) or (N, 2) (x,
    y) the resize factors from original to input pixels (None: 1)."""
    if not (len(cls) == len(reg) == len(ctr) == len(strides)) or not cls:
        raise UsageError(f"fcos_postprocess: expected one class, box and centerness map per stride ({len(strides)}) "
                         f"but got {len(cls)}, {len(reg)}, {len(ctr)}")
    n = cls[0].shape[0]
    device = cls[0].device
    height, width = float(input_size[0]), float(input_size[1])
    if scale_factors is None:
        scale_factors = torch.ones(n, 2, device=device)
    scale_factors = torch.as_tensor(scale_factors, dtype=torch.float32, device=device)
    if scale_factors.dim() == 1:
        scale_factors = scale_factors[:, None].expand(n, 2)
    results = []
    for i in range(n):
        boxes, scores, centers = [], [], []
        for c, r, t, s in zip(cls, reg, ctr, strides, strict=True):
            _, num_classes, h, w = c.shape
            logits = c[i].reshape(num_classes, -1).t()  # (h*w, C)
            keep = logits.max(dim=1).values >= logit_threshold
            if not bool(keep.any()):
                continue
            points = fcos_points([(h, w)], [int(s)], device)[0][keep]
            dist = r[i].reshape(4, -1).t()[keep].clamp(min=0) * s
            prob = logits[keep].sigmoid()
            center = t[i].reshape(-1)[keep].sigmoid()
            if prob.shape[0] > nms_pre:
                top = (prob * center[:, None]).max(dim=1).values.topk(nms_pre).indices
                points, dist, prob, center = points[top], dist[top], prob[top], center[top]
            box = torch.cat([points - dist[:, :2], points + dist[:, 2:]], dim=1)
            box[:, 0::2] = box[:, 0::2].clamp(0, width)
            box[:, 1::2] = box[:, 1::2].clamp(0, height)
            boxes.append(box), scores.append(prob), centers.append(center)
        if not boxes:
            results.append(torch.zeros(0, 6, device=device))
            continue
        box, prob, center = torch.cat(boxes), torch.cat(scores), torch.cat(centers)
        rows, labels = torch.nonzero(prob > score_threshold, as_tuple=True)
        cand_boxes = box[rows]
        cand_scores = (prob[rows, labels] * center[rows]).sqrt()
        keep = batched_nms(cand_boxes, cand_scores, labels, iou_threshold, max_per_image)
        out_boxes = cand_boxes[keep] / scale_factors[i].repeat(2)
        results.append(torch.cat([out_boxes, cand_scores[keep, None], labels[keep, None].float()], dim=1))
    return results
