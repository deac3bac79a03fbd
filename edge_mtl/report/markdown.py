"""The report dict -> ``report.md``. Every empty cell reads "not measured"; a metric an eval JSON
holds as NaN, null or a non-number reads "invalid (NaN)" and is flagged."""

from __future__ import annotations

from typing import Any

NOT_MEASURED = "not measured"
FLAG = "⚠"


def invalid(why: str) -> str:
    return f"invalid ({why})"


def _cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return NOT_MEASURED
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(change: float) -> str:
    return f"{change * 100:+.2f} %".replace("-", "−")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def _accuracy_cell(row: dict[str, Any], metric: dict[str, Any]) -> str:
    value = row["metrics"][metric["id"]]
    why = row.get("invalid", {}).get(metric["id"])
    if why:
        return f"{invalid(why)} {FLAG}"
    if value is None:
        return NOT_MEASURED
    digits = 3 if metric["id"] == "depth.rmse" else 4
    text = _cell(value, digits)
    if row.get("is_reference"):
        return f"{text} (reference)"
    change = row["relative"][metric["id"]]
    if change is None:
        return text
    text += f" ({_pct(change)}"
    return text + (f" {FLAG})" if metric["id"] in row["flags"] else ")")


def _accuracy(report: dict[str, Any]) -> list[str]:
    acc = report["accuracy"]
    metrics = acc["metrics"]
    headline = ", ".join(m["label"] for m in metrics if m["headline"])
    data = "; ".join(f"`{d['path']}` ({d['num_samples']} frames)" for d in acc["datasets"]) or NOT_MEASURED
    lines = ["## Accuracy per precision", "",
             f"Data: {data}. Each measured row is compared with the FP32 row measured on the same data "
             "(onnxruntime FP32 first, else torch FP32); the relative change is in brackets. "
             f"{FLAG} marks a headline metric ({headline}) more than "
             f"{acc['threshold'] * 100:g} % worse than the reference (AbsRel: lower is better), and any "
             f"metric whose JSON value is {invalid('NaN, null or not a number')}.", ""]
    header = ["precision (backend)", *(m["label"] for m in metrics), "data", "measured on", "source"]
    rows = []
    for row in acc["rows"]:
        if not row["measured"]:
            rows.append([row["label"], *[NOT_MEASURED] * (len(metrics) + 3)])
            continue
        data = f"{row['data']['path']} ({row['data']['num_samples']})"
        if not row["reference"]:
            data += ", no FP32 reference on this data"
        rows.append([row["label"], *(_accuracy_cell(row, m) for m in metrics), data, row["measured_on"],
                     f"`{row['source']}`"])
    return [*lines, *_table(header, rows), ""]


def _ms(stat: dict[str, Any] | None) -> str:
    if not stat or (stat.get("p50") is None and stat.get("p90") is None):
        return NOT_MEASURED
    return f"{_cell(stat.get('p50'), 2)} / {_cell(stat.get('p90'), 2)}"


def _speed(report: dict[str, Any]) -> list[str]:
    lines = ["## Speed per backend", "",
             "Model-only: the network alone on one pre-processed frame (`edge-mtl bench`). Bench FPS: "
             "pre + infer + post on 1280×720 frames in memory. Camera loop FPS: the whole loop "
             "(capture, pre, infer, post, overlay drawn) from `edge-mtl camera --bench-json` or "
             "`python -m edge_mtl.camera.bench_loop`.", ""]
    header = ["precision (backend)", "model-only p50 (ms)", "bench FPS", "camera loop FPS (p50)",
              "measured on"]
    rows = [[r["label"], _cell(r["model_only_p50_ms"], 2), _cell(r["bench_fps"], 1),
             _cell(r["camera_fps_p50"], 1), "; ".join(r["measured_on"]) or NOT_MEASURED]
            for r in report["speed"]]
    lines += [*_table(header, rows), ""]
    runs = report["latency"]
    lines += ["## Latency per stage", "",
              "Milliseconds, p50 / p90, one row per measurement file. pre + post + draw stay on the CPU "
              "when the network moves to a GPU, so they bound the frame rate of a Jetson's ARM cores.", ""]
    if not runs:
        return [*lines, f"No bench or camera JSON: latency {NOT_MEASURED}.", ""]
    header = ["precision (backend)", "kind", "frames", "capture", "pre", "infer", "post", "draw",
              "pre+post+draw", "model-only", "FPS", "measured on", "source"]
    rows = []
    for r in runs:
        fps = r["fps"]
        if r["kind"] == "bench":
            fps_text = f"{_cell(fps['e2e'], 1)} e2e" if fps["e2e"] is not None else NOT_MEASURED
        else:
            fps_text = (f"{_cell(fps['loop_p50'], 1)} p50, {_cell(fps['loop_mean'], 1)} mean"
                        if fps["loop_p50"] is not None else NOT_MEASURED)
        frames = _cell(r["frames"])
        if r["kind"] == "camera" and r["dropped"]:
            frames += f" ({r['dropped']} dropped)"
        rows.append([r["label"], r["kind"], frames, *(_ms(r["stages"].get(s)) for s in
                                                      ("capture", "pre", "infer", "post", "draw")),
                     _ms(r["pre_post_draw"]), _ms(r["model_only"]), fps_text, r["measured_on"],
                     f"`{r['source']}`"])
    return [*lines, *_table(header, rows), ""]


