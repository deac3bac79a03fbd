"""GradNorm: gradient normalisation for adaptive loss balancing (Chen et al., ICML 2018)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from edge_mtl.weighting.base import GramWeighting

FLOOR = 1e-6  # a weight is kept above this before renormalising (the paper's weights stay > 0)


class GradNormWeighting(GramWeighting):
    """Learnable weights w_t (a buffer; the present tasks' ones renormalised to sum to T) pulled
    toward equal training rates: with G_t = w_t ||g_t|| (||g_t|| = sqrt(gram[t, t])), their mean
    G_bar, the loss ratios L_t / L_t(0) and r_t their ratio to the mean, the paper's
    L_grad = sum_t |G_t - G_bar r_t^alpha| (target held constant) is descended by one plain
    gradient step of ``lr`` on the weights after each call; the call returns the weights before
    that step (the ones the step's loss is weighted with, as in the paper).

    One deviation: the step is taken on L_grad / G_bar, which makes it independent of the size of
    the gradients (the paper's raw L_grad moves the weights by lr ||g_t||, so a fixed ``lr`` would
    suit one gradient scale only, representation or parameters, fp32 or AMP). L_t(0) is each
    task's loss at the first call that task is present in (``seen`` records which have one), so
    a task absent at first gets its own later. An absent task's weight and L(0) stay untouched.
    Losses must be >= 0 (they are ratios).
    """

    def __init__(self, tasks: tuple[str, ...], *, alpha: float = 1.5, lr: float = 0.025):
        super().__init__(tasks)
        if not (alpha >= 0 and math.isfinite(alpha)) or not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"gradnorm: alpha={alpha} must be >= 0 and lr={lr} > 0")
        self.alpha, self.lr = float(alpha), float(lr)
        n = len(self.tasks)
        self.register_buffer("task_weights", torch.ones(n, dtype=torch.float64))
        self.register_buffer("initial_loss", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("seen", torch.zeros(n, dtype=torch.bool))

    def weights(self, gram: torch.Tensor, losses: Mapping[str, torch.Tensor], step: int) -> torch.Tensor:
        values = np.array([float(torch.as_tensor(v).detach()) for v in losses.values()])
        if not (np.isfinite(values).all() and (values >= 0).all()):
            raise ValueError(f"gradnorm: losses {dict(zip(losses, values.tolist(), strict=True))} "
                             "must be finite and >= 0")
        idx = [self.tasks.index(t) for t in losses]
        n = len(idx)
        new = [i for i in idx if not bool(self.seen[i])]
        if new:
            self.initial_loss[new] = torch.as_tensor(values[[idx.index(i) for i in new]],
                                                     dtype=torch.float64).to(self.initial_loss.device)
            self.seen[new] = True
        w = self.task_weights[idx].detach().cpu().numpy()
        w = w * (n / w.sum())
        norms = np.sqrt(np.clip(gram.detach().cpu().numpy().diagonal(), 0.0, None))
        weighted = w * norms  # G_t
        g_bar = float(weighted.mean())
        ratios = values / np.maximum(self.initial_loss[idx].detach().cpu().numpy(), 1e-12)
        step_w = w
        if n > 1 and g_bar > 0:
            rate = ratios / ratios.mean() if ratios.mean() > 0 else np.ones(n)
            target = g_bar * rate**self.alpha
            grad = np.sign(weighted - target) * norms / g_bar  # d (L_grad / G_bar) / d w_t
            step_w = np.maximum(w - self.lr * grad, FLOOR)
            step_w = step_w * (n / step_w.sum())
        self.task_weights[idx] = torch.as_tensor(step_w, dtype=torch.float64).to(self.task_weights.device)
        return torch.as_tensor(w, dtype=torch.float64, device=gram.device)
