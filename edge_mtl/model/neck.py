"""Feature pyramid over the backbone's stride-8/16/32 maps (torchvision.ops)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork


class FPN(nn.Module):
    """P3-P5 with ``channels`` each, built from the backbone's ``feature_info``."""

    def __init__(self, in_channels: list[int], channels: int = 64):
        super().__init__()
        self.fpn = FeaturePyramidNetwork(in_channels, channels)
        self.channels = channels

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        out = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(feats)))
        return list(out.values())
