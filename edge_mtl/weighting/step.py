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
from edge_mtl.weighting.gradients import combine, global_tasks, gram_matrix, task_gradients, task_gram
from edge_mtl.weighting.warmup import WarmupWeighting


@dataclass
class WeightedLoss:
    losses: dict[str, torch.Tensor]  # the tasks any rank holds (zero stand-ins for those it lacks)
    total: torch.Tensor  # the weighted total (what a plain backward differentiates)
    diagnostics: dict[str, float] = field(default_factory=dict)
    # precomputed gradients (already multiplied by the AMP scale): parameter -> gradient, and
    # the shared features with the combined gradient to send back through the trunk
    grads: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    feature_grads: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def backward(self, scaler: torch.amp.GradScaler | None = None) -> None:
        """Gradients of ``total`` into every parameter's ``.grad``, scaled as ``scaler`` scales."""
        if self.grads is None:
            (scaler.scale(self.total) if scaler is not None else self.total).backward()
            return
        for p, g in self.grads:
            p.grad = g.to(p.dtype) if p.grad is None else p.grad + g
        if self.feature_grads:
            torch.autograd.backward([f for f, _ in self.feature_grads], [g for _, g in self.feature_grads])


def weighted_loss(net: nn.Module, model: nn.Module, weighting: LossWeighting | GramWeighting,
                  image: torch.Tensor, loss_fn: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
                  step: int, *, world: int = 1, amp: bool = False, loss_scale: float = 1.0,
                  gradients: str = "representation", diagnose: bool = False) -> WeightedLoss:
    """Forward ``image`` through ``net`` (``model``, DDP-wrapped or not), the task losses by
    ``loss_fn``, and their weighted total for the strategy active at ``step``; then
    `WeightedLoss.backward`. ``model`` keeps its shared features in ``model.features`` when
    called with ``keep_features=True`` and lists its trunk's parameters in ``shared_parameters()``.

    A gradient-level strategy gets the Gram matrix of the per-task gradients (at the shared
    features or on the shared parameters). At the features in one process, each task's walk back
    through the heads also yields its head-parameter gradients, which are kept and combined, so
    the backward only has the trunk left: the step costs about what equal weighting's does. In
    DDP the combined total goes through DDP's own backward instead (its hooks must see every
    gradient), which walks the heads once more. ``diagnose`` adds per-task gradient norms and
    cosines at the shared features. ``loss_scale`` is AMP's current scale.
    """
    strategy = weighting.active(step) if isinstance(weighting, WarmupWeighting) else weighting
    by_gradients = isinstance(strategy, GramWeighting)
    at_features = gradients == "representation"
    device = image.device
    with torch.autocast(device.type, enabled=amp):
        outputs = net(image, keep_features=(by_gradients and at_features) or diagnose)
    features, model.features = model.features, None
    features = [f for f in features or () if f.requires_grad]
    losses, values = global_tasks(loss_fn(outputs), TASKS, world, device)
    result = WeightedLoss(losses, torch.zeros(()))
    if not losses:  # no rank's batch holds a trained task: a zero to back (DDP), no strategy call
        result.total = sum(0.0 * o.sum() for o in outputs.values() if o.requires_grad)
        return result
    gram = None
    if by_gradients:
        one_pass = at_features and world == 1
        if at_features:
            shared = set(map(id, model.shared_parameters()))
            heads = [p for p in model.parameters()
                     if one_pass and p.requires_grad and id(p) not in shared]
            per_task = task_gradients(losses, features + heads, loss_scale)
            gram = gram_matrix([g[:len(features)] for g in per_task], features, loss_scale, world)
        else:
            gram = task_gram(losses, model.shared_parameters(), loss_scale, world, gradients)
        if bool(torch.isfinite(gram).all()):
            w = strategy(gram, {t: torch.tensor(v) for t, v in values.items()}, step).tolist()
        else:  # fp16 overflow: the loop skips this step; the strategy's state must not move
            last = strategy.current_weights(step)
            w = [last[t] for t in losses]
        result.total = sum(w[k] * loss for k, loss in enumerate(losses.values()))
        if one_pass:
            combined = combine(per_task, w)
            result.feature_grads = [(f, g) for f, g in zip(features, combined, strict=False) if g is not None]
            result.grads = [(p, g) for p, g in zip(heads, combined[len(features):], strict=True)
                            if g is not None]
            result.total = result.total.detach()
    else:
        result.total = weighting(losses, step, values if world > 1 else None)
    if not result.total.requires_grad and result.grads is None:
        # this rank holds none of the tasks the others hold: a zero that reaches every output, so
        # that DDP's backward runs here too (its all-reduce would otherwise wait for this rank)
        result.total = result.total + sum(0.0 * o.sum() for o in outputs.values() if o.requires_grad)
    if diagnose:
        if gram is None or not at_features:
            gram = task_gram(losses, features, loss_scale, world)
        result.diagnostics = gradient_diagnostics(gram, list(losses))
    return result
