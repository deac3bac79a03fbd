"""The synthetic world's geometry: boxes, lane masks and depth must agree exactly."""

from __future__ import annotations

import numpy as np
import pytest

from edge_mtl.data.drive import drive
from edge_mtl.data.world import MIN_BOX_HEIGHT, render_random

SEEDS = [0, 1, 2, 3]


@pytest.fixture(scope="module")
def frames():
    return [render_random(s) for s in SEEDS]


def test_render_is_deterministic_by_seed():
    a, b, c = render_random(5).sample, render_random(5).sample, render_random(6).sample
    assert np.array_equal(a.image, b.image) and np.array_equal(a.depth, b.depth)
    assert np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.image, c.image)


def test_sample_shapes_and_types(frames):
    for f in frames:
        s = f.sample
        assert s.image.shape == (720, 1280, 3) and s.image.dtype == np.uint8
        assert s.lane.shape == (720, 1280) and set(np.unique(s.lane)) <= {0, 1}
        assert s.depth.dtype == np.float32 and s.depth.shape == (720, 1280)
        assert len(s.boxes) == len(s.classes)
        assert np.all(s.boxes[:, 2] > s.boxes[:, 0])
        assert np.all(s.boxes[:, 3] - s.boxes[:, 1] >= MIN_BOX_HEIGHT)


def test_ground_depth_follows_the_plane(frames):
    for f in frames:
        s, sc, cam = f.sample, f.scene, f.sample.camera
        rows = np.arange(cam.height)
        yn = (rows + 0.5 - cam.cy) / cam.fy
        expected = cam.mount_height / (yn + sc.grade)
        col = 5  # left image edge: ground there unless a vehicle stands on it
        for r in rows[::37]:
            d = s.depth[r, col]
            if f.object_ids[r, col] < 0 and 0 < expected[r] < sc.background_depth:
                assert d == pytest.approx(expected[r], rel=1e-4)


def test_sky_is_invalid_and_ground_is_valid(frames):
    for f in frames:
        s = f.sample
        assert s.depth[0].max() == 0.0  # top row looks at the sky
        assert np.all(s.depth[-1] > 0)  # bottom row looks at the road
        assert s.depth.max() <= 120.0


def test_box_bottom_agrees_with_depth_on_the_ground(frames):
    """Back-projecting a box's bottom row onto the ground plane gives the vehicle's distance."""
    checked = 0
    for f in frames:
        s, sc, cam = f.sample, f.scene, f.sample.camera
        for box, k in zip(s.boxes, f.kept, strict=True):
            veh = sc.vehicles[k]
            if box[3] >= cam.height - 1:
                continue  # clipped at the image border
            z_from_row = cam.mount_height / ((box[3] - cam.cy) / cam.fy + sc.grade)
            # The box turns with the road (yaw); its nearest corner moves by at most this much.
            yaw = abs(np.arctan(np.tan(sc.heading) + sc.curvature * (veh.z + veh.size[2] / 2)))
            slack = 0.5 * veh.size[0] * np.sin(yaw) + 0.5 * veh.size[2] * (1 - np.cos(yaw)) + 0.02
            assert abs(z_from_row - veh.z) <= slack + 0.01 * veh.z
            # The depth map just above the box bottom, where visible, is that distance too.
            r, c = int(box[3]) - 2, int((box[0] + box[2]) / 2)
            if f.object_ids[r, c] == k:
                assert abs(s.depth[r, c] - veh.z) <= slack + 0.05 * veh.z
            checked += 1
    assert checked >= 5


def test_occlusion_by_depth(frames):
    """Wherever a vehicle is drawn, it is nearer than the ground/background behind it."""
    for f in frames:
        s, sc, cam = f.sample, f.scene, f.sample.camera
        yn = (np.arange(cam.height) + 0.5 - cam.cy) / cam.fy
        ground = cam.mount_height / np.maximum(yn + sc.grade, 1e-6)
        rows, cols = np.nonzero(f.object_ids >= 0)
        behind = np.where(yn[rows] + sc.grade > 1e-6, np.minimum(ground[rows], sc.background_depth),
                          sc.background_depth)
        assert np.all(s.depth[rows, cols] <= behind + 1e-3)


def test_lane_markings_lie_on_visible_ground(frames):
    for f in frames:
        s = f.sample
        marked = s.lane > 0
        assert marked.sum() > 500
        assert np.all(s.depth[marked] > 0)
        assert np.all(f.object_ids[marked] < 0)


def test_all_classes_appear():
    classes = set()
    for seed in range(12):
        classes |= set(render_random(seed).sample.classes.tolist())
    assert classes == {0, 1, 2}


def test_drive_is_temporally_coherent():
    frames = list(drive(seed=3, num_frames=3))
    a, b = (f.sample.image.astype(np.int16) for f in frames[:2])
    step = np.abs(a - b).mean()
    assert 0 < step < 12  # consecutive frames differ a little
    assert np.abs(a - render_random(99).sample.image.astype(np.int16)).mean() > step
    zs = [[v.z for v in f.scene.vehicles] for f in frames]
    assert zs[0] != zs[1] and len(zs[0]) == len(zs[1])
    assert frames[1].scene.travelled > frames[0].scene.travelled
