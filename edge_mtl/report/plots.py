"""PNG plots of the report (matplotlib, Agg backend, imported inside the functions).

Each function writes one file and returns its path, or None when there is nothing measured to
plot (the report then says so instead of drawing an empty or invented figure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_mtl.compat import zip_strict
from edge_mtl.report.tables import METRICS

STAGE_COLOURS = {"capture": "#8c8c8c", "pre": "#4c72b0", "infer": "#dd8452", "post": "#55a868",
                 "draw": "#c44e52"}
HEADLINE = tuple(m.id for m in METRICS if m.headline)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, margins: dict[str, float] | None = None) -> Path:
    """Fixed ``margins`` (subplots_adjust) where given, else a tight bounding box (fits labels)."""
    plt = _pyplot()
    if margins is not None:
        fig.subplots_adjust(**margins)
        fig.savefig(path, dpi=110)
    else:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def accuracy_plot(accuracy: dict[str, Any], path: Path) -> Path | None:
    """One panel per metric, one bar per measured (backend, precision) row."""
    rows = [r for r in accuracy["rows"] if r["measured"]]
    metrics = [m for m in accuracy["metrics"] if any(r["metrics"][m["id"]] is not None for r in rows)]
    if not rows or not metrics:
        return None
    plt = _pyplot()
    cols = min(4, len(metrics))
    nrows = -(-len(metrics) // cols)
    legend_in = 0.25 * -(-len(rows) // 3) + 0.15
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 3.0 * nrows + 0.6 + legend_in), squeeze=False)
    colours = plt.get_cmap("tab10").colors
    for ax, m in zip(axes.flat, metrics):
        values = [r["metrics"][m["id"]] for r in rows]
        for i, (row, v) in enumerate(zip_strict(rows, values)):
            if v is None:
                ax.text(i, 0, "n/m", ha="center", va="bottom", fontsize=7, color="grey")
                continue
            edge = "black" if m["id"] in row["flags"] else "none"
            ax.bar(i, v, color=colours[i % len(colours)], edgecolor=edge, linewidth=1.5)
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=7)
        better = "higher" if m["higher_is_better"] else "lower"
        ax.set_title(f"{m['label']} ({better} is better)", fontsize=9)
        ax.set_xticks([])
        known = [v for v in values if v is not None]
        if known:
            ax.set_ylim(0, max(known) * 1.18 or 1)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[i % len(colours)]) for i in range(len(rows))]
    fig.legend(handles, [r["label"] for r in rows], loc="lower center", ncol=min(3, len(rows)),
               fontsize=8, frameon=False)
    fig.suptitle("Accuracy per precision (black edge: > 1 % loss vs FP32)", fontsize=10)
    width, height = fig.get_figwidth(), fig.get_figheight()
    return _save(fig, path, {"left": 0.5 / width, "right": 1 - 0.15 / width, "top": 1 - 0.55 / height,
                             "bottom": (legend_in + 0.1) / height, "wspace": 0.3, "hspace": 0.3})


def latency_plot(runs: list[dict[str, Any]], path: Path) -> Path | None:
    """Horizontal stacked bars of per-stage p50 per measurement, with the FPS at the end."""
    runs = [r for r in runs if any(r["stages"].get(s, {}).get("p50") is not None for s in STAGE_COLOURS)]
    if not runs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(runs) + 1.6))
    labels = []
    for y, r in enumerate(runs):
        left = 0.0
        for stage, colour in STAGE_COLOURS.items():
            p50 = r["stages"].get(stage, {}).get("p50")
            if p50 is None:
                continue
            ax.barh(y, p50, left=left, color=colour)
            left += p50
        fps = r["fps"]["loop_p50"] if r["kind"] == "camera" else r["fps"]["e2e"]
        ax.text(left, y, f"  {left:.1f} ms" + (f", {fps:.1f} FPS" if fps is not None else ""),
                va="center", fontsize=8)
        labels.append(f"{r['label']} · {r['kind']} · {r['device'] or '?'}")
    ax.set_yticks(range(len(runs)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms per frame (p50 of each stage)")
    ax.axvline(1000 / 30, color="black", linestyle="--", linewidth=0.8)
    ax.text(1000 / 30, 0.0, " 33.3 ms = 30 FPS", fontsize=7, va="bottom", transform=ax.get_xaxis_transform())
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in STAGE_COLOURS.values()]
    ax.legend(handles, list(STAGE_COLOURS), loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=7,
              ncol=5, frameon=False)
    ax.set_xlim(0, max(sum(v.get("p50") or 0 for k, v in r["stages"].items() if k in STAGE_COLOURS)
                       for r in runs) * 1.35)
    fig.suptitle("Latency breakdown per backend (stacked p50)", fontsize=10)
    return _save(fig, path)


def accuracy_fps_plot(points: list[dict[str, Any]], accuracy: dict[str, Any], path: Path) -> Path | None:
    """Headline metric vs FPS, one panel per headline metric that has points."""
    labels = {m["id"]: m["label"] for m in accuracy["metrics"]}
    panels = [mid for mid in HEADLINE if any(p["metrics"].get(mid) is not None for p in points)]
    if not points or not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    colours = plt.get_cmap("tab10").colors
    names = sorted({p["label"] for p in points})
    for ax, mid in zip_strict(axes.flat, panels):
        for p in points:
            v = p["metrics"].get(mid)
            if v is None:
                continue
            colour = colours[names.index(p["label"]) % len(colours)]
            ax.scatter(p["fps"], v, color=colour, s=40)
            ax.annotate(p["label"], (p["fps"], v), fontsize=7, textcoords="offset points", xytext=(4, 4))
        ax.set_xlabel("FPS (camera loop p50, else bench end-to-end)")
        ax.set_title(labels.get(mid, mid), fontsize=9)
        ax.margins(0.25)
    fig.suptitle("Accuracy vs FPS", fontsize=10)
    return _save(fig, path, {"left": 0.07, "right": 0.97, "top": 0.84, "bottom": 0.15, "wspace": 0.3})
