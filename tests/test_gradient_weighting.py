"""Gradient-level weighting strategies: properties over many random Gram matrices, TorchJD-style."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from edge_mtl.weighting.aligned_mtl import AlignedMTLWeighting
from edge_mtl.weighting.cagrad import CAGradWeighting
from edge_mtl.weighting.gradnorm import GradNormWeighting
from edge_mtl.weighting.imtl_g import IMTLGWeighting
from edge_mtl.weighting.nash_mtl import NashMTLWeighting
from edge_mtl.weighting.pcgrad import PCGradWeighting
from edge_mtl.weighting.upgrad import UPGradWeighting

NAMES = ("a", "b", "c", "d", "e")
STRATEGIES = {
    "pcgrad": PCGradWeighting, "cagrad": CAGradWeighting, "nash_mtl": NashMTLWeighting,
    "imtl_g": IMTLGWeighting, "aligned_mtl": AlignedMTLWeighting, "upgrad": UPGradWeighting,
    "gradnorm": GradNormWeighting,
}
DETERMINISTIC = [s for s in STRATEGIES if s != "pcgrad"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny float64 products: a thread pool only adds wake-up latency (badly so on a busy CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(name: str, **options):
    return STRATEGIES[name](NAMES, **options)


def jacobian(seed: int, n: int, dim: int = 20) -> torch.Tensor:
    """n task gradients (rows) of varied norms, the second pulled against the first and the last
    partly against the mean of the others: deliberate conflicts."""
    gen = torch.Generator().manual_seed(seed)
    j = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    if n >= 2:
        j[1] = -0.8 * j[0] + 0.4 * j[1]
    if n >= 3:
        j[-1] = -j[:-1].mean(0) + 0.5 * j[-1]
    return j * 10 ** (2 * torch.rand(n, 1, generator=gen, dtype=torch.float64) - 1)


def losses(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + seed)
    return {t: 0.5 + torch.rand((), generator=gen) for t in NAMES[:n]}


def degenerate(case: str) -> torch.Tensor:
    j = jacobian(7, 3)
    if case == "duplicate":
        j[1] = j[0]
    elif case == "parallel":
        j[1] = 3 * j[0]
    elif case == "opposite":
        j[1] = -j[0]
    elif case == "zero_gradient":
        j[2] = 0
    elif case == "all_zero":
        j[:] = 0
    elif case == "tiny":
        j *= 1e-12
    elif case == "huge":
        j *= 1e12
    elif case == "rank_one":
        j = torch.outer(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64), j[0])
    return j


DEGENERATE = ["duplicate", "parallel", "opposite", "zero_gradient", "all_zero", "tiny", "huge", "rank_one"]


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(6))
def test_weights_are_finite_float64_of_the_tasks(name, n, seed):
    j = jacobian(seed, n)
    w = make(name)(j @ j.T, losses(n, seed), seed)
    assert w.dtype == torch.float64 and w.shape == (n,)
    assert bool(torch.isfinite(w).all())


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("case", DEGENERATE)
def test_degenerate_gradients_give_finite_weights(name, case):
    j = degenerate(case)
    w = make(name)(j @ j.T, losses(3), 0)
    assert bool(torch.isfinite(w).all()), w


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("seed", range(4))
def test_one_task_gets_a_positive_weight(name, seed):
    j = jacobian(seed, 1)
    w = make(name)(j @ j.T, losses(1), seed)
    assert float(w[0]) > 0
    assert bool((w @ j @ j[0]) > 0)  # a descent direction for the task


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scale", [1e-8, 1e8])
def test_weights_do_not_depend_on_the_gradients_overall_scale(name, seed, scale):
    """Every default here is scale-free: the same weights for gradients 1e8 times larger or smaller
    (GradNorm's over a few steps, its first weights being 1)."""
    plain, scaled = make(name), make(name)
    for step in range(4):
        j = jacobian(seed + step, 3)
        w = plain(j @ j.T, losses(3, step), step)
        w_scaled = scaled((scale * j) @ (scale * j).T, losses(3, step), step)
        assert torch.allclose(w_scaled, w, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_permuting_the_tasks_permutes_the_weights(name, n, seed):
    j = jacobian(seed, n)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    loss = losses(n, seed)
    names = list(loss)
    permuted_loss = {names[k]: loss[names[k]] for k in perm.tolist()}
    plain, permuted = make(name), make(name)
    for step in range(4):  # a few steps, for the stateful ones
        scale = torch.linspace(1, 2, n, dtype=torch.float64)[:, None] ** step
        ws = plain((scale * j) @ (scale * j).T, loss, step)
        jp = (scale * j)[perm]
        wp = permuted(jp @ jp.T, permuted_loss, step)
        assert torch.allclose(wp, ws[perm], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_pcgrad_two_tasks_is_order_free_and_never_conflicts(seed):
    """With two tasks the order is irrelevant: exact equivariance, for any step's draw."""
    j = jacobian(seed, 2)
    strategy = PCGradWeighting(NAMES)
    w = strategy(j @ j.T, losses(2), seed)
    swapped = j.flip(0)
    assert torch.allclose(strategy(swapped @ swapped.T, losses(2), seed + 1), w.flip(0), rtol=1e-12)
    d = w @ j
    assert bool((j @ d >= -1e-9 * j.norm(dim=1) * d.norm()).all())
    g = j @ j.T
    if float(g[0, 1]) < 0:  # the textbook projections, by hand
        p0 = j[0] - g[0, 1] / g[1, 1] * j[1]
        p1 = j[1] - g[0, 1] / g[0, 0] * j[0]
        assert torch.allclose(d, p0 + p1)
    else:
        assert torch.allclose(w, torch.ones(2, dtype=torch.float64))


def test_pcgrad_is_permutation_equivariant_in_expectation_and_reproducible():
    j = jacobian(3, 3)
    perm = [2, 0, 1]
    g, gp, loss = j @ j.T, j[perm] @ j[perm].T, losses(3)
    strategy = PCGradWeighting(NAMES, seed=5)
    steps = range(3000)
    mean = torch.stack([strategy(g, loss, s) for s in steps]).mean(0)
    mean_p = torch.stack([strategy(gp, loss, s) for s in steps]).mean(0)
    assert torch.allclose(mean_p, mean[perm], rtol=0.03, atol=0.03 * float(mean.abs().max()))
    # the draw is a function of seed + step only: a fresh instance (another rank, a resumed run)
    again = PCGradWeighting(NAMES, seed=5)
    assert all(torch.equal(strategy(g, loss, s), again(g, loss, s)) for s in (0, 17))
    draws = {tuple(strategy(g, loss, s).tolist()) for s in range(20)}
    assert len(draws) > 1  # ... and does vary with the step


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("seed", range(6))
def test_upgrad_direction_conflicts_with_no_task(n, seed):
    j = jacobian(seed, n)
    w = UPGradWeighting(NAMES)(j @ j.T, losses(n), seed)
    d = w @ j
    assert bool((j @ d >= -1e-9 * j.norm(dim=1) * d.norm()).all())
    assert bool((w >= 1.0 / n - 1e-12).all())  # each projection only adds to its 1/T share
    # non-conflicting gradients are left as they are (the mean)
    free = torch.eye(n, 20, dtype=torch.float64) * torch.arange(1, n + 1)[:, None]
    assert torch.allclose(UPGradWeighting(NAMES)(free @ free.T, losses(n), 0),
                          torch.full((n,), 1.0 / n, dtype=torch.float64))


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("seed", range(6))
def test_imtl_g_projects_equally_on_every_unit_gradient(n, seed):
    j = jacobian(seed, n)
    w = IMTLGWeighting(NAMES)(j @ j.T, losses(n), seed)
    projections = j @ (w @ j) / j.norm(dim=1)
    assert torch.allclose(projections, projections.mean().expand(n), rtol=1e-8)
    assert float(w.sum()) == pytest.approx(1.0)


def test_imtl_g_duplicate_gradients_share():
    j = degenerate("duplicate")
    w = IMTLGWeighting(NAMES)(j @ j.T, losses(3), 0)
    projections = j @ (w @ j) / j.norm(dim=1)
    assert torch.allclose(projections, projections.mean().expand(3), rtol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(6))
def test_nash_mtl_solves_the_bargaining_equation(n, seed):
    j = jacobian(seed, n)
    g = j @ j.T
    alpha = NashMTLWeighting(NAMES, normalize=False)(g, losses(n), seed)
    assert bool((alpha > 0).all())
    assert torch.allclose((g @ alpha) * alpha, torch.ones(n, dtype=torch.float64), rtol=1e-6)
    # the official code's normalisation: the same equation for G / ||G||_F
    alpha = NashMTLWeighting(NAMES)(g, losses(n), seed)
    assert torch.allclose((g @ alpha) * alpha, torch.linalg.norm(g).expand(n), rtol=1e-6)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("c", [0.01, 7.0])
def test_nash_mtl_weight_scales_inversely_with_its_gradient(seed, c):
    j = jacobian(seed, 3)
    scaled = j.clone()
    scaled[1] *= c
    plain = NashMTLWeighting(NAMES, normalize=False)
    w, ws = plain(j @ j.T, losses(3), 0), plain(scaled @ scaled.T, losses(3), 1)
    assert torch.allclose(ws, w * torch.tensor([1, 1 / c, 1], dtype=torch.float64), rtol=1e-6)
    # normalised: the same up to one common factor, so the direction only changes in length
    normed = NashMTLWeighting(NAMES)
    w, ws = normed(j @ j.T, losses(3), 0), normed(scaled @ scaled.T, losses(3), 1)
    ratio = ws / w * torch.tensor([1, c, 1], dtype=torch.float64)
    assert torch.allclose(ratio, ratio[0].expand(3), rtol=1e-6)


def test_nash_mtl_rank_deficient_cases():
    j = degenerate("duplicate")
    w = NashMTLWeighting(NAMES, normalize=False)(j @ j.T, losses(3), 0)
    assert float(w[0]) == pytest.approx(float(w[1]))  # duplicates bargain as one, split evenly
    assert torch.allclose((j @ j.T @ w) * w, torch.ones(3, dtype=torch.float64), rtol=1e-6)
    j = degenerate("zero_gradient")
    w = NashMTLWeighting(NAMES, normalize=False)(j @ j.T, losses(3), 0)
    assert float(w[2]) == 0.0  # nothing to bargain with; the others solve their own game
    g = j[:2] @ j[:2].T
    assert torch.allclose((g @ w[:2]) * w[:2], torch.ones(2, dtype=torch.float64), rtol=1e-6)


def test_nash_mtl_recomputes_every_n_steps_or_when_tasks_change():
    strategy = NashMTLWeighting(NAMES, update_weights_every=3)
    grams = [(lambda j: j @ j.T)(jacobian(s, 3)) for s in range(8)]
    fresh = [NashMTLWeighting(NAMES)(g, losses(3), 0) for g in grams]
    got = [strategy(grams[s], losses(3), s) for s in range(7)]
    for s in range(7):
        assert torch.allclose(got[s], fresh[3 * (s // 3)])
    # a changed set of tasks re-solves at once, and so does the return of the full set
    two = {t: v for t, v in losses(3).items() if t != "b"}
    g2 = grams[7][[0, 2]][:, [0, 2]]
    assert torch.allclose(strategy(g2, two, 7), NashMTLWeighting(NAMES)(g2, two, 0))
    assert torch.allclose(strategy(grams[7], losses(3), 8), fresh[7])


def test_nash_mtl_max_norm_clips_the_combined_gradient():
    j = jacobian(2, 3) * 100
    w = NashMTLWeighting(NAMES, max_norm=1.0)(j @ j.T, losses(3), 0)
    assert float((w @ j).norm()) == pytest.approx(1.0)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(3))
def test_cagrad_with_c_zero_is_the_mean_gradient(n, seed):
    j = jacobian(seed, n)
    w = CAGradWeighting(NAMES, c=0.0)(j @ j.T, losses(n), seed)
    assert torch.allclose(w, torch.full((n,), 1.0 / n, dtype=torch.float64))


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("c", [0.4, 0.9])
def test_cagrad_maximises_the_worst_improvement_in_the_ball(n, seed, c):
    j = jacobian(seed, n)
    w = CAGradWeighting(NAMES, c=c, rescale=0)(j @ j.T, losses(n), seed)
    d, g0 = w @ j, j.mean(0)
    radius = c * float(g0.norm())
    assert float((d - g0).norm()) <= radius * (1 + 1e-6)
    worst = float((j @ d).min())
    tol = 1e-6 * float(j.norm(dim=1).max()) ** 2
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(1000, j.shape[1], generator=gen, dtype=torch.float64)
    r = radius * torch.rand(1000, 1, generator=gen, dtype=torch.float64) ** (1 / j.shape[1])
    others = g0 + r * u / u.norm(dim=1, keepdim=True)
    assert worst >= float((others @ j.T).min(1).values.max()) - tol
    # no duality gap: min_i g_i . d (<= the primal optimum <= the dual optimum) equals the dual
    # objective g_w . g0 + c ||g0|| ||g_w|| at the simplex point the weights were built from
    v = w - 1.0 / n
    gw = (v / v.sum()) @ j
    assert worst == pytest.approx(float(gw @ g0) + radius * float(gw.norm()), abs=tol)
    for vertex in j:  # and weak duality at the simplex's vertices
        assert worst <= float(vertex @ g0) + radius * float(vertex.norm()) + tol
    rescaled = CAGradWeighting(NAMES, c=c)(j @ j.T, losses(n), seed)
    assert torch.allclose(rescaled, w / (1 + c**2), rtol=1e-6)  # the official default rescale


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("seed", range(5))
def test_aligned_mtl_is_the_sum_of_the_aligned_gradients(n, seed):
    """Algorithm 1 from the gradients themselves: J = U S V^T, aligned rows sigma_min U V^T."""
    j = jacobian(seed, n)
    w = AlignedMTLWeighting(NAMES)(j @ j.T, losses(n), seed)
    u, s, vt = torch.linalg.svd(j, full_matrices=False)
    aligned = s.min() * u @ vt
    assert torch.allclose(w @ j, aligned.sum(0), rtol=1e-8, atol=1e-10 * float(s.max()))
    # equal-norm orthogonal aligned gradients: ||d||^2 = T sigma_min^2
    assert float((w @ j).norm() ** 2) == pytest.approx(n * float(s.min()) ** 2, rel=1e-8)
    for mode, sigma in (("median", s.sort().values[(n - 1) // 2]), ("rmse", (s**2).mean().sqrt())):
        w = AlignedMTLWeighting(NAMES, scale_mode=mode)(j @ j.T, losses(n), seed)
        assert torch.allclose(w @ j, (sigma * u @ vt).sum(0), rtol=1e-8, atol=1e-10 * float(s.max()))


def test_aligned_mtl_orthogonal_gradients_are_brought_to_the_smallest_norm():
    norms = torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
    j = torch.eye(3, 20, dtype=torch.float64) * norms[:, None]
    w = AlignedMTLWeighting(NAMES)(j @ j.T, losses(3), 0)
    assert torch.allclose(w, 0.5 / norms)


def test_aligned_mtl_duplicate_gradients_use_the_numerical_rank():
    j = degenerate("duplicate")
    w = AlignedMTLWeighting(NAMES)(j @ j.T, losses(3), 0)
    u, s, vt = torch.linalg.svd(j, full_matrices=False)
    u, s, vt = u[:, :2], s[:2], vt[:2]
    assert torch.allclose(w @ j, (s.min() * u @ vt).sum(0), rtol=1e-6, atol=1e-8 * float(s.max()))


def test_matches_torchjd_documented_examples():
    """TorchJD's docstring examples, J = [[-4, 1, 1], [6, 1, 1]] (its AlignedMTL and UPGrad use the
    mean, twice smaller than the sum here; its UPGrad adds reg_eps = 1e-4 to the Gram)."""
    j = torch.tensor([[-4.0, 1, 1], [6, 1, 1]], dtype=torch.float64)
    g, loss = j @ j.T, losses(2)
    cases = [
        (PCGradWeighting(NAMES), [0.5848, 3.8012, 3.8012], 1e-4),
        (CAGradWeighting(NAMES, c=0.5, rescale=0), [0.1835, 1.2041, 1.2041], 1e-4),
        (NashMTLWeighting(NAMES, max_norm=1.0), [0.0542, 0.7061, 0.7061], 1e-4),
        (IMTLGWeighting(NAMES), [0.0767, 1.0, 1.0], 1e-4),
        (AlignedMTLWeighting(NAMES), [2 * 0.2133, 2 * 0.9673, 2 * 0.9673], 2e-4),
        (UPGradWeighting(NAMES), [0.2929, 1.9004, 1.9004], 1e-3),
    ]
    for strategy, expected, tol in cases:
        d = strategy(g, loss, 0) @ j
        assert d.tolist() == pytest.approx(expected, abs=tol), type(strategy).__name__


def test_gradnorm_weights_sum_to_the_present_tasks_and_equalise_weighted_norms():
    j = torch.eye(3, 20, dtype=torch.float64) * torch.tensor([1.0, 4.0, 0.5], dtype=torch.float64)[:, None]
    g = j @ j.T
    strategy = GradNormWeighting(NAMES)
    constant = losses(3)  # L_t / L_t(0) = 1: every target is the mean weighted norm
    spread, late = [], []
    for step in range(400):
        w = strategy(g, constant, step)
        assert float(w.sum()) == pytest.approx(3.0)
        weighted = w * g.diagonal().sqrt()
        spread.append(float(weighted.max() / weighted.min()))
        if step >= 200:
            late.append(w)
    assert spread[0] == pytest.approx(8.0)
    # the sign steps of fixed size keep oscillating about the equilibrium w_t ~ 1 / ||g_t||
    assert max(spread[200:]) < 2.0
    balanced = 1 / g.diagonal().sqrt()
    assert torch.allclose(torch.stack(late).mean(0), 3 * balanced / balanced.sum(), rtol=0.05)


def test_gradnorm_favours_the_task_that_trains_slowest():
    j = jacobian(0, 2)
    j = j / j.norm(dim=1, keepdim=True)
    g = j @ j.T
    strategy = GradNormWeighting(NAMES)
    strategy(g, {"a": torch.tensor(1.0), "b": torch.tensor(1.0)}, 0)
    for step in range(1, 100):  # a keeps its loss, b's halves: a lags and gains weight
        w = strategy(g, {"a": torch.tensor(1.0), "b": torch.tensor(0.5)}, step)
    assert float(w[0]) > 1.3 > 0.7 > float(w[1])


@pytest.mark.parametrize("seed", range(4))
def test_gradnorm_leaves_absent_tasks_alone(seed):
    strategy = GradNormWeighting(NAMES)
    j = jacobian(seed, 3)
    strategy(j @ j.T, losses(3, seed), 0)
    before = {k: v.clone() for k, v in strategy.state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    for step in range(1, 30):
        jj = jacobian(seed + step, 2)
        w = strategy(jj @ jj.T, {"a": torch.rand((), generator=gen) + 0.1,
                                 "c": torch.rand((), generator=gen) + 0.1}, step)
        assert float(w.sum()) == pytest.approx(2.0)
    after = strategy.state_dict()
    assert float(after["task_weights"][1]) == float(before["task_weights"][1])
    assert float(after["initial_loss"][1]) == float(before["initial_loss"][1])
    assert not torch.equal(after["task_weights"][[0, 2]], before["task_weights"][[0, 2]])
    # a task first seen late records its own initial loss then, not before
    assert not bool(after["seen"][3])
    jj = jacobian(seed, 2)
    strategy(jj @ jj.T, {"a": torch.tensor(1.0), "d": torch.tensor(2.5)}, 30)
    assert bool(strategy.seen[3]) and float(strategy.initial_loss[3]) == 2.5
    assert float(strategy.initial_loss[0]) == float(before["initial_loss"][0])


def test_gradnorm_rejects_negative_losses_and_unknown_tasks():
    g = torch.eye(2, dtype=torch.float64)
    with pytest.raises(ValueError, match=">= 0"):
        GradNormWeighting(NAMES)(g, {"a": torch.tensor(-1.0), "b": torch.tensor(1.0)}, 0)
    with pytest.raises(ValueError, match="unknown task"):
        GradNormWeighting(NAMES)(g, {"a": torch.tensor(1.0), "z": torch.tensor(1.0)}, 0)


@pytest.mark.parametrize("name,options", [
    ("pcgrad", {"seed": 3}), ("cagrad", {}), ("nash_mtl", {"update_weights_every": 4}), ("imtl_g", {}),
    ("aligned_mtl", {}), ("upgrad", {}), ("gradnorm", {"alpha": 0.5}),
])
def test_state_survives_a_checkpoint(name, options):
    strategy = make(name, **options)
    for step in range(5):
        n = 2 if step == 3 else 3
        j = jacobian(step, n)
        strategy(j @ j.T, losses(n, step), step)
    resumed = make(name, **options)
    resumed.load_state_dict(strategy.state_dict())
    for step in range(5, 8):
        j = jacobian(step, 3)
        assert torch.equal(resumed(j @ j.T, losses(3, step), step), strategy(j @ j.T, losses(3, step), step))


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_gram_raises_and_leaves_state_alone(name, bad):
    strategy = make(name)
    j = jacobian(0, 3)
    strategy(j @ j.T, losses(3), 0)
    state = {k: v.clone() for k, v in strategy.state_dict().items()}
    g = j @ j.T
    g[0, 1] = g[1, 0] = bad
    with pytest.raises(FloatingPointError, match="non-finite Gram"):
        strategy(g, losses(3), 1)
    assert all(torch.equal(v, state[k]) for k, v in strategy.state_dict().items())


@pytest.mark.parametrize("name,options", [
    ("cagrad", {"c": -0.1}), ("cagrad", {"rescale": 3}), ("nash_mtl", {"update_weights_every": 0}),
    ("nash_mtl", {"max_norm": -1.0}), ("aligned_mtl", {"scale_mode": "max"}), ("gradnorm", {"lr": 0.0}),
    ("gradnorm", {"alpha": -1.0}),
])
def test_bad_options_are_rejected(name, options):
    with pytest.raises(ValueError):
        make(name, **options)


@pytest.mark.parametrize("name", STRATEGIES)
def test_options_are_keyword_only(name):
    with pytest.raises(TypeError):
        STRATEGIES[name](NAMES, 0.5)


def test_every_order_of_three_tasks_is_drawn_by_pcgrad():
    """Over steps the per-task orders cover every permutation (the generator really shuffles)."""
    j = jacobian(1, 3)
    strategy, gram, loss = PCGradWeighting(NAMES), j @ j.T, losses(3)
    outcomes = {tuple(np.round(strategy(gram, loss, s).numpy(), 12)) for s in range(200)}
    possible = set()
    g = gram.numpy()
    for orders in itertools.product(itertools.permutations(range(3)), repeat=3):
        total = np.zeros(3)
        for i, order in enumerate(orders):
            c = np.eye(3)[i]
            for k in order:
                if k != i and c @ g[:, k] < 0:
                    c[k] -= (c @ g[:, k]) / g[k, k]
            total += c
        possible.add(tuple(np.round(total, 12)))
    assert outcomes <= possible and len(outcomes) == len(possible)
