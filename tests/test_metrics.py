"""Metrics against cases whose answer follows from the definition."""

from __future__ import annotations

import numpy as np
import pytest

from edge_mtl.metrics import DepthMetric, DetectionMetric, LaneMetric, depth_crop_mask


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
    valid = (gt > 0) & (gt < 80)
    g = gt[valid].astype(np.float64)
    p = np.minimum(g * 1.1, 80)  # predictions are clipped to max_depth
    assert r["abs_rel"] == pytest.approx(np.mean(np.abs(p - g) / g), rel=1e-5)
    assert r["rmse"] == pytest.approx(np.sqrt(np.mean((p - g) ** 2)), rel=1e-5)
    assert r["delta1"] == 1.0 and r["num_images"] == 1 and r["max_depth"] == 80
    m2 = DepthMetric(max_depth=200)  # no prediction reaches the clip
    m2.update(gt, gt * 1.3)
    assert m2.compute()["delta1"] == 0.0 and m2.compute()["delta2"] == 1.0


def test_every_kitti_depth_error_by_hand():
    gt = np.array([[2.0, 4.0], [0.0, 8.0]], np.float32)  # 0 = no measurement
    pred = np.array([[1.9, 5.5], [3.0, 12.0]], np.float32)
    m = DepthMetric()
    m.update(gt, pred)
    r = m.compute()
    g, p = np.array([2.0, 4.0, 8.0]), np.array([1.9, 5.5, 12.0])
    assert r["abs_rel"] == pytest.approx((0.1 / 2 + 1.5 / 4 + 4 / 8) / 3)
    assert r["sq_rel"] == pytest.approx((0.01 / 2 + 2.25 / 4 + 16 / 8) / 3)
    assert r["rmse"] == pytest.approx(np.sqrt((0.01 + 2.25 + 16) / 3))
    assert r["rmse_log"] == pytest.approx(np.sqrt(np.mean(np.log(g / p) ** 2)))
    # ratios max(g/p, p/g): 1.053, 1.375, 1.5 against 1.25, 1.5625, 1.953
    assert (r["delta1"], r["delta2"], r["delta3"]) == pytest.approx((1 / 3, 1.0, 1.0))


def test_depth_valid_range_clipping_and_per_image_mean():
    gt = np.array([[0.0005, 50.0, 80.0, 79.5]], np.float32)  # below min, ok, at the cap, ok
    pred = np.array([[5.0, 100.0, 1.0, 0.0]], np.float32)
    m = DepthMetric(min_depth=1e-3, max_depth=80.0)
    m.update(gt, pred)
    # gt == max_depth is outside (monodepth2: gt < MAX_DEPTH); preds clip to [1e-3, 80]
    expect = np.mean([30 / 50, (79.5 - 1e-3) / 79.5])
    assert m.compute()["abs_rel"] == pytest.approx(expect, rel=1e-6)
    m.update(np.full((4, 4), 10, np.float32), np.full((4, 4), 10, np.float32))  # 16 perfect pixels
    m.update(np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32))  # no valid pixel: skipped
    r = m.compute()
    assert r["num_images"] == 2
    assert r["abs_rel"] == pytest.approx(expect / 2, rel=1e-6)  # images weigh equally, not pixels


@pytest.mark.parametrize(("crop", "rows", "cols"), [
    ("garg", (153, 371), (44, 1197)),  # int(0.40810811*375), int(0.99189189*375), ...*1242
    ("eigen", (124, 342), (44, 1197)),  # int(0.3324324*375), int(0.91351351*375)
])
def test_depth_crops_are_exact_on_a_kitti_frame(crop, rows, cols):
    mask = depth_crop_mask((375, 1242), crop)
    expect = np.zeros((375, 1242), bool)
    expect[rows[0]:rows[1], cols[0]:cols[1]] = True
    np.testing.assert_array_equal(mask, expect)
    gt = np.full((375, 1242), 10, np.float32)
    pred = np.full_like(gt, 10)
    pred[~expect] = 1000  # wrong only outside the crop
    m = DepthMetric(crop=crop)
    m.update(gt, pred)
    assert m.compute()["abs_rel"] == 0.0 and m.compute()["crop"] == crop
    assert depth_crop_mask((3, 4), None).all()
    with pytest.raises(ValueError, match="depth crop 'nyu'"):
        DepthMetric(crop="nyu")


def test_depth_median_scaling_is_reported_apart():
    rng = np.random.default_rng(3)
    gt = rng.uniform(2, 60, (8, 8)).astype(np.float32)
    m = DepthMetric(median_scaling=True)
    m.update(gt, gt * 0.5)  # right up to a scale
    m.update(gt, gt * 0.25)
    r = m.compute()
    assert r["abs_rel"] == pytest.approx((0.5 + 0.75) / 2, rel=1e-5)
    assert r["abs_rel_median_scaled"] == pytest.approx(0.0, abs=1e-6)
    assert r["delta1_median_scaled"] == 1.0
    assert r["scale_median"] == pytest.approx(3.0, rel=1e-5)  # median of 2 and 4
    plain = DepthMetric()
    plain.update(gt, gt * 0.5)
    assert "abs_rel_median_scaled" not in plain.compute()


