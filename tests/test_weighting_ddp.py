"""Two gloo processes take the same steps as one process with their joint batch: the strategy
sees the same inputs on every rank (shared loss values, an all-reduced Gram matrix)."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from edge_mtl.config import WeightingConfig
from edge_mtl.types import TASKS
from edge_mtl.weighting import build_weighting
from edge_mtl.weighting.step import weighted_loss

STEPS, BATCH = 4, 8


class Toy(nn.Module):
    """A shared trunk and one head per task, with the interface the training loop relies on."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh())
        self.heads = nn.ModuleDict({t: nn.Linear(8, 1) for t in TASKS})

    features = None

    def forward(self, x: torch.Tensor, keep_features: bool = False) -> dict:
        z = self.trunk(x)
        self.features = (z,) if keep_features else None
        return {t: head(z)[:, 0] for t, head in self.heads.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters())


def batch(step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(BATCH, 6, generator=g)
    # targets of very different scales and partly opposed, so the strategies have work to do
    targets = {"det": 3 * x[:, 0], "lane": -0.2 * x[:, 0] + x[:, 1], "depth": 10 * x[:, 2]}
    return x, targets


def run(strategy: str, gradients: str, rank: int = 0, world: int = 1, drop_lane_on: int = -1,
        empty_on: int = -1) -> dict:
    torch.manual_seed(0)
    model = Toy()
    net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model
    weighting = build_weighting(WeightingConfig(strategy=strategy, warmup_steps=1), TASKS)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    rows = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    weights = []
    for step in range(STEPS):
        x, targets = batch(step)
        tasks = [t for t in TASKS if not (t == "lane" and rank == drop_lane_on)]
        if rank == empty_on and step == 2:  # this rank's batch holds no label at all
            tasks = []

        def loss_fn(out, tasks=tasks, targets=targets):
            return {t: ((out[t] - targets[t][rows]) ** 2).mean() for t in tasks}

        result = weighted_loss(net, model, weighting, x[rows], loss_fn, step, world=world,
                               gradients=gradients)
        optimizer.zero_grad()
        result.backward()
        optimizer.step()
        weights.append(weighting.current_weights(step))
    return {"params": {k: v.detach().clone() for k, v in model.state_dict().items()}, "weights": weights}


def _worker(rank: int, world: int, store: str, strategy: str, gradients: str, drop_lane_on: int,
            empty_on: int = -1) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.save(run(strategy, gradients, rank, world, drop_lane_on, empty_on), f"{store}.rank{rank}.pt")
        dist.barrier()  # no rank tears gloo down while the other's last collective is in flight
    finally:
        dist.destroy_process_group()


def two_ranks(tmp_path, strategy: str, gradients: str = "representation",
              drop_lane_on: int = -1, empty_on: int = -1) -> list[dict]:
    store = str(tmp_path / "store")
    mp.spawn(_worker, args=(2, store, strategy, gradients, drop_lane_on, empty_on), nprocs=2, join=True)
    return [torch.load(f"{store}.rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize(("strategy", "gradients"), [("equal", "representation"), ("famo", "representation"),
                                                     ("upgrad", "representation"), ("pcgrad", "parameters")])
def test_two_processes_equal_one_process_with_the_joint_batch(tmp_path, strategy, gradients):
    single = run(strategy, gradients)
    ranks = two_ranks(tmp_path, strategy, gradients)
    for r in ranks:
        for k, v in single["params"].items():
            torch.testing.assert_close(r["params"][k], v, rtol=1e-5, atol=1e-6)
        for got, expected in zip(r["weights"], single["weights"], strict=True):
            assert got == pytest.approx(expected, rel=1e-5)
    assert single["params"]["trunk.0.weight"].ne(Toy().state_dict()["trunk.0.weight"]).any()  # it trained


@pytest.mark.parametrize("strategy", ["dwa", "famo", "nash_mtl"])
def test_ranks_agree_on_the_weights_when_one_lacks_a_task(tmp_path, strategy):
    ranks = two_ranks(tmp_path, strategy, drop_lane_on=1)
    assert ranks[0]["weights"] == ranks[1]["weights"]
    for k, v in ranks[0]["params"].items():
        torch.testing.assert_close(ranks[1]["params"][k], v)


@pytest.mark.parametrize("strategy", ["equal", "upgrad"])
def test_a_rank_without_any_label_steps_with_the_others(tmp_path, strategy):
    ranks = two_ranks(tmp_path, strategy, empty_on=1)  # it would deadlock or raise without a backward
    for got, expected in zip(ranks[1]["weights"], ranks[0]["weights"], strict=True):
        assert got == pytest.approx(expected)
    for k, v in ranks[0]["params"].items():
        torch.testing.assert_close(ranks[1]["params"][k], v)
