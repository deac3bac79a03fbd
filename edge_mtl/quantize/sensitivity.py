"""INT8 sensitivity: which layers cost accuracy when quantized.

One calibration (its ranges cached), then one Q/DQ model per candidate group left in float,
each evaluated on the same frames. The headline metric that moves most when a group is kept in
float names the group to keep (``edge-mtl calibrate --keep``).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_mtl.export.metadata import load_onnx
from edge_mtl.quantize.calibset import CalibrationSet
from edge_mtl.quantize.qdq import DEFAULT_METHOD, WEIGHTED_OPS, quantize_qdq
from edge_mtl.report.tables import METRICS, relative_loss


def candidate_groups(model: str | os.PathLike, depth: int = 3) -> list[str]:
    """Node-name prefixes of the weighted layers, ``depth`` path levels deep, in graph order
    (e.g. ``/backbone/features.3/``, ``/decoder/fuse/``)."""
    groups: list[str] = []
    for n in load_onnx(model).graph.node:
        if n.op_type in WEIGHTED_OPS and n.name.startswith("/"):
            prefix = "/".join(n.name.split("/")[:depth]) + "/"
            if prefix not in groups:
                groups.append(prefix)
    return groups


def headline_losses(metrics: dict, reference: dict) -> dict[str, float]:
    """Relative loss of each task's headline metric (`report.tables.METRICS`) against
    ``reference`` metrics; positive = worse."""
    losses = {}
    for m in METRICS:
        if m.headline and m.task in metrics and m.task in reference:
            value, ref = metrics[m.task][m.key], reference[m.task][m.key]
            loss = relative_loss(m, value, ref)
            if loss is None:  # reference 0 (an untrained model's mAP): any change is infinite
                loss = 0.0 if value == 0 else math.copysign(math.inf, -value if m.higher_is_better else value)
            losses[m.task] = loss
    return losses


def sweep(model: str | os.PathLike, calib: CalibrationSet, data: str | os.PathLike,
          groups: list[str] | None = None, limit: int | None = 100, method: str = DEFAULT_METHOD,
          images: int | None = None, keep: list[str] | None = None,
          cache_dir: str | os.PathLike | None = "default",
          log: Callable[[str], object] = print) -> dict[str, Any]:
    """FP32, INT8 and one row per group left in float (on top of ``keep``; None: nothing), on
    ``limit`` frames of ``data``; each row carries the metrics and the headline losses vs FP32."""
    from edge_mtl.evaluate import evaluate

    groups = candidate_groups(model) if groups is None else groups
    base_keep = list(keep or [])

    def run(label: str, path: str | os.PathLike) -> dict[str, Any]:
        metrics = evaluate(path, data, limit=limit, progress=False)["metrics"]
        return {"label": label, "metrics": metrics}

    fp32 = run("fp32", model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, group in enumerate([None, *groups]):
            label = "int8" if group is None else f"int8, {group} in float"
            q = quantize_qdq(model, Path(tmp) / f"{i}.onnx", calib, method=method, images=images,
                             keep=[*base_keep, *([group] if group else [])], progress=i == 0,
                             cache_dir=cache_dir)
            row = run(label, q.path) | {"group": group, "kept_nodes": len(q.kept_nodes)}
            row["loss"] = headline_losses(row["metrics"], fp32["metrics"])
            rows.append(row)
            log(f"[{i + 1}/{len(groups) + 1}] {label}: "
                + ", ".join(f"{t} {100 * v:+.2f} %" for t, v in row["loss"].items()))
    return {"schema": "edge_mtl.int8_sensitivity/1", "model": str(model), "data": str(data),
            "frames": limit, "method": method, "calibration": calib.name, "keep": base_keep,
            "fp32": fp32["metrics"], "rows": rows}
