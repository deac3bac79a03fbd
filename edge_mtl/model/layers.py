"""Small building blocks shared by the heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, k: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def dw_block(cin: int, cout: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, both with BN and ReLU (INT8- and DLA-friendly)."""
    return nn.Sequential(conv_bn_relu(cin, cin, 3, groups=cin), conv_bn_relu(cin, cout, 1))


def upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def as_float(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32: a head's last conv under autocast (bfloat16's 8-bit mantissa would put
    box edges 2-4 px apart). A no-op, and no graph node, when it already is float32."""
    return x if x.dtype == torch.float32 else x.float()
