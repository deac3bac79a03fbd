"""Per-task losses, each averaged over the samples that carry that task's label.

A task with no labelled sample in the batch is absent from the returned dict: it adds
neither a term nor a zero that would drag an average, and its head gets no gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, generalized_box_iou_loss

from edge_mtl.config import LossConfig
from edge_mtl.model.heads.detection import anchor_points
from edge_mtl.types import Batch

# FCOS scale ranges: a point on level s takes objects whose largest l/t/r/b fits the range.
_SCALE_RANGES = {8: (0.0, 64.0), 16: (64.0, 128.0), 32: (128.0, float("inf"))}
_CENTER_RADIUS = 2.5


def compute_losses(out: dict[str, torch.Tensor], batch: Batch, cfg: LossConfig,
                   strides: tuple[int, ...] = (8, 16, 32)) -> dict[str, torch.Tensor]:
    """All task losses present in ``batch``; keys are a subset of ("det", "lane", "depth")."""
    losses: dict[str, torch.Tensor] = {}
    has = batch.has_label
    if has["det"].any():
        losses["det"] = detection_loss(out["det_logits"], out["det_boxes"], batch, cfg, strides)
    if has["lane"].any():
        losses["lane"] = lane_loss(out["lane_logits"], batch, cfg)
    if has["depth"].any():
        depth = depth_loss(out["depth"], batch, cfg)
        if depth is not None:
            losses["depth"] = depth
    return losses


@torch.no_grad()
def assign_points(boxes: torch.Tensor, valid: torch.Tensor, height: int, width: int,
                  strides: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """FCOS assignment with centre sampling: matched box index per point, or -1.

    boxes [B, M, 4] xyxy, valid [B, M] -> index [B, N]; also returns points [N, 2].
    Among candidate boxes a point takes the one of smallest area.
    """
    points, pstride = anchor_points(height, width, strides, boxes.device)
    lo, hi = torch.zeros_like(pstride), torch.zeros_like(pstride)
    for s in strides:
        lo[pstride == s], hi[pstride == s] = _SCALE_RANGES[s]
    px, py = points[None, :, None, 0], points[None, :, None, 1]  # [1, N, 1]
    x1, y1, x2, y2 = (boxes[:, None, :, i] for i in range(4))  # [B, 1, M]
    ltrb = torch.stack([px - x1, py - y1, x2 - px, y2 - py], -1)  # [B, N, M, 4]
    inside = ltrb.min(-1).values > 0
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = _CENTER_RADIUS * pstride[None, :, None]
    central = ((px - cx).abs() < r) & ((py - cy).abs() < r)
    reach = ltrb.max(-1).values
    in_scale = (reach >= lo[None, :, None]) & (reach <= hi[None, :, None])
    cand = inside & central & in_scale & valid[:, None, :]
    area = ((x2 - x1) * (y2 - y1)).expand_as(cand)
    area = torch.where(cand, area, torch.full_like(area, float("inf")))
    best_area, index = area.min(-1)
    index = torch.where(torch.isfinite(best_area), index, torch.full_like(index, -1))
    return index, points


def inside_any(points: torch.Tensor, regions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """bool [B, N]: point n lies inside one of image b's valid regions ([B, K, 4] xyxy)."""
    px, py = points[None, :, None, 0], points[None, :, None, 1]
    x1, y1, x2, y2 = (regions[:, None, :, i] for i in range(4))
    inside = (px >= x1) & (px <= x2) & (py >= y1) & (py <= y2) & valid[:, None, :]
    return inside.any(-1)


def detection_loss(logits: torch.Tensor, pred_boxes: torch.Tensor, batch: Batch,
                   cfg: LossConfig, strides: tuple[int, ...]) -> torch.Tensor:
    """Quality focal loss (IoU-valued class targets) + GIoU box loss over labelled images."""
    sel = batch.has_label["det"]
    logits, pred_boxes = logits[sel].float(), pred_boxes[sel].float()
    gt_boxes, gt_cls, valid = batch.boxes[sel], batch.classes[sel], batch.box_valid[sel]
    h, w = batch.image.shape[-2:]
    index, points = assign_points(gt_boxes, valid, h, w, strides)
    if index.shape[1] != logits.shape[1]:
        raise ValueError(f"detection outputs have {logits.shape[1]} points but a {h}x{w} input "
                         f"with strides {strides} has {index.shape[1]}")
    pos = index >= 0
    safe = index.clamp(min=0)
    matched_boxes = torch.gather(gt_boxes, 1, safe[..., None].expand(-1, -1, 4))
    matched_cls = torch.gather(gt_cls, 1, safe)
    target = torch.zeros_like(logits)
    num_pos = pos.sum().clamp(min=1).float()
    if pos.any():
        pb, gb = pred_boxes[pos], matched_boxes[pos]
        with torch.no_grad():
            iou = box_iou(pb, gb).diagonal().clamp(min=0.0)
        target[pos, matched_cls[pos]] = iou.to(target.dtype)
        box = generalized_box_iou_loss(pb, gb, reduction="sum") / num_pos
    else:
        box = pred_boxes.sum() * 0.0
    prob = logits.sigmoid()
    qfl = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    qfl = qfl * (prob - target).abs().pow(cfg.qfl_beta)
    if batch.ignore is not None and batch.ignore_valid[sel].any():
        # a point inside an ignore region that no object claims is neither positive nor negative
        ignored = inside_any(points, batch.ignore[sel], batch.ignore_valid[sel]) & ~pos
        qfl = qfl * (~ignored)[..., None]
    qfl = qfl.sum() / num_pos
    return qfl + cfg.box_weight * box


def lane_loss(logits: torch.Tensor, batch: Batch, cfg: LossConfig) -> torch.Tensor:
    """BCE (positive-weighted) + soft dice, on marking coverage at input resolution."""
    sel = batch.has_label["lane"]
    target = batch.lane[sel]
    logits = F.interpolate(logits[sel].float(), size=target.shape[-2:], mode="bilinear",
                           align_corners=False)[:, 0]
    pos_weight = torch.tensor(cfg.lane_pos_weight, device=logits.device)
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
    prob = logits.sigmoid()
    inter = (prob * target).sum((1, 2))
    dice = 1 - (2 * inter + 1) / (prob.sum((1, 2)) + target.sum((1, 2)) + 1)
    return bce + cfg.lane_dice_weight * dice.mean()


def depth_loss(depth: torch.Tensor, batch: Batch, cfg: LossConfig) -> torch.Tensor | None:
    """Scale-invariant log loss (Eigen et al.; lambda < 1 keeps absolute scale) per sample."""
    sel = batch.has_label["depth"]
    gt, valid = batch.depth[sel], batch.depth_valid[sel]
    pred = F.interpolate(depth[sel].float(), size=gt.shape[-2:], mode="bilinear",
                         align_corners=False)
    counts = valid.sum((1, 2, 3))
    keep = counts > 0
    if not keep.any():
        return None
    d = torch.where(valid, torch.log(pred.clamp(min=1e-3)) - torch.log(gt.clamp(min=1e-3)), 0.0)
    n = counts.clamp(min=1).float()
    mean = d.sum((1, 2, 3)) / n
    mean_sq = (d * d).sum((1, 2, 3)) / n
    silog = torch.sqrt((mean_sq - cfg.silog_lambda * mean * mean).clamp(min=1e-8)) * 10.0
    return silog[keep].mean()
