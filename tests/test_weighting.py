"""Weighting strategies: properties over many random inputs, not single numbers."""

from __future__ import annotations

import math

import pytest
import torch

from edge_mtl.config import WeightingConfig
from edge_mtl.types import TASKS
from edge_mtl.weighting import FixedWeighting, UncertaintyWeighting, WarmupWeighting, build_weighting


def val(x: torch.Tensor) -> float:
    return float(x.detach())


def random_losses(seed: int, tasks=TASKS) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {t: (torch.rand((), generator=g) * 5).requires_grad_() for t in tasks}


@pytest.mark.parametrize("seed", range(5))
def test_fixed_is_linear_and_ignores_absent_tasks(seed):
    w = {"det": 2.0, "lane": 0.5, "depth": 1.5}
    fixed = FixedWeighting(w)
    losses = random_losses(seed)
    assert val(fixed(losses, 0)) == pytest.approx(sum(w[t] * val(v) for t, v in losses.items()))
    scaled = {t: 3 * v for t, v in losses.items()}
    assert val(fixed(scaled, 0)) == pytest.approx(3 * val(fixed(losses, 0)))
    partial = {t: v for t, v in losses.items() if t != "lane"}
    assert val(fixed(partial, 0)) == pytest.approx(val(fixed(losses, 0)) - 0.5 * val(losses["lane"]))


@pytest.mark.parametrize("seed", range(5))
def test_uncertainty_starts_where_fixed_weights_leave_off(seed):
    w = {"det": 2.0, "lane": 0.5, "depth": 1.0}
    unc = UncertaintyWeighting(TASKS, initial=w)
    losses = random_losses(seed)
    unc(losses, 0).backward()
    for t in TASKS:
        assert val(losses[t].grad) == pytest.approx(w[t], rel=1e-5)
    assert unc.current_weights(0) == pytest.approx(w)


def test_uncertainty_is_order_invariant_and_learns_toward_inverse_loss():
    unc = UncertaintyWeighting(TASKS)
    losses = random_losses(3)
    reordered = dict(reversed(list(losses.items())))
    assert val(unc(losses, 0)) == pytest.approx(val(unc(reordered, 0)))
    opt = torch.optim.SGD(unc.parameters(), lr=0.1)
    fixed_losses = {"det": torch.tensor(4.0), "lane": torch.tensor(0.25), "depth": torch.tensor(1.0)}
    for _ in range(500):
        opt.zero_grad()
        unc(fixed_losses, 0).backward()
        opt.step()
    # The optimum of exp(-s) L + s is s = log L, i.e. weight 1 / L.
    for t, v in fixed_losses.items():
        assert unc.current_weights(0)[t] == pytest.approx(1 / val(v), rel=0.02)


def test_absent_task_log_variance_gets_no_gradient():
    unc = UncertaintyWeighting(TASKS)
    unc({"det": torch.tensor(1.0), "depth": torch.tensor(2.0)}, 0).backward()
    assert unc.log_vars["lane"].grad is None
    assert unc.log_vars["det"].grad is not None


def test_warmup_switches_strategy_at_the_step():
    weighting = build_weighting(WeightingConfig(strategy="uncertainty", warmup_steps=10,
                                                fixed={"det": 1.0, "lane": 2.0, "depth": 1.0}), TASKS)
    assert isinstance(weighting, WarmupWeighting)
    losses = {"lane": torch.tensor(3.0)}
    assert val(weighting(losses, 9)) == pytest.approx(6.0)
    assert val(weighting(losses, 10)) == pytest.approx(6.0 - math.log(2.0))
    with torch.no_grad():
        weighting.dynamic.log_vars["lane"].fill_(0.0)
    assert weighting.current_weights(9)["lane"] == 2.0
    assert weighting.current_weights(10)["lane"] == pytest.approx(1.0)


def test_build_rejects_unknown_strategy_and_missing_weight():
    with pytest.raises(ValueError, match="unknown weighting strategy"):
        build_weighting(WeightingConfig(strategy="magic"), TASKS)
    with pytest.raises(ValueError, match="lane"):
        build_weighting(WeightingConfig(fixed={"det": 1.0, "depth": 1.0}), TASKS)


def test_no_loss_at_all_is_an_error():
    with pytest.raises(ValueError, match="no task loss"):
        FixedWeighting({"det": 1.0})({}, 0)
