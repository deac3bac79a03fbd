"""Shared pre/post-processing: NMS, scaling back to the camera frame, masks."""

from __future__ import annotations

import numpy as np
import pytest

from edge_mtl.runtime.geometry import fit_geometry
from edge_mtl.runtime.postprocess import PostprocessConfig, postprocess
from edge_mtl.runtime.preprocess import MEAN, STD, preprocess

HD = fit_geometry((720, 1280), (384, 640))  # letterbox: scale 0.5, 12 rows of border above and below


def raw(boxes, logits, lane_value=-5.0, depth_value=10.0, n_extra=0):
    n = len(boxes)
    return {"det_logits": np.asarray(logits, np.float32).reshape(n, -1),
            "det_boxes": np.asarray(boxes, np.float32),
            "lane_logits": np.full((1, 192, 320), lane_value, np.float32),
            "depth": np.full((1, 96, 160), depth_value, np.float32)}


def test_nms_is_class_aware_and_boxes_scale_to_the_camera_frame():
    boxes = [[10, 22, 50, 62], [12, 23, 51, 62], [10, 22, 50, 62], [300, 200, 340, 260]]
    logits = [[4, -9, -9], [3, -9, -9], [-9, 3, -9], [-9, -9, -9]]
    pred = postprocess(raw(boxes, logits), HD)
    assert sorted(pred.classes.tolist()) == [0, 1]  # duplicate car removed, truck kept
    car = pred.boxes[pred.classes == 0][0]
    assert car == pytest.approx([20, 20, 100, 100])  # (x - 0, y - 12) / 0.5
    assert pred.scores.max() == pytest.approx(1 / (1 + np.exp(-4)), rel=1e-5)
    assert pred.lane.shape == (720, 1280) and pred.lane.max() == 0
    assert pred.depth.shape == (720, 1280) and np.allclose(pred.depth, 10.0)


def test_score_threshold_and_max_detections():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, [600, 370], (50, 2))
    boxes = np.concatenate([xy, xy + 5], 1)
    logits = np.full((50, 3), -9.0)
    logits[:, 0] = np.linspace(-3, 3, 50)
    pred = postprocess(raw(boxes, logits), fit_geometry((384, 640), (384, 640)),
                       PostprocessConfig(score_threshold=0.5, max_detections=10))
    assert len(pred.boxes) == 10 and np.all(pred.scores > 0.5)
    assert np.all(np.diff(pred.scores) <= 0)


def test_lane_mask_thresholds_logits():
    pred = postprocess(raw([[0, 0, 1, 1]], [[-9, -9, -9]], lane_value=1.0), HD)
    assert pred.lane.min() == 1


def test_a_box_wholly_in_the_letterbox_border_is_dropped_and_depth_is_scaled():
    boxes = [[10, 0, 50, 10], [10, 100, 50, 140]]  # the first lies in the top border (rows 0..12)
    pred = postprocess(raw(boxes, [[4, -9, -9], [4, -9, -9]]), HD, depth_scale=1.5)
    assert len(pred.boxes) == 1 and pred.boxes[0] == pytest.approx([20, 176, 100, 256])
    assert np.allclose(pred.depth, 15.0)


def test_preprocess_handles_gray_bgra_and_normalises():
    frame = np.full((720, 1280, 3), 128, np.uint8)
    x = preprocess(frame, (384, 640))
    assert x.shape == (3, 384, 640) and x.dtype == np.float32
    assert x[0, 20, 0] == pytest.approx((128 - MEAN[0]) / STD[0])
    assert np.abs(x[:, :12]).max() < 0.02 and np.abs(x[:, -12:]).max() < 0.02  # mean-colour border
    assert np.allclose(preprocess(frame[..., 0], (384, 640)), x)
    bgra = np.concatenate([frame, np.full((720, 1280, 1), 255, np.uint8)], 2)
    assert np.allclose(preprocess(bgra, (384, 640)), x)
    with pytest.raises(ValueError, match="shape"):
        preprocess(np.zeros((10, 10, 2), np.uint8), (384, 640))
