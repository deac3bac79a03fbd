"""Task metrics: COCO mAP (pycocotools), lane-marking IoU/F1, KITTI/Eigen depth errors.

Every metric accumulates over a dataset one image at a time and reports a dict. The lane
*instance* benchmarks (TuSimple accuracy, CULane F1) live in `edge_mtl.lane_eval`.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from edge_mtl.compat import zip_strict
from edge_mtl.types import CLASSES


def _xywh(b: np.ndarray) -> list[float]:
    return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]


class DetectionMetric:
    """COCO-style box AP through pycocotools (mAP@0.5 and mAP@[.5:.95]).

    Ignore regions (KITTI DontCare, COCO crowds) enter COCOeval as ``iscrowd=1`` ground truths,
    one per region and class, since COCOeval matches per category. COCOeval never counts a crowd
    as a miss, and a detection it matches to one (overlap = intersection / detection area, at
    the same IoU thresholds, tried only after the real objects) is neither a TP nor an FP.
    """

    def __init__(self, class_names: tuple[str, ...] = CLASSES):
        self.class_names = class_names
        self.images: list[dict] = []
        self.gts: list[dict] = []  # real objects
        self.crowds: list[dict] = []  # ignore regions, one per class
        self.dets: list[dict] = []

    def update(self, gt_boxes: np.ndarray, gt_classes: np.ndarray, boxes: np.ndarray,
               scores: np.ndarray, classes: np.ndarray, size: tuple[int, int],
               ignore: np.ndarray | None = None) -> None:
        """One image: its labelled boxes (xyxy) and classes, the detections, ``size`` (h, w),
        and ``ignore`` float [K, 4] xyxy regions where detections do not count."""
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "height": size[0], "width": size[1]})
        for b, c in zip_strict(gt_boxes, gt_classes):
            box = _xywh(b)
            self.gts.append({"image_id": image_id, "category_id": int(c) + 1, "bbox": box,
                             "area": box[2] * box[3], "iscrowd": 0})
        for b in np.zeros((0, 4)) if ignore is None else np.asarray(ignore, np.float64).reshape(-1, 4):
            box = _xywh(b)
            for k in range(len(self.class_names)):
                self.crowds.append({"image_id": image_id, "category_id": k + 1, "bbox": box,
                                    "area": box[2] * box[3], "iscrowd": 1})
        for b, s, c in zip_strict(boxes, scores, classes):
            self.dets.append({"image_id": image_id, "category_id": int(c) + 1, "score": float(s),
                              "bbox": _xywh(b)})

    def compute(self) -> dict:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        if not self.images:
            return {}
        result = {"num_images": len(self.images), "num_objects": len(self.gts),
                  "num_detections": len(self.dets), "num_ignore_regions":
                  len(self.crowds) // max(1, len(self.class_names))}
        if not self.gts:
            return {**result, "map50": None, "map": None, "ap50_per_class": {}}
        # ids from 1: COCOeval takes a match id of 0 for "unmatched"
        annotations = [{**a, "id": i + 1} for i, a in enumerate(self.gts + self.crowds)]
        gt = COCO()
        gt.dataset = {"images": self.images, "annotations": annotations,
                      "categories": [{"id": i + 1, "name": n} for i, n in enumerate(self.class_names)]}
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
            if not self.dets:
                return {**result, "map50": 0.0, "map": 0.0, "ap50_per_class": {}}
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
        return {**result, "map50": float(ev.stats[1]), "map": float(ev.stats[0]),
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


# Evaluation crops as fractions of the ground truth's (h, w): rows [top, bottom), cols [left, right),
# each bound truncated to int. "garg": Garg et al. ECCV 2016, the crop of monodepth2's eigen split;
# "eigen": the crop found to reproduce Eigen et al. NIPS 2014 (monodepth's evaluate_kitti.py, BTS).
DEPTH_CROPS: dict[str, tuple[float, float, float, float]] = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}
DEPTH_ERRORS: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")


def depth_crop_mask(shape: tuple[int, int], crop: str | None) -> np.ndarray:
    """Bool [h, w]: the pixels inside the named evaluation crop (all of them for None)."""
    mask = np.zeros(shape, bool)
    if crop is None:
        mask[:] = True
        return mask
    if crop not in DEPTH_CROPS:
        raise ValueError(f"depth crop {crop!r}: expected one of {sorted(DEPTH_CROPS)} or None")
    h, w = shape
    top, bottom, left, right = DEPTH_CROPS[crop]
    mask[int(top * h):int(bottom * h), int(left * w):int(right * w)] = True
    return mask


def depth_errors(gt: np.ndarray, pred: np.ndarray) -> tuple[float, ...]:
    """Eigen et al.'s errors over matched valid pixels (monodepth2's ``compute_errors``):
    AbsRel, SqRel, RMSE, RMSE log, and the fractions with max(gt/pred, pred/gt) < 1.25^k."""
    g, p = gt.astype(np.float64), pred.astype(np.float64)
    ratio = np.maximum(g / p, p / g)
    return (float(np.mean(np.abs(g - p) / g)), float(np.mean((g - p) ** 2 / g)),
            float(np.sqrt(np.mean((g - p) ** 2))), float(np.sqrt(np.mean((np.log(g) - np.log(p)) ** 2))),
            float(np.mean(ratio < 1.25)), float(np.mean(ratio < 1.25 ** 2)),
            float(np.mean(ratio < 1.25 ** 3)))


DEPTH_BANDS: tuple[tuple[float, float], ...] = ((0.0, 10.0), (10.0, 20.0), (20.0, 40.0), (40.0, 80.0))
# A band's median of prediction / truth comes from a histogram of log2 ratios (fixed memory over
# any number of images): bins of 1/256 octave (0.27 %) over [-16, 16] octaves.
_RATIO_BINS_PER_OCTAVE, _RATIO_OCTAVES = 256, 16


class DepthMetric:
    """KITTI / Eigen depth errors, computed per image and averaged over images.

    As monodepth2's ``evaluate_depth.py``: valid pixels are ``min_depth < gt < max_depth``
    (80 m for KITTI) inside the optional ``crop`` ("garg" or "eigen", see `DEPTH_CROPS`); the
    prediction is clipped to [min_depth, max_depth]. With ``median_scaling`` the errors are also
    reported after scaling each prediction by median(gt) / median(pred) (before the clip), under
    ``<name>_median_scaled``, with the median and spread (std of ratio / median) of the scales.
    An image without a valid pixel is skipped. ``bands``: by ground-truth distance (`DEPTH_BANDS`,
    pooled over every valid pixel of every image), the pixel count, AbsRel and the median of
    prediction / truth (to 0.3 %, from a histogram): where the errors are, and whether near things
    read too far.
    """

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 80.0, crop: str | None = None,
                 median_scaling: bool = False):
        depth_crop_mask((1, 1), crop)  # rejects an unknown crop name now
        self.min_depth, self.max_depth, self.crop = min_depth, max_depth, crop
        self.median_scaling = median_scaling
        self.rows: list[tuple[float, ...]] = []
        self.scaled_rows: list[tuple[float, ...]] = []
        self.ratios: list[float] = []
        self.band_sums = np.zeros((len(DEPTH_BANDS), 2))  # valid pixels, sum of |g - p| / g
        self.band_hist = np.zeros((len(DEPTH_BANDS), 2 * _RATIO_OCTAVES * _RATIO_BINS_PER_OCTAVE), np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        if gt.shape != pred.shape:
            raise ValueError(f"depth map shapes differ: gt {gt.shape} vs prediction {pred.shape}")
        valid = (gt > self.min_depth) & (gt < self.max_depth) & depth_crop_mask(gt.shape, self.crop)
        if not valid.any():
            return
        g = gt[valid].astype(np.float64)
        p = pred[valid].astype(np.float64)
        clipped = np.clip(p, self.min_depth, self.max_depth)
        self.rows.append(depth_errors(g, clipped))
        for i, (lo, hi) in enumerate(DEPTH_BANDS):
            inside = (g >= lo) & (g < hi)
            if inside.any():
                gb, pb = g[inside], clipped[inside]
                self.band_sums[i] += (gb.size, float(np.sum(np.abs(gb - pb) / gb)))
                octaves = np.clip(np.log2(pb / gb), -_RATIO_OCTAVES, _RATIO_OCTAVES - 1e-9)
                bins = ((octaves + _RATIO_OCTAVES) * _RATIO_BINS_PER_OCTAVE).astype(np.int64)
                self.band_hist[i] += np.bincount(bins, minlength=self.band_hist.shape[1])
        if self.median_scaling:
            ratio = float(np.median(g) / np.median(p))
            self.ratios.append(ratio)
            self.scaled_rows.append(depth_errors(g, np.clip(p * ratio, self.min_depth, self.max_depth)))

    def compute(self) -> dict:
        if not self.rows:
            return {}
        result = dict(zip_strict(DEPTH_ERRORS, np.asarray(self.rows).mean(0).tolist()))
        result.update({"num_images": len(self.rows), "min_depth": self.min_depth,
                       "max_depth": self.max_depth, "crop": self.crop, "bands": self._bands()})
        if self.median_scaling:
            scaled = np.asarray(self.scaled_rows).mean(0).tolist()
            result.update({f"{k}_median_scaled": v for k, v in zip_strict(DEPTH_ERRORS, scaled)})
            ratios = np.asarray(self.ratios)
            med = float(np.median(ratios))
            result.update({"scale_median": med, "scale_std": float(np.std(ratios / med))})
        return result

    def _bands(self) -> dict[str, dict[str, float]]:
        out = {}
        for (lo, hi), (n, rel), hist in zip_strict(DEPTH_BANDS, self.band_sums, self.band_hist):
            if n:
                middle = int(np.searchsorted(np.cumsum(hist), n / 2))  # the bin holding the median
                octaves = (middle + 0.5) / _RATIO_BINS_PER_OCTAVE - _RATIO_OCTAVES
                out[f"{lo:g}-{hi:g}"] = {"pixels": int(n), "abs_rel": rel / n, "ratio_median": 2.0 ** octaves}
        return out
