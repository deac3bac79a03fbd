"""FAMO: Fast Adaptive Multitask Optimization (Liu et al., NeurIPS 2023), O(1) per step."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from edge_mtl.weighting.base import LossWeighting, check_present, loss_values


class FAMOWeighting(LossWeighting):
    """total = sum_t z_t log(L_t + eps) / c, z = softmax(xi) over the tasks of the batch and
    c = sum_t z_t / (L_t + eps) (so task t's gradient is scaled by z_t / (c (L_t + eps))).

    The logits xi learn from how much each log-loss fell: after a step, the change
    delta_t = log L_t(before) - log L_t(after) drives xi by Adam (lr ``lr``, decay ``gamma``) along
    the softmax Jacobian, which favours the tasks that improve least. The paper re-evaluates the
    batch after the step; here "after" is the next batch that holds the task (no extra forward,
    one step's delay, as LibMTL's and the official code's cheap mode). Only tasks present in both
    batches update; each task's logit has its own Adam moments, so an absent task's logit and
    moments stay exactly as they were. The logits are buffers: the model's optimizer never moves
    them, checkpoints carry them.
    """

    def __init__(self, tasks: tuple[str, ...], *, lr: float = 0.025, gamma: float = 0.01,
                 eps: float = 1e-8, betas: tuple[float, float] = (0.9, 0.999)):
        super().__init__()
        if not lr > 0 or gamma < 0 or not eps > 0:
            raise ValueError(f"famo: lr={lr} and eps={eps} must be > 0, gamma={gamma} >= 0")
        self.tasks, self.lr, self.gamma, self.eps = tuple(tasks), float(lr), float(gamma), float(eps)
        self.betas = (float(betas[0]), float(betas[1]))
        n = len(self.tasks)
        self.register_buffer("logits", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("moments", torch.zeros(n, 2, dtype=torch.float64))  # Adam m, v
        self.register_buffer("updates", torch.zeros(n, dtype=torch.long))  # Adam's t, per task
        self.register_buffer("previous", torch.full((n,), math.nan, dtype=torch.float64))  # log L
        self._last = {t: 1.0 for t in self.tasks}  # d total / d L_t at the last batch with the task

    def forward(self, losses: Mapping[str, torch.Tensor], step: int,
                values: Mapping[str, float] | None = None) -> torch.Tensor:
        """The loss above; in DDP (``values`` given) the same gradient as sum_t w_t L_t with the
        weights w_t = z_t / (c (value_t + eps)) that every rank computes alike."""
        own = values is None
        values = loss_values(losses, values)
        check_present(losses, values)
        names = list(values)
        idx = [self.tasks.index(t) for t in names]
        v = torch.tensor([values[t] for t in names], dtype=torch.float64)
        if bool((v < 0).any()):
            raise ValueError(f"famo: losses {values} must be >= 0")
        log_now = torch.log(v + self.eps)
        self._learn(idx, log_now)
        self.previous[idx] = log_now
        z = torch.softmax(self.logits[idx], 0)
        c = float((z / (v + self.eps)).sum())
        share = dict(zip(names, (z / c).tolist(), strict=True))
        self._last.update({t: share[t] / (values[t] + self.eps) for t in names})
        if own:
            return sum(share[t] * torch.log(loss + self.eps) for t, loss in losses.items())
        return sum(share[t] / (values[t] + self.eps) * loss for t, loss in losses.items())

    def _learn(self, idx: list[int], log_now: torch.Tensor) -> None:
        seen = [k for k, i in enumerate(idx) if not math.isnan(float(self.previous[i]))]
        if len(seen) < 2:  # one task alone has nothing to be balanced against
            return
        both = [idx[k] for k in seen]
        delta = self.previous[both] - log_now[seen]
        z = torch.softmax(self.logits[both], 0)
        grad = z * (delta - (z * delta).sum()) + self.gamma * self.logits[both]  # J_softmax^T delta
        b1, b2 = self.betas
        for k, i in enumerate(both):
            self.updates[i] += 1
            t = int(self.updates[i])
            self.moments[i, 0] = b1 * self.moments[i, 0] + (1 - b1) * grad[k]
            self.moments[i, 1] = b2 * self.moments[i, 1] + (1 - b2) * grad[k] ** 2
            m_hat, v_hat = self.moments[i, 0] / (1 - b1**t), self.moments[i, 1] / (1 - b2**t)
            self.logits[i] -= self.lr * m_hat / (v_hat.sqrt() + 1e-8)

    def shares(self) -> dict[str, float]:
        """The softmax of the logits over every task (the log-loss share z_t)."""
        return dict(zip(self.tasks, torch.softmax(self.logits, 0).tolist(), strict=True))

    def current_weights(self, step: int) -> dict[str, float]:
        """d total / d L_t at the last batch that held the task: z_t / (c (L_t + eps))."""
        return dict(self._last)
