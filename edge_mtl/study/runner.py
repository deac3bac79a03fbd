"""One study run: train it in a child process (its peak memory read by ``os.wait4``), evaluate
it, and keep the result; a run with a result is not redone, one with a checkpoint resumes."""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edge_mtl.config import Config
from edge_mtl.files import to_json, write_atomic
from edge_mtl.study.plan import Run

METRICS = {"det": ("map50", "map"), "lane": ("iou", "f1"), "depth": ("abs_rel", "rmse", "delta1")}


def run_config(base: Config, run: Run, folder: Path, data: Path) -> Config:
    """``base`` with the run's overrides, its data and its folder."""
    tree = base.to_dict()
    for key, value in run.overrides.items():
        section, name = key.split(".", 1)
        tree[section][name] = value
    tree["train"]["data"] = [f"synth:{data}"]
    tree["train"]["out"] = str(folder)
    return Config.from_dict(tree, source=f"study run {run.name}")


def execute(run: Run, base: Config, study: Path, data: dict[str, Path], val: Path, device: str = "cpu",
            log=print) -> dict[str, Any]:
    folder = study / "runs" / run.name
    done = folder / "result.json"
    cfg = run_config(base, run, folder, data[run.data])
    if done.exists():
        kept = json.loads(done.read_text())
        if kept.get("config") != cfg.to_dict():
            raise ValueError(f"{done} was made with another budget or recipe than this study's; "
                             "choose another --out (or delete that run folder) to rerun it")
        return kept
    config_path = study / "configs" / f"{run.name}.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.save(config_path)
    cmd = [sys.executable, "-m", "edge_mtl.cli", "train", "--config", str(config_path)]
    if (folder / "last.pt").exists():
        cmd += ["--resume", str(folder / "last.pt")]
    elif folder.exists():  # killed before its first checkpoint: start it again
        cmd += ["--force"]
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log(f"study: training {run.name}")
    with open(folder / "train.out", "w") as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = (folder / "train.out").read_text()[-1500:]
        raise RuntimeError(f"study run {run.name} failed (exit {child.returncode}); "
                           f"{folder / 'train.out'} ends:\n{tail}")
    seconds = time.perf_counter() - start
    from edge_mtl.evaluate import evaluate

    metrics = evaluate(folder / "last.pt", val, progress=False, device=device)["metrics"]
    result = {
        "name": run.name, "group": run.group, "label": run.label, "seed": run.seed, "config": cfg.to_dict(),
        "metrics": {t: {k: metrics[t][k] for k in keys} for t, keys in METRICS.items()},
        "train_seconds": round(seconds, 1),  # of the last (resumed) segment
        # ru_maxrss is in KiB on Linux: the peak resident memory of the training process or of
        # its largest data worker (not their sum; host memory on a GPU); of the last segment
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "step_ms": _median_step_ms(folder / "log.csv"),
    }
    write_atomic(done, to_json(result, indent=2) + "\n")
    return result


def _median_step_ms(log: Path) -> float | None:
    with open(log, newline="") as f:
        values = [float(r["step_ms"]) for r in csv.DictReader(f) if r.get("step_ms")]
    return round(statistics.median(values), 1) if values else None
