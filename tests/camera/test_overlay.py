from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from edge_mtl.camera.overlay import (
    box_distance,
    depth_colormap,
    draw_overlay,
    hud_lines,
    tint_lanes,
)
from edge_mtl.types import Prediction

H, W = 180, 320
BOX = (100.0, 40.0, 180.0, 120.0)  # xyxy; lower-middle part: x 120-160, y 80-112


def scene_depth() -> np.ndarray:
    """Background 50 m; the box's upper half 3 m (an occluder), its lower part 12 m."""
    depth = np.full((H, W), 50.0, np.float32)
    depth[40:80, 100:180] = 3.0
    depth[80:120, 100:180] = 12.0
    return depth


def prediction(lane: np.ndarray | None = None) -> Prediction:
    if lane is None:
        lane = np.zeros((H, W), np.uint8)
        lane[150:170, 20:60] = 1
    return Prediction(boxes=np.array([BOX], np.float32), scores=np.array([0.87], np.float32),
                      classes=np.array([0], np.int64), lane=lane, depth=scene_depth())


def test_distance_reads_the_depth_in_the_lower_middle_of_the_box():
    depth = scene_depth()
    assert box_distance(depth, BOX) == 12.0
    depth[:, :100] = 0.5  # outside the box: no effect
    depth[120:, :] = 0.7
    assert box_distance(depth, BOX) == 12.0
    depth[80:112, 120:160] = 7.0  # inside the region: followed
    assert box_distance(depth, BOX) == 7.0


