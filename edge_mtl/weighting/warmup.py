"""Warmup wrapper: one strategy for the first steps, another afterwards."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from edge_mtl.weighting.base import GramWeighting, LossWeighting


class WarmupWeighting(LossWeighting):
    """Use ``warmup`` while ``step < steps`` (heads settle), then ``dynamic``, of either kind (the
    training loop asks `active` which one it is)."""

    def __init__(self, warmup: LossWeighting, dynamic: LossWeighting | GramWeighting, steps: int):
        super().__init__()
        self.warmup, self.dynamic, self.steps = warmup, dynamic, steps

    def active(self, step: int) -> LossWeighting | GramWeighting:
        return self.warmup if step < self.steps else self.dynamic

    def forward(self, losses: Mapping[str, torch.Tensor], step: int,
                values: Mapping[str, float] | None = None) -> torch.Tensor:
        active = self.active(step)
        if isinstance(active, GramWeighting):
            raise TypeError(f"step {step}: {type(active).__name__} weights from gradients "
                            "(edge_mtl.weighting.gradients), not from losses alone")
        return active(losses, step, values)

    def current_weights(self, step: int) -> dict[str, float]:
        return self.active(step).current_weights(step)
