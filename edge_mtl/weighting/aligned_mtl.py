"""Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task Learning",
CVPR 2023)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from edge_mtl.weighting.base import GramWeighting, gram_array

SCALE_MODES = ("min", "median", "rmse")


class AlignedMTLWeighting(GramWeighting):
    """Algorithm 1 of the paper: the task gradients (rows of J) are replaced by the aligned ones
    B J, whose singular values are all equal to the scale sigma (the smallest singular value of J
    for ``scale_mode="min"``, the paper's choice), and summed: w = B^T 1. From the Gram's eigen-
    decomposition G = V diag(lambda) V^T (lambda = squared singular values of J) over its numerical
    rank R: B = sigma V diag(lambda)^-1/2 V^T. The rank tolerance (lambda_max * T * float32 eps),
    the sum over tasks and the "median" (the lower one) and "rmse" (sqrt of the mean lambda)
    scales follow the official code; with every gradient zero the weights are 1.
    """

    def __init__(self, tasks: tuple[str, ...], *, scale_mode: str = "min"):
        super().__init__(tasks)
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"aligned_mtl: scale_mode={scale_mode!r}: choose from {list(SCALE_MODES)}")
        self.scale_mode = scale_mode

    def weights(self, gram: torch.Tensor, losses: Mapping[str, torch.Tensor], step: int) -> torch.Tensor:
        g = gram_array(gram)
        n = len(g)
        lam, vec = np.linalg.eigh(g)  # ascending
        if not lam[-1] > 0:
            return torch.ones(n, dtype=torch.float64, device=gram.device)
        keep = lam > lam[-1] * n * np.finfo(np.float32).eps
        lam, vec = lam[keep], vec[:, keep]
        if self.scale_mode == "min":
            sigma2 = lam[0]
        elif self.scale_mode == "median":
            sigma2 = lam[(len(lam) - 1) // 2]
        else:
            sigma2 = lam.mean()
        b = np.sqrt(sigma2) * (vec / np.sqrt(lam)) @ vec.T  # symmetric, so B^T 1 = B 1
        return torch.as_tensor(b.sum(1), dtype=torch.float64, device=gram.device)
