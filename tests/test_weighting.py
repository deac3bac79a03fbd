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


LOSS_LEVEL = ("equal", "uncertainty", "dwa", "rlw", "famo", "logloss")


def dynamic(strategy: str, **options):
    return build_weighting(WeightingConfig(strategy=strategy, warmup_steps=0, options=options), TASKS)


def grads_of(weighting, losses: dict[str, torch.Tensor], step: int) -> dict[str, float]:
    """d total / d L_t: the weight each present task's gradient gets at ``step``."""
    leaves = {t: v.detach().clone().requires_grad_() for t, v in losses.items()}
    weighting(leaves, step).backward()
    return {t: val(v.grad) for t, v in leaves.items()}


def loss_stream(seed: int, steps: int = 60, drop: float = 0.0) -> list[dict[str, torch.Tensor]]:
    """Decaying per-task losses of different scales, each task absent with probability ``drop``."""
    g = torch.Generator().manual_seed(seed)
    scale = {"det": 3.0, "lane": 0.3, "depth": 30.0}
    out = []
    for k in range(steps):
        present = [t for t in TASKS if float(torch.rand((), generator=g)) >= drop] or ["det"]
        out.append({t: scale[t] * (1 + float(torch.rand((), generator=g))) / (1 + 0.05 * k) * torch.ones(())
                    for t in present})
    return out


@pytest.mark.parametrize("strategy", LOSS_LEVEL)
@pytest.mark.parametrize("seed", range(3))
def test_loss_level_strategies_are_finite_order_free_and_skip_absent_tasks(strategy, seed):
    options = {"period": 5} if strategy == "dwa" else {}
    a, b = dynamic(strategy, **options), dynamic(strategy, **options)
    for step, losses in enumerate(loss_stream(seed, drop=0.3)):
        ga = grads_of(a, losses, step)
        gb = grads_of(b, dict(reversed(list(losses.items()))), step)  # the same losses, another order
        assert ga == pytest.approx(gb, rel=1e-9)
        assert all(math.isfinite(w) and w > 0 for w in ga.values())
        assert set(ga) == set(losses)
    assert all(math.isfinite(w) for w in a.current_weights(0).values())


@pytest.mark.parametrize("strategy", [s for s in LOSS_LEVEL if s != "rlw"])  # rlw: test_rlw_…
def test_a_task_never_labelled_leaves_the_strategy_as_if_it_did_not_exist(strategy):
    """A missing label is not a zero loss: the other tasks' weights are what a two-task run gives."""
    two = [{t: v for t, v in losses.items() if t != "lane"} for losses in loss_stream(4)]
    options = {"period": 5} if strategy == "dwa" else {}
    full = dynamic(strategy, **options)
    alone = build_weighting(WeightingConfig(strategy=strategy, warmup_steps=0, options=options),
                            ("det", "depth"))
    state = {k: v.clone() for k, v in full.state_dict().items()}
    for step, losses in enumerate(two):
        assert grads_of(full, losses, step) == pytest.approx(grads_of(alone, losses, step), rel=1e-9)
    for k, v in full.state_dict().items():  # lane's own state is where it started
        if v.ndim and v.shape[0] == len(TASKS) and strategy != "uncertainty":
            lane = TASKS.index("lane")
            assert torch.equal(v[lane], state[k][lane]) or (v[lane].isnan() & state[k][lane].isnan()).all(), k


@pytest.mark.parametrize("strategy", LOSS_LEVEL)
def test_a_single_task_and_an_empty_batch(strategy):
    w = build_weighting(WeightingConfig(strategy=strategy, warmup_steps=0), ("depth",))
    for step in range(5):
        assert grads_of(w, {"depth": torch.tensor(2.0 / (step + 1))}, step)["depth"] > 0
    with pytest.raises(ValueError, match="no task loss"):
        w({}, 5)


@pytest.mark.parametrize("seed", range(4))
def test_log_based_weights_ignore_each_task_loss_scale(seed):
    """logloss and FAMO: multiplying one task's loss by c leaves the relative gradient weights
    (w_t L_t, the weight on the task's log-loss) unchanged, and every weight finite near zero."""
    for strategy in ("logloss", "famo"):
        a, b = dynamic(strategy), dynamic(strategy)
        for step, losses in enumerate(loss_stream(seed, steps=20)):
            scaled = dict(losses) | {"depth": losses["depth"] * 1e-3}
            ga, gb = grads_of(a, losses, step), grads_of(b, scaled, step)
            ra = {t: ga[t] * val(losses[t]) for t in TASKS}
            rb = {t: gb[t] * val(scaled[t]) for t in TASKS}
            total_a, total_b = sum(ra.values()), sum(rb.values())
            assert {t: v / total_a for t, v in ra.items()} == pytest.approx(
                {t: v / total_b for t, v in rb.items()}, rel=1e-4)  # eps / L_t of the 1e-3 loss
        tiny = grads_of(a, {"det": torch.tensor(0.0), "lane": torch.tensor(1e-12)}, 99)
        assert all(math.isfinite(v) for v in tiny.values())


