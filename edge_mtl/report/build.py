"""`build_report`: collect the run folders, build the tables, write markdown, JSON and plots."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge_mtl.files import json_safe, to_json, write_atomic
from edge_mtl.report import collect as col
from edge_mtl.report import tables

SCHEMA = "edge_mtl.report/1"
FILES = {"markdown": "report.md", "json": "report.json", "accuracy": "accuracy.png",
         "latency": "latency.png", "accuracy_vs_fps": "accuracy_vs_fps.png"}


def build_report(run_dirs: Sequence[str | os.PathLike], out_dir: str | os.PathLike) -> dict:
    """Read the eval / bench / camera JSONs in ``run_dirs`` and write ``out_dir/report.md``,
    ``out_dir/report.json`` and the PNG plots; returns the report dict (``report.json``'s content;
    ``files`` maps each output to its path).

    Raises FileNotFoundError for a missing run folder and ValueError naming a JSON file that does
    not parse. Rows and cells no measurement covers are None in the dict and "not measured" in
    the markdown; a metric held as NaN, null or a non-number is None with its reason in the row's
    ``invalid``, "invalid (NaN)" in the markdown, and flagged.
    """
    from edge_mtl.report import markdown, plots

    dirs = col.as_paths(run_dirs)
    found = col.collect(dirs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    accuracy = tables.accuracy_table(found)
    runs = tables.speed_runs(found)
    speed = tables.speed_table(runs)
    points = tables.accuracy_vs_fps(accuracy, speed)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runs": [str(d) for d in dirs],
        "inputs": [{"path": str(r.path), "schema": r.data["schema"], "kind": r.kind} for r in found.records],
        "skipped": found.skipped,
        "notes": list(found.notes),
        "accuracy": accuracy,
        "speed": speed,
        "latency": runs,
        "accuracy_vs_fps": points,
        "models": [col.model_facts(p, found.records, found.sidecars) for p in found.model_files],
    }
    report = json_safe(report)  # NaN / inf -> None, as report.json holds it
    written, why_not = {}, {}
    for key, draw, why in (
            ("accuracy", lambda p: plots.accuracy_plot(accuracy, p), "no eval JSON: accuracy not measured"),
            ("latency", lambda p: plots.latency_plot(runs, p),
             "no bench or camera JSON: latency not measured"),
            ("accuracy_vs_fps", lambda p: plots.accuracy_fps_plot(points, accuracy, p),
             "needs accuracy and FPS of the same backend and precision; not both measured")):
        path = draw(out / FILES[key])
        if path is None:
            why_not[key] = why
            (out / FILES[key]).unlink(missing_ok=True)  # no stale plot from an earlier report
        else:
            written[key] = FILES[key]
    report["plots"], report["plot_notes"] = written, why_not
    md_path, json_path = out / FILES["markdown"], out / FILES["json"]
    report["files"] = {"markdown": str(md_path), "json": str(json_path),
                       **{k: str(out / v) for k, v in written.items()}}
    write_atomic(md_path, markdown.render(report))
    write_atomic(json_path, to_json(report, indent=2, ensure_ascii=False) + "\n")
    return report

