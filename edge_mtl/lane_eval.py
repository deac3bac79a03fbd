"""Lane *instance* benchmarks scored from a predicted lane-marking mask.

The network predicts a 0/1 mask; `lanes_from_mask` splits it into lane instances and samples
each at given image rows. Two benchmarks then score those lanes as their own tools do:

- `TusimpleMetric`: TuSimple's accuracy / FP / FN (``LaneEval.bench`` of
  TuSimple/tusimple-benchmark ``evaluate/lane.py``, master). Lanes are x per ``h_samples`` row,
  -2 where the lane is absent; pixels at the source resolution (1280x720).
- `CulaneMetric`: CULane's F1 (SCNN's ``tools/lane_evaluation``, the C++ ``evaluate``): lanes
  are (x, y) point lists, drawn 30 px wide on a frame-sized canvas, matched one to one by IoU.

No maintained package computes either score, so both are written here after those sources.
Coordinates are pixels of the source frame, x right, y down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_mtl.compat import zip_strict

NO_POINT = -2.0  # TuSimple's x for "no lane at this h_sample"
DEFAULT_MIN_PIXELS = 100


def _row_runs(row: np.ndarray, max_gap: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The marked xs of one mask row and its runs (x0, x1, i0, i1): marked pixels with gaps of at
    most ``max_gap`` unmarked ones, spanning x0..x1 and xs[i0:i1]."""
    xs = np.flatnonzero(row)
    if not xs.size:
        return xs, []
    cut = np.flatnonzero(np.diff(xs) > max_gap + 1) + 1
    starts, ends = np.r_[0, cut], np.r_[cut, xs.size]
    return xs, [(int(xs[i]), int(xs[j - 1]), int(i), int(j)) for i, j in zip_strict(starts, ends)]


@dataclass
class _Track:
    """One lane instance being traced: a run per row from the bottom up."""

    root: int  # the instance it split from (itself if none): a split that rejoins is a hole
    merged: bool = False  # born where two lanes joined: belongs to neither, dropped
    absorbed: bool = False  # a small piece taken into a larger instance, dropped
    pixels: int = 0
    run: tuple[int, int] = (0, 0)  # x0, x1 of its run in the last row traced
    rows: dict[int, tuple[float, int]] = field(default_factory=dict)  # row -> (sum of x, count)