def test_dwa_raises_the_weight_of_the_task_that_stopped_improving():
    dwa = dynamic("dwa", period=4, temperature=2.0)
    for step in range(16):  # det halves every window, lane is flat
        losses = {"det": torch.tensor(8.0 / 2 ** (step // 4)), "lane": torch.tensor(1.0)}
        w = grads_of(dwa, losses, step)
        if step < 8:
            assert w == pytest.approx({"det": 1.0, "lane": 1.0})  # two windows are needed first
    assert w["lane"] > w["det"] and w["lane"] + w["det"] == pytest.approx(2.0)
    expected = 2 * math.exp(1 / 2) / (math.exp(1 / 2) + math.exp(0.5 / 2))
    assert w["lane"] == pytest.approx(expected)


def test_rlw_draws_depend_on_the_step_only_and_average_to_equal():
    a, b = dynamic("rlw", seed=3), dynamic("rlw", seed=3)
    losses = {t: torch.tensor(1.0) for t in TASKS}
    draws = [grads_of(a, losses, s) for s in range(400)]
    assert grads_of(b, losses, 17) == draws[17]  # a fresh instance (a resumed run, another rank)
    assert draws[0] != draws[1]
    assert all(sum(d.values()) == pytest.approx(3.0) for d in draws)
    # a batch without lane: the others' weights renormalised to sum to 2 (a 2-task draw's law)
    partial = grads_of(a, {"det": losses["det"], "depth": losses["depth"]}, 17)
    assert partial["det"] / partial["depth"] == pytest.approx(draws[17]["det"] / draws[17]["depth"])
    assert sum(partial.values()) == pytest.approx(2.0)
    for t in TASKS:
        assert sum(d[t] for d in draws) / len(draws) == pytest.approx(1.0, abs=0.08)


def test_famo_favours_the_task_whose_loss_falls_least_and_resumes_exactly():
    famo = dynamic("famo", lr=0.05)
    for step in range(200):  # det falls fast, lane stays: lane's share z grows
        famo({"det": torch.tensor(5.0 * 0.97**step), "lane": torch.tensor(1.0)}, step)
    z = famo.shares()
    assert z["lane"] > z["det"] and float(famo.logits[famo.tasks.index("depth")]) == 0.0  # never seen
    # the logged weight is the multiplier the last step applied to each loss
    last = {"det": torch.tensor(5.0 * 0.97**199, requires_grad=True),
            "lane": torch.tensor(1.0, requires_grad=True)}
    logged = famo.current_weights(199)
    assert logged["depth"] == 1.0
    probe = dynamic("famo", lr=0.05)
    probe.load_state_dict(famo.state_dict())
    probe.previous[:] = math.nan  # the same weights without learning from this batch again
    probe(last, 199).backward()
    assert logged["det"] == pytest.approx(float(last["det"].grad), rel=1e-6)  # float32 graph
    assert logged["lane"] == pytest.approx(float(last["lane"].grad), rel=1e-6)
    again = dynamic("famo", lr=0.05)
    again.load_state_dict(famo.state_dict())
    nxt = {"det": torch.tensor(0.01), "lane": torch.tensor(1.0)}
    assert grads_of(again, nxt, 200) == pytest.approx(grads_of(famo, nxt, 200), rel=1e-12)


def test_unknown_options_are_refused_naming_the_strategy():
    with pytest.raises(ValueError, match=r"weighting.options=\{'tau': 2\} for dwa"):
        dynamic("dwa", tau=2)
    with pytest.raises(ValueError, match="fixed weighting takes none"):
        build_weighting(WeightingConfig(strategy="fixed", options={"x": 1}), TASKS)


@pytest.mark.parametrize("strategy", ("fixed", *LOSS_LEVEL))
def test_every_rank_weights_alike_from_the_shared_loss_values(strategy):
    """DDP passes every rank's mean loss values: with the batch's own values the gradients are
    the single-process ones; a rank lacking a task still uses the weights the others use."""
    own, shared, partial = (build_weighting(WeightingConfig(strategy=strategy, warmup_steps=0), TASKS)
                            for _ in range(3))
    for step, losses in enumerate(loss_stream(5, steps=30)):
        values = {t: val(v) for t, v in losses.items()}
        g_own = grads_of(own, losses, step)
        leaves = {t: v.detach().clone().requires_grad_() for t, v in losses.items()}
        shared(leaves, step, values).backward()
        assert {t: val(v.grad) for t, v in leaves.items()} == pytest.approx(g_own, rel=1e-6)  # float32
        no_lane = {t: v.detach().clone().requires_grad_() for t, v in losses.items() if t != "lane"}
        partial(no_lane, step, values).backward()
        got = {t: val(v.grad) for t, v in no_lane.items()}
        assert got == pytest.approx({t: g_own[t] for t in got}, rel=1e-6)