def _models(report: dict[str, Any]) -> list[str]:
    lines = ["## Model size", "", "MB = 10^6 bytes, the size of the file on disk.", ""]
    if not report["models"]:
        return [*lines, "No model file found in the run folders or named by their JSONs.", ""]
    header = ["file", "format", "size (MB)", "bytes", "parameters", "runs as", "path"]
    rows = [[m["file"], m["format"], f"{m['mb']:.2f}", str(m["bytes"]),
             f"{m['params'] / 1e6:.2f} M" if m["params"] else "not recorded",
             ", ".join(m["runs_as"]) or "not recorded", f"`{m['path']}`"] for m in report["models"]]
    return [*lines, *_table(header, rows), ""]


def _flag_line(f: dict[str, Any], threshold: float) -> str:
    if f.get("invalid"):
        return (f"- {FLAG} **{f['row']}**: {f['label']} is {invalid(f['invalid'])}: a broken measurement, "
                "not a result; re-run its eval.")
    return (f"- {FLAG} **{f['row']}**: {f['label']} {_cell(f['value'])} vs {_cell(f['reference_value'])} in "
            f"{f['reference']}, {f['relative_loss'] * 100:.2f} % worse (budget {threshold * 100:g} %).")


def _summary(report: dict[str, Any]) -> list[str]:
    acc = report["accuracy"]
    lines = ["## Summary", ""]
    compared = [r for r in acc["rows"] if r["measured"] and not r["is_reference"] and r["reference"]]
    for f in acc["flags"]:
        lines.append(_flag_line(f, acc["threshold"]))
    if not compared:
        lines.append("- No measured row could be compared with an FP32 reference on the same data.")
    elif not acc["flags"]:
        lines.append(f"- No headline metric of {', '.join(r['label'] for r in compared)} is more than "
                     f"{acc['threshold'] * 100:g} % worse than its FP32 reference.")
    missing = [r["label"] for r in acc["rows"] if not r["measured"]]
    if missing:
        lines.append(f"- Accuracy {NOT_MEASURED}: {', '.join(missing)}.")
    no_speed = [r["label"] for r in report["speed"] if not r["measured"]]
    if no_speed:
        lines.append(f"- Speed {NOT_MEASURED}: {', '.join(no_speed)}.")
    return [*lines, ""]


def _plots(report: dict[str, Any]) -> list[str]:
    lines = ["## Plots", ""]
    titles = {"accuracy": "Accuracy per precision", "latency": "Latency per stage (p50)",
              "accuracy_vs_fps": "Accuracy vs FPS"}
    for key, title in titles.items():
        name = report["plots"].get(key)
        why = report["plot_notes"].get(key, "no data")
        lines.append(f"![{title}]({name})" if name else f"- {title}: no plot ({why})")
        lines.append("")
    return lines


def _inputs(report: dict[str, Any]) -> list[str]:
    lines = ["## Inputs", ""]
    lines += [f"- `{i['path']}` ({i['schema']})" for i in report["inputs"]]
    lines += [f"- skipped `{s['path']}`: {s['why']}" for s in report["skipped"]]
    lines += [f"- note: {n}" for n in report["notes"]]
    return [*lines, ""]


def render(report: dict[str, Any]) -> str:
    lines = ["# edge_mtl: FPS / accuracy quantization report", "",
             f"Generated {report['created']} from {', '.join(f'`{d}`' for d in report['runs'])}. "
             f"Cells that no measurement covers say \"{NOT_MEASURED}\"; a measurement that holds NaN, null "
             f"or a non-number says \"{invalid('NaN')}\" {FLAG}; nothing is estimated.", ""]
    for part in (_summary, _accuracy, _speed, _models, _plots, _inputs):
        lines += part(report)
    return "\n".join(lines).rstrip() + "\n"
