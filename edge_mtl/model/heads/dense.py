"""Dense heads on a shared stride-4 decoder: lane-marking logits and metric depth."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edge_mtl.model.layers import as_float, conv_bn_relu, dw_block, upsample2


class DenseDecoder(nn.Module):
    """P3 upsampled to stride 4 and fused with the backbone's stride-4 map."""

    def __init__(self, p3_channels: int, c4_channels: int, channels: int = 32):
        super().__init__()
        self.top = conv_bn_relu(p3_channels, channels)
        self.lateral = conv_bn_relu(c4_channels, channels)
        self.fuse = dw_block(channels, channels)

    def forward(self, p3: torch.Tensor, c4: torch.Tensor) -> torch.Tensor:
        return self.fuse(upsample2(self.top(p3)) + self.lateral(c4))


class LaneHead(nn.Module):
    """Lane-marking logits at stride 2, computed one of two ways.

    ``stride=2``: the decoder upsampled and fused with the stride-2 backbone map, then a block
    at stride 2. ``stride=4`` (cheaper: ~2 ms less on 2 CPU cores): two blocks on the shared
    stride-4 decoder predict 2x2 sub-pixel logits per cell, a pixel shuffle lays them out at
    stride 2, and a 1x1 conv of the stride-2 backbone map adds back the fine detail.
    """

    def __init__(self, channels: int, c2_channels: int, stride: int = 4):
        super().__init__()
        if stride not in (2, 4):
            raise ValueError(f"lane head stride {stride} must be 2 or 4")
        self.stride = stride
        if stride == 2:
            self.lateral = conv_bn_relu(c2_channels, channels)
            self.block = dw_block(channels, channels)
            self.out = nn.Conv2d(channels, 1, 1)
        else:
            self.detail = nn.Conv2d(c2_channels, 1, 1)
            self.block = nn.Sequential(dw_block(channels, channels), dw_block(channels, channels))
            self.out = nn.Conv2d(channels, 4, 1)
        nn.init.constant_(self.out.bias, -2.0)

    def forward(self, f4: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
        if self.stride == 2:
            return as_float(self.out(self.block(upsample2(f4) + self.lateral(c2))))
        return as_float(F.pixel_shuffle(self.out(self.block(f4)), 2) + self.detail(c2))


class DepthHead(nn.Module):
    """Metric depth at stride 4, bounded in log space: exp(lerp(log min, log max, sigmoid))."""

    def __init__(self, channels: int, min_depth: float, max_depth: float):
        super().__init__()
        self.block = dw_block(channels, channels)
        self.out = nn.Conv2d(channels, 1, 1)
        self.log_min = math.log(min_depth)
        self.log_range = math.log(max_depth) - self.log_min

    def forward(self, f4: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.log_min + self.log_range * torch.sigmoid(as_float(self.out(self.block(f4)))))
