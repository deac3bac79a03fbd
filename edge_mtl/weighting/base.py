"""The weighting interfaces: loss-level (one backward of a weighted sum) and gradient-level
(weights read from the per-task gradients' Gram matrix)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn


class LossWeighting(nn.Module):
    """Combine the per-task losses present in a batch into one scalar.

    ``losses`` holds only the tasks labelled in the batch; absent tasks must add nothing and
    leave the strategy's state as it was. ``values`` are the loss values every rank sees (in
    DDP, each task's mean over the ranks that hold it; by default the batch's own): whatever a
    strategy reads of the losses (weights, state) comes from ``values``, so all ranks weight alike,
    and only the graph comes from ``losses``. A task of ``values`` absent from ``losses`` (another
    rank holds it) takes part in the weights but adds no term here.
    """

    def forward(self, losses: Mapping[str, torch.Tensor], step: int,
                values: Mapping[str, float] | None = None) -> torch.Tensor:
        raise NotImplementedError

    def current_weights(self, step: int) -> dict[str, float]:
        """Effective per-task multipliers at ``step``, for logging."""
        raise NotImplementedError


def loss_values(losses: Mapping[str, torch.Tensor], values: Mapping[str, float] | None) -> dict[str, float]:
    """``values`` if given (every rank's view), else the batch's own losses as floats."""
    if values is not None:
        return dict(values)
    return {t: float(v.detach()) for t, v in losses.items()}


def check_present(losses: Mapping[str, torch.Tensor], values: Mapping[str, float]) -> None:
    if not values:
        raise ValueError("no task loss to weight: the batch carries no label at all")
    extra = set(losses) - set(values)
    if extra:
        raise ValueError(f"losses {sorted(extra)} have no value in {sorted(values)}")


def gram_array(gram: torch.Tensor) -> np.ndarray:
    """The Gram as a float64 numpy array, symmetrised (what every gradient-level method solves on)."""
    g = gram.detach().cpu().numpy().astype(np.float64)
    return (g + g.T) / 2


class GramWeighting(nn.Module):
    """A gradient-level strategy: the step's task weights from the per-task gradients.

    The training loop obtains one gradient ``g_t`` per present task (at the shared representation
    or on the shared parameters: the strategy does not know which) and passes only their Gram
    matrix ``gram[i, j] = <g_i, g_j>`` (float64 [T, T], in the order of ``losses``, T >= 1,
    identical on every rank); the update is then ``sum_t w_t g_t``. Every method here (projections
    such as PCGrad included) is such a combination, so neither the gradients nor their size
    reach the strategy. ``losses`` are the detached per-task losses, for methods that read them.
    State (e.g. GradNorm's weights) lives in buffers, so checkpoints carry it; an absent task's
    state is left untouched.
    """

    needs_gradients = True

    def __init__(self, tasks: tuple[str, ...]):
        super().__init__()
        self.tasks = tuple(tasks)
        self._last: dict[str, float] = {t: 1.0 for t in self.tasks}

    def weights(self, gram: torch.Tensor, losses: Mapping[str, torch.Tensor], step: int) -> torch.Tensor:
        """float64 [T]: the weight of each task of ``losses``, in its order."""
        raise NotImplementedError

    def __call__(self, gram: torch.Tensor, losses: Mapping[str, torch.Tensor], step: int) -> torch.Tensor:
        gram = torch.as_tensor(gram, dtype=torch.float64)
        if not losses:
            raise ValueError("no task loss to weight: the batch carries no label at all")
        unknown = [t for t in losses if t not in self.tasks]
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown task(s) {unknown}; "
                             f"it weights {list(self.tasks)}")
        if gram.shape != (len(losses), len(losses)):
            raise ValueError(f"gram of shape {tuple(gram.shape)} for {len(losses)} task(s)")
        if not bool(torch.isfinite(gram).all()):  # before any state moves
            raise FloatingPointError(f"{type(self).__name__}: non-finite Gram matrix {gram.tolist()} "
                                     f"for {list(losses)}")
        w = self.weights(gram, losses, step).to(torch.float64)
        if w.shape != (len(losses),) or not bool(torch.isfinite(w).all()):
            raise FloatingPointError(f"{type(self).__name__} gave weights {w.tolist()} for {list(losses)}")
        self._last |= dict(zip(losses, w.tolist(), strict=True))
        return w

    def current_weights(self, step: int) -> dict[str, float]:
        """The weights of the last step (1.0 for a task not yet seen)."""
        return dict(self._last)
