"""Non-maximum suppression in plain torch with the signatures and results of `mmcv.ops.nms` and
`mmcv.ops.batched_nms`, so that single-stage mmdet detectors (RTMDet, YOLOX, RetinaNet, FCOS, ...) run on
mmcv-lite, which has no compiled ops. Greedy, exact, O(N) Python steps of O(N) tensor work: meant for the
few hundred boxes left after a score threshold, not for 30k proposals."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _keep(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int) -> Tensor:
    """Indices kept by greedy NMS, highest score first (ties: the lower index first)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1 + offset).clamp(min=0) * (y2 - y1 + offset).clamp(min=0)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1) + offset).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1) + offset).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas - inter).clamp(min=torch.finfo(boxes.dtype).tiny)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0, score_threshold: float = 0.0,
        max_num: int = -1) -> tuple[Tensor, Tensor]:
    """(dets (K, 5) = boxes and scores of the kept boxes by descending score, their indices (K,)), as mmcv's."""
    valid = torch.nonzero(scores > score_threshold).flatten() if score_threshold > 0 else \
        torch.arange(len(scores), device=scores.device)
    kept = valid[_keep(boxes[valid].float(), scores[valid].float(), float(iou_threshold), int(offset))] \
        if len(valid) else valid
    if max_num > 0:
        kept = kept[:max_num]
    return torch.cat([boxes[kept], scores[kept, None]], dim=1), kept


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, nms_cfg: dict[str, Any] | None,
                class_agnostic: bool = False) -> tuple[Tensor, Tensor]:
    """NMS within each class `idxs` (boxes of different classes never suppress each other), as mmcv's:
    returns (dets (K, 5) by descending score, indices (K,)). Only `type='nms'` is available here."""
    if nms_cfg is None:
        order = torch.sort(scores, descending=True, stable=True).indices
        return torch.cat([boxes[order], scores[order, None]], dim=1), order
    cfg = dict(nms_cfg)
    class_agnostic = cfg.pop("class_agnostic", class_agnostic)
    kind = cfg.pop("type", "nms")
    if kind != "nms":
        raise NotImplementedError(f"mmcv.ops {kind} needs compiled mmcv ops; the plain-torch stand-in has 'nms'")
    cfg.pop("split_thr", None)
    max_num = cfg.pop("max_num", -1)
    if len(boxes) == 0:
        return boxes.new_zeros((0, 5)), idxs.new_zeros((0,), dtype=torch.long)
    shifted = boxes
    if not class_agnostic:  # move each class to its own region so that classes never overlap
        shifted = boxes + (idxs.to(boxes) * (boxes.max() + 1))[:, None]
    _, keep = nms(shifted, scores, **cfg)
    if max_num > 0:
        keep = keep[:max_num]
    return torch.cat([boxes[keep], scores[keep, None]], dim=1), keep
