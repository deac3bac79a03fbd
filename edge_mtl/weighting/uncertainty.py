"""Homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from edge_mtl.weighting.base import LossWeighting


class UncertaintyWeighting(LossWeighting):
    """total = sum_t exp(-s_t) * L_t + s_t with a learnable log-variance s_t per task.

    ``initial`` weights set s_t = -log(w_t), so switching from fixed weights is seamless. It reads
    no loss value: its s_t are parameters, whose gradients the training loop all-reduces in DDP.
    """

    def __init__(self, tasks: tuple[str, ...], initial: Mapping[str, float] | None = None):
        super().__init__()
        init = initial or {}
        self.log_vars = nn.ParameterDict({
            t: nn.Parameter(torch.tensor(-math.log(init.get(t, 1.0)))) for t in tasks})

    def forward(self, losses: Mapping[str, torch.Tensor], step: int,
                values: Mapping[str, float] | None = None) -> torch.Tensor:
        if not losses:
            raise ValueError("no task loss to weight: the batch carries no label at all")
        # a zero stand-in (a task only other DDP ranks hold) adds no term: no +s_t either
        return sum(torch.exp(-self.log_vars[t]) * v + self.log_vars[t] for t, v in losses.items()
                   if v.requires_grad or values is None)

    def current_weights(self, step: int) -> dict[str, float]:
        return {t: float(torch.exp(-s.detach())) for t, s in self.log_vars.items()}
