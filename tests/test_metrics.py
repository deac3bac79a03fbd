"""Metrics against cases whose answer follows from the definition."""

from __future__ import annotations

import numpy as np
import pytest

from edge_mtl.metrics import DepthMetric, DetectionMetric, LaneMetric


def random_boxes(rng, n):
    xy = rng.uniform(0, 500, (n, 2))
    wh = rng.uniform(20, 200, (n, 2))
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def test_perfect_detections_score_one_and_misses_score_zero():
    rng = np.random.default_rng(0)
    perfect, shifted = DetectionMetric(), DetectionMetric()
    for _ in range(5):
        gt = random_boxes(rng, 4)
        cls = rng.integers(0, 3, 4)
        perfect.update(gt, cls, gt, rng.uniform(0.5, 1, 4), cls, (720, 1280))
        far = gt + 600  # no overlap with anything
        shifted.update(gt, cls, far, np.ones(4), cls, (720, 1280))
    assert perfect.compute()["map50"] == pytest.approx(1.0)
    assert perfect.compute()["map"] == pytest.approx(1.0)
    assert shifted.compute()["map50"] == pytest.approx(0.0)


def test_wrong_class_is_a_miss_and_half_found_is_about_half():
    rng = np.random.default_rng(1)
    wrong, half = DetectionMetric(), DetectionMetric()
    for _ in range(10):
        gt = random_boxes(rng, 2)
        wrong.update(gt, np.array([0, 0]), gt, np.ones(2), np.array([1, 1]), (720, 1280))
        half.update(gt, np.array([0, 0]), gt[:1], np.ones(1), np.array([0]), (720, 1280))
    assert wrong.compute()["ap50_per_class"]["car"] == pytest.approx(0.0)
    assert 0.45 < half.compute()["map50"] < 0.55


def test_lane_iou_and_f1():
    gt = np.zeros((10, 10), np.uint8)
    gt[:, :4] = 1  # 40 px
    pred = np.zeros_like(gt)
    pred[:, 2:6] = 1  # 20 tp, 20 fp, 20 fn
    m = LaneMetric()
    m.update(gt, pred)
    r = m.compute()
    assert r["iou"] == pytest.approx(20 / 60)
    assert r["f1"] == pytest.approx(40 / 80)
    with pytest.raises(ValueError, match="shapes differ"):
        m.update(gt, pred[:5])


def test_depth_metrics_follow_their_definitions():
    rng = np.random.default_rng(2)
    gt = rng.uniform(1, 100, (50, 60)).astype(np.float32)
    gt[:10] = 0  # invalid
    m = DepthMetric(max_depth=80)
    m.update(gt, gt * 1.1)
    r = m.compute()
    valid = (gt > 0) & (gt <= 80)
    assert r["abs_rel"] == pytest.approx(0.1, rel=1e-4)
    assert r["rmse"] == pytest.approx(np.sqrt(np.mean((0.1 * gt[valid]) ** 2)), rel=1e-4)
    assert r["delta1"] == 1.0
    m2 = DepthMetric()
    m2.update(gt, gt * 1.3)
    assert m2.compute()["delta1"] == 0.0
