"""Loss-weighting strategies: small modules mapping per-task losses to one total."""

from __future__ import annotations

from edge_mtl.config import WeightingConfig
from edge_mtl.weighting.base import LossWeighting
from edge_mtl.weighting.fixed import FixedWeighting
from edge_mtl.weighting.uncertainty import UncertaintyWeighting
from edge_mtl.weighting.warmup import WarmupWeighting

__all__ = ["FixedWeighting", "LossWeighting", "UncertaintyWeighting", "WarmupWeighting",
           "build_weighting"]


def build_weighting(cfg: WeightingConfig, tasks: tuple[str, ...]) -> LossWeighting:
    """Fixed weights for ``warmup_steps``, then the dynamic ``strategy``."""
    missing = set(tasks) - set(cfg.fixed)
    if missing:
        raise ValueError(f"weighting.fixed lacks a weight for {sorted(missing)}")
    fixed = FixedWeighting({t: cfg.fixed[t] for t in tasks})
    if cfg.strategy == "fixed":
        return fixed
    if cfg.strategy == "uncertainty":
        dynamic = UncertaintyWeighting(tasks, initial=fixed.weights)
    else:
        raise ValueError(f"unknown weighting strategy {cfg.strategy!r}; choose fixed or uncertainty")
    return WarmupWeighting(fixed, dynamic, cfg.warmup_steps) if cfg.warmup_steps > 0 else dynamic
