"""CAGrad: conflict-averse gradient descent (Liu et al., "Conflict-Averse Gradient Descent for
Multi-task Learning", NeurIPS 2021)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from scipy.optimize import minimize

from edge_mtl.weighting.base import GramWeighting, gram_array

RESCALES = (0, 1, 2)


class CAGradWeighting(GramWeighting):
    """The direction d that maximises the worst task's improvement min_i g_i . d within the ball
    ||d - g0|| <= c ||g0|| around the mean gradient g0. Its dual (Algorithm 1) is
    min_{w in simplex} g_w . g0 + c ||g0|| ||g_w||, g_w = sum_i w_i g_i, all of it quadratic forms
    of the Gram; then d = g0 + c ||g0|| g_w / ||g_w||, i.e. weights 1/T + c ||g0|| w / ||g_w||.
    The small dual is solved by SLSQP (as the official code) on the Gram divided by its mean
    diagonal, with the exact gradient and tight tolerances. ``rescale`` divides the result by
    1 (0), 1 + c^2 (1, the official default) or 1 + c (2). When g0 = 0 or g_w = 0 (the mean
    gradient vanishes, or the tasks are Pareto-stationary) d is g0: the weights are 1/T (rescaled).
    """

    def __init__(self, tasks: tuple[str, ...], *, c: float = 0.4, rescale: int = 1):
        super().__init__(tasks)
        if not (c >= 0 and math.isfinite(c)) or rescale not in RESCALES:
            raise ValueError(f"cagrad: c={c} must be >= 0 and rescale={rescale} one of {list(RESCALES)}")
        self.c, self.rescale = float(c), int(rescale)

    def weights(self, gram: torch.Tensor, losses: Mapping[str, torch.Tensor], step: int) -> torch.Tensor:
        g = gram_array(gram)
        n = len(g)
        divide = (1.0, 1.0 + self.c**2, 1.0 + self.c)[self.rescale]
        mean = np.full(n, 1.0 / n)
        scale = float(np.trace(g)) / n
        if not scale > 0 or self.c == 0:
            return torch.as_tensor(mean / divide, dtype=torch.float64, device=gram.device)
        g = g / scale
        g0_sq = float(mean @ g @ mean)
        if g0_sq <= 1e-20:
            return torch.as_tensor(mean / divide, dtype=torch.float64, device=gram.device)
        radius = self.c * math.sqrt(g0_sq)
        b = g @ mean  # g_i . g0

        def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
            gw = g @ w
            norm = math.sqrt(max(float(w @ gw), 0.0) + 1e-24)
            return float(b @ w) + radius * norm, b + radius * gw / norm

        res = minimize(objective, mean, jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * n,
                       constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0,
                                     "jac": lambda w: np.ones_like(w)}],
                       options={"ftol": 1e-15, "maxiter": 500})
        w = np.clip(res.x, 0.0, None)
        w = w / w.sum() if w.sum() > 0 else mean
        gw_norm = math.sqrt(max(float(w @ g @ w), 0.0))
        if gw_norm <= 1e-10:
            return torch.as_tensor(mean / divide, dtype=torch.float64, device=gram.device)
        out = (mean + radius / gw_norm * w) / divide
        return torch.as_tensor(out, dtype=torch.float64, device=gram.device)
