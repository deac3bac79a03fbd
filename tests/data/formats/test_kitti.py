"""The ``kitti`` and ``kitti-tracking`` readers and the shared Velodyne projection: label lines parsed
exactly, types mapped, points landing at their pixel with their depth, bad files refused by name,
and on real KITTI frames the LiDAR depth inside car boxes agreeing with the labelled distances."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.formats import open_reader
from edge_mtl.data.formats.kitti import KittiObject, KittiReader, KittiTrackingReader
from edge_mtl.data.formats.kitti_calib import (
    P2_KEYS,
    calib_matrix,
    load_velodyne,
    project_depth,
    read_calib,
    velo_to_image,
)
from tests.helpers import SHARED_DATA

from .make_kitti import (
    CAR_DIMENSIONS,
    car_label,
    object_calib_text,
    tracking_calib_text,
    write_kitti,
    write_kitti_tracking,
)

_HERE = Path(__file__).resolve()
# shared/ beside the checkout (or inside it, where a copy of the checkout carries one)
REAL = SHARED_DATA / "real_dev" / "kitti_tracking"

def raises(message: str):
    """pytest.raises for a DatasetError whose message holds ``message`` verbatim."""
    return pytest.raises(DatasetError, match=re.escape(message))


# -- the projection -----------------------------------------------------------------------------

TR = np.array([[0, -1, 0, 0.02], [0, 0, -1, -0.08], [1, 0, 0, -0.27]], float)  # Velodyne -> camera 0
A = 0.2  # a rectifying rotation about x, large enough that applying it in the wrong place shows
R_RECT = np.array([[1, 0, 0], [0, math.cos(A), -math.sin(A)], [0, math.sin(A), math.cos(A)]])
T2 = np.array([0.06, 0.0, 0.5])  # camera 2's centre in rectified camera-0 coordinates
K = np.array([[100.0, 0, 40], [0, 100.0, 20], [0, 0, 1]])
P2 = np.hstack([K, (K @ T2)[:, None]])  # as KITTI writes P2 = K [I | t]
SIZE = (40, 80)


def velo_point(cam2_xyz) -> np.ndarray:
    """The Velodyne point seen at ``cam2_xyz`` in camera 2's rectified frame (by the inverse chain)."""
    r, tr = np.eye(4), np.eye(4)
    r[:3, :3], tr[:3] = R_RECT, TR
    rect0 = np.append(np.asarray(cam2_xyz, float) - T2, 1.0)
    return (np.linalg.inv(r @ tr) @ rect0)[:3]


def test_a_point_lands_at_its_pixel_with_its_rectified_depth():
    # camera 2 sees (1.0, 0.5, 10.0): u = 100 * 1 / 10 + 40, v = 100 * 0.5 / 10 + 20, z = 10
    depth = project_depth(velo_point([1.0, 0.5, 10.0])[None], velo_to_image(P2, R_RECT, TR), SIZE)
    assert depth.dtype == np.float32 and depth.shape == SIZE
    assert np.flatnonzero(depth).tolist() == [25 * 80 + 50]
    assert depth[25, 50] == pytest.approx(10.0, abs=1e-5)


def test_the_nearest_point_of_a_pixel_wins_whatever_the_order():
    far, near = velo_point([2.0, 1.0, 20.0]), velo_point([1.0, 0.5, 10.0])  # one ray, pixel (25, 50)
    beside = velo_point([1.1, 0.5, 10.0])  # u = 51
    m = velo_to_image(P2, R_RECT, TR)
    for points in ([far, near, beside], [near, far, beside], [beside, near, far]):
        depth = project_depth(np.array(points), m, SIZE)
        assert depth[25, 50] == pytest.approx(10.0, abs=1e-5)
        assert depth[25, 51] == pytest.approx(10.0, abs=1e-5)
        assert np.count_nonzero(depth) == 2


def test_points_behind_outside_or_not_finite_are_dropped_and_pixels_round_to_nearest():
    # at z = 10 in camera 2: u = 10 x + 40, v = 10 y + 20
    points = [velo_point(p) for p in (
        (-4.049, -2.049, 10.0),  # u, v = -0.49, -0.49 -> pixel (0, 0)
        (3.949, 1.949, 10.0),  # u, v = 79.49, 39.49 -> pixel (39, 79)
        (-4.06, 0.0, 10.0),  # u = -0.6 -> -1: outside
        (3.96, 0.0, 10.0),  # u = 79.6 -> 80: outside
        (1.0, 0.5, -10.0),  # behind the camera (its projection u = 30, v = 15 lies inside)
    )]
    points.append(np.array([np.nan, 0.0, 0.0]))
    depth = project_depth(np.array(points), velo_to_image(P2, R_RECT, TR), SIZE)
    assert sorted(zip(*np.nonzero(depth), strict=True)) == [(0, 0), (39, 79)]
    assert np.allclose(depth[[0, 39], [0, 79]], 10.0, atol=1e-5)


