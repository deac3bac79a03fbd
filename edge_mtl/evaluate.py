"""Evaluate a checkpoint on a dataset folder and produce the evaluation JSON.

Schema ``edge_mtl.eval/1`` (read and written by eval, bench and report)::

    {"schema", "model": {"path", "sha256", "backbone", "params"}, "backend", "precision",
     "device", "input_size": [H, W], "data": {"path", "num_samples", "labelled": {task: n}},
     "metrics": {"det": {...}, "lane": {...}, "depth": {...}}, "seconds"}
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from edge_mtl.checkpoint import load_model, sha256
from edge_mtl.data.format import DatasetReader
from edge_mtl.metrics import DepthMetric, DetectionMetric, LaneMetric
from edge_mtl.runtime.postprocess import PostprocessConfig, postprocess
from edge_mtl.runtime.preprocess import preprocess
from edge_mtl.types import TASKS

SCHEMA = "edge_mtl.eval/1"
# Detection AP needs the low-score tail of the ranking, unlike a demo's display threshold.
EVAL_POSTPROCESS = PostprocessConfig(score_threshold=0.05, max_detections=100)


def evaluate(checkpoint: str | os.PathLike, data: str | os.PathLike, batch_size: int = 8,
             limit: int | None = None, progress: bool = True) -> dict:
    from tqdm import tqdm

    cfg, model = load_model(checkpoint)
    reader = DatasetReader(data)
    size = (cfg.model.input_height, cfg.model.input_width)
    n = len(reader) if limit is None else min(limit, len(reader))
    det, lane, depth = DetectionMetric(), LaneMetric(), DepthMetric()
    labelled = dict.fromkeys(TASKS, 0)
    start = time.perf_counter()
    bar = tqdm(total=n, desc="eval", unit="img", disable=not progress)
    for lo in range(0, n, batch_size):
        samples = [reader[i] for i in range(lo, min(n, lo + batch_size))]
        x = torch.from_numpy(np.stack([preprocess(s.image, size) for s in samples]))
        with torch.inference_mode():
            raw = {k: v.numpy() for k, v in model(x).items()}
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
    bar.close()
    metrics = {}
    if labelled["det"]:
        metrics["det"] = det.compute()
    if labelled["lane"]:
        metrics["lane"] = lane.compute()
    if labelled["depth"]:
        metrics["depth"] = depth.compute()
    return {
        "schema": SCHEMA,
        "model": {"path": str(checkpoint), "sha256": sha256(checkpoint),
                  "backbone": cfg.model.backbone,
                  "params": sum(p.numel() for p in model.parameters())},
        "backend": "torch",
        "precision": "fp32",
        "device": "cpu",
        "input_size": list(size),
        "data": {"path": str(Path(data)), "num_samples": n, "labelled": labelled},
        "metrics": metrics,
        "seconds": round(time.perf_counter() - start, 2),
    }
