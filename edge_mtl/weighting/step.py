"""One step's weighted loss, for loss-level and gradient-level strategies alike: what the
training loop calls between the batch and ``backward``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from edge_mtl.diagnostics import gradient_diagnostics
from edge_mtl.types import TASKS
from edge_mtl.weighting.base import GramWeighting, LossWeighting
from edge_mtl.weighting.gradients import global_tasks, task_gram
from edge_mtl.weighting.warmup import WarmupWeighting


@dataclass
class WeightedLoss:
    losses: dict[str, torch.Tensor]  # the tasks any rank holds (zero stand-ins for those it lacks)
    total: torch.Tensor  # what to backward
    diagnostics: dict[str, float] = field(default_factory=dict)


def weighted_loss(net: nn.Module, model: nn.Module, weighting: LossWeighting | GramWeighting,
                  image: torch.Tensor, loss_fn: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
                  step: int, *, world: int = 1, amp: bool = False, loss_scale: float = 1.0,
                  gradients: str = "representation", diagnose: bool = False) -> WeightedLoss:
    """Forward ``image`` through ``net`` (``model``, DDP-wrapped or not), the task losses by
    ``loss_fn``, and their weighted total for the strategy active at ``step``. ``model`` keeps
    its shared features in ``model.features`` when called with ``keep_features=True``.

    A gradient-level strategy gets the Gram matrix of the per-task gradients (at the shared
    features or on ``model.shared_parameters()``, `task_gram`); ``diagnose`` adds the per-task
    gradient norms and cosines at the shared features. ``loss_scale`` is AMP's current scale.
    """
    strategy = weighting.active(step) if isinstance(weighting, WarmupWeighting) else weighting
    by_gradients = isinstance(strategy, GramWeighting)
    at_features = gradients == "representation"
    device = image.device
    with torch.autocast(device.type, enabled=amp):
        outputs = net(image, keep_features=(by_gradients and at_features) or diagnose)
    features, model.features = model.features, None
    losses, values = global_tasks(loss_fn(outputs), TASKS, world, device)
    gram = None
    if by_gradients:
        gram = task_gram(losses, features if at_features else model.shared_parameters(), loss_scale,
                         world, gradients)
        if bool(torch.isfinite(gram).all()):
            w = strategy(gram, {t: torch.tensor(v) for t, v in values.items()}, step).tolist()
        else:  # fp16 overflow: the loop skips this step; the strategy's state must not move
            last = strategy.current_weights(step)
            w = [last[t] for t in losses]
        total = sum(w[k] * loss for k, loss in enumerate(losses.values()))
    else:
        total = weighting(losses, step, values if world > 1 else None)
    diagnostics = {}
    if diagnose:
        if gram is None or not at_features:
            gram = task_gram(losses, features, loss_scale, world)
        diagnostics = gradient_diagnostics(gram, list(losses))
    return WeightedLoss(losses, total, diagnostics)
