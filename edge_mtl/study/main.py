"""`edge-mtl study`: render the study's data, run every planned run, write the report."""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from pathlib import Path
from typing import Any

from edge_mtl.config import Config
from edge_mtl.files import to_json, write_atomic
from edge_mtl.study.plan import DYNAMIC, FIXED_GRID, STEPS, STUDY_CONFIG, VAL_NUM, plan
from edge_mtl.study.report import excluded, markdown, pareto_plot, summarise
from edge_mtl.study.runner import execute
from edge_mtl.types import TASKS

DROP = {"det": 0.5, "lane": 0.5, "depth": 0.5}


def study_config(config: str, size: tuple[int, int], steps: int, batch_size: int) -> Config:
    """The release recipe at the study's budget: same network and losses, a smaller input, a
    short schedule, warmup (fixed 1/1/1) a tenth of it. The recipe's ImageNet backbone (and its
    frozen blocks) stays: every run starts from the same weights, and from scratch this budget trains no task
    far enough to compare (150 steps: det mAP@0.5 0.03 from scratch, 0.16 from ImageNet)."""
    cfg = Config.load(config)
    cfg.model = dataclasses.replace(cfg.model, input_height=size[0], input_width=size[1])
    cfg.train = dataclasses.replace(cfg.train, steps=steps, batch_size=batch_size, crop_width=None,
                                    warmup_lr_steps=max(1, steps // 20), log_every=10, ckpt_every=50,
                                    bn_batches=10, diag_every=max(1, steps // 5), workers=1, init=None,
                                    check_data=False)  # the study checks its sets once
    # every dynamic strategy after the same warmup, whatever the recipe's own weighting (the
    # release recipe follows this study, and the study's runs must not move with it)
    cfg.weighting = dataclasses.replace(cfg.weighting, warmup_steps=steps // 10,
                                        fixed={t: 1.0 for t in TASKS})
    return cfg


def run_study(out: str | os.PathLike = "benchmarks/mtl_study", *, data: str | os.PathLike = "data/study",
              config: str = STUDY_CONFIG, size: tuple[int, int] = (160, 288),
              steps: int = STEPS, batch_size: int = 8, seeds: int = 2, train_num: int = 800,
              val_num: int = VAL_NUM,
              strategies: tuple[str, ...] = DYNAMIC,
              fixed_grid: tuple[tuple[float, float, float], ...] = FIXED_GRID, ablation: bool = True,
              device: str = "cpu", log=print) -> Path:
    from edge_mtl.data.format import synthesize_once
    from edge_mtl.data.preflight import check_dataset
    from edge_mtl.model.tritask import build_model
    from edge_mtl.study.cost import network_costs

    start = time.perf_counter()
    out, data = Path(out), Path(data)
    out.mkdir(parents=True, exist_ok=True)
    sets = {"train": data / "train", "train_drop": data / "train_drop"}
    synthesize_once(sets["train"], train_num, seed=20000)
    if ablation:
        synthesize_once(sets["train_drop"], train_num, seed=20000, drop=DROP)
    val = synthesize_once(data / "val", val_num, seed=90000)[0]
    for root in sets.values() if ablation else [sets["train"]]:
        check_dataset(root, strict=True)  # once for every run, which then skip the check
    base = study_config(config, size, steps, batch_size)
    runs = plan(seeds, strategies, fixed_grid, ablation, dwa_period=max(1, steps // 10))
    results = []
    for k, run in enumerate(runs, 1):
        log(f"study: run {k}/{len(runs)} {run.name}")
        results.append(execute(run, base, out, sets, val, device, log))
    costs = network_costs(build_model(base.model), size)
    rows = summarise(results)
    setup: dict[str, Any] = {
        "command": f"edge-mtl study --config {config} --out {out} --steps {steps} --seeds {seeds} "
                   f"--size {size[0]}x{size[1]}",
        "network": f"{base.model.backbone} + FPN, the release's heads ({config}), "
                   + (f"backbone from {base.model.pretrained}" if base.model.pretrained else "from scratch")
                   + (f", its first {base.model.freeze_backbone} blocks frozen" if base.model.freeze_backbone
                      else "") + f", input {size[0]}x{size[1]}",
        "schedule": f"{steps} steps of batch {batch_size}, AdamW lr {base.train.lr}, "
                    f"{base.weighting.warmup_steps} steps of fixed 1/1/1 before each dynamic strategy",
        "data": f"{train_num} training frames of the synthetic world (seed 20000), {val_num} validation "
                "frames (seed 90000); the ablation's copy drops 50 % of each task's labels independently",
        "seeds": seeds, "host": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads",
        "training time": f"{sum(r['train_seconds'] for r in results) / 60:.1f} min over all runs "
                         "(their last segments, if resumed)",
        "this invocation": f"{(time.perf_counter() - start) / 60:.1f} min (a resumed study skips the "
                           "runs it keeps)",
    }
    report = {"schema": "edge_mtl.study/1", "setup": setup, "costs": costs, "summary": rows,
              "excluded_metrics": excluded(results), "runs": results}
    write_atomic(out / "study.json", to_json(report, indent=2) + "\n")
    pareto_plot(rows, out / "pareto.png")
    write_atomic(out / "README.md", markdown(rows, costs, setup, excluded(results)))
    return out / "README.md"
