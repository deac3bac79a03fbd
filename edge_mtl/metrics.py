"""Task metrics: COCO mAP (pycocotools), lane-marking IoU/F1, depth AbsRel/RMSE/delta1.

Every metric accumulates over a dataset one image at a time and reports a dict.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from edge_mtl.types import CLASSES


class DetectionMetric:
    """COCO-style box AP through pycocotools (mAP@0.5 and mAP@[.5:.95])."""

    def __init__(self, class_names: tuple[str, ...] = CLASSES):
        self.class_names = class_names
        self.images: list[dict] = []
        self.gts: list[dict] = []
        self.dets: list[dict] = []

    def update(self, gt_boxes: np.ndarray, gt_classes: np.ndarray, boxes: np.ndarray,
               scores: np.ndarray, classes: np.ndarray, size: tuple[int, int]) -> None:
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "height": size[0], "width": size[1]})
        for b, c in zip(gt_boxes, gt_classes, strict=True):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            self.gts.append({"id": len(self.gts) + 1, "image_id": image_id, "category_id": int(c) + 1,
                             "bbox": [float(b[0]), float(b[1]), w, h], "area": w * h, "iscrowd": 0})
        for b, s, c in zip(boxes, scores, classes, strict=True):
            self.dets.append({"image_id": image_id, "category_id": int(c) + 1, "score": float(s),
                              "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})

    def compute(self) -> dict:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        if not self.images:
            return {}
        result = {"num_images": len(self.images), "num_objects": len(self.gts),
                  "num_detections": len(self.dets)}
        if not self.gts:
            return result | {"map50": None, "map": None, "ap50_per_class": {}}
        gt = COCO()
        gt.dataset = {"images": self.images, "annotations": self.gts,
                      "categories": [{"id": i + 1, "name": n} for i, n in enumerate(self.class_names)]}
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
            if not self.dets:
                return result | {"map50": 0.0, "map": 0.0, "ap50_per_class": {}}
            dt = gt.loadRes(self.dets)
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        precision = ev.eval["precision"][0, :, :, 0, 2]  # IoU 0.5, all areas, maxDets 100
        per_class = {}
        for k, name in enumerate(self.class_names):
            p = precision[:, k]
            per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else None
        return result | {"map50": float(ev.stats[1]), "map": float(ev.stats[0]),
                         "ap50_per_class": per_class}


class LaneMetric:
    """Pixel-level lane-marking IoU, precision, recall and F1, pooled over the dataset."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        if gt.shape != pred.shape:
            raise ValueError(f"lane mask shapes differ: gt {gt.shape} vs prediction {pred.shape}")
        g, p = gt > 0, pred > 0
        self.tp += int(np.count_nonzero(g & p))
        self.fp += int(np.count_nonzero(~g & p))
        self.fn += int(np.count_nonzero(g & ~p))

    def compute(self) -> dict:
        tp, fp, fn = self.tp, self.fp, self.fn
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        return {"iou": tp / (tp + fp + fn) if tp + fp + fn else 0.0,
                "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
                "precision": precision, "recall": recall}


class DepthMetric:
    """Eigen et al. depth metrics on valid pixels with ``min_depth < gt <= max_depth``,
    computed per image and averaged over images (the KITTI convention)."""

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 80.0):
        self.min_depth, self.max_depth = min_depth, max_depth
        self.rows: list[tuple[float, float, float]] = []

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        if gt.shape != pred.shape:
            raise ValueError(f"depth map shapes differ: gt {gt.shape} vs prediction {pred.shape}")
        valid = (gt > self.min_depth) & (gt <= self.max_depth)
        if not valid.any():
            return
        g = gt[valid].astype(np.float64)
        p = np.clip(pred[valid].astype(np.float64), self.min_depth, None)
        ratio = np.maximum(g / p, p / g)
        self.rows.append((float(np.mean(np.abs(p - g) / g)), float(np.sqrt(np.mean((p - g) ** 2))),
                          float(np.mean(ratio < 1.25))))

    def compute(self) -> dict:
        if not self.rows:
            return {}
        a = np.asarray(self.rows)
        return {"abs_rel": float(a[:, 0].mean()), "rmse": float(a[:, 1].mean()),
                "delta1": float(a[:, 2].mean()), "num_images": len(self.rows),
                "max_depth": self.max_depth}
