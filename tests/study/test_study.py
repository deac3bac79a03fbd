"""The study: its plan, Delta m's arithmetic, the verdict's honesty, costs, and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest
import torch

from edge_mtl.study.plan import DYNAMIC, plan
from edge_mtl.study.report import METRICS, baselines, delta_m, summarise, verdict

BASE = {"det": {"map50": 0.8, "map": 0.5}, "lane": {"iou": 0.6, "f1": 0.75},
        "depth": {"abs_rel": 0.1, "rmse": 4.0, "delta1": 0.9}}


def result(label: str, group: str, seed: int = 0, scale: float = 1.0, **metric) -> dict:
    """A run result whose metrics are BASE moved by ``scale`` in the better direction."""
    m = {t: dict(v) for t, v in BASE.items()}
    for key, (task, higher) in METRICS.items():
        name = key.split(".")[1]
        m[task][name] = BASE[task][name] * (scale if higher else 1 / scale)
    for key, v in metric.items():
        task, name = key.split("__")
        m[task][name] = v
    return {"label": label, "group": group, "seed": seed, "metrics": m, "step_ms": 100.0 * scale,
            "peak_rss_mb": 500.0}


def singles(seed: int = 0) -> list[dict]:
    return [result(f"single {t}", "single", seed) for t in ("det", "lane", "depth")]


def test_plan_covers_every_group_with_unique_names():
    runs = plan(2)
    names = [r.name for r in runs]
    assert len(names) == len(set(names))
    assert {r.group for r in runs} == {"single", "strategy", "fixed", "missing"}
    assert {r.label for r in runs if r.group == "strategy"} == set(DYNAMIC)
    assert len(DYNAMIC) >= 9 and sum(r.group == "single" for r in runs) == 6
    drop = [r for r in runs if r.group == "missing"]
    assert {r.overrides["train.missing"] for r in drop} == {"mask", "background"}
    assert all(r.data == "train_drop" for r in drop)
    with pytest.raises(ValueError, match="unknown strategies"):
        plan(1, ("magic",))


def test_delta_m_is_zero_at_the_baseline_and_signed_by_better_or_worse():
    base = baselines(singles())
    assert delta_m(result("same", "strategy"), base) == pytest.approx((0.0, 0.0))
    better, _ = delta_m(result("better", "strategy", scale=1.1), base)
    worse, _ = delta_m(result("worse", "strategy", scale=0.9), base)
    assert better < 0 < worse
    # one metric 10 % worse: -> 10/7 % over metrics, but 10/2/3 % task-averaged (det has 2 metrics)
    one = result("one", "strategy", det__map50=0.8 * 0.9)
    dm, task_avg = delta_m(one, base)
    assert dm == pytest.approx(10 / 7) and task_avg == pytest.approx(10 / 2 / 3)
    from edge_mtl.study.report import excluded

    zero = [result("single det", "single", det__map50=0.0), *singles()[1:]]
    assert excluded(zero) == ["det.map50"]  # no relative change from 0: left out, and said
    assert delta_m(one, baselines(zero))[0] == pytest.approx(0.0)


def test_the_verdict_says_when_no_dynamic_strategy_beats_fixed_weights():
    results = [*singles(), *singles(1),
               result("equal", "strategy", scale=1.02), result("fixed 2/1/1", "fixed", scale=1.05),
               result("pcgrad", "strategy", scale=1.01), result("rlw", "strategy", scale=1.0),
               result("50 % labels dropped, masked", "missing", scale=0.95),
               result("50 % labels dropped, as background", "missing", scale=0.8)]
    rows = summarise(results)
    assert [r["label"] for r in rows][:2] == ["fixed 2/1/1", "equal"]  # sorted by Delta m
    costs = {"all": {"params": 4.0, "cpu_ms": 10.0}, **{t: {"params": 3.5, "cpu_ms": 8.0}
                                                        for t in ("det", "lane", "depth")}}
    text = " ".join(verdict(rows, costs))
    assert "Best tri-task configuration: fixed 2/1/1" in text and "38 %" in text
    assert "No dynamic strategy beats the tuned fixed weights" in text
    assert "Configurations that match or beat the three single-task models (Delta m <= 0): " \
           "fixed 2/1/1, equal, pcgrad, rlw." in text
    assert "masked NOT ahead" not in text and text.count("masked ahead") == 3
    from edge_mtl.study.report import markdown

    # step ms of configurations with the same cost (equal 102, fixed 105, rlw 100, ablation 95 / 80)
    priced = {k: {**c, "gflops": 1.0} for k, c in costs.items()}
    assert "the ablation) range 80-105 ms" in markdown(rows, priced, {})
    rows_win = summarise([*singles(), result("fixed 2/1/1", "fixed", scale=1.01),
                          result("famo", "strategy", scale=1.05)])
    assert "beat it by more than the seeds' spread: famo" in " ".join(verdict(rows_win, costs))
    rows_lose = summarise([*singles(), result("fixed 2/1/1", "fixed", scale=0.98),
                           result("famo", "strategy", scale=0.97)])
    assert "No tri-task configuration matches the three single-task models" in " ".join(
        verdict(rows_lose, costs))
    close = [*singles(), *singles(1), result("fixed 2/1/1", "fixed", scale=1.01),
             result("famo", "strategy", scale=1.03), result("famo", "strategy", seed=1, scale=0.995)]
    text = " ".join(verdict(summarise(close), costs))  # ahead on the mean, not beyond the spread
    assert "Ahead within the spread (not a win): famo" in text and "No dynamic strategy beats" in text


def test_each_task_slice_costs_less_than_the_whole_network():
    from edge_mtl.model.tritask import build_model
    from edge_mtl.study.cost import network_costs
    from tests.helpers import TINY_SIZE, tiny_model_config

    torch.manual_seed(0)
    costs = network_costs(build_model(tiny_model_config()), TINY_SIZE, runs=3)
    whole = costs["all"]
    for t in ("det", "lane", "depth"):
        assert 0 < costs[t]["params"] < whole["params"] and 0 < costs[t]["gflops"] < whole["gflops"]
        assert costs[t]["cpu_ms"] > 0
    # the trunk is shared: the three slices together hold more than the one network
    assert sum(costs[t]["params"] for t in ("det", "lane", "depth")) > whole["params"]


def test_a_slice_leaves_out_exactly_the_layers_its_outputs_do_not_read():
    from edge_mtl.model.tritask import build_model
    from edge_mtl.study.cost import TaskSlice, unused_modules
    from tests.helpers import TINY_SIZE, tiny_model_config

    net = build_model(tiny_model_config()).eval()
    image = torch.zeros(1, 3, *TINY_SIZE)
    lane = unused_modules(net, ("lane",), image)
    # lane reads P3 only: the FPN's stride-16/32 output convs go, the stride-8 one stays
    assert {"det_head", "depth_head", "neck.fpn.layer_blocks.1", "neck.fpn.layer_blocks.2"} <= set(lane)
    kept = ("backbone", "decoder", "lane_head", "neck.fpn.layer_blocks.0")
    assert not any(u.startswith(kept) for u in lane)
    assert "neck.fpn.layer_blocks.1" not in unused_modules(net, ("det",), image)
    assert unused_modules(net, ("det", "lane", "depth"), image) == []
    sum(o.sum() for o in TaskSlice(net, ("lane",))(image)).backward()
    dropped = {id(p) for u in lane for p in net.get_submodule(u).parameters()}
    assert all((p.grad is None) == (id(p) in dropped) for p in net.parameters())


@pytest.mark.slow
def test_a_tiny_study_end_to_end(tmp_path):
    from edge_mtl.config import Config
    from edge_mtl.study.main import run_study
    from tests.helpers import TINY_SIZE, tiny_model_config

    Config(model=tiny_model_config()).save(tmp_path / "tiny.yaml")
    report = run_study(tmp_path / "study", data=tmp_path / "data", config=str(tmp_path / "tiny.yaml"),
                       size=TINY_SIZE, steps=4, batch_size=2, seeds=1, train_num=6, val_num=4,
                       strategies=("upgrad",), fixed_grid=(), ablation=False, log=lambda _: None)
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    assert {r["label"] for r in study["runs"]} == {"single det", "single lane", "single depth", "upgrad"}
    assert all(r["peak_rss_mb"] > 50 and r["step_ms"] > 0 for r in study["runs"])
    text = report.read_text()
    assert "upgrad" in text and "Delta m" in text and (tmp_path / "study" / "pareto.png").stat().st_size > 0
    again = run_study(tmp_path / "study", data=tmp_path / "data", config=str(tmp_path / "tiny.yaml"),
                      size=TINY_SIZE, steps=4, batch_size=2, seeds=1, train_num=6, val_num=4,
                      strategies=("upgrad",), fixed_grid=(), ablation=False, log=lambda _: None)
    assert json.loads((tmp_path / "study" / "study.json").read_text())["runs"] == study["runs"]  # reused
    assert again == report