def test_distance_is_robust_and_works_on_a_smaller_depth_map():
    depth = scene_depth()
    depth[80:112, 120:160:4] = 90.0  # a quarter of the region is background seen through
    assert box_distance(depth, BOX) == 12.0
    small = cv2.resize(scene_depth(), (W // 4, H // 4), interpolation=cv2.INTER_NEAREST)
    assert box_distance(small, BOX, frame_size=(H, W)) == 12.0
    assert math.isnan(box_distance(np.zeros((H, W), np.float32), BOX))
    assert box_distance(scene_depth(), (300.0, 170.0, 400.0, 250.0)) == 50.0  # clipped to the image


def test_lane_tint_touches_only_marking_pixels():
    image = np.full((H, W, 3), 200, np.uint8)
    lane = np.zeros((H, W), np.uint8)
    lane[100:104, 50:250] = 1
    before = image.copy()
    tint_lanes(image, lane)
    changed = np.any(image != before, axis=2)
    assert np.array_equal(changed, lane > 0)
    tint_lanes(image, np.zeros((H, W), np.uint8))  # no marking: nothing to do
    white = np.full((H, W, 3), 255, np.uint8)
    tint_lanes(white, lane)
    assert np.all(white[lane > 0][:, 1] < 255)  # even white paint shows the tint
    small = np.zeros((H // 2, W // 2), np.uint8)
    small[50:52, 25:125] = 1  # a mask at another resolution is scaled to the frame
    image = before.copy()
    tint_lanes(image, small)
    assert np.any(image[100:104, 50:250] != 200) and np.all(image[:90] == 200)


@pytest.mark.parametrize("size", [(H // 2, W // 2), (H // 4, W // 4), (97, 131)])
def test_a_smaller_lane_mask_tints_as_its_full_size_resize(size):
    """Only the mask's band of rows is enlarged, pixel for pixel as resizing all of it would."""
    small = (np.random.default_rng(size[0]).random(size) > 0.97).astype(np.uint8)
    small[: size[0] // 3] = 0
    image = np.random.default_rng(1).integers(0, 255, (H, W, 3), dtype=np.uint8)
    want = image.copy()
    tint_lanes(want, cv2.resize(small, (W, H), interpolation=cv2.INTER_NEAREST))
    tint_lanes(image, small)
    np.testing.assert_array_equal(image, want)


def test_overlay_draws_boxes_lanes_inset_and_hud():
    image = np.full((H, W, 3), 100, np.uint8)
    pred = prediction()
    out = draw_overlay(image, pred, hud_lines(29.97, {"pre": 2.0, "infer": 20.0, "post": 1.0}, "ort"))
    assert out is image
    assert np.any(image[40, 110:170] != 100) and np.any(image[60, 99:102] != 100)  # box edges
    assert np.all(image[150:170, 20:60] != (100, 100, 100))  # lane tint
    assert np.any(image[: H // 4, W - W // 4:] != 100)  # depth inset (top right)
    assert np.any(image[:30, :40] != 100)  # HUD (top left)
    assert np.all(image[100:140, 250:300] == 100)  # elsewhere untouched
    inside = image[70:78, 125:155]
    assert np.all(inside == 100)  # the box's inside stays visible


def test_overlay_handles_no_detections():
    pred = Prediction(boxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32),
                      classes=np.zeros(0, np.int64), lane=np.zeros((H, W), np.uint8),
                      depth=np.full((H // 4, W // 4), 20.0, np.float32))
    image = np.full((H, W, 3), 100, np.uint8)
    draw_overlay(image, pred)
    assert np.all(image[H // 2:] == 100)


def test_depth_colormap_is_log_scaled_near_warm_far_cool():
    depth = np.array([[1.0, 80.0, 0.0]], np.float32)
    colored = depth_colormap(depth, (1, 3))
    near, far, none = colored[0]
    assert near[2] > near[0] and far[0] > far[2]  # red for near, blue for far (BGR)
    assert none.tolist() == [0, 0, 0]


def test_hud_lines_show_fps_and_stage_ms():
    lines = hud_lines(29.97, {"capture": 1.0, "pre": 2.25, "infer": float("nan"), "draw": 0.5}, "trt")
    assert lines[0] == "FPS 30.0  trt"
    assert lines[1] == "capture 1.0  pre 2.2  draw 0.5 ms"
    assert hud_lines(None, {})[0] == "FPS --"


def test_depth_colormap_matches_opencv_turbo_on_every_level():
    """The cached TURBO table gives what ``cv2.applyColorMap`` gives, for all 256 levels."""
    near, far = 1.0, 80.0
    level = np.arange(257, dtype=np.float32).reshape(1, 257)
    depth = (far * np.exp(-(level + 0.5) * math.log(far / near) / 255.0)).astype(np.float32)  # -> metres
    depth[0, 256] = 0.0  # no depth: black
    colored = depth_colormap(depth, depth.shape)
    want_level = np.clip((math.log(far) - np.log(np.maximum(depth, 1e-3))) * (255.0 / math.log(far / near)),
                         0, 255).astype(np.uint8)
    want = cv2.applyColorMap(want_level, cv2.COLORMAP_TURBO)
    want[0, 256] = 0
    assert len(np.unique(want_level)) == 256  # every table entry is checked
    np.testing.assert_array_equal(colored, want)


def test_only_the_most_confident_boxes_are_labelled():
    """Every box is outlined; labels (a filled band in the class colour above the box) go to the
    ``max_labels`` highest scores."""
    from edge_mtl.camera.overlay import CLASS_COLORS

    wide, step = 700, 130  # labels are ~100 px wide: boxes far enough apart not to share one
    boxes = np.array([[10 + step * i, 60, 50 + step * i, 100] for i in range(5)], np.float32)
    scores = np.array([0.5, 0.9, 0.3, 0.8, 0.6], np.float32)
    pred = Prediction(boxes=boxes, scores=scores, classes=np.zeros(5, np.int64),
                      lane=np.zeros((H, wide), np.uint8), depth=np.full((H, wide), 20.0, np.float32))
    green = np.array(CLASS_COLORS[0], np.uint8)

    def labelled(image):
        return [i for i in range(5) if np.all(image[46, 11 + step * i] == green)]  # the band, no text

    def outlined(image):
        return [i for i in range(5) if np.all(image[80, 10 + step * i] == green)]

    for max_labels, want in ((2, [1, 3]), (3, [1, 3, 4]), (None, [0, 1, 2, 3, 4])):
        image = np.full((H, wide, 3), 100, np.uint8)
        draw_overlay(image, pred, depth_inset=False, max_labels=max_labels)
        assert labelled(image) == want and outlined(image) == [0, 1, 2, 3, 4]
