"""Evaluate a model (checkpoint, ONNX or engine) on a dataset folder -> evaluation JSON.

Schema ``edge_mtl.eval/1`` (read and written by eval, bench and report)::

    {"schema", "model": {"path", "sha256", "input_size", "class_names", "backbone", "params",
     "checkpoint_sha256"}, "backend", "precision", "device", "runtime": {backend specifics},
     "input_size": [H, W],
     "data": {"path", "num_samples", "labelled": {task: n}, "skipped": [{"file", "reason"}]},
     "metrics": {"det": {...}, "lane": {...}, "depth": {...}}, "seconds"}
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from edge_mtl.data.format import DatasetError, DatasetReader
from edge_mtl.metrics import DepthMetric, DetectionMetric, LaneMetric
from edge_mtl.runtime.backend import Backend, open_backend
from edge_mtl.runtime.postprocess import PostprocessConfig, postprocess
from edge_mtl.runtime.preprocess import preprocess
from edge_mtl.types import TASKS, Sample

SCHEMA = "edge_mtl.eval/1"
# Detection AP needs the low-score tail of the ranking, unlike a demo's display threshold.
EVAL_POSTPROCESS = PostprocessConfig(score_threshold=0.05, max_detections=100)


def evaluate(model: str | os.PathLike | Backend, data: str | os.PathLike, batch_size: int = 8,
             limit: int | None = None, progress: bool = True, backend: str = "auto",
             device: str = "cpu", strict: bool = False) -> dict:
    """Evaluate ``model`` (a path opened with ``backend`` on ``device``, or an open backend).

    A sample that cannot be read is skipped with a warning and listed under ``data.skipped``
    (``strict``: it stops the evaluation); non-finite network outputs are an error.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    reader = DatasetReader(data)
    runner = model if isinstance(model, Backend) else open_backend(model, backend, device)
    try:
        return _evaluate(runner, reader, data, batch_size, limit, progress, strict)
    finally:
        if runner is not model:
            runner.close()


def _read(reader: DatasetReader, indices: range, strict: bool, skipped: list[dict]) -> list[Sample]:
    samples = []
    for i in indices:
        try:
            samples.append(reader[i])
        except DatasetError as e:
            if strict:
                raise
            print(f"warning: eval skips {e}", file=sys.stderr)
            skipped.append({"file": str(reader.label_paths[i]), "reason": str(e)})
    return samples


def _evaluate(runner: Backend, reader: DatasetReader, data: str | os.PathLike, batch_size: int,
              limit: int | None, progress: bool, strict: bool) -> dict:
    from tqdm import tqdm

    size = runner.info.input_size
    n = len(reader) if limit is None else min(limit, len(reader))
    det, lane, depth = DetectionMetric(), LaneMetric(), DepthMetric()
    labelled = dict.fromkeys(TASKS, 0)
    skipped: list[dict] = []
    start = time.perf_counter()
    with tqdm(total=n, desc="eval", unit="img", disable=not progress) as bar:
        for lo in range(0, n, batch_size):
            samples = _read(reader, range(lo, min(n, lo + batch_size)), strict, skipped)
            bar.update(min(n, lo + batch_size) - lo - len(samples))
            if not samples:
                continue
            raw = runner.infer(np.stack([preprocess(s.image, size) for s in samples]))
            broken = [k for k, v in raw.items() if not np.isfinite(v).all()]
            if broken:
                raise ValueError(f"{runner.info.path}: non-finite {', '.join(broken)} on "
                                 f"{samples[0].name}..{samples[-1].name} of {data}; the model is broken")
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
    if skipped and len(skipped) == n:
        raise DatasetError(f"{data}: none of the {n} samples could be read; first: {skipped[0]['reason']}")
    if skipped:
        print(f"warning: eval skipped {len(skipped)} of {n} samples (listed in the JSON's data.skipped)",
              file=sys.stderr)
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
        "data": {"path": str(Path(data)), "num_samples": n - len(skipped), "labelled": labelled,
                 "skipped": skipped},
        "metrics": metrics,
        "seconds": round(time.perf_counter() - start, 2),
    }