def lanes_from_mask(mask: np.ndarray, rows: Sequence[float] | np.ndarray | None = None,
                    min_pixels: int = DEFAULT_MIN_PIXELS, max_gap: int = 4) -> list[np.ndarray]:
    """Lane instances of a 0/1 mask [H, W], each as float32 [N, 2] (x, y) points.

    The mask is traced row by row from the bottom up. In each row, marked pixels with gaps of
    at most ``max_gap`` px form a run; a run that touches (8-connected) the run of one lane in
    the row below continues that lane, so every instance has one run per row: a connected
    component, split where it branches or joins.

    - A lane touching several runs above it (a fork, a hole, noise beside it) continues into
      the run nearest its centre; each other run starts a new lane.
    - A run touching lanes of at least ``min_pixels`` that come from different instances (lanes
      meeting near the horizon, or crossing) ends them, and the joined part is dropped: in rows
      where two lanes touch the mean x would be neither's (above a crossing, branches start anew).
    - Otherwise the run continues the largest lane it touches; the others (pieces under
      ``min_pixels``, absorbed, or the far side of a hole) end there.
    - Instances under ``min_pixels`` pixels are dropped.

    Each instance gives one point per requested row: (mean x of its pixels in that row, row);
    rows where it has none are absent, and an instance with fewer than 2 points is dropped.
    ``rows`` (float, rounded to the nearest pixel row; default every row) keeps its order in
    the points. Instances are sorted left to right by the x of their lowest point.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"lane mask must be 2-D [H, W], got shape {mask.shape}")
    marked = mask > 0
    tracks: list[_Track] = []
    active: list[int] = []  # lanes with a run in the row below
    for y in range(mask.shape[0] - 1, -1, -1):
        xs, runs = _row_runs(marked[y], max_gap)
        owner: list[int | None] = [None] * len(runs)
        root: list[int | None] = [None] * len(runs)  # the root a new lane inherits
        merged = [False] * len(runs)
        ended: set[int] = set()
        for r, (x0, x1, _, _) in enumerate(runs):
            below = [t for t in active if x0 <= tracks[t].run[1] + 1 and tracks[t].run[0] <= x1 + 1]
            if len({tracks[t].root for t in below if tracks[t].pixels >= min_pixels}) >= 2:
                merged[r] = True
                ended.update(below)
            elif below:
                keep = max(below, key=lambda t: tracks[t].pixels)
                for t in below:
                    if t != keep:
                        ended.add(t)
                        if tracks[t].pixels < min_pixels:
                            tracks[t].absorbed = True
                            tracks[keep].pixels += tracks[t].pixels
                owner[r] = keep
        claims: dict[int, list[int]] = {}
        for r, t in enumerate(owner):
            if t is not None and t not in ended:
                claims.setdefault(t, []).append(r)
            else:
                owner[r] = None
        for t, rs in claims.items():
            centre = sum(tracks[t].run) / 2
            best = min(rs, key=lambda r: abs((runs[r][0] + runs[r][1]) / 2 - centre))
            for r in rs:
                if r != best or (tracks[t].merged and len(rs) > 1):
                    owner[r] = None
                    root[r] = None if tracks[t].merged else tracks[t].root
        active = []
        for r, (x0, x1, i0, i1) in enumerate(runs):
            t = owner[r]
            if t is None:
                t = len(tracks)
                tracks.append(_Track(root=t if root[r] is None else root[r], merged=merged[r]))
            track = tracks[t]
            track.rows[y] = (float(xs[i0:i1].sum()), i1 - i0)
            track.pixels += i1 - i0
            track.run = (x0, x1)
            active.append(t)
    wanted = np.arange(mask.shape[0], dtype=np.float64) if rows is None else \
        np.asarray(rows, np.float64).ravel()
    lanes = []
    for track in tracks:
        if track.merged or track.absorbed or track.pixels < min_pixels:
            continue
        points = [(track.rows[row][0] / track.rows[row][1], y) for y in wanted
                  if (row := int(np.floor(y + 0.5))) in track.rows]
        if len(points) >= 2:
            lanes.append(np.asarray(points, np.float32))
    return sorted(lanes, key=lambda lane: float(lane[np.argmax(lane[:, 1]), 0]))


def lane_xs_at(lane: np.ndarray, h_samples: Sequence[float], tol: float = 0.5) -> list[float]:
    """TuSimple form of one lane: for each of ``h_samples``, the x of the lane's point on that
    row (within ``tol`` px of it), else -2. Points are not interpolated between rows."""
    lane = np.asarray(lane, np.float64).reshape(-1, 2)
    out = []
    for y in h_samples:
        near = np.flatnonzero(np.abs(lane[:, 1] - float(y)) <= tol)
        out.append(float(lane[near[0], 0]) if near.size else NO_POINT)
    return out


# --------------------------------------------------------------------------------------- TuSimple

def _tusimple_angle(xs: np.ndarray, ys: np.ndarray) -> float:
    """The lane's angle from vertical: arctan of the slope dx/dy of a least-squares line x(y)
    through its present points (sklearn LinearRegression in the original), 0 for < 2 points."""
    present = xs >= 0
    if np.count_nonzero(present) > 1:
        return float(np.arctan(np.polyfit(ys[present], xs[present], 1)[0]))
    return 0.0


def _tusimple_line_accuracy(pred: np.ndarray, gt: np.ndarray, thresh: float) -> float:
    # absent points (< 0) become -100 on both sides, so a row absent in both counts as matched
    p = np.where(pred >= 0, pred, -100.0)
    g = np.where(gt >= 0, gt, -100.0)
    return float(np.sum(np.abs(p - g) < thresh) / len(g))


def tusimple_bench(pred: Sequence[Sequence[float]], gt: Sequence[Sequence[float]],
                   h_samples: Sequence[float], pixel_thresh: float = 20.0,
                   pt_thresh: float = 0.85) -> tuple[float, float, float]:
    """One image's (accuracy, FP rate, FN rate) exactly as ``LaneEval.bench``.

    Each GT lane takes its best point accuracy over the predictions (a point matches when
    |x_pred - x_gt| < 20 / cos(angle of the GT lane)); below 0.85 it is a miss. FP =
    #pred - #matched GT lanes, over #pred; FN = misses (one forgiven when > 4 GT lanes), over
    max(min(#gt, 4), 1); accuracy = the sum of the best accuracies (less the lowest when > 4
    GT lanes), over max(min(#gt, 4), 1). More than #gt + 2 predicted lanes scores (0, 0, 1).
    The original's 200 ms run-time rule is not applied (no run time is given).
    """
    ys = np.asarray(h_samples, np.float64)
    for name, lanes in (("predicted", pred), ("ground-truth", gt)):
        if any(len(lane) != len(ys) for lane in lanes):
            raise ValueError(f"every {name} lane needs one x per h_sample ({len(ys)}); got lengths "
                             f"{[len(lane) for lane in lanes]}")
    if len(gt) + 2 < len(pred):
        return 0.0, 0.0, 1.0
    line_accs = []
    fn = matched = 0.0
    for x_gt in gt:
        g = np.asarray(x_gt, np.float64)
        thresh = pixel_thresh / np.cos(_tusimple_angle(g, ys))
        accs = [_tusimple_line_accuracy(np.asarray(p, np.float64), g, thresh) for p in pred]
        best = max(accs) if accs else 0.0
        if best < pt_thresh:
            fn += 1
        else:
            matched += 1
        line_accs.append(best)
    fp = len(pred) - matched
    if len(gt) > 4 and fn > 0:
        fn -= 1
    s = sum(line_accs)
    if len(gt) > 4:
        s -= min(line_accs)
    denom = max(min(4.0, len(gt)), 1.0)
    return s / denom, fp / len(pred) if pred else 0.0, fn / denom


class TusimpleMetric:
    """TuSimple accuracy, FP and FN: ``tusimple_bench`` per image, averaged over images
    (``LaneEval.bench_one_submit``)."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float, float]] = []

    def update(self, pred_lanes_x: Sequence[Sequence[float]], gt_lanes: Sequence[Sequence[float]],
               h_samples: Sequence[float]) -> None:
        """One image, in the label file's form: each lane an x per ``h_samples`` row, -2 = none."""
        self.rows.append(tusimple_bench(pred_lanes_x, gt_lanes, h_samples))

    def update_from_mask(self, mask: np.ndarray, gt_lanes_xy: Sequence[np.ndarray],
                         h_samples: Sequence[float], min_pixels: int = DEFAULT_MIN_PIXELS) -> None:
        """One image from a predicted mask at the source resolution; ``gt_lanes_xy`` are the
        labelled lanes as float [N, 2] (x, h_sample) points (the label's x >= 0 entries)."""
        pred = [lane_xs_at(lane, h_samples) for lane in lanes_from_mask(mask, h_samples, min_pixels)]
        self.update(pred, [lane_xs_at(lane, h_samples) for lane in gt_lanes_xy], h_samples)

    def compute(self) -> dict:
        if not self.rows:
            return {}
        a = np.asarray(self.rows)
        return {"accuracy": float(a[:, 0].mean()), "fp": float(a[:, 1].mean()),
                "fn": float(a[:, 2].mean()), "num_images": len(self.rows)}


# ----------------------------------------------------------------------------------------- CULane

def culane_interpolate(points: np.ndarray, times: int = 50) -> np.ndarray:
    """The polyline CULane draws for a lane (``Spline::splineInterpTimes``): a 2-point lane as
    is, else a natural cubic spline through the points, parameterised by chord length, sampled
    ``times`` times per segment plus the last point. Repeated consecutive points are dropped
    first (the original divides by their zero distance)."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    if len(p) > 1:
        p = p[np.r_[True, np.any(np.diff(p, axis=0) != 0, axis=1)]]
    n = len(p)
    if n <= 2:
        return p
    h = np.linalg.norm(np.diff(p, axis=0), axis=1)
    slope = np.diff(p, axis=0) / h[:, None]
    # second derivatives M at the inner knots (natural ends: M = 0 at both)
    a = np.zeros((n - 2, n - 2))
    idx = np.arange(n - 2)
    a[idx, idx] = 2 * (h[:-1] + h[1:])
    a[idx[1:], idx[:-1]] = h[1:-1]
    a[idx[:-1], idx[1:]] = h[1:-1]
    m = np.zeros((n, 2))
    m[1:-1] = np.linalg.solve(a, 6 * (slope[1:] - slope[:-1]))
    t = (h[:, None] / times) * np.arange(times)[None, :]  # [segments, times]
    b = slope - (2 * h[:, None] * m[:-1] + h[:, None] * m[1:]) / 6
    c, d = m[:-1] / 2, (m[1:] - m[:-1]) / (6 * h[:, None])
    seg = (p[:-1, None, :] + b[:, None, :] * t[..., None] + c[:, None, :] * t[..., None] ** 2
           + d[:, None, :] * t[..., None] ** 3)
    return np.concatenate([seg.reshape(-1, 2), p[-1:]])


def culane_draw(points: np.ndarray, size: tuple[int, int], width: int = 30) -> np.ndarray:
    """Bool [h, w]: the interpolated lane drawn ``width`` px wide, the points rounded to whole
    pixels (the original draws it segment by segment with cv::line; one open cv2.polylines
    draws the same pixels: each segment with round caps). Fewer than 2 points draw nothing."""
    import cv2

    canvas = np.zeros(size, np.uint8)
    line = culane_interpolate(points)
    if len(line) >= 2:
        pts = np.rint(line).clip(-(2 ** 20), 2 ** 20).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [pts], False, 1, thickness=width)
    return canvas.astype(bool)


def culane_ious(pred: Sequence[np.ndarray], gt: Sequence[np.ndarray], size: tuple[int, int],
                width: int = 30) -> np.ndarray:
    """IoU [len(pred), len(gt)] of the drawn lanes (0 where a lane draws nothing)."""
    p = [culane_draw(lane, size, width) for lane in pred]
    g = [culane_draw(lane, size, width) for lane in gt]
    ious = np.zeros((len(p), len(g)))
    for i, a in enumerate(p):
        for j, b in enumerate(g):
            union = np.count_nonzero(a | b)
            ious[i, j] = np.count_nonzero(a & b) / union if union else 0.0
    return ious


def _hungarian_min(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact minimum-cost assignment (Kuhn-Munkres with potentials, O(n^2 m)) of a [n, m] matrix,
    n <= m: every row gets a distinct column. Returns (rows, cols) like scipy's."""
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    match = np.zeros(m + 1, int)  # match[j] = row (1-based) assigned to column j; column 0 is free
    for i in range(1, n + 1):
        match[0], j0 = i, 0
        minv, used, way = np.full(m + 1, np.inf), np.zeros(m + 1, bool), np.zeros(m + 1, int)
        while match[j0]:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            cur = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            j1 = int(np.argmin(np.where(free, minv[1:], np.inf))) + 1
            delta = minv[j1]
            u[match[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    cols = np.flatnonzero(match[1:])
    rows = match[1:][cols] - 1
    order = np.argsort(rows)
    return rows[order], cols[order]


def max_assignment(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A one-to-one matching of rows to columns that maximises the summed ``score``
    (scipy's linear_sum_assignment when scipy is installed, else `_hungarian_min`)."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        if score.shape[0] <= score.shape[1]:
            return _hungarian_min(-score)
        cols, rows = _hungarian_min(-score.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    return linear_sum_assignment(score, maximize=True)


class CulaneMetric:
    """CULane precision, recall and F1 over lane instances, pooled over images.

    Per image (``Counter::count_im_pair``): every lane is drawn ``lane_width`` px wide on a
    canvas of the frame's size, the IoU of every (prediction, GT) pair is computed, the lanes are
    matched one to one maximising the summed IoU, and a matched pair with IoU > ``iou_threshold``
    (strictly, as the original) is a TP; FP = #pred - TP, FN = #gt - TP.
    """

    def __init__(self, lane_width: int = 30, iou_threshold: float = 0.5):
        self.lane_width, self.iou_threshold = lane_width, iou_threshold
        self.tp = self.fp = self.fn = self.num_images = 0

    def update(self, pred_lanes: Sequence[np.ndarray], gt_lanes: Sequence[np.ndarray],
               size: tuple[int, int]) -> None:
        """One image: lanes as float [N, 2] (x, y) points in a frame of ``size`` (h, w)."""
        self.num_images += 1
        tp = 0
        if len(pred_lanes) and len(gt_lanes):
            ious = culane_ious(pred_lanes, gt_lanes, size, self.lane_width)
            rows, cols = max_assignment(ious)
            tp = int(np.count_nonzero(ious[rows, cols] > self.iou_threshold))
        self.tp += tp
        self.fp += len(pred_lanes) - tp
        self.fn += len(gt_lanes) - tp

    def update_from_mask(self, mask: np.ndarray, gt_lanes: Sequence[np.ndarray], row_step: int = 10,
                         min_pixels: int = DEFAULT_MIN_PIXELS) -> None:
        """One image from a predicted mask (frame-sized): its lanes sampled every ``row_step``
        rows from the bottom up (CULane's labels are 10 px apart)."""
        h = mask.shape[0]
        pred = lanes_from_mask(mask, np.arange(h - 1, -1, -row_step), min_pixels)
        self.update(pred, gt_lanes, mask.shape[:2])

    def compute(self) -> dict:
        tp, fp, fn = self.tp, self.fp, self.fn
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"f1": f1, "precision": precision, "recall": recall, "tp": tp, "fp": fp, "fn": fn,
                "num_images": self.num_images}
