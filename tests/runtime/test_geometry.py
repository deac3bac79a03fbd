"""The one camera geometry: letterbox / crop of any frame size, labels and depth following."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_mtl.runtime.geometry import PAD_BGR, fit_geometry, place, to_source
from edge_mtl.runtime.preprocess import MEAN, preprocess

SIZE = (384, 640)


@pytest.mark.parametrize(("frame", "resized", "offset"), [
    ((720, 1280), (360, 640), (0, 12)),      # 16:9 dash cam
    ((540, 960), (360, 640), (0, 12)),       # 960x540 dash cam: the same picture
    ((375, 1242), (193, 640), (0, 95)),      # KITTI
    ((590, 1640), (230, 640), (0, 77)),      # CULane
    ((480, 640), (384, 512), (64, 0)),       # 4:3: border left and right
])
def test_letterbox_keeps_the_aspect_ratio_and_centres_the_frame(frame, resized, offset):
    g = fit_geometry(frame, SIZE)
    assert g.resized == resized and g.offset == offset
    sx, sy = g.scale
    assert abs(sx - sy) / sx < 0.01  # one scale for both axes, up to whole-pixel rounding: no squash


def test_crop_covers_the_input_and_cuts_the_centre():
    g = fit_geometry((375, 1242), SIZE, "crop")
    assert g.resized == (384, 1272) and g.offset == (-316, 0) and g.content() == (0, 0, 640, 384)
    frame = np.tile(np.arange(1242, dtype=np.uint16)[None, :], (375, 1)).astype(np.float32)
    cut = place(frame, g, cv2.INTER_NEAREST)
    assert cut.shape == SIZE
    assert cut[0, 0] == pytest.approx(316 / 1.024, abs=2) and cut[0, -1] == pytest.approx(955 / 1.024, abs=2)


def test_boxes_round_trip_and_the_border_is_the_mean_colour():
    g = fit_geometry((375, 1242), SIZE)
    boxes = np.array([[100, 150, 300, 250], [0, 0, 1242, 375]], np.float32)
    there = g.boxes_to_input(boxes)
    assert there[1] == pytest.approx([0, 95, 640, 288], abs=0.5)
    np.testing.assert_allclose(g.boxes_to_source(there), boxes, atol=1e-3)
    x = preprocess(np.zeros((375, 1242, 3), np.uint8), SIZE)
    assert np.abs(x[:, :95]).max() < 0.02 and np.abs(x[:, 288:]).max() < 0.02  # mean colour -> ~0
    assert x[0, 150, 300] == pytest.approx(-MEAN[0] / 58.395, rel=1e-3)  # the black frame itself
    assert PAD_BGR == (104, 116, 124)


def test_depth_scale_follows_the_focal_length_and_the_resize():
    hd, kitti = fit_geometry((720, 1280), SIZE), fit_geometry((375, 1242), SIZE)
    assert hd.depth_scale(1024.0, 512.0) == pytest.approx(1.0)  # 1024 px at 1280 -> 512 px at 640
    assert hd.depth_scale(2048.0, 512.0) == pytest.approx(2.0)  # a longer lens: the same size is farther
    assert kitti.depth_scale(721.5377, 512.0) == pytest.approx(721.5377 * 640 / 1242 / 512, rel=1e-6)


def test_to_source_inverts_place_and_zeroes_what_crop_cut_away():
    frame = np.random.default_rng(0).uniform(0, 1, (375, 1242)).astype(np.float32)
    g = fit_geometry((375, 1242), SIZE)
    smooth = cv2.GaussianBlur(frame, (0, 0), 8)
    back = to_source(place(smooth, g, cv2.INTER_AREA), g, cv2.INTER_LINEAR)
    assert back.shape == frame.shape
    assert np.abs(back - smooth)[4:-4, 4:-4].max() < 0.02
    c = fit_geometry((375, 1242), SIZE, "crop")
    out = to_source(np.ones((192, 320), np.float32), c, cv2.INTER_LINEAR)
    assert (out[:, :300] == 0).all() and (out[:, 940:] == 0).all() and (out[:, 320:920] == 1).all()


def test_a_bad_mode_or_frame_is_refused():
    with pytest.raises(ValueError, match="squash"):
        fit_geometry((720, 1280), SIZE, "squash")
    with pytest.raises(ValueError, match="0x720"):
        fit_geometry((720, 0), SIZE)