def test_depth_errors_by_distance_band_pool_pixels_over_images():
    """Near pixels read 2x too far and far ones right: the bands say so (the image mean cannot)."""
    gt = np.array([[4.0, 8.0, 15.0, 30.0, 50.0, 79.0]], np.float32)
    m = DepthMetric()
    m.update(gt, gt * np.array([2, 2, 1.5, 1, 1, 1], np.float32))
    m.update(np.array([[5.0, 12.0]], np.float32), np.array([[5.0, 6.0]], np.float32))  # second image
    bands = m.compute()["bands"]
    assert list(bands) == ["0-10", "10-20", "20-40", "40-80"]
    near = pytest.approx(2.0, rel=3e-3)  # medians come from a histogram of 1/256-octave bins
    assert bands["0-10"] == {"pixels": 3, "abs_rel": pytest.approx(2 / 3), "ratio_median": near}
    assert bands["10-20"]["pixels"] == 2 and bands["10-20"]["abs_rel"] == pytest.approx((0.5 + 0.5) / 2)
    assert bands["10-20"]["ratio_median"] == pytest.approx(0.5, rel=3e-3)  # the lower of 0.5 and 1.5
    assert bands["20-40"] == {"pixels": 1, "abs_rel": 0.0, "ratio_median": pytest.approx(1.0, rel=3e-3)}
    assert bands["40-80"]["pixels"] == 2 and bands["40-80"]["abs_rel"] == pytest.approx(0.0, abs=1e-7)
    many = DepthMetric()
    rng = np.random.default_rng(0)
    gt, pred = rng.uniform(1, 79, (2, 200, 300)).astype(np.float32)
    many.update(gt, pred)
    ratio = (np.clip(pred, 1e-3, 80) / gt).astype(np.float64)
    for band, (lo, hi) in {"0-10": (0, 10), "10-20": (10, 20), "20-40": (20, 40), "40-80": (40, 80)}.items():
        want = np.median(ratio[(gt >= lo) & (gt < hi)])
        assert many.compute()["bands"][band]["ratio_median"] == pytest.approx(want, rel=3e-3)
    empty = DepthMetric()
    empty.update(np.full((2, 2), 30, np.float32), np.full((2, 2), 30, np.float32))
    assert list(empty.compute()["bands"]) == ["20-40"]  # a band without a pixel is left out


def test_detection_inside_an_ignore_region_neither_helps_nor_hurts():
    gt = np.array([[10, 10, 60, 60], [100, 10, 180, 60]], np.float32)
    gt_classes = np.array([0, 1])  # a car and a truck
    ignore = np.array([[200, 200, 400, 300]], np.float32)
    inside = np.array([220, 210, 300, 290], np.float32)  # wholly in the ignore region
    outside = np.array([500, 400, 560, 460], np.float32)

    def score(extra, extra_class, ignore_regions):
        m = DetectionMetric()
        boxes = np.stack([extra, *gt])  # the extra detection ranks highest
        m.update(gt, gt_classes, boxes, np.array([0.95, 0.9, 0.8]), np.array([extra_class, 0, 1]),
                 (480, 640), ignore=ignore_regions)
        return m.compute()

    # a higher-scored false positive halves its class's precision at full recall ...
    assert score(inside, 1, None)["ap50_per_class"]["truck"] == pytest.approx(0.5, abs=0.01)
    assert score(outside, 1, ignore)["ap50_per_class"]["truck"] == pytest.approx(0.5, abs=0.01)
    assert score(outside, 0, ignore)["ap50_per_class"]["car"] == pytest.approx(0.5, abs=0.01)
    # ... but inside an ignore region it does not count, whatever its class
    for cls in (0, 1):
        r = score(inside, cls, ignore)
        assert r["map50"] == pytest.approx(1.0) and r["map"] == pytest.approx(1.0)
        assert r["num_objects"] == 2 and r["num_ignore_regions"] == 1 and r["num_detections"] == 3


def test_ignore_region_is_never_a_miss_and_only_ignored_gts_give_no_map():
    m = DetectionMetric()
    gt = np.array([[10, 10, 60, 60]], np.float32)
    m.update(gt, np.array([1]), gt, np.array([0.9]), np.array([1]), (100, 100),
             ignore=np.array([[70, 70, 95, 95]], np.float32))  # nothing detected there
    assert m.compute()["map50"] == pytest.approx(1.0)
    assert m.compute()["ap50_per_class"]["truck"] == pytest.approx(1.0)
    only_ignored = DetectionMetric()
    only_ignored.update(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0),
                        np.zeros(0, np.int64), (100, 100), ignore=np.array([[0, 0, 9, 9]]))
    r = only_ignored.compute()
    assert r["map50"] is None and r["num_objects"] == 0 and r["num_ignore_regions"] == 1
