"""torchvision MobileNet feature extractors that report (channels, stride) per level."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torch import nn

BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "mobilenet_v3_large": torchvision.models.mobilenet_v3_large,
    "mobilenet_v3_small": torchvision.models.mobilenet_v3_small,
    "mobilenet_v2": torchvision.models.mobilenet_v2,
}


class MobileNetBackbone(nn.Module):
    """``features`` of a torchvision MobileNet, returning the last map at each stride.

    ``feature_info`` lists (channels, stride) per returned level: the contract the neck reads.
    """

    def __init__(self, name: str = "mobilenet_v3_large", strides: tuple[int, ...] = (2, 4, 8, 16, 32),
                 pretrained: str | None = None):
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
        net = BACKBONES[name](weights=None)
        if pretrained:
            path = Path(pretrained)
            if not path.is_file():
                raise FileNotFoundError(f"pretrained backbone weights {path} not found "
                                        "(weights are never downloaded; pass a local file)")
            state = torch.load(path, map_location="cpu", weights_only=True)
            missing = net.load_state_dict(state, strict=False).missing_keys
            if any(k.startswith("features.") for k in missing):
                raise ValueError(f"{path}: does not hold {name} weights (missing {missing[:3]}…)")
        self.features = net.features
        self.out_indices, self.feature_info = self._probe(strides)

    @torch.no_grad()
    def _probe(self, strides: tuple[int, ...]) -> tuple[list[int], list[tuple[int, int]]]:
        self.features.eval()
        x = torch.zeros(1, 3, 128, 128)
        last: dict[int, tuple[int, int]] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            last[128 // x.shape[-1]] = (i, x.shape[1])
        self.features.train()
        missing = [s for s in strides if s not in last]
        if missing:
            raise ValueError(f"backbone has no feature map at stride(s) {missing}")
        return [last[s][0] for s in strides], [(last[s][1], s) for s in strides]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.out_indices:
                outs.append(x)
            if i == self.out_indices[-1]:
                break
        return outs
