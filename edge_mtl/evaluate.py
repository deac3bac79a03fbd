"""Evaluate a model (checkpoint, ONNX or engine) on a dataset of any format -> evaluation JSON.

Schema ``edge_mtl.eval/1`` (read and written by eval, bench and report)::

    {"schema", "model": {"path", "sha256", "input_size", "class_names", "backbone", "params",
     "checkpoint_sha256", "resize", "canonical_focal"}, "backend", "precision", "device",
     "runtime": {backend specifics}, "input_size": [H, W],
     "data": {"path", "format", "num_samples", "labelled": {task: n}, "skipped": [{"file", "reason"}]},
     "metrics": {"det": {...}, "lane": {..., "tusimple" | "culane": {...}}, "depth": {...}}, "seconds"}

Frames reach the model through the one pre-processing (its ``resize`` rule) and predictions
come back through the one post-processing; depth is put in metres with each sample's own focal
length (the dataset's calibration) and the model's canonical focal.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.formats import DataSpec, open_reader
from edge_mtl.data.reader import Reader
from edge_mtl.data.transforms import clip_boxes
from edge_mtl.metrics import DepthMetric, DetectionMetric, LaneMetric
from edge_mtl.runtime.backend import Backend, open_backend
from edge_mtl.runtime.geometry import Geometry
from edge_mtl.runtime.postprocess import PostprocessConfig, postprocess
from edge_mtl.runtime.preprocess import preprocess
from edge_mtl.types import TASKS, Sample

SCHEMA = "edge_mtl.eval/1"
# Detection AP needs the low-score tail of the ranking, unlike a demo's display threshold.
EVAL_POSTPROCESS = PostprocessConfig(score_threshold=0.05, iou_threshold=0.6, max_detections=100)
KITTI_FORMATS = ("kitti", "kitti-tracking", "kitti-depth")


def evaluate(model: str | os.PathLike | Backend, data: str | os.PathLike, batch_size: int = 8,
             limit: int | None = None, progress: bool = True, backend: str = "auto",
             device: str = "cpu", strict: bool = False, options: dict | None = None,
             depth_crop: str | None = "auto") -> dict:
    """Evaluate ``model`` (a path opened with ``backend`` on ``device``, or an open backend) on
    ``data`` (``FORMAT:PATH``; a bare path is synth; ``options`` by format as for `open_reader`).

    Our metrics for every labelled task, and the dataset's standard ones where it has them:
    KITTI depth (80 m cap; ``depth_crop`` ``auto`` is the Garg crop on KITTI formats and none
    elsewhere, or ``garg``, ``eigen``, None), TuSimple accuracy/FP/FN, CULane F1. A sample that cannot
    be read is skipped with a warning and listed under ``data.skipped`` (``strict``: it stops the
    evaluation); non-finite network outputs are an error.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    spec = DataSpec.parse(str(data))
    reader = open_reader(spec, options)
    runner = model if isinstance(model, Backend) else open_backend(model, backend, device)
    try:
        return _evaluate(runner, reader, spec, batch_size, limit, progress, strict, depth_crop)
    finally:
        if runner is not model:
            runner.close()


def _read(reader: Reader, indices: range, strict: bool, skipped: list[dict]) -> list[tuple[int, Sample]]:
    samples = []
    for i in indices:
        try:
            samples.append((i, reader[i]))
        except DatasetError as e:
            if strict:
                raise
            print(f"warning: eval skips {e}", file=sys.stderr)
            skipped.append({"file": reader.source(i), "reason": str(e)})
    return samples


class _Metrics:
    """Every metric that applies to one dataset, fed one sample and its prediction at a time."""

    def __init__(self, reader: Reader, class_names: tuple[str, ...], depth_crop: str | None):
        self.reader = reader
        if depth_crop == "auto":
            depth_crop = "garg" if reader.format in KITTI_FORMATS else None
        self.det = DetectionMetric(class_names)
        self.lane = LaneMetric()
        self.depth = DepthMetric(max_depth=80.0, crop=depth_crop)
        self.benchmark = None
        if reader.format == "tusimple":
            from edge_mtl.lane_eval import TusimpleMetric

            self.benchmark = TusimpleMetric()
        elif reader.format == "culane":
            from edge_mtl.lane_eval import CulaneMetric

            self.benchmark = CulaneMetric()
        self.labelled = dict.fromkeys(TASKS, 0)

    def update(self, index: int, s: Sample, pred) -> None:
        for task, has in s.has_label.items():
            self.labelled[task] += int(has)
        if s.boxes is not None:
            self.det.update(s.boxes, s.classes, pred.boxes, pred.scores, pred.classes, s.image.shape[:2],
                            ignore=s.ignore)
        if s.lane is not None:
            self.lane.update(s.lane, pred.lane)
            if self.reader.format == "tusimple":
                self.benchmark.update_from_mask(pred.lane, self.reader.lanes(index),
                                                self.reader.h_samples(index))
            elif self.reader.format == "culane":
                self.benchmark.update_from_mask(pred.lane, self.reader.lanes(index))
        if s.depth is not None:
            self.depth.update(s.depth, pred.depth)

    def compute(self) -> dict:
        metrics = {}
        if self.labelled["det"]:
            metrics["det"] = self.det.compute()
        if self.labelled["lane"]:
            metrics["lane"] = self.lane.compute()
            if self.benchmark is not None:
                metrics["lane"][self.reader.format] = self.benchmark.compute()
        if self.labelled["depth"]:
            metrics["depth"] = self.depth.compute()
        return metrics


