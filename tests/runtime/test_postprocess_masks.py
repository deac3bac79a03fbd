"""Post-processing's dense outputs, pinned against the plain formulas (camera-pixel contract)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_mtl.runtime.geometry import fit_geometry
from edge_mtl.runtime.postprocess import PostprocessConfig, postprocess


def test_lane_and_depth_are_the_upsampled_maps_in_camera_pixels():
    """1280x720 letterboxed into 384x640 fills input rows 12..372: output rows 6..186 of a
    stride-2 map (3..93 of a stride-4 one) are resized to the frame, the border left out."""
    rng = np.random.default_rng(5)
    lane_logits = rng.normal(0, 2, (1, 192, 320)).astype(np.float32)
    depth = rng.uniform(0.5, 120, (1, 96, 160)).astype(np.float32)
    raw = {"det_logits": np.full((10, 3), -9, np.float32), "det_boxes": np.zeros((10, 4), np.float32),
           "lane_logits": lane_logits, "depth": depth}
    for threshold in (0.5, 0.8):
        pred = postprocess(raw, fit_geometry((720, 1280), (384, 640)),
                           PostprocessConfig(lane_threshold=threshold))
        up = cv2.resize(lane_logits[0, 6:186], (1280, 720), interpolation=cv2.INTER_LINEAR)
        want = (1 / (1 + np.exp(-up.astype(np.float64))) > threshold).astype(np.uint8)
        assert pred.lane.dtype == np.uint8 and pred.lane.shape == (720, 1280)
        assert set(np.unique(pred.lane).tolist()) == {0, 1}
        # the logit threshold equals the probability threshold (up to float ties at the boundary)
        assert (pred.lane != want).mean() < 1e-5
    assert pred.lane.sum() < (up > 0).sum()  # 0.8 is stricter than 0.5
    want_depth = cv2.resize(depth[0, 3:93], (1280, 720), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(pred.depth, want_depth)
    assert pred.depth.dtype == np.float32


def test_half_size_maps_are_the_full_size_maps_shrunk():
    """``map_scale`` 0.5: the same mapping onto a half-size frame, letterbox and crop; boxes stay
    in source pixels."""
    rng = np.random.default_rng(6)
    smooth = cv2.GaussianBlur(rng.normal(0, 1, (192, 320)), (0, 0), 4)
    raw = {"det_logits": np.array([[4.0, -9, -9]] + [[-9, -9, -9]] * 9, np.float32),
           "det_boxes": np.array([[100, 50, 300, 200]] + [[0, 0, 0, 0]] * 9, np.float32),
           # smooth fields: a few edges, where full and half size may sample either side
           "lane_logits": (20 * smooth)[None].astype(np.float32),
           "depth": cv2.GaussianBlur(rng.uniform(0.5, 120, (96, 160)), (0, 0), 2)[None].astype(np.float32)}
    for mode in ("letterbox", "crop"):
        geometry = fit_geometry((720, 1280), (384, 640), mode)
        full, half = postprocess(raw, geometry), postprocess(raw, geometry, map_scale=0.5)
        assert half.lane.shape == half.depth.shape == (360, 640)
        np.testing.assert_array_equal(half.boxes, full.boxes)
        # a half-size map samples the maps at the centres of 2x2 source pixels
        shrunk = cv2.resize(full.depth, (640, 360), interpolation=cv2.INTER_AREA)
        np.testing.assert_allclose(half.depth, shrunk, rtol=0.01, atol=0.1)
        assert (half.lane != cv2.resize(full.lane, (640, 360), interpolation=cv2.INTER_NEAREST)).mean() < 0.01
        # the camera's maps: lanes at half size, depth at a quarter (its own scale)
        quarter = postprocess(raw, geometry, map_scale=0.5, depth_map_scale=0.25)
        assert quarter.lane.shape == (360, 640) and quarter.depth.shape == (180, 320)
        np.testing.assert_array_equal(quarter.lane, half.lane)
        shrunk = cv2.resize(full.depth, (320, 180), interpolation=cv2.INTER_AREA)
        # (crop cuts 40 source columns a side: the quarter map's column 10 straddles that border)
        np.testing.assert_allclose(quarter.depth[:, 11:-11], shrunk[:, 11:-11], rtol=0.02, atol=0.2)
    with pytest.raises(ValueError, match="map_scale"):
        postprocess(raw, geometry, map_scale=0)
    with pytest.raises(ValueError, match="depth_map_scale"):
        postprocess(raw, geometry, depth_map_scale=1.5)
