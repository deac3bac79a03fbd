"""Anchor-free detection head (FCOS-style points, quality-focal classification)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edge_mtl.model.layers import as_float, dw_block


def anchor_points(height: int, width: int, strides: tuple[int, ...],
                  device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres [N, 2] (x, y) in input pixels and their strides [N] for an input size."""
    points, point_strides = [], []
    for s in strides:
        ys = (torch.arange(height // s, device=device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(width // s, device=device, dtype=torch.float32) + 0.5) * s
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([xx.reshape(-1), yy.reshape(-1)], -1))
        point_strides.append(torch.full((xx.numel(),), float(s), device=device))
    return torch.cat(points), torch.cat(point_strides)


class DetectionHead(nn.Module):
    """One small head per pyramid level; outputs class logits and decoded xyxy boxes."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 64,
                 strides: tuple[int, ...] = (8, 16, 32), prior: float = 0.01):
        super().__init__()
        self.strides = strides
        self.num_classes = num_classes
        self.cls_towers = nn.ModuleList()
        self.reg_towers = nn.ModuleList()
        self.cls_outs = nn.ModuleList()
        self.reg_outs = nn.ModuleList()
        for _ in strides:
            self.cls_towers.append(nn.Sequential(dw_block(in_channels, channels),
                                                 dw_block(channels, channels)))
            self.reg_towers.append(nn.Sequential(dw_block(in_channels, channels),
                                                 dw_block(channels, channels)))
            cls = nn.Conv2d(channels, num_classes, 1)
            nn.init.normal_(cls.weight, std=0.01)
            nn.init.constant_(cls.bias, -math.log((1 - prior) / prior))
            reg = nn.Conv2d(channels, 4, 1)
            nn.init.normal_(reg.weight, std=0.01)
            nn.init.constant_(reg.bias, 1.0)
            self.cls_outs.append(cls)
            self.reg_outs.append(reg)

    def forward(self, feats: list[torch.Tensor], height: int, width: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        logits, dists = [], []
        for i, (f, s) in enumerate(zip(feats, self.strides, strict=True)):
            b = f.shape[0]
            logits.append(as_float(self.cls_outs[i](self.cls_towers[i](f))).reshape(b, self.num_classes, -1))
            d = F.softplus(as_float(self.reg_outs[i](self.reg_towers[i](f)))) * s
            dists.append(d.reshape(b, 4, -1))
        logits_t = torch.cat(logits, -1).transpose(1, 2)  # [B, N, C]
        d = torch.cat(dists, -1).transpose(1, 2)  # [B, N, 4] = l, t, r, b
        points, _ = anchor_points(height, width, self.strides, device=d.device)
        boxes = torch.cat([points - d[..., :2], points + d[..., 2:]], -1)
        return logits_t, boxes
