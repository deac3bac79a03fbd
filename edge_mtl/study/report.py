"""Delta m and the study's report: markdown, JSON and a Pareto plot.

Delta m (Maninis et al. 2019, with the sign of Navon et al. 2022 and LibMTL: lower is better) of
a configuration m against the single-task baselines b, over the K metrics k:

    Delta m = 100 / K * sum_k (-1)^{l_k} (M_{m,k} - M_{b,k}) / M_{b,k}

with l_k = 1 where higher is better: negative is better than the specialists. The task-averaged
variant first averages within each task, then over the tasks, so a task with more metrics does
not weigh more.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_mtl.types import TASKS

# metric -> (task, higher is better); the first of each task is its headline
METRICS: dict[str, tuple[str, bool]] = {
    "det.map50": ("det", True), "det.map": ("det", True), "lane.iou": ("lane", True),
    "lane.f1": ("lane", True), "depth.abs_rel": ("depth", False), "depth.rmse": ("depth", False),
    "depth.delta1": ("depth", True)}
HEADLINE = {"det": "det.map50", "lane": "lane.iou", "depth": "depth.abs_rel"}
FORMULA = ("Delta m = 100 / K * sum_k (-1)^{l_k} (M_k - B_k) / B_k over K = 7 metrics (det mAP@0.5 and "
           "mAP@[.5:.95], lane IoU and F1, depth AbsRel, RMSE and delta1), l_k = 1 where higher is better, "
           "B the single-task models; negative beats them. Task-averaged: the same relative changes "
           "averaged within each task first, then over the three tasks.")


def value(result: dict[str, Any], metric: str) -> float:
    task, name = metric.split(".")
    return float(result["metrics"][task][name])


def baselines(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Each metric's mean over the seeds of the single-task model of its task."""
    out = {}
    for metric, (task, _) in METRICS.items():
        own = [value(r, metric) for r in results
               if r["group"] == "single" and r["label"] == f"single {task}"]
        if not own:
            raise ValueError(f"no single-task {task} run in the study: Delta m needs all three")
        out[metric] = statistics.fmean(own)
    return out


def delta_m(result: dict[str, Any], base: dict[str, float]) -> tuple[float, float]:
    """(Delta m, task-averaged Delta m) in percent."""
    rel: dict[str, list[float]] = defaultdict(list)
    for metric, (task, higher) in METRICS.items():
        b = base[metric]
        if not b:  # no relative change from 0: left out, and the report says so (`excluded`)
            continue
        change = (value(result, metric) - b) / b
        rel[task].append(-change if higher else change)
    flat = [v for vs in rel.values() for v in vs]
    if not flat:
        raise ValueError("every single-task baseline metric is 0: Delta m is undefined (train longer)")
    return 100 * statistics.fmean(flat), 100 * statistics.fmean(statistics.fmean(v) for v in rel.values())


def excluded(results: Sequence[dict[str, Any]]) -> list[str]:
    """Metrics left out of Delta m because the single-task baseline scored 0 on them."""
    return [m for m, b in baselines(results).items() if not b]


