"""Nash-MTL: multi-task learning as a bargaining game (Navon et al., ICML 2022)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from edge_mtl.weighting.base import GramWeighting, gram_array

# Tikhonov term added to the normalised Gram (||G||_F = 1) when the game has no solution (the
# gradients are linearly dependent with opposite signs, e.g. g_1 = -g_2: alpha grows without bound)
REG = 1e-8
# a task whose squared gradient norm is below this fraction of the largest has no gradient
ZERO = 1e-12


def bargaining_solution(g: np.ndarray, iterations: int = 100) -> np.ndarray | None:
    """The alpha > 0 with (g alpha) * alpha = 1, or None if it was not found (there is none):
    the minimiser of the strictly convex, self-concordant f(alpha) = alpha^T g alpha / 2 -
    sum_t log alpha_t (its gradient is g alpha - 1 / alpha), by damped Newton (globally
    convergent, never leaves alpha > 0), then full Newton steps (quadratic convergence)."""
    alpha = 1.0 / np.sqrt(g.diagonal())
    for _ in range(iterations):
        grad = g @ alpha - 1.0 / alpha
        try:
            step = np.linalg.solve(g + np.diag(1.0 / alpha**2), grad)
        except np.linalg.LinAlgError:  # 1 / alpha^2 underflowed: alpha is running away
            return None
        decrement = math.sqrt(max(float(grad @ step), 0.0))  # Newton decrement
        if decrement < 1e-8:  # one more full step squares the error (the quadratic phase)
            return alpha - step
        alpha = alpha - (step if decrement < 0.25 else step / (1.0 + decrement))
        if not alpha.max() < 1e12:  # no solution: f is unbounded below along a null direction
            return None
    return None


class NashMTLWeighting(GramWeighting):
    """The Nash bargaining solution of Algorithm 1: alpha > 0 with (G alpha)_t alpha_t = 1 for
    every task t (each task's utility g_t . d of d = sum_t alpha_t g_t is 1 / alpha_t). Instead
    of the paper's sequence of convex approximations (cvxpy, ``optim_niter`` = 20 iterations,
    warm-started from the last alpha), the exact solution by Newton's method on the convex
    potential it is the minimiser of.

    ``normalize`` (default, as the official code): solve it for G / ||G||_F, i.e. alpha is
    sqrt(||G||_F) times the paper's solution, so the step scales with the gradients (without it,
    ||d||^2 = T whatever their size). ``update_weights_every``: re-solve only on steps that are a
    multiple of it (or when the set of present tasks has changed since the last solve), keeping
    the last weights in between (held in buffers, so a checkpoint carries them). ``max_norm`` > 0
    (the official code's clipping, off by default: the training loop clips the gradient itself)
    scales the weights down so that ||d|| = sqrt(w^T G w) <= max_norm. A task with a zero gradient
    gets weight 0 (its utility cannot be raised: the paper's problem has no solution there); with
    every gradient zero the weights are 1.
    """

    def __init__(self, tasks: tuple[str, ...], *, update_weights_every: int = 1, normalize: bool = True,
                 max_norm: float = 0.0):
        super().__init__(tasks)
        if update_weights_every < 1 or not max_norm >= 0:
            raise ValueError(f"nash_mtl: update_weights_every={update_weights_every} must be >= 1 and "
                             f"max_norm={max_norm} >= 0")
        self.update_weights_every, self.normalize = int(update_weights_every), bool(normalize)
        self.max_norm = float(max_norm)
        n = len(self.tasks)
        self.register_buffer("alpha", torch.ones(n, dtype=torch.float64))
        self.register_buffer("solved_for", torch.zeros(n, dtype=torch.bool))  # tasks of the last solve

    def weights(self, gram: torch.Tensor, losses: Mapping[str, torch.Tensor], step: int) -> torch.Tensor:
        idx = [self.tasks.index(t) for t in losses]
        present = torch.zeros_like(self.solved_for)
        present[idx] = True
        g = gram_array(gram)
        if step % self.update_weights_every == 0 or not torch.equal(present, self.solved_for):
            self.alpha[idx] = torch.as_tensor(self._solve(g), dtype=torch.float64).to(self.alpha.device)
            self.solved_for.copy_(present)
        w = self.alpha[idx].detach().cpu().numpy().copy()
        if self.max_norm > 0:
            norm = math.sqrt(max(float(w @ g @ w), 0.0))
            if norm > self.max_norm:
                w *= self.max_norm / norm
        return torch.as_tensor(w, dtype=torch.float64, device=gram.device)

    def _solve(self, g: np.ndarray) -> np.ndarray:
        n = len(g)
        diag = g.diagonal()
        live = diag > ZERO * max(float(diag.max()), 0.0)
        if not live.any():
            return np.ones(n)
        g = g[np.ix_(live, live)]
        frobenius = float(np.linalg.norm(g))
        alpha = bargaining_solution(g / frobenius)
        if alpha is None:
            alpha = bargaining_solution(g / frobenius + REG * np.eye(len(g)), iterations=200)
        if alpha is None:
            raise FloatingPointError(f"nash_mtl: no bargaining solution found for the Gram {g.tolist()}")
        out = np.zeros(n)
        out[live] = alpha if self.normalize else alpha / math.sqrt(frobenius)
        return out
