"""How per-task gradients are obtained, apart from how a strategy combines them.

``representation`` (the default): each task's gradient of its loss at the shared features the
model returns with ``return_features=True`` (the trunk's outputs that every head reads); the
heads are walked back once per task, the trunk not at all, so a gradient-level step costs one
trunk backward like equal weighting (Sener & Koltun 2018's MGDA-UB trick). ``parameters``: the
gradient on the shared (trunk) parameters, one trunk backward per task, the costly exact form.
Either way only the Gram matrix leaves this module; the update is then one ordinary backward of
``sum_t w_t L_t``, through DDP's hooks as any other step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.distributed as dist

GRADIENT_SOURCES = ("representation", "parameters")


def task_gradients(losses: Mapping[str, torch.Tensor], inputs: Sequence[torch.Tensor],
                   scale: float = 1.0) -> list[list[torch.Tensor | None]]:
    """Per task of ``losses``: d (scale * L_t) / d ``inputs`` (None where L_t does not reach an
    input; all None for a zero stand-in). Heads are walked back once per task; the graph stays."""
    out = []
    for loss in losses.values():
        if loss.requires_grad:
            out.append(list(torch.autograd.grad(loss * scale, inputs, retain_graph=True, allow_unused=True)))
        else:  # a zero stand-in for a task this rank lacks
            out.append([None] * len(inputs))
    return out


def gram_matrix(grads: Sequence[Sequence[torch.Tensor | None]], inputs: Sequence[torch.Tensor],
                scale: float = 1.0, world: int = 1, source: str = "representation") -> torch.Tensor:
    """float64 [T, T] Gram of the per-task gradients ``grads`` (as `task_gradients` gives them,
    multiplied by ``scale``), reduced over DDP ranks as `task_gram` says."""
    if world > 1 and source == "parameters":  # the global gradient is the ranks' mean: reduce it first
        flats = [torch.cat([(torch.zeros_like(x) if g is None else g).reshape(-1).to(torch.float64)
                            for g, x in zip(task, inputs, strict=True)]) / scale for task in grads]
        g = torch.stack(flats)
        dist.all_reduce(g)
        g /= world
        return g @ g.T
    # block by block, in the gradients' own precision, each block's products summed in float64
    gram = torch.zeros(len(grads), len(grads), dtype=torch.float64)
    for k in range(len(inputs)):
        rows = [t for t, task in enumerate(grads) if task[k] is not None]
        if rows:
            block = torch.stack([grads[t][k].reshape(-1) for t in rows]).float()
            prod = (block @ block.T).double().cpu()
            for a, i in enumerate(rows):
                gram[i, rows] += prod[a]
    gram /= scale * scale
    if inputs:
        gram = gram.to(inputs[0].device)
    if world > 1 and source == "representation":
        dist.all_reduce(gram)
        gram /= world * world
    return gram


def task_gram(losses: Mapping[str, torch.Tensor], inputs: Sequence[torch.Tensor], scale: float = 1.0,
              world: int = 1, source: str = "representation") -> torch.Tensor:
    """float64 [T, T] Gram matrix of d L_t / d ``inputs`` for the tasks of ``losses``, in order.

    ``scale``: the AMP loss scale (the losses are multiplied by it before autograd, the gradients
    divided after, as GradScaler does). In DDP (``world`` > 1) the result is the Gram of the
    global-batch gradient on every rank: for ``representation`` the ranks' features are
    different samples, so the global Gram is the sum of the ranks' own divided by world^2 (each
    rank's loss is 1/world of the global mean); for ``parameters`` the gradients themselves are
    averaged first. ``losses`` must hold the same tasks on every rank (a task a rank lacks enters
    as a zero loss there: see `global_tasks`).
    """
    if source not in GRADIENT_SOURCES:
        raise ValueError(f"gradient source {source!r}: choose from {list(GRADIENT_SOURCES)}")
    inputs = [x for x in inputs if x.requires_grad]
    return gram_matrix(task_gradients(losses, inputs, scale), inputs, scale, world, source)


def combine(grads: Sequence[Sequence[torch.Tensor | None]],
            weights: Sequence[float]) -> list[torch.Tensor | None]:
    """sum_t w_t g_t per input (None where no task reaches it)."""
    out: list[torch.Tensor | None] = []
    for k in range(len(grads[0]) if grads else 0):
        terms = [w * task[k] for w, task in zip(weights, grads, strict=True) if task[k] is not None]
        out.append(sum(terms[1:], terms[0]) if terms else None)
    return out


def global_tasks(losses: dict[str, torch.Tensor], tasks: Sequence[str], world: int,
                 device: torch.device) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The tasks any rank holds, in ``tasks`` order, with every rank's mean value of each (over
    the ranks that hold it): ``losses`` padded with zero stand-ins for tasks only other ranks
    hold, and the shared ``values`` a strategy reads. Without DDP: the batch's own."""
    if world == 1:
        return losses, {t: float(v.detach()) for t, v in losses.items()}
    t = torch.zeros(2, len(tasks), dtype=torch.float64, device=device)
    for k, name in enumerate(tasks):
        if name in losses:
            t[0, k], t[1, k] = float(losses[name].detach()), 1.0
    dist.all_reduce(t)
    held = [k for k in range(len(tasks)) if t[1, k] > 0]
    values = {tasks[k]: float(t[0, k] / t[1, k]) for k in held}
    zero = next(iter(losses.values())).detach() * 0 if losses else torch.zeros((), device=device)
    padded = {tasks[k]: losses.get(tasks[k], zero) for k in held}
    return padded, values
