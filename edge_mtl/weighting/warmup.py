"""Warmup wrapper: one strategy for the first steps, another afterwards."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from edge_mtl.weighting.base import LossWeighting


class WarmupWeighting(LossWeighting):
    """Use ``warmup`` while ``step < steps`` (heads settle), then ``dynamic``."""

    def __init__(self, warmup: LossWeighting, dynamic: LossWeighting, steps: int):
        super().__init__()
        self.warmup, self.dynamic, self.steps = warmup, dynamic, steps

    def active(self, step: int) -> LossWeighting:
        return self.warmup if step < self.steps else self.dynamic

    def forward(self, losses: Mapping[str, torch.Tensor], step: int) -> torch.Tensor:
        return self.active(step)(losses, step)

    def current_weights(self, step: int) -> dict[str, float]:
        return self.active(step).current_weights(step)