def test_calibration_files_are_read_in_both_spellings(tmp_path):
    obj, trk = tmp_path / "object.txt", tmp_path / "tracking.txt"
    obj.write_text(object_calib_text(128, 64))
    trk.write_text(tracking_calib_text(128, 64))
    a, b = read_calib(obj), read_calib(trk)
    assert {"P2", "R0_rect", "Tr_velo_to_cam"} <= set(a) and {"P2", "R_rect", "Tr_velo_cam"} <= set(b)
    keys = {"R": ("R0_rect", "R_rect"), "T": ("Tr_velo_to_cam", "Tr_velo_cam")}
    assert np.array_equal(calib_matrix(a, obj, keys["R"], (3, 3)), calib_matrix(b, trk, keys["R"], (3, 3)))
    assert np.array_equal(calib_matrix(a, obj, keys["T"], (3, 4)), calib_matrix(b, trk, keys["T"], (3, 4)))
    assert calib_matrix(a, obj, P2_KEYS, (3, 4))[0, 0] == pytest.approx(0.8 * 128)


def test_bad_calibration_and_velodyne_files_are_named(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text("calib_time: 09-Jan-2012 13:57:47\nP0: 1 0 0 0 0 1 0 0 0 0 1 0\nP2: 1 2 x\nR_rect 1 2\n")
    calib = read_calib(path)
    assert calib["calib_time"] == "09-Jan-2012 13:57:47"  # text, refused only when asked for
    with raises(f"{path}: calibration has no P3"):
        calib_matrix(calib, path, ("P3",), (3, 4))
    with raises(f"{path}: calibration P2 holds a value that is not a number"):
        calib_matrix(calib, path, P2_KEYS, (3, 4))
    with raises(f"{path}: calibration R_rect must be 9 finite numbers, got 2"):
        calib_matrix(calib, path, ("R0_rect", "R_rect"), (3, 3))
    with pytest.raises(DatasetError, match="calibration file not found"):
        read_calib(tmp_path / "none.txt")
    scan = tmp_path / "000000.bin"
    np.zeros((3, 4), np.float32).tofile(scan)
    assert load_velodyne(scan).shape == (3, 4)
    scan.write_bytes(b"\0" * 20)
    with raises(f"{scan}: Velodyne scan is 20 bytes, not a multiple of 16"):
        load_velodyne(scan)


# -- kitti (object detection) -------------------------------------------------------------------


def car_face_depth(fields: list[str]) -> float:
    """The depth of a fixture car's near face in camera 2's frame (the car is seen from behind)."""
    return float(fields[13]) - CAR_DIMENSIONS[2] / 2 + 0.003  # P2's z offset


def test_object_frames_read_boxes_ignore_regions_intrinsics_and_lidar_depth(tmp_path):
    root = write_kitti(tmp_path / "kitti", num=2)
    reader = open_reader(f"kitti:{root}")
    assert isinstance(reader, KittiReader) and len(reader) == 2
    assert reader.source(1) == str(root / "training" / "label_2" / "000001.txt")
    sample = reader[1]
    car = car_label(1, 128, 64)
    assert sample.name == "000001" and sample.has_label == {"det": True, "lane": False, "depth": True}
    assert np.allclose(sample.boxes, [[float(v) for v in car[4:8]], [2.0, 19.2, 9.0, 38.4]])
    assert sample.classes.tolist() == [0, 2]  # Car -> car, Pedestrian -> pedestrian
    assert np.allclose(sample.ignore, [[96.0, 20.0, 108.8, 40.0], [51.2, 25.0, 64.0, 30.0]])
    cam = sample.camera
    assert (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy, cam.mount_height) == \
        pytest.approx((128, 64, 102.4, 102.4, 63.5, 31.5, 1.65))
    x1, y1, x2, y2 = (round(v) for v in sample.boxes[0])
    inside = sample.depth[y1:y2 + 1, x1:x2 + 1]
    assert np.median(inside[inside > 0]) == pytest.approx(car_face_depth(car), abs=1e-3)
    assert sample.depth.min() == 0 and sample.depth.max() < 41


def test_label_lines_parse_exactly_and_every_type_is_mapped(tmp_path):
    root = write_kitti(tmp_path / "kitti", num=1)
    lines = ["Car 0.00 0 -1.58 10.00 20.00 30.50 40.25 1.50 1.60 3.90 1.00 1.65 12.00 -1.57",
             "Van 0.50 1 0.1 1 2 3 4 2.0 1.8 4.5 -2.0 1.6 20.0 0.2",
             "Truck 0 0 0 5 6 7 8 3 2.5 9 0 1.7 30 0",
             "Pedestrian 0 0 0 11 12 13 14 1.7 0.6 0.8 1 1.6 9 0",
             "Person_sitting 0 3 0 15 16 17 18 1.2 0.6 0.8 1 1.6 9 0",
             "Cyclist 0 0 0 20 21 22 23 1.7 0.6 1.8 1 1.6 9 0",
             "Tram 0 0 0 24 25 26 27 3.5 2.5 15 1 1.6 40 0",
             "Misc 0 0 0 28 29 30 31 1 1 1 1 1.6 9 0",
             "DontCare -1 -1 -10 32 33 34 35 -1 -1 -1 -1000 -1000 -1000 -10",
             "Bus 0 0 0 36 37 38 39 3 2.5 12 0 1.7 30 0",  # not a KITTI type: dropped
             "", "Car 0 0 0 40 41 42 43 1.5 1.6 3.9 0 1.6 25 0 0.875"]  # a result line, with score
    (root / "training" / "label_2" / "000000.txt").write_text("\n".join(lines) + "\n")
    reader = KittiReader(root / "training")
    first = reader.objects(0)[0]
    assert first == KittiObject(type="Car", truncated=0.0, occluded=0, alpha=-1.58,
                                box=(10.0, 20.0, 30.5, 40.25), dimensions=(1.5, 1.6, 3.9),
                                location=(1.0, 1.65, 12.0), rotation_y=-1.57)
    assert reader.objects(0)[-1].score == 0.875 and reader.objects(0)[1].occluded == 1
    sample = reader[0]
    assert sample.boxes.tolist() == [[10, 20, 30.5, 40.25], [1, 2, 3, 4], [5, 6, 7, 8], [11, 12, 13, 14],
                                     [15, 16, 17, 18], [40, 41, 42, 43]]
    assert sample.classes.tolist() == [0, 0, 1, 2, 2, 0]
    assert sample.ignore.tolist() == [[20, 21, 22, 23], [24, 25, 26, 27], [28, 29, 30, 31], [32, 33, 34, 35]]

    mapped = KittiReader(root, class_map={"Cyclist": "pedestrian", "Tram": "truck"})[0]
    assert mapped.boxes.tolist() == [[20, 21, 22, 23], [24, 25, 26, 27]]
    assert mapped.classes.tolist() == [2, 1] and mapped.ignore.shape == (0, 4)
    with pytest.raises(DatasetError, match="class_map values must be one of"):
        KittiReader(root, class_map={"Car": "vehicle"})


@pytest.mark.parametrize(("line", "message"), [
    ("Car 0 0 0 1 2 3 4 1.5 1.6 3.9 0 1.6", "expected 15 fields (16 with score), got 13"),
    ("Car 0 0 0 1 2 3 4 1.5 1.6 3.9 0 1.6 9 0 0.5 7", "expected 15 fields (16 with score), got 17"),
    ("Car 0 0 0 1 two 3 4 1.5 1.6 3.9 0 1.6 9 0", "field y1 'two' is not a number"),
    ("Car 0 0 0 1 2 3 4 1.5 1.6 3.9 0 1.6 nan 0", "field z 'nan' is not a finite number"),
    ("Car 0 0 0 1 2 3 4 1.5 1.6 3.9 0 1.6 9 0 high", "field score 'high' is not a number"),
])
def test_a_bad_label_line_fails_its_sample_naming_file_line_and_field(tmp_path, line, message):
    root = write_kitti(tmp_path / "kitti", num=2)
    label = root / "training" / "label_2" / "000001.txt"
    label.write_text("Car 0 0 0 1 2 3 4 1.5 1.6 3.9 0 1.6 9 0\n" + line + "\n")
    reader = KittiReader(root)
    assert reader[0].boxes.shape == (2, 4)
    with raises(f"{label}:2: {message}"):
        reader[1]


def test_bad_calibration_velodyne_or_missing_label_fail_their_sample_by_name(tmp_path):
    root = write_kitti(tmp_path / "kitti", num=3)
    train = root / "training"
    calib = train / "calib" / "000000.txt"
    calib.write_text("\n".join(s for s in calib.read_text().splitlines() if not s.startswith("P2")))
    (train / "velodyne" / "000001.bin").write_bytes(b"\0" * 33)
    (train / "label_2" / "000002.txt").unlink()
    reader = KittiReader(root)
    with raises(f"{calib}: calibration has no P2"):
        reader[0]
    scan = train / "velodyne" / "000001.bin"
    with raises(f"{scan}: Velodyne scan is 33 bytes"):
        reader[1]
    with raises(f"{train / 'label_2' / '000002.txt'}: label file not found"):
        reader[2]


def test_depth_is_unlabelled_without_velodyne_or_when_turned_off(tmp_path):
    root = write_kitti(tmp_path / "kitti", num=2)
    assert KittiReader(root, depth=False)[0].depth is None
    (root / "training" / "velodyne" / "000001.bin").unlink()
    reader = KittiReader(root)
    assert reader[0].depth is not None
    assert reader[1].has_label == {"det": True, "lane": False, "depth": False}
    with pytest.raises(DatasetError, match="option depth must be true or false"):
        KittiReader(root, depth="yes")
    no_velodyne = write_kitti(tmp_path / "plain", num=1, velodyne=False)
    assert KittiReader(no_velodyne)[0].depth is None


def test_folders_that_are_not_a_labelled_kitti_split_are_refused(tmp_path):
    root = write_kitti(tmp_path / "kitti", num=1)
    assert len(KittiReader(root / "training")) == len(KittiReader(root)) == 1
    testing = tmp_path / "kitti" / "testing"
    shutil.copytree(root / "training" / "image_2", testing / "image_2")
    with pytest.raises(DatasetError, match=rf"{testing}: has image_2/ but no label_2/ .*testing split"):
        KittiReader(testing)
    with raises(f"{tmp_path}: not a kitti dataset"):
        KittiReader(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        KittiReader(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="unknown reader option"):
        open_reader(f"kitti:{root}", {"kitti": {"sequences": ["0000"]}})


# -- kitti-tracking -----------------------------------------------------------------------------


def test_tracking_frames_read_and_a_frame_without_lines_has_zero_boxes(tmp_path):
    root = write_kitti_tracking(tmp_path / "tracking", frames=3)
    reader = open_reader(f"kitti-tracking:{root / 'training'}")
    assert isinstance(reader, KittiTrackingReader) and len(reader) == 6
    assert reader.source(4) == f"{root / 'training' / 'label_02' / '0001'}.txt frame 1"
    sample = reader[4]
    car = car_label(1, 128, 64)
    assert sample.name == "0001/000001"
    assert np.allclose(sample.boxes, [[float(v) for v in car[4:8]], [2.0, 19.2, 9.0, 38.4]])
    assert sample.classes.tolist() == [0, 2] and sample.ignore.shape == (2, 4)
    assert [o.track_id for o in reader.objects(4)] == [0, 1, 2, -1]
    x1, y1, x2, y2 = (round(v) for v in sample.boxes[0])
    inside = sample.depth[y1:y2 + 1, x1:x2 + 1]  # colon-less R_rect / Tr_velo_cam read
    assert np.median(inside[inside > 0]) == pytest.approx(car_face_depth(car), abs=1e-3)
    last = reader[5]
    assert last.boxes.shape == (0, 4) and last.classes.shape == (0,)
    assert last.has_label == {"det": True, "lane": False, "depth": True}


def test_both_calibration_spellings_give_the_same_depth_in_both_readers(tmp_path):
    tracking = write_kitti_tracking(tmp_path / "tracking", sequences=("0000",), frames=2)
    objects = write_kitti(tmp_path / "kitti", num=1)
    a = KittiTrackingReader(tracking)[0].depth
    (tracking / "training" / "calib" / "0000.txt").write_text(object_calib_text(128, 64))
    (objects / "training" / "calib" / "000000.txt").write_text(tracking_calib_text(128, 64))
    assert np.array_equal(KittiTrackingReader(tracking)[0].depth, a)
    assert np.array_equal(KittiReader(objects)[0].depth, a)


def test_the_sequences_option_selects_and_refuses_by_name(tmp_path):
    root = write_kitti_tracking(tmp_path / "tracking", sequences=("0000", "0001", "0002"), frames=2)
    assert [f for f in KittiTrackingReader(root, sequences=[1, "0002"]).frames] == \
        [("0001", 0), ("0001", 1), ("0002", 0), ("0002", 1)]
    with pytest.raises(DatasetError, match=r"no sequence \['0007'\]"):
        KittiTrackingReader(root, sequences=["7"])
    with pytest.raises(DatasetError, match="option sequences must be a list"):
        KittiTrackingReader(root, sequences="0001")
    with pytest.raises(DatasetError, match="is not a sequence number"):
        KittiTrackingReader(root, sequences=["a"])


def test_a_bad_tracking_line_fails_its_frame_and_a_bad_frame_field_its_sequence(tmp_path):
    root = write_kitti_tracking(tmp_path / "tracking", frames=3)
    label0, label1 = (root / "training" / "label_02" / f"{s}.txt" for s in ("0000", "0001"))
    lines = label0.read_text().splitlines()
    lines[5] = "1 0 Car 0 0 0 1 2 3 4 1.5 1.6 3.9 0 1.6 9"  # 16 fields
    label0.write_text("\n".join(lines) + "\n")
    lines = label1.read_text().splitlines()
    lines[1] = "x " + lines[1].split(" ", 1)[1]
    label1.write_text("\n".join(lines) + "\n")
    reader = KittiTrackingReader(root)
    assert reader[0].boxes.shape == (2, 4) and reader[2].boxes.shape == (0, 4)
    with raises(f"{label0}:6: expected 17 fields (18 with score), got 16"):
        reader[1]
    for i in (3, 4, 5):
        with raises(f"{label1}:2: field frame 'x' is not a frame number"):
            reader[i]
    lines[1] = "0 0.5 Car 0 0 0 1 2 3 4 1.5 1.6 3.9 0 1.6 9 0"
    label1.write_text("\n".join(lines) + "\n")
    with raises(f"{label1}:2: field track_id '0.5' is not an integer"):
        KittiTrackingReader(root)[3]  # frame 0 of 0001 holds that line
    label1.unlink()
    with raises(f"{label1}: label file not found"):
        KittiTrackingReader(root)[3]


def test_tracking_folders_without_labels_are_refused(tmp_path):
    root = write_kitti_tracking(tmp_path / "tracking", frames=1)
    shutil.rmtree(root / "training" / "label_02")
    with pytest.raises(DatasetError, match="has image_02/ but no label_02/"):
        KittiTrackingReader(root)


# -- real frames --------------------------------------------------------------------------------

MIN_POINTS = 20  # LiDAR pixels inside a box for its median to be a measurement


def depth_span(obj: KittiObject) -> tuple[float, float]:
    """The nearest and farthest z of the object's 3-D box corners."""
    _, width, length = obj.dimensions
    reach = abs(math.sin(obj.rotation_y)) * length / 2 + abs(math.cos(obj.rotation_y)) * width / 2
    return obj.location[2] - reach, obj.location[2] + reach


@pytest.mark.skipif(not REAL.is_dir(), reason="real KITTI tracking frames (../shared) not present")
def test_real_lidar_depth_agrees_with_the_labelled_distance_of_each_visible_car():
    """On sequence 0001, frames 0 and 1, the median projected LiDAR depth inside each fully or
    partly visible car's box (its central 80 %: the corners of a box frame background) lies within
    the z span of the label's 3-D box, and within 10 % of the label's z where that span allows it
    (the LiDAR sees the car's near face, up to half a length nearer than its centre). Boxes cut
    by the image border are left out: they frame only part of the car.

    Measured (median, label z): frame 0 car 1 11.68 / 13.17 (span 11.28-15.06), car 3 22.63 /
    23.71 (-4.6 %), car 4 44.78 / 46.49 (-3.7 %), car 5 48.26 / 50.00 (-3.5 %); frame 1 car 1
    10.46 / 12.06 (span 10.17-13.95), car 3 21.37 / 22.59 (-5.4 %), car 4 43.74 / 45.38 (-3.6 %),
    car 5 47.19 / 48.89 (-3.5 %).
    """
    reader = KittiTrackingReader(REAL)
    assert len(reader) == 2
    spans = within_ten_percent = 0
    for index in range(len(reader)):
        sample = reader[index]
        h, w = sample.depth.shape
        for obj in reader.objects(index):
            x1, y1, x2, y2 = obj.box
            if obj.type != "Car" or obj.occluded > 1 or x1 < 1 or y1 < 1 or x2 > w - 2 or y2 > h - 2:
                continue
            mx, my = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
            patch = sample.depth[math.ceil(y1 + my):math.floor(y2 - my) + 1,
                                 math.ceil(x1 + mx):math.floor(x2 - mx) + 1]
            values = patch[patch > 0]
            if len(values) < MIN_POINTS:
                continue
            median, z = float(np.median(values)), obj.location[2]
            near, far = depth_span(obj)
            where = f"frame {index} track {obj.track_id}: median {median:.2f} m, label z {z:.2f} m"
            assert 0.9 * near <= median <= 1.1 * far, where
            spans += 1
            if near >= 0.9 * z:
                assert abs(median - z) <= 0.1 * z, where
                within_ten_percent += 1
    assert spans == 8 and within_ten_percent == 6
