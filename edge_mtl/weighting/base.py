"""The weighting interface."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class LossWeighting(nn.Module):
    """Combine the per-task losses present in a batch into one scalar.

    ``losses`` holds only the tasks labelled in the batch; absent tasks must add nothing.
    """

    def forward(self, losses: Mapping[str, torch.Tensor], step: int) -> torch.Tensor:
        raise NotImplementedError

    def current_weights(self, step: int) -> dict[str, float]:
        """Effective per-task multipliers at ``step``, for logging."""
        raise NotImplementedError
