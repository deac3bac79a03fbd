"""The runs of a study: each a name, a group and the config overrides it makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge_mtl.compat import zip_strict
from edge_mtl.config import GRADIENT_STRATEGIES, LOSS_STRATEGIES
from edge_mtl.types import TASKS

# the honest baseline: hand-set fixed weights (det, lane, depth) besides equal's 1/1/1
FIXED_GRID: tuple[tuple[float, float, float], ...] = ((2.0, 1.0, 1.0), (1.0, 4.0, 1.0), (1.0, 1.0, 0.25))
# the default budget: 42 runs of under 3 min each on 2 CPU cores (0.85 s a step at 160x288, batch
# 8, plus the evaluation), within 2 h with the rendering; the release candidate's recipe (ImageNet
# MobileNetV2, its first blocks frozen)
STEPS, VAL_NUM = 150, 150
STUDY_CONFIG = "models/tritask_mnv2.yaml"
DYNAMIC = tuple(s for s in LOSS_STRATEGIES + GRADIENT_STRATEGIES if s != "fixed")


@dataclass(frozen=True)
class Run:
    name: str  # folder name, unique in the study (seed included)
    group: str  # single | strategy | fixed | missing
    seed: int
    data: str  # which rendered set: "train" or "train_drop" (labels dropped)
    overrides: dict[str, Any] = field(default_factory=dict)  # "section.key" -> value
    label: str = ""  # what the report calls it, seeds aside

    def __hash__(self) -> int:
        return hash(self.name)


def plan(seeds: int, strategies: tuple[str, ...] = DYNAMIC,
         fixed_grid: tuple[tuple[float, float, float], ...] = FIXED_GRID, ablation: bool = True,
         dwa_period: int = 100) -> list[Run]:
    """Every run, seed by seed (so a study cut short still holds whole seeds of early groups).
    ``dwa_period``: DWA's window (its "epoch"), which a short study must shorten."""
    unknown = set(strategies) - set(DYNAMIC)
    if unknown:
        raise ValueError(f"unknown strategies {sorted(unknown)}; choose from {list(DYNAMIC)}")
    runs = []
    for seed in range(seeds):
        common = {"train.seed": seed}
        for t in TASKS:
            runs.append(Run(f"single_{t}_s{seed}", "single", seed, "train",
                            {**common, "train.tasks": [t], "weighting.strategy": "equal"}, f"single {t}"))
        for s in strategies:
            options = {"weighting.options": {"period": dwa_period}} if s == "dwa" else {}
            runs.append(Run(f"{s}_s{seed}", "strategy", seed, "train",
                            {**common, "weighting.strategy": s, **options}, s))
        for w in fixed_grid:
            label = "fixed " + "/".join(f"{v:g}" for v in w)
            runs.append(Run(f"fixed_{'_'.join(f'{v:g}' for v in w)}_s{seed}", "fixed", seed, "train",
                            {**common, "weighting.strategy": "fixed", "weighting.warmup_steps": 0,
                             "weighting.fixed": dict(zip_strict(TASKS, w))}, label))
        if ablation:
            for missing in ("mask", "background"):
                runs.append(Run(f"drop50_{missing}_s{seed}", "missing", seed, "train_drop",
                                {**common, "weighting.strategy": "equal", "train.missing": missing},
                                f"50 % labels dropped, {'masked' if missing == 'mask' else 'as background'}"))
    return runs
