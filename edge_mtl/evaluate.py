"""Evaluate a model (checkpoint, ONNX or engine) on a dataset folder -> evaluation JSON.

Schema ``edge_mtl.eval/1`` (read and written by eval, bench and report)::

    {"schema", "model": {"path", "sha256", "input_size", "class_names", "backbone", "params",
     "checkpoint_sha256"}, "backend", "precision", "device", "runtime": {backend specifics},
     "input_size": [H, W],
     "data": {"path", "num_samples", "labelled": {task: n}},
     "metrics": {"det": {...}, "lane": {...}, "depth": {...}}, "seconds"}
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from edge_mtl.data.format import DatasetReader
from edge_mtl.metrics import DepthMetric, DetectionMetric, LaneMetric
from edge_mtl.runtime.backend import Backend, open_backend
from edge_mtl.runtime.postprocess import PostprocessConfig, postprocess
from edge_mtl.runtime.preprocess import preprocess
from edge_mtl.types import TASKS

SCHEMA = "edge_mtl.eval/1"
# Detection AP needs the low-score tail of the ranking, unlike a demo's display threshold.
EVAL_POSTPROCESS = PostprocessConfig(score_threshold=0.05, max_detections=100)


def evaluate(model: str | os.PathLike | Backend, data: str | os.PathLike, batch_size: int = 8,
             limit: int | None = None, progress: bool = True, backend: str = "auto",
             device: str = "cpu") -> dict:
    """Evaluate ``model`` (a path opened with ``backend`` on ``device``, or an open backend)."""
    reader = DatasetReader(data)
    runner = model if isinstance(model, Backend) else open_backend(model, backend, device)
    try:
        return _evaluate(runner, reader, data, batch_size, limit, progress)
    finally:
        if runner is not model:
            runner.close()


def _evaluate(runner: Backend, reader: DatasetReader, data: str | os.PathLike, batch_size: int,
              limit: int | None, progress: bool) -> dict:
    from tqdm import tqdm

    size = runner.info.input_size
    n = len(reader) if limit is None else min(limit, len(reader))
    det, lane, depth = DetectionMetric(), LaneMetric(), DepthMetric()
    labelled = dict.fromkeys(TASKS, 0)
    start = time.perf_counter()
    with tqdm(total=n, desc="eval", unit="img", disable=not progress) as bar:
        for lo in range(0, n, batch_size):
            samples = [reader[i] for i in range(lo, min(n, lo + batch_size))]
            raw = runner.infer(np.stack([preprocess(s.image, size) for s in samples]))
            for i, s in enumerate(samples):
                pred = postprocess({k: v[i] for k, v in raw.items()}, s.image.shape[:2], size,
                                   EVAL_POSTPROCESS)
                for task, has in s.has_label.items():
                    labelled[task] += int(has)
                if s.boxes is not None:
                    det.update(s.boxes, s.classes, pred.boxes, pred.scores, pred.classes,
                               s.image.shape[:2])
                if s.lane is not None:
                    lane.update(s.lane, pred.lane)
                if s.depth is not None:
                    depth.update(s.depth, pred.depth)
                bar.update()
    metrics = {}
    if labelled["det"]:
        metrics["det"] = det.compute()
    if labelled["lane"]:
        metrics["lane"] = lane.compute()
    if labelled["depth"]:
        metrics["depth"] = depth.compute()
    return {
        "schema": SCHEMA,
        "model": runner.info.to_dict(),
        **runner.describe(),
        "input_size": list(size),
        "data": {"path": str(Path(data)), "num_samples": n, "labelled": labelled},
        "metrics": metrics,
        "seconds": round(time.perf_counter() - start, 2),
    }
