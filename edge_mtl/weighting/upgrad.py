"""UPGrad: unconflicting projection of gradients (Quinton & Rey, "Jacobian Descent for
Multi-Objective Optimization", 2024; TorchJD's UPGrad)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from scipy.optimize import nnls

from edge_mtl.weighting.base import GramWeighting, gram_array


class UPGradWeighting(GramWeighting):
    """Each task gradient, weighted 1/T (TorchJD's default mean preference), is projected onto the
    dual cone {d : d . g_j >= 0 for all j} of the task gradients, and the projections are summed.
    By Proposition 1 of the paper the projection of J^T u is J^T v with v the solution of
    min_v v^T G v subject to v >= u. With G = R^T R (R from the eigen-decomposition) and v = u + x
    that is the non-negative least-squares problem min_{x >= 0} ||R x + R u||, solved exactly by
    Lawson-Hanson's active-set method (scipy.optimize.nnls) instead of TorchJD's regularised QP
    (no ``reg_eps`` is added, so the result is exactly non-conflicting). The Gram is first divided
    by its trace, which leaves the weights unchanged; with every gradient zero they are 1/T.
    """

    def weights(self, gram: torch.Tensor, losses: Mapping[str, torch.Tensor], step: int) -> torch.Tensor:
        g = gram_array(gram)
        n = len(g)
        trace = float(np.trace(g))
        w = np.full(n, 1.0 / n)
        if trace > 0:
            lam, vec = np.linalg.eigh(g / trace)
            r = np.sqrt(np.clip(lam, 0.0, None))[:, None] * vec.T  # R^T R = G / trace
            for i in range(n):
                u = np.zeros(n)
                u[i] = 1.0 / n
                x, _ = nnls(r, -r @ u)
                w += x
        return torch.as_tensor(w, dtype=torch.float64, device=gram.device)
