"""Log-loss scalarisation: sum_t log L_t, the geometric mean of the losses up to a constant
(the loss-scale half of DB-MTL, Lin et al. 2023; also the scale-invariant loss of
Navon et al.'s and Kurin et al.'s baselines)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from edge_mtl.weighting.base import LossWeighting, check_present, loss_values


class LogLossWeighting(LossWeighting):
    """total = sum_t log(L_t + eps): each task's gradient is divided by its own loss, so a task
    whose loss is ten times larger does not take ten times the step. Only present tasks enter
    (an absent task fed as a zero loss would be log(eps)); ``eps`` guards an exactly-zero loss."""

    def __init__(self, tasks: tuple[str, ...], *, eps: float = 1e-6):
        super().__init__()
        if not eps > 0:
            raise ValueError(f"logloss: eps={eps} must be > 0")
        self.tasks, self.eps = tuple(tasks), float(eps)
        self._last = {t: 1.0 for t in self.tasks}

    def forward(self, losses: Mapping[str, torch.Tensor], step: int,
                values: Mapping[str, float] | None = None) -> torch.Tensor:
        """sum_t log(L_t + eps) when ``values`` are the batch's own; in DDP the same gradient
        direction with every rank's weights 1 / (value + eps), i.e. sum_t L_t / (value_t + eps)."""
        own = values is None
        values = loss_values(losses, values)
        check_present(losses, values)
        for t, v in values.items():
            if v < 0:
                raise ValueError(f"logloss: the {t} loss is {v:.4g}; log needs losses >= 0")
            self._last[t] = 1.0 / (v + self.eps)
        if own:
            return sum(torch.log(v + self.eps) for v in losses.values())
        return sum(self._last[t] * v for t, v in losses.items())

    def current_weights(self, step: int) -> dict[str, float]:
        """d total / d L_t at the last batch that held the task: 1 / (L_t + eps)."""
        return dict(self._last)