def in_view(sample: Sample, geometry: Geometry) -> Sample:
    """The labels of what the network sees: with a ``crop`` geometry, depth and lanes outside
    the view are not scored and a box mostly outside it becomes an ignore region (as in training)."""
    u0, v0, u1, v1 = geometry.in_view()
    h, w = sample.image.shape[:2]
    if (u0, v0, u1, v1) == (0, 0, w, h):
        return sample
    outside = np.ones((h, w), bool)
    outside[v0:v1, u0:u1] = False
    changes: dict = {}
    if sample.depth is not None:
        changes["depth"] = np.where(outside, 0.0, sample.depth).astype(np.float32)
    if sample.lane is not None:
        changes["lane"] = np.where(outside, 0, sample.lane).astype(np.uint8)
    if sample.boxes is not None:
        ignore = sample.ignore if sample.ignore is not None else np.zeros((0, 4), np.float32)
        full = (sample.boxes[:, 2] - sample.boxes[:, 0]) * (sample.boxes[:, 3] - sample.boxes[:, 1])
        boxes, classes, ignore = clip_boxes(sample.boxes, sample.classes, ignore, full, (u0, v0, u1, v1))
        changes.update(boxes=boxes, classes=classes, ignore=ignore)
    return dataclasses.replace(sample, **changes)


def _evaluate(runner: Backend, reader: Reader, spec: DataSpec, batch_size: int,
              limit: int | None, progress: bool, strict: bool, depth_crop: str | None) -> dict:
    from tqdm import tqdm

    size = runner.info.input_size
    n = len(reader) if limit is None else min(limit, len(reader))
    metrics = _Metrics(reader, runner.info.class_names, depth_crop)
    skipped: list[dict] = []
    start = time.perf_counter()
    with tqdm(total=n, desc="eval", unit="img", disable=not progress) as bar:
        for lo in range(0, n, batch_size):
            samples = _read(reader, range(lo, min(n, lo + batch_size)), strict, skipped)
            bar.update(min(n, lo + batch_size) - lo - len(samples))
            if not samples:
                continue
            mode = runner.info.resize
            fmt = runner.info.input_format
            raw = runner.infer(np.stack([preprocess(s.image, size, mode=mode, input_format=fmt)
                                         for _, s in samples]))
            broken = [k for k, v in raw.items() if not np.isfinite(v).all()]
            if broken:
                raise ValueError(f"{runner.info.path}: non-finite {', '.join(broken)} on "
                                 f"{samples[0][1].name}..{samples[-1][1].name} of {spec}; "
                                 "the model is broken")
            for k, (index, s) in enumerate(samples):
                geometry = runner.info.geometry(s.image.shape[:2])
                s = in_view(s, geometry)
                pred = postprocess({name: v[k] for name, v in raw.items()}, geometry, EVAL_POSTPROCESS,
                                   runner.info.depth_scale(geometry, s.camera.fx))
                metrics.update(index, s, pred)
                bar.update()
    if skipped and len(skipped) == n:
        raise DatasetError(f"{spec}: none of the {n} samples could be read; first: {skipped[0]['reason']}")
    if skipped:
        print(f"warning: eval skipped {len(skipped)} of {n} samples (listed in the JSON's data.skipped)",
              file=sys.stderr)
    return {
        "schema": SCHEMA,
        "model": runner.info.to_dict(),
        **runner.describe(),
        "input_size": list(size),
        "data": {"path": str(Path(spec.path)), "format": spec.format, "num_samples": n - len(skipped),
                 "labelled": metrics.labelled, "skipped": skipped},
        "metrics": metrics.compute(),
        "seconds": round(time.perf_counter() - start, 2),
    }
