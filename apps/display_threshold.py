"""Pick the camera overlay's detection settings on a labelled synthetic set (never on real frames).

    python apps/display_threshold.py models/tritask_mnv2.pt --data data/val --json runs/display.json

Each image runs through the network once; its raw outputs are then decoded with every display
NMS IoU and score threshold of the grid (the one post-processing, `decode_detections`). Each
setting gets precision, recall and F1 at IoU 0.5 (per class, highest score first, one labelled
box per detection; detections over an ignore region are dropped) and detections per labelled
object. The score of the best F1 is what `PostprocessConfig.score_threshold` should hold for that
model (models/README.md, "Display settings").
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

import numpy as np

from edge_mtl.data.formats import DataSpec, open_reader
from edge_mtl.evaluate import in_view
from edge_mtl.runtime.backend import open_backend
from edge_mtl.runtime.postprocess import PostprocessConfig, decode_detections
from edge_mtl.runtime.preprocess import preprocess

SCORES = tuple(round(0.30 + 0.05 * i, 2) for i in range(9))  # 0.30 … 0.70
NMS_IOUS = (0.6, 0.5, 0.45)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    import torch
    from torchvision.ops import box_iou

    return box_iou(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)).numpy()


def true_positives(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
                   gt_boxes: np.ndarray, gt_classes: np.ndarray, iou: float = 0.5) -> int:
    """Greedy one-to-one matching, highest score first, within each class."""
    if not len(boxes) or not len(gt_boxes):
        return 0
    overlap = iou_matrix(boxes, gt_boxes)
    overlap[classes[:, None] != gt_classes[None, :]] = 0.0
    taken = np.zeros(len(gt_boxes), bool)
    hits = 0
    for k in np.argsort(-scores, kind="stable"):
        row = np.where(taken, 0.0, overlap[k])
        j = int(row.argmax())
        if row[j] >= iou:
            taken[j] = True
            hits += 1
    return hits


def sweep(model: str, data: str, limit: int | None) -> dict:
    runner = open_backend(model, "auto", "cpu")
    reader = open_reader(DataSpec.parse(data))
    frames = []
    for i in range(len(reader) if limit is None else min(limit, len(reader))):
        sample = reader[i]
        geometry = runner.info.geometry(sample.image.shape[:2])
        sample = in_view(sample, geometry)
        raw = runner.infer(preprocess(sample.image, runner.info.input_size, mode=runner.info.resize,
                                      input_format=runner.info.input_format)[None])
        # only what the sweep reads: a frame's image and dense labels would hold gigabytes over 500
        gt_boxes = np.zeros((0, 4)) if sample.boxes is None else np.asarray(sample.boxes)
        gt_classes = np.zeros(0, np.int64) if sample.classes is None else np.asarray(sample.classes)
        ignore = None if sample.ignore is None or not len(sample.ignore) else np.asarray(sample.ignore)
        frames.append((raw["det_logits"][0], raw["det_boxes"][0], geometry, gt_boxes, gt_classes, ignore))
    rows = []
    for nms in NMS_IOUS:
        for score in SCORES:
            cfg = replace(PostprocessConfig(), score_threshold=score, iou_threshold=nms)
            hits = found = labelled = 0
            for logits, raw_boxes, geometry, gt_boxes, gt_classes, ignore in frames:
                boxes, scores, classes = decode_detections(logits, raw_boxes, cfg)
                boxes = geometry.boxes_to_source(boxes)
                if ignore is not None and len(boxes):
                    inside = iou_matrix(boxes, ignore).max(1) > 0.5
                    boxes, scores, classes = boxes[~inside], scores[~inside], classes[~inside]
                hits += true_positives(boxes, scores, classes, gt_boxes, gt_classes)
                found += len(boxes)
                labelled += len(gt_boxes)
            p, r = hits / max(found, 1), hits / max(labelled, 1)
            rows.append({"nms_iou": nms, "score": score, "precision": p, "recall": r,
                         "f1": 2 * p * r / (p + r) if p + r else 0.0,
                         "detections_per_labelled": found / max(labelled, 1)})
    best = max(rows, key=lambda row: row["f1"])
    return {"model": model, "data": data, "frames": len(frames), "rows": rows, "best": best}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", required=True, help="labelled set, FORMAT:PATH (a bare path is synth)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    result = sweep(args.model, args.data, args.limit)
    for row in result["rows"]:
        print(f"nms {row['nms_iou']:.2f} score {row['score']:.2f}: P {row['precision']:.3f} "
              f"R {row['recall']:.3f} F1 {row['f1']:.3f} det/labelled {row['detections_per_labelled']:.2f}")
    b = result["best"]
    print(f"best F1 {b['f1']:.3f} at nms {b['nms_iou']:.2f}, score {b['score']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
