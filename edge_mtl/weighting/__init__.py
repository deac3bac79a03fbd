"""Loss-weighting strategies, one small module each, selected by ``weighting.strategy``.

Loss-level strategies (`LossWeighting`) turn the present tasks' losses into one total for one
backward; gradient-level ones (`GramWeighting`) read the Gram matrix of per-task gradients that
the training loop obtains (edge_mtl.weighting.gradients). `WarmupWeighting` runs fixed weights for
``warmup_steps`` before either kind.
"""

from __future__ import annotations

from edge_mtl.config import STRATEGIES, WeightingConfig
from edge_mtl.weighting.aligned_mtl import AlignedMTLWeighting
from edge_mtl.weighting.base import GramWeighting, LossWeighting
from edge_mtl.weighting.cagrad import CAGradWeighting
from edge_mtl.weighting.dwa import DWAWeighting
from edge_mtl.weighting.famo import FAMOWeighting
from edge_mtl.weighting.fixed import FixedWeighting
from edge_mtl.weighting.gradnorm import GradNormWeighting
from edge_mtl.weighting.imtl_g import IMTLGWeighting
from edge_mtl.weighting.logloss import LogLossWeighting
from edge_mtl.weighting.nash_mtl import NashMTLWeighting
from edge_mtl.weighting.pcgrad import PCGradWeighting
from edge_mtl.weighting.rlw import RandomWeighting
from edge_mtl.weighting.uncertainty import UncertaintyWeighting
from edge_mtl.weighting.upgrad import UPGradWeighting
from edge_mtl.weighting.warmup import WarmupWeighting

__all__ = ["REGISTRY", "AlignedMTLWeighting", "CAGradWeighting", "DWAWeighting", "FAMOWeighting",
           "FixedWeighting", "GradNormWeighting", "GramWeighting", "IMTLGWeighting", "LogLossWeighting",
           "LossWeighting", "NashMTLWeighting", "PCGradWeighting", "RandomWeighting",
           "UPGradWeighting", "UncertaintyWeighting", "WarmupWeighting", "build_weighting"]

# name -> class taking (tasks, *, **options); fixed and uncertainty also read weighting.fixed
REGISTRY: dict[str, type] = {
    "dwa": DWAWeighting, "rlw": RandomWeighting, "famo": FAMOWeighting, "logloss": LogLossWeighting,
    "gradnorm": GradNormWeighting, "pcgrad": PCGradWeighting, "cagrad": CAGradWeighting,
    "nash_mtl": NashMTLWeighting, "imtl_g": IMTLGWeighting, "aligned_mtl": AlignedMTLWeighting,
    "upgrad": UPGradWeighting,
}


def build_weighting(cfg: WeightingConfig, tasks: tuple[str, ...]) -> LossWeighting | GramWeighting:
    """Fixed weights for ``warmup_steps``, then the dynamic ``strategy`` built with ``options``."""
    missing = set(tasks) - set(cfg.fixed)
    if missing:
        raise ValueError(f"weighting.fixed lacks a weight for {sorted(missing)}")
    fixed = FixedWeighting({t: cfg.fixed[t] for t in tasks})
    if cfg.strategy not in STRATEGIES:
        raise ValueError(f"unknown weighting strategy {cfg.strategy!r}; choose from {list(STRATEGIES)}")
    if cfg.strategy == "fixed":
        if cfg.options:
            raise ValueError(f"weighting.options={cfg.options}: fixed weighting takes none "
                             "(its weights are weighting.fixed)")
        return fixed
    try:
        if cfg.strategy == "equal":
            dynamic = FixedWeighting({t: 1.0 for t in tasks}, **cfg.options)
        elif cfg.strategy == "uncertainty":
            dynamic = UncertaintyWeighting(tasks, initial=fixed.weights, **cfg.options)
        else:
            dynamic = REGISTRY[cfg.strategy](tasks, **cfg.options)
    except TypeError as e:  # an option the strategy does not have
        raise ValueError(f"weighting.options={cfg.options} for {cfg.strategy}: {e}") from None
    return WarmupWeighting(fixed, dynamic, cfg.warmup_steps) if cfg.warmup_steps > 0 else dynamic
