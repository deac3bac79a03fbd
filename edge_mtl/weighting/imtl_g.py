"""IMTL-G: the gradient part of Impartial Multi-Task Learning (Liu et al., ICLR 2021)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from edge_mtl.weighting.base import GramWeighting, gram_array

# eigenvalues of the (mean-diagonal normalised) Gram below this fraction of the largest count as 0
RCOND = 1e-10


class IMTLGWeighting(GramWeighting):
    """The combination d = sum_t w_t g_t with sum_t w_t = 1 whose projections onto the unit task
    gradients u_t = g_t / ||g_t|| are all equal. With G the Gram matrix and n_t = ||g_t||, the
    condition (G w)_t / n_t = const gives w = G^+ n / 1^T G^+ n: the paper's closed form
    (alpha = g_1 U^T (D U^T)^-1, D and U the differences of the gradients and unit gradients to
    the first) rewritten on the Gram, with a pseudo-inverse so that linearly dependent gradients
    stay finite (as TorchJD's IMTLG). When 1^T G^+ n vanishes no impartial direction exists (e.g.
    two opposite gradients) and the weights are 0; with every gradient zero they are 1/T.
    """

    def weights(self, gram: torch.Tensor, losses: Mapping[str, torch.Tensor], step: int) -> torch.Tensor:
        g = gram_array(gram)
        n = len(g)
        scale = float(np.trace(g)) / n
        if not scale > 0:
            w = np.full(n, 1.0 / n)
        else:
            g = g / scale
            norms = np.sqrt(np.clip(g.diagonal(), 0.0, None))
            v = np.linalg.pinv(g, rcond=RCOND, hermitian=True) @ norms
            total = float(v.sum())
            w = np.zeros(n) if abs(total) <= 1e-12 * float(np.abs(v).sum()) else v / total
        return torch.as_tensor(w, dtype=torch.float64, device=gram.device)