def summarise(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration (seeds pooled): metric means, Delta m mean and spread, costs."""
    base = baselines(results)
    by_label: dict[str, list[dict]] = defaultdict(list)
    for r in results:
        by_label[r["label"]].append(r)
    rows = []
    for label, runs in by_label.items():
        group = runs[0]["group"]
        row: dict[str, Any] = {"label": label, "group": group, "seeds": len(runs)}
        for metric in METRICS:
            row[metric] = statistics.fmean(value(r, metric) for r in runs)
        if group != "single":
            d = [delta_m(r, base) for r in runs]
            row["delta_m"] = statistics.fmean(x for x, _ in d)
            row["delta_m_std"] = statistics.stdev(x for x, _ in d) if len(d) > 1 else 0.0
            row["delta_m_task"] = statistics.fmean(y for _, y in d)
        steps = [r["step_ms"] for r in runs if r.get("step_ms")]
        row["step_ms"] = statistics.fmean(steps) if steps else None
        row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["group"] == "single", r.get("delta_m", 0.0)))


def verdict(rows: Sequence[dict[str, Any]], costs: dict[str, dict[str, float]]) -> list[str]:
    """The study's conclusions in plain sentences, the losing ones included."""
    tri = [r for r in rows if r["group"] in ("strategy", "fixed")]
    best = min(tri, key=lambda r: r["delta_m"])
    fixed = [r for r in tri if r["group"] == "fixed" or r["label"] == "equal"]
    dynamic = [r for r in tri if r not in fixed and r["label"] != "rlw"]
    best_fixed = min(fixed, key=lambda r: r["delta_m"]) if fixed else None
    specialists = {k: sum(costs[t][k] for t in TASKS) for k in ("params", "cpu_ms")}
    share = {k: costs["all"][k] / specialists[k] for k in specialists}
    lines = [f"Best tri-task configuration: {best['label']}, Delta m {best['delta_m']:+.2f} % "
             + (f"(+- {best['delta_m_std']:.2f} over {best['seeds']} seeds), at " if best["seeds"] > 1
                else "(one seed: no spread), at ")
             + f"{100 * share['params']:.0f} % of the three single-task models' parameters and "
             f"{100 * share['cpu_ms']:.0f} % of their CPU latency."]
    matched = [r["label"] for r in tri if r["delta_m"] <= 0]
    lines.append(f"Configurations that match or beat the three single-task models (Delta m <= 0): "
                 f"{', '.join(matched)}." if matched else
                 "No tri-task configuration matches the three single-task models (Delta m <= 0) "
                 "at this budget.")
    if best_fixed is not None and dynamic:
        winners = [r for r in dynamic if r["delta_m"] < best_fixed["delta_m"]]
        clear = [r["label"] for r in winners if best_fixed["delta_m"] - r["delta_m"] > _noise(r, best_fixed)]
        noisy = [r["label"] for r in winners if r["label"] not in clear]
        text = f"Best fixed weighting: {best_fixed['label']} ({best_fixed['delta_m']:+.2f} %). "
        if clear:
            text += f"Dynamic strategies that beat it by more than the seeds' spread: {', '.join(clear)}. "
        else:
            text += "No dynamic strategy beats the tuned fixed weights by more than the seeds' spread. "
        if noisy:
            text += f"Ahead within the spread (not a win): {', '.join(noisy)}."
        lines.append(text.strip())
    rlw = next((r for r in tri if r["label"] == "rlw"), None)
    if rlw is not None:
        below = [r["label"] for r in dynamic if r["delta_m"] > rlw["delta_m"]]
        lines.append(f"Random loss weighting (the sanity check): {rlw['delta_m']:+.2f} %; "
                     + (f"worse than it: {', '.join(below)}." if below
                        else "every dynamic strategy beats it."))
    masked = next((r for r in rows if r["group"] == "missing" and "masked" in r["label"]), None)
    naive = next((r for r in rows if r["group"] == "missing" and "background" in r["label"]), None)
    if masked and naive:
        ahead = []
        for metric in HEADLINE.values():
            higher = METRICS[metric][1]
            better = masked[metric] > naive[metric] if higher else masked[metric] < naive[metric]
            ahead.append(f"{metric} {masked[metric]:.3f} vs {naive[metric]:.3f} "
                         f"({'masked ahead' if better else 'masked NOT ahead'})")
        lines.append("Missing labels (50 % of each task's labels dropped), masked vs as background: "
                     + "; ".join(ahead) + ".")
    return lines


def _noise(a: dict[str, Any], b: dict[str, Any]) -> float:
    """The spread two configurations' Delta m must differ by to count: their seeds' pooled std."""
    return ((a["delta_m_std"] ** 2 + b["delta_m_std"] ** 2) / 2) ** 0.5


def markdown(rows: Sequence[dict[str, Any]], costs: dict[str, dict[str, float]],
             setup: dict[str, Any], left_out: Sequence[str] = ()) -> str:
    head = ("| configuration | group | det mAP@0.5 | lane IoU | depth AbsRel | Delta m % "
            "| Delta m task-avg % | step ms | peak RSS MB |\n|---|---|---|---|---|---|---|---|---|\n")
    body = ""
    for r in rows:
        dm = f"{r['delta_m']:+.2f} +- {r['delta_m_std']:.2f}" if "delta_m" in r else "(baseline)"
        dmt = f"{r['delta_m_task']:+.2f}" if "delta_m_task" in r else ""
        step = f"{r['step_ms']:.0f}" if r["step_ms"] else ""
        body += (f"| {r['label']} | {r['group']} | {r['det.map50']:.3f} | {r['lane.iou']:.3f} | "
                 f"{r['depth.abs_rel']:.3f} | {dm} | {dmt} | {step} | {r['peak_rss_mb']:.0f} |\n")
    cost = "| network | parameters | GFLOPs | onnxruntime CPU ms |\n|---|---|---|---|\n"
    for name, c in costs.items():
        network = "tri-task" if name == "all" else f"single {name}"
        cost += f"| {network} | {c['params'] / 1e6:.2f} M | {c['gflops']:.2f} | {c['cpu_ms']:.1f} |\n"
    notes = verdict(rows, costs)
    if left_out:
        notes.append(f"Left out of Delta m (the single-task baseline scored 0): {', '.join(left_out)}; "
                     "the budget is too small for them.")
    lines = "\n".join(f"- {line}" for line in notes)
    same = [r["step_ms"] for r in rows if r["step_ms"] and (r["group"] in ("fixed", "missing")
                                                           or r["label"] in ("equal", "rlw"))]
    spread = (f" Configurations whose step costs the same (equal, rlw, the fixed grid, the "
              f"ablation) range {min(same):.0f}-{max(same):.0f} ms: a "
              "difference within that range is the host's, not the method's."
              if len(same) > 1 else "")
    setup_text = "\n".join(f"- {k}: {v}" for k, v in setup.items())
    return (f"# Multi-task weighting study\n\n{lines}\n\n## Setup\n\n{setup_text}\n\n## Results\n\n"
            f"Single-task rows show each model's own task only in Delta m's baseline. {FORMULA} "
            "Step ms is one training step of the tri-task network (a single-task run still runs the "
            f"other heads' forward, not their backward); the cost table gives each slice alone.{spread}\n\n"
            f"{head}{body}\n## Cost\n\n{cost}\n![Pareto](pareto.png)\n")


def pareto_plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Delta m against training step time: the front of configurations nothing beats on both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tri = [r for r in rows if "delta_m" in r and r["step_ms"] and r["group"] != "missing"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    def dominated(r: dict[str, Any]) -> bool:
        return any(o is not r and o["delta_m"] <= r["delta_m"] and o["step_ms"] <= r["step_ms"]
                   and (o["delta_m"], o["step_ms"]) != (r["delta_m"], r["step_ms"]) for o in tri)

    front = [r for r in tri if not dominated(r)]
    colours = {"strategy": "tab:blue", "fixed": "tab:orange"}
    for r in tri:
        ax.errorbar(r["step_ms"], r["delta_m"], yerr=r["delta_m_std"], fmt="o", color=colours[r["group"]],
                    ms=7 if r in front else 5, alpha=1.0 if r in front else 0.6)
        ax.annotate(r["label"], (r["step_ms"], r["delta_m"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    front.sort(key=lambda r: r["step_ms"])
    if front:
        ax.plot([r["step_ms"] for r in front], [r["delta_m"] for r in front], "k--", lw=0.8,
                label="Pareto front")
    ax.axhline(0, color="grey", lw=0.8, label="the three single-task models")
    ax.set(xlabel="training step (ms)", ylabel="Delta m (%)  (lower is better)",
           title="Tri-task weighting: accuracy vs training cost")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
