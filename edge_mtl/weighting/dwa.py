"""Dynamic Weight Average (Liu, Johns & Davison, CVPR 2019)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from edge_mtl.weighting.base import LossWeighting, check_present, loss_values


class DWAWeighting(LossWeighting):
    """w_t = K exp(r_t / T) / sum_k exp(r_k / T) over the K tasks of the batch, with r_t the ratio
    of task t's mean loss over the last two completed windows of ``period`` steps (the paper's
    epochs). A task without two windows yet has r_t = 1. Only a task present in a batch adds to
    its window, so a task missing from many batches still compares like with like.
    """

    def __init__(self, tasks: tuple[str, ...], *, temperature: float = 2.0, period: int = 100):
        super().__init__()
        if not temperature > 0 or period < 1:
            raise ValueError(f"dwa: temperature={temperature} must be > 0 and period={period} >= 1")
        self.tasks, self.temperature, self.period = tuple(tasks), float(temperature), int(period)
        n = len(self.tasks)
        # per task: loss sum and count of the open window; means of the last two closed ones
        self.register_buffer("window", torch.zeros(n, 2, dtype=torch.float64))
        self.register_buffer("means", torch.zeros(n, 2, dtype=torch.float64))
        self.register_buffer("closed", torch.zeros(n, dtype=torch.long))
        self.register_buffer("window_index", torch.zeros((), dtype=torch.long))

    def ratios(self, names: list[str]) -> torch.Tensor:
        idx = [self.tasks.index(t) for t in names]
        ready = self.closed[idx] >= 2
        r = self.means[idx, 1] / self.means[idx, 0].clamp_min(1e-12)
        return torch.where(ready, r, torch.ones_like(r))

    def weights_for(self, names: list[str]) -> torch.Tensor:
        return len(names) * torch.softmax(self.ratios(names) / self.temperature, 0)

    def forward(self, losses: Mapping[str, torch.Tensor], step: int,
                values: Mapping[str, float] | None = None) -> torch.Tensor:
        values = loss_values(losses, values)
        check_present(losses, values)
        self._roll(step)
        names = list(values)
        w = dict(zip(names, self.weights_for(names).tolist(), strict=True))
        for t, v in values.items():
            k = self.tasks.index(t)
            self.window[k, 0] += v
            self.window[k, 1] += 1
        return sum(w[t] * v for t, v in losses.items())

    def _roll(self, step: int) -> None:
        """Close the open window when ``step`` has entered a new one."""
        index = step // self.period
        if index == int(self.window_index):
            return
        for k in range(len(self.tasks)):
            if self.window[k, 1] > 0:
                self.means[k, 0] = self.means[k, 1]
                self.means[k, 1] = self.window[k, 0] / self.window[k, 1]
                self.closed[k] += 1
        self.window.zero_()
        self.window_index.fill_(index)

    def current_weights(self, step: int) -> dict[str, float]:
        """The weights of a batch that holds every task (a partial batch renormalises its share)."""
        return dict(zip(self.tasks, self.weights_for(list(self.tasks)).tolist(), strict=True))
