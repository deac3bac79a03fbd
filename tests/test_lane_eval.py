"""Lane instance benchmarks: TuSimple accuracy and CULane F1 as their own tools count them."""

from __future__ import annotations

import itertools
import sys

import cv2
import numpy as np
import pytest

from edge_mtl.lane_eval import (
    NO_POINT,
    CulaneMetric,
    TusimpleMetric,
    _hungarian_min,
    culane_draw,
    culane_interpolate,
    culane_ious,
    lane_xs_at,
    lanes_from_mask,
    max_assignment,
    tusimple_bench,
)

H_SAMPLES = list(range(160, 720, 10))  # TuSimple's rows on its 1280x720 frames
YS = np.asarray(H_SAMPLES, np.float64)


def tusimple_lane(x0: float, slope: float = 0.0, first: int = 0) -> list[float]:
    """x = x0 + slope * (y - 160) at each h_sample from index ``first`` on, -2 before."""
    return [x0 + slope * (y - 160) if i >= first else NO_POINT for i, y in enumerate(H_SAMPLES)]


def draw(size: tuple[int, int], lanes, width: int = 3) -> np.ndarray:
    mask = np.zeros(size, np.uint8)
    for lane in lanes:
        pts = np.round(np.asarray(lane, np.float64) * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(mask, [pts], False, 1, thickness=width, lineType=cv2.LINE_8, shift=4)
    return mask


# ------------------------------------------------------------------------------ lanes_from_mask

def test_lanes_from_mask_recovers_drawn_lanes():
    h, w = 128, 256
    ys = np.arange(h, dtype=np.float64)
    truth = [np.stack([x0 + k * (ys - h + 1), ys], 1) for x0, k in ((20, -0.1), (128, 0.0), (230, 0.6))]
    lanes = lanes_from_mask(draw((h, w), truth, width=5), min_pixels=50)
    assert len(lanes) == 3
    for lane, line in zip(lanes, truth, strict=True):
        assert lane.dtype == np.float32 and lane.shape[1] == 2
        inside = (line[:, 0] >= 3) & (line[:, 0] <= w - 4)  # rows where the drawn line is whole
        expect = np.interp(lane[:, 1], line[:, 1], line[:, 0])
        keep = np.isin(lane[:, 1], line[inside, 1])
        assert keep.sum() > 60
        assert np.abs(lane[keep, 0] - expect[keep]).max() <= 1.0


def test_lanes_from_mask_samples_requested_rows_in_order():
    mask = draw((64, 128), [[(40, 63), (40, 20)]])  # rows 20..63 only
    lane, = lanes_from_mask(mask, rows=[60.2, 50, 10, 30, 200], min_pixels=20)
    np.testing.assert_allclose(lane, [[40, 60.2], [40, 50], [40, 30]])  # 10 and 200: no pixels


def test_lanes_meeting_near_the_horizon_stay_two_lanes():
    mask = draw((64, 128), [[(60, 10), (10, 63)], [(60, 10), (110, 63)]])
    left, right = lanes_from_mask(mask, min_pixels=20)
    joined = np.flatnonzero(mask.sum(1) > 0)[0]
    for lane, x_bottom in ((left, 10), (right, 110)):
        assert lane[:, 1].min() > joined + 2  # the rows where they touch belong to neither
        expect = 60 + (x_bottom - 60) * (lane[:, 1] - 10) / 53
        assert np.abs(lane[:, 0] - expect).max() <= 1.5


def test_small_blobs_dropped_and_specks_or_holes_do_not_split_a_lane():
    mask = draw((64, 128), [[(40, 63), (40, 0)]], width=9)
    mask[5:8, 100:103] = 1  # a blob of 9 px
    mask[30:32, 45:47] = 1  # a speck touching the lane
    mask[20:30, 38:43] = 0  # a hole through its middle
    lane, = lanes_from_mask(mask, min_pixels=60, max_gap=2)
    assert np.array_equal(lane[:, 1], np.arange(64))  # one lane through every row
    outside_hole = (lane[:, 1] < 20) | (lane[:, 1] >= 30)
    assert np.abs(lane[outside_hole, 0] - 40).max() <= 0.5
    assert np.abs(lane[~outside_hole, 0] - 40).max() <= 4.5  # one side of the hole: half the width
    # a far side of the hole as large as a lane is a short lane of its own; the lane goes on above
    main, side = sorted(lanes_from_mask(mask, min_pixels=15, max_gap=2), key=len, reverse=True)
    assert np.array_equal(main[:, 1], np.arange(64)) and np.array_equal(side[:, 1], np.arange(20, 30))
    assert lanes_from_mask(np.zeros((8, 8), np.uint8)) == []
    with pytest.raises(ValueError, match="2-D"):
        lanes_from_mask(np.zeros((2, 8, 8)))


def test_lane_xs_at_is_the_tusimple_form():
    lane = np.array([[400.0, 170.0], [402.0, 180.0]])
    xs = lane_xs_at(lane, H_SAMPLES)
    assert xs[:4] == [NO_POINT, 400.0, 402.0, NO_POINT] and len(xs) == len(H_SAMPLES)


# ----------------------------------------------------------------------------------------- TuSimple

def test_tusimple_perfect_and_shifted_lanes():
    gt = [tusimple_lane(400), tusimple_lane(600, 1.0)]  # vertical, and 45 degrees: 20/cos = 28.3 px
    assert tusimple_bench(gt, gt, H_SAMPLES) == (1.0, 0.0, 0.0)
    near = [tusimple_lane(419), tusimple_lane(627, 1.0)]
    assert tusimple_bench(near, gt, H_SAMPLES) == (1.0, 0.0, 0.0)
    far = [tusimple_lane(421), tusimple_lane(629, 1.0)]
    assert tusimple_bench(far, gt, H_SAMPLES) == (0.0, 1.0, 1.0)


def test_tusimple_extra_lanes_and_the_more_than_gt_plus_two_rule():
    gt = [tusimple_lane(300), tusimple_lane(600)]
    extra = [tusimple_lane(900), tusimple_lane(1100)]
    assert tusimple_bench([*gt, *extra], gt, H_SAMPLES) == (1.0, 0.5, 0.0)  # 2 of 4 predictions
    assert tusimple_bench([*gt, *extra, tusimple_lane(1200)], gt, H_SAMPLES) == (0.0, 0.0, 1.0)
    assert tusimple_bench([], gt, H_SAMPLES) == (0.0, 0.0, 1.0)
    assert tusimple_bench([tusimple_lane(100)], [], H_SAMPLES) == (0.0, 1.0, 0.0)


def test_tusimple_absent_points_and_the_five_lane_rule():
    gt = [tusimple_lane(400, first=28)]  # the lane's upper half is absent
    both_absent = tusimple_lane(400, first=28)
    assert tusimple_bench([both_absent], gt, H_SAMPLES)[0] == 1.0  # rows absent in both match
    half = [tusimple_lane(400, first=28)[:42] + [NO_POINT] * 14]  # misses 14 of 56 rows
    acc, fp, fn = tusimple_bench(half, gt, H_SAMPLES)
    assert (acc, fp, fn) == (42 / 56, 1.0, 1.0)  # 0.75 < 0.85: a miss, the prediction an FP
    five = [tusimple_lane(x) for x in (100, 300, 500, 700, 900)]
    acc, fp, fn = tusimple_bench(five[:4], five, H_SAMPLES)  # one of five missed
    assert (acc, fp, fn) == (1.0, 0.0, 0.0)  # the lowest accuracy and one miss are forgiven
    with pytest.raises(ValueError, match="predicted lane needs one x per h_sample"):
        tusimple_bench([[1.0, 2.0]], gt, H_SAMPLES)


def test_tusimple_metric_averages_images_and_scores_masks():
    gt = [tusimple_lane(300, -0.3), tusimple_lane(700, 0.5)]
    m = TusimpleMetric()
    m.update(gt, gt, H_SAMPLES)
    m.update([], gt, H_SAMPLES)
    assert m.compute() == {"accuracy": 0.5, "fp": 0.0, "fn": 0.5, "num_images": 2}
    gt_xy = [np.array([(x, y) for x, y in zip(lane, H_SAMPLES, strict=True) if x >= 0]) for lane in gt]
    mask = draw((720, 1280), gt_xy, width=8)
    from_mask = TusimpleMetric()
    from_mask.update_from_mask(mask, gt_xy, H_SAMPLES)
    assert from_mask.compute() == {"accuracy": 1.0, "fp": 0.0, "fn": 0.0, "num_images": 1}
    assert TusimpleMetric().compute() == {}


# ------------------------------------------------------------------------------------------ CULane

def spline_as_the_original(points: np.ndarray, times: int = 50) -> np.ndarray:
    """SCNN's Spline::cal_fun + splineInterpTimes, line by line (tridiagonal sweep included)."""
    p = [tuple(map(float, q)) for q in points]
    n = len(p)
    h = [np.hypot(p[i + 1][0] - p[i][0], p[i + 1][1] - p[i][1]) for i in range(n - 1)]
    a, b, c = h[:-1], [2 * (h[i] + h[i + 1]) for i in range(n - 2)], list(h[1:])
    dx = [6 * ((p[i + 2][0] - p[i + 1][0]) / h[i + 1] - (p[i + 1][0] - p[i][0]) / h[i]) for i in range(n - 2)]
    dy = [6 * ((p[i + 2][1] - p[i + 1][1]) / h[i + 1] - (p[i + 1][1] - p[i][1]) / h[i]) for i in range(n - 2)]
    c[0], dx[0], dy[0] = c[0] / b[0], dx[0] / b[0], dy[0] / b[0]
    for i in range(1, n - 2):
        tmp = b[i] - a[i] * c[i - 1]
        c[i] /= tmp
        dx[i] = (dx[i] - a[i] * dx[i - 1]) / tmp
        dy[i] = (dy[i] - a[i] * dy[i - 1]) / tmp
    mx, my = [0.0] * n, [0.0] * n
    mx[n - 2], my[n - 2] = dx[n - 3], dy[n - 3]
    for i in range(n - 4, -1, -1):
        mx[i + 1] = dx[i] - c[i] * mx[i + 2]
        my[i + 1] = dy[i] - c[i] * my[i + 2]
    mx[0] = mx[n - 1] = my[0] = my[n - 1] = 0.0
    out = []
    for i in range(n - 1):
        bx = (p[i + 1][0] - p[i][0]) / h[i] - (2 * h[i] * mx[i] + h[i] * mx[i + 1]) / 6
        by = (p[i + 1][1] - p[i][1]) / h[i] - (2 * h[i] * my[i] + h[i] * my[i + 1]) / 6
        cx, cy = mx[i] / 2, my[i] / 2
        ddx, ddy = (mx[i + 1] - mx[i]) / (6 * h[i]), (my[i + 1] - my[i]) / (6 * h[i])
        for k in range(times):
            t = h[i] / times * k
            out.append((p[i][0] + bx * t + cx * t ** 2 + ddx * t ** 3,
                        p[i][1] + by * t + cy * t ** 2 + ddy * t ** 3))
    out.append(p[-1])
    return np.asarray(out)


def test_culane_spline_and_drawing_follow_the_original():
    rng = np.random.default_rng(0)
    for n in (3, 4, 7):
        pts = np.stack([rng.uniform(0, 1640, n), np.sort(rng.uniform(250, 590, n))[::-1]], 1)
        np.testing.assert_allclose(culane_interpolate(pts), spline_as_the_original(pts), atol=1e-6)
        line = np.rint(spline_as_the_original(pts)).astype(int)
        segments = np.zeros((590, 1640), np.uint8)
        for p1, p2 in itertools.pairwise(line):
            cv2.line(segments, tuple(map(int, p1)), tuple(map(int, p2)), 1, thickness=30)
        np.testing.assert_array_equal(culane_draw(pts, (590, 1640)), segments > 0)
    two = np.array([[10.0, 500.0], [200.0, 300.0]])
    np.testing.assert_array_equal(culane_interpolate(two), two)  # drawn as one segment
    assert not culane_draw(two[:1], (590, 1640)).any()  # a one-point lane draws nothing


def culane_lane(x_bottom: float, slope: float = 0.0) -> np.ndarray:
    ys = np.arange(590, 250, -10, dtype=np.float64)
    return np.stack([x_bottom + slope * (590 - ys), ys], 1)


def test_culane_perfect_shifted_and_extra_lanes():
    size = (590, 1640)
    gt = [culane_lane(300, 0.8), culane_lane(1300, -0.8)]
    m = CulaneMetric()
    m.update(gt, gt, size)
    assert m.compute() == {"f1": 1.0, "precision": 1.0, "recall": 1.0, "tp": 2, "fp": 0, "fn": 0,
                           "num_images": 1}
    m.update([lane + np.array([5.0, 0.0]) for lane in gt], gt, size)  # 5 px off: IoU ~0.7, found
    m.update([lane + np.array([40.0, 0.0]) for lane in gt], gt, size)  # 40 px off: no overlap
    m.update([*gt, culane_lane(800)], gt, size)  # one extra lane: an FP
    m.update([], gt, size)
    m.update([culane_lane(800)], [], size)
    r = m.compute()
    assert (r["tp"], r["fp"], r["fn"], r["num_images"]) == (6, 4, 4, 6)
    assert r["precision"] == 0.6 and r["recall"] == 0.6 and r["f1"] == pytest.approx(0.6)


def test_culane_match_needs_iou_strictly_above_the_threshold():
    size = (590, 1640)
    gt, pred = [culane_lane(300, 0.5)], [culane_lane(311, 0.5)]
    iou = float(culane_ious(pred, gt, size)[0, 0])
    assert 0.3 < iou < 0.7
    at, below = CulaneMetric(iou_threshold=iou), CulaneMetric(iou_threshold=iou - 1e-9)
    at.update(pred, gt, size)
    below.update(pred, gt, size)
    assert at.compute()["tp"] == 0 and below.compute()["tp"] == 1


def brute_force_best(score: np.ndarray) -> float:
    n, m = score.shape
    if n > m:
        return brute_force_best(score.T)
    return max(sum(score[i, j] for i, j in enumerate(cols)) for cols in itertools.permutations(range(m), n))


def test_assignment_is_the_optimum_not_greedy(monkeypatch):
    ious = np.array([[0.9, 0.8], [0.85, 0.1]])  # greedy takes 0.9, then only 0.1 is left
    rows, cols = max_assignment(ious)
    assert ious[rows, cols].sum() == pytest.approx(1.65)
    rng = np.random.default_rng(1)
    for shape in ((1, 1), (3, 3), (2, 5), (5, 2), (4, 6)):
        score = rng.uniform(0, 1, shape)
        rows, cols = _hungarian_min(-score) if shape[0] <= shape[1] else _hungarian_min(-score.T)[::-1]
        assert len(set(rows)) == len(rows) == min(shape) and len(set(cols)) == len(cols)
        assert score[rows, cols].sum() == pytest.approx(brute_force_best(score))
        monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # the path without scipy
        rows, cols = max_assignment(score)
        assert score[rows, cols].sum() == pytest.approx(brute_force_best(score))
        monkeypatch.undo()


def test_culane_from_a_predicted_mask():
    gt = [culane_lane(300, 0.8), culane_lane(1300, -0.8), culane_lane(820, 0.05)]
    mask = draw((590, 1640), gt, width=12)
    m = CulaneMetric()
    m.update_from_mask(mask, gt)
    assert m.compute()["f1"] == 1.0
