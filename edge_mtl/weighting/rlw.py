"""Random Loss Weighting (Lin et al., TMLR 2022): the sanity check every strategy should beat."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from edge_mtl.weighting.base import LossWeighting, check_present, loss_values


class RandomWeighting(LossWeighting):
    """w = K softmax(z), z ~ N(0, I) drawn anew each step over the K tasks of the batch (scaled by
    K so the weights sum to what equal weighting's do). The draw is a function of ``seed`` and
    the step, so every rank and a resumed run use the same weights."""

    def __init__(self, tasks: tuple[str, ...], *, seed: int = 0):
        super().__init__()
        self.tasks, self.seed = tuple(tasks), int(seed)

    def draw(self, step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        z = torch.randn(len(self.tasks), generator=g, dtype=torch.float64)
        return len(self.tasks) * torch.softmax(z, 0)

    def forward(self, losses: Mapping[str, torch.Tensor], step: int,
                values: Mapping[str, float] | None = None) -> torch.Tensor:
        values = loss_values(losses, values)
        check_present(losses, values)
        z = self.draw(step)
        share = {t: float(z[self.tasks.index(t)]) for t in values}
        total = sum(share.values())
        return sum(len(values) * share[t] / total * v for t, v in losses.items())

    def current_weights(self, step: int) -> dict[str, float]:
        """The weights of a batch that holds every task (a partial batch renormalises its share)."""
        return dict(zip(self.tasks, self.draw(step).tolist(), strict=True))
