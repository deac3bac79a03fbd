"""The report's tables as plain data: accuracy per (backend, precision) against the FP32
reference, speed per backend, latency per run and per stage, model sizes.

A value that no JSON holds is None here and "not measured" in the markdown; nothing is filled in.
A metric whose key an eval JSON holds with NaN, null or a non-number is None too, with the reason
in the row's ``invalid`` (``{"det.map50": "NaN"}``): "invalid (NaN)" in the markdown, and flagged
like a headline loss, since a broken measurement must not pass the INT8 check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_mtl.compat import zip_strict
from edge_mtl.report.collect import Collected, Record, describe_host, field, measured, number


@dataclass(frozen=True)
class Metric:
    task: str
    key: str
    label: str
    higher_is_better: bool
    headline: bool  # a relative loss above LOSS_THRESHOLD is flagged

    @property
    def id(self) -> str:
        return f"{self.task}.{self.key}"


METRICS: tuple[Metric, ...] = (
    Metric("det", "map50", "det mAP@0.5", True, True),
    Metric("det", "map", "det mAP@[.5:.95]", True, False),
    Metric("lane", "iou", "lane IoU", True, True),
    Metric("lane", "f1", "lane F1", True, False),
    Metric("depth", "abs_rel", "depth AbsRel", False, True),
    Metric("depth", "rmse", "depth RMSE (m)", False, False),
    Metric("depth", "delta1", "depth δ<1.25", True, False),
)
LOSS_THRESHOLD = 0.01  # relative loss of a headline metric that is flagged

# The rows every report shows, measured or not: (label, backend, precision).
EXPECTED: tuple[tuple[str, str, str], ...] = (
    ("FP32 (torch)", "torch", "fp32"),
    ("FP32 (onnxruntime)", "onnxruntime", "fp32"),
    ("INT8-QDQ (onnxruntime)", "onnxruntime", "int8"),
    ("TensorRT FP16", "tensorrt", "fp16"),
    ("TensorRT INT8", "tensorrt", "int8"),
)
# FP32 rows that can serve as the reference, best first (the ONNX is what gets quantized).
REFERENCE_ORDER = (("onnxruntime", "fp32"), ("torch", "fp32"))
STAGES = ("capture", "pre", "infer", "post", "draw")


def row_label(backend: str | None, precision: str | None) -> str:
    for label, b, p in EXPECTED:
        if (backend, precision) == (b, p):
            return label
    if backend == "tensorrt":
        return "TensorRT best (INT8+FP16)" if precision == "best" else f"TensorRT {str(precision).upper()}"
    return f"{str(precision).upper()} ({backend})"


def _order(backend: str | None, precision: str | None) -> int:
    keys = [(b, p) for _, b, p in EXPECTED]
    return keys.index((backend, precision)) if (backend, precision) in keys else len(keys)


def relative_change(value: float | None, ref: float | None) -> float | None:
    """(value - ref) / ref; None when either is missing or the reference is 0."""
    if value is None or ref is None or ref == 0:
        return None
    return (value - ref) / abs(ref)


def relative_loss(metric: Metric, value: float | None, ref: float | None) -> float | None:
    """How much worse ``value`` is than ``ref``, relative (positive = worse; lower-is-better
    metrics such as AbsRel count a rise as a loss)."""
    change = relative_change(value, ref)
    if change is None:
        return None
    return -change if metric.higher_is_better else change


def is_flagged(metric: Metric, value: float | None, ref: float | None,
               threshold: float = LOSS_THRESHOLD) -> bool:
    """A headline metric that lost more than ``threshold`` (relative) against the reference."""
    loss = relative_loss(metric, value, ref)
    return metric.headline and loss is not None and loss > threshold + 1e-12


def _data_key(r: Record) -> tuple[str, int | None]:
    path = field(r.data, "data", "path")
    return (str(Path(path)) if isinstance(path, str) else "?", field(r.data, "data", "num_samples"))


def _eval_row(r: Record) -> dict[str, Any]:
    read = {m.id: measured(r.data, "metrics", m.task, m.key) for m in METRICS}
    data_path, n = _data_key(r)
    return {"label": row_label(r.backend, r.precision), "backend": r.backend, "precision": r.precision,
            "device": r.device, "measured": True, "source": str(r.path),
            "model": field(r.data, "model", "path"), "data": {"path": data_path, "num_samples": n},
            "measured_on": describe_host(r.data), "metrics": {k: v for k, (v, _) in read.items()},
            "invalid": {k: why for k, (_, why) in read.items() if why}}


def _pick_reference(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    for backend, precision in REFERENCE_ORDER:
        for row in rows:
            if (row["backend"], row["precision"]) == (backend, precision):
                return row
    return next((row for row in rows if row["precision"] == "fp32"), None)


def accuracy_table(c: Collected, threshold: float = LOSS_THRESHOLD) -> dict[str, Any]:
    """One row per eval JSON, plus an unmeasured row for each expected (backend, precision) that
    none covers. Each measured row is compared with the FP32 reference measured on the same data
    (same folder and number of samples)."""
    rows = [_eval_row(r) for r in c.of("eval")]
    _disambiguate(rows)
    by_data: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for row in rows:
        by_data.setdefault((row["data"]["path"], row["data"]["num_samples"]), []).append(row)
    flags = []
    for group in by_data.values():
        ref = _pick_reference(group)
        for row in group:
            row["reference"] = ref["label"] if ref is not None else None
            row["is_reference"] = row is ref
            row["relative"], row["flags"] = {}, []
            for m in METRICS:
                value = row["metrics"][m.id]
                ref_value = ref["metrics"][m.id] if ref is not None and row is not ref else None
                row["relative"][m.id] = relative_change(value, ref_value)
                invalid = row["invalid"].get(m.id)
                if invalid or is_flagged(m, value, ref_value, threshold):
                    row["flags"].append(m.id)
                    flags.append({"row": row["label"], "metric": m.id, "label": m.label, "value": value,
                                  "invalid": invalid, "reference": ref["label"] if ref else None,
                                  "reference_value": ref_value,
                                  "relative_loss": relative_loss(m, value, ref_value)})
    covered = {(row["backend"], row["precision"]) for row in rows}
    for label, backend, precision in EXPECTED:
        if (backend, precision) not in covered:
            rows.append({"label": label, "backend": backend, "precision": precision, "measured": False,
                         "metrics": dict.fromkeys(_ids()), "relative": dict.fromkeys(_ids()),
                         "invalid": {}, "flags": [], "reference": None, "is_reference": False})
    rows.sort(key=lambda row: _order(row["backend"], row["precision"]))
    return {"threshold": threshold,
            "metrics": [{"id": m.id, "label": m.label, "higher_is_better": m.higher_is_better,
                         "headline": m.headline} for m in METRICS],
            "datasets": [{"path": p, "num_samples": n} for p, n in by_data],
            "rows": rows, "flags": flags}


def _ids() -> list[str]:
    return [m.id for m in METRICS]


def _disambiguate(rows: list[dict[str, Any]]) -> None:
    """Labels stay unique: rows of a (backend, precision) measured more than once get the first of
    device, data, file name, file path that tells them apart appended."""
    extras = (lambda r: str(r["device"]), lambda r: f"{r['data']['path']} ({r['data']['num_samples']})",
              lambda r: Path(r["source"]).name, lambda r: r["source"])
    labels = [row["label"] for row in rows]
    for label in {x for x in labels if labels.count(x) > 1}:
        group = [row for row in rows if row["label"] == label]
        for extra in extras:
            tags = [extra(row) for row in group]
            if len(set(tags)) == len(group):
                break
        else:
            tags = [f"#{i + 1}" for i in range(len(group))]
        for row, tag in zip_strict(group, tags):
            row["label"] = f"{label} · {tag}"


def speed_runs(c: Collected) -> list[dict[str, Any]]:
    """One entry per bench or camera JSON: per-stage p50/p90, model-only latency and FPS."""
    runs = []
    for r in c.records:
        if r.kind not in ("bench", "camera"):
            continue
        stages = {}
        for stage in (*STAGES, "e2e", "loop"):
            p50, p90 = (number(field(r.data, "stages_ms", stage, q)) for q in ("p50", "p90"))
            if p50 is not None or p90 is not None:
                stages[stage] = {"p50": p50, "p90": p90}
        model_only = {q: number(field(r.data, "model_only_ms", q)) for q in ("p50", "p90")}
        ppd = {q: number(field(r.data, "pre_post_draw_ms", q)) for q in ("p50", "p90")}
        if r.kind == "bench":
            fps = {"model_only": number(field(r.data, "fps", "model_only_p50")),
                   "e2e": number(field(r.data, "fps", "e2e")), "loop_p50": None, "loop_mean": None}
        else:
            fps = {"model_only": None, "e2e": None, "loop_p50": number(field(r.data, "fps", "p50")),
                   "loop_mean": number(field(r.data, "fps", "mean"))}
        source = field(r.data, "source", "value") if r.kind == "camera" else "frames in memory"
        runs.append({"kind": r.kind, "label": row_label(r.backend, r.precision), "backend": r.backend,
                     "precision": r.precision, "device": r.device, "source": str(r.path),
                     "frames": field(r.data, "frames"), "dropped": field(r.data, "dropped"),
                     "frame_size": field(r.data, "frame_size"), "input_size": field(r.data, "input_size"),
                     "camera_source": source, "measured_on": describe_host(r.data),
                     "stages": stages,
                     "model_only": model_only if any(v is not None for v in model_only.values()) else None,
                     "pre_post_draw": ppd if any(v is not None for v in ppd.values()) else None,
                     "fps": fps})
    return runs


def speed_table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (backend, precision, device): model-only p50, bench end-to-end FPS and camera loop FPS
    (the first measurement of each, in folder and file order; `latency` lists them all), with
    the hosts whose numbers are shown; expected rows without a measurement stay empty."""
    table: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for label, backend, precision in EXPECTED:
        table[(backend, precision, None)] = _speed_row(label, backend, precision)
    for run in runs:
        key = (run["backend"], run["precision"], run["device"])
        if key not in table:
            placeholder = (run["backend"], run["precision"], None)
            row = (table.pop(placeholder) if placeholder in table and not table[placeholder]["measured"]
                   else _speed_row(run["label"], run["backend"], run["precision"]))
            row["device"] = run["device"]
            table[key] = row
        row = table[key]
        row["measured"] = True
        shown = False
        for field_name, value in (("model_only_p50_ms", (run["model_only"] or {}).get("p50")),
                                  ("bench_fps", run["fps"]["e2e"]),
                                  ("camera_fps_p50", run["fps"]["loop_p50"])):
            if value is not None and row[field_name] is None:
                row[field_name], shown = value, True
        if shown and run["measured_on"] not in row["measured_on"]:
            row["measured_on"].append(run["measured_on"])
    rows = sorted(table.values(), key=lambda row: _order(row["backend"], row["precision"]))
    for row in rows:  # the same backend and precision on two devices: say which row is which
        twins = [r for r in rows if (r["backend"], r["precision"]) == (row["backend"], row["precision"])]
        if len(twins) > 1 and row["device"]:
            row["label"] = f"{row['label']} · {row['device']}"
    return rows


def _speed_row(label: str, backend: str | None, precision: str | None) -> dict[str, Any]:
    return {"label": label, "backend": backend, "precision": precision, "device": None,
            "measured": False, "model_only_p50_ms": None, "bench_fps": None, "camera_fps_p50": None,
            "measured_on": []}


def accuracy_vs_fps(accuracy: dict[str, Any], speed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points where both accuracy and FPS of a (backend, precision) are known; FPS is the camera
    loop's p50 when measured, else the bench's end-to-end FPS."""
    points = []
    for row in accuracy["rows"]:
        if not row["measured"]:
            continue
        for s in speed:
            if (s["backend"], s["precision"]) != (row["backend"], row["precision"]):
                continue
            fps, which = ((s["camera_fps_p50"], "camera loop p50") if s["camera_fps_p50"] is not None
                          else (s["bench_fps"], "bench end-to-end"))
            if fps is not None:
                points.append({"label": s["label"], "fps": fps, "fps_from": which,
                               "measured_on": s["measured_on"], "metrics": row["metrics"]})
    return points
