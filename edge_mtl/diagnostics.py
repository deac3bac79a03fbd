"""Multi-task gradient diagnostics for the training log: how large each task's gradient is at the
shared features and how much the tasks conflict (pairwise cosine), from the Gram matrix that
`edge_mtl.weighting.gradients.task_gram` computes; and the optional TensorBoard mirror of log.csv."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from edge_mtl.types import TASKS

PAIRS = [f"{a}_{b}" for a, b in itertools.combinations(TASKS, 2)]
DIAG_FIELDS = [*[f"gnorm_{t}" for t in TASKS], *[f"cos_{p}" for p in PAIRS]]


def gradient_diagnostics(gram: torch.Tensor, names: Sequence[str]) -> dict[str, float]:
    """``gnorm_<task>`` (the gradient norm) and ``cos_<a>_<b>`` (cosine; < 0 is a conflict) for
    the tasks in ``names`` (the Gram's order); a zero gradient has no cosine (nan)."""
    gram = gram.detach().to(torch.float64).cpu()
    norm = gram.diagonal().clamp_min(0).sqrt()
    out = {f"gnorm_{t}": float(norm[i]) for i, t in enumerate(names)}
    for i, j in itertools.combinations(range(len(names)), 2):
        a, b = sorted((names[i], names[j]), key=TASKS.index)
        denom = float(norm[i] * norm[j])
        out[f"cos_{a}_{b}"] = float(gram[i, j]) / denom if denom > 0 else math.nan
    return out


class TensorBoardMirror:
    """Every log.csv row also as TensorBoard scalars in ``folder`` when the ``tensorboard``
    package is installed (the ``tensorboard`` extra); otherwise nothing, silently."""

    def __init__(self, folder: Path, enabled: bool = True):
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # torch's module needs the tensorboard package
                return
            self.writer = SummaryWriter(str(folder))

    def write(self, row: dict[str, object]) -> None:
        if self.writer is None:
            return
        step = int(row["step"])
        for key, value in row.items():
            if key == "step" or value in ("", None):
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            group = key.split("_", 1)[0]
            self.writer.add_scalar(f"{group}/{key}", number, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
