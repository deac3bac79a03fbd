"""Constant per-task weights."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from edge_mtl.weighting.base import LossWeighting


class FixedWeighting(LossWeighting):
    def __init__(self, weights: Mapping[str, float]):
        super().__init__()
        self.weights = dict(weights)

    def forward(self, losses: Mapping[str, torch.Tensor], step: int,
                values: Mapping[str, float] | None = None) -> torch.Tensor:
        if not losses:
            raise ValueError("no task loss to weight: the batch carries no label at all")
        return sum(self.weights[t] * v for t, v in losses.items())

    def current_weights(self, step: int) -> dict[str, float]:
        return dict(self.weights)
