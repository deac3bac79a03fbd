"""PCGrad: projecting conflicting gradients (Yu et al., "Gradient Surgery for Multi-Task Learning",
NeurIPS 2020), as coefficients over the original task gradients."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from edge_mtl.weighting.base import GramWeighting, gram_array


class PCGradWeighting(GramWeighting):
    """Algorithm 1 of the paper: each g_i, visiting the other tasks in its own random order, loses
    its component along every g_j it conflicts with (g_i^PC . g_j < 0, g_i^PC being g_i as projected
    so far); the update is sum_i g_i^PC. Each g_i^PC = sum_k c_ik g_k, so every inner product it
    needs is a row of c @ gram. The orders come from a generator seeded with ``seed + step``: every
    DDP rank, and a run resumed at that step, draws the same ones. A zero gradient is skipped as a
    projection target (it has no direction to remove).
    """

    def __init__(self, tasks: tuple[str, ...], *, seed: int = 0):
        super().__init__(tasks)
        self.seed = int(seed)

    def weights(self, gram: torch.Tensor, losses: Mapping[str, torch.Tensor], step: int) -> torch.Tensor:
        g = gram_array(gram)
        n = len(g)
        zero = np.finfo(np.float64).eps * max(float(g.diagonal().max()), 0.0)
        gen = torch.Generator().manual_seed(self.seed + int(step))
        total = np.zeros(n)
        for i in range(n):
            c = np.zeros(n)
            c[i] = 1.0
            for j in torch.randperm(n, generator=gen).tolist():
                if j == i or g[j, j] <= zero:
                    continue
                dot = float(c @ g[:, j])  # <g_i^PC, g_j>
                if dot < 0:
                    c[j] -= dot / g[j, j]
            total += c
        return torch.as_tensor(total, dtype=torch.float64, device=gram.device)
