"""The camera loop's --calib: the focal length from KITTI, ROS, OpenCV and plain files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_mtl.camera.calib import focal_from_file
from tests.helpers import SHARED_DATA

P2 = "7.215377e+02 0 6.095593e+02 4.485728e+01 0 7.215377e+02 1.728540e+02 2.163791e-01 0 0 1 2.745884e-03"


def test_kitti_object_and_raw_calibration(tmp_path):
    obj = tmp_path / "000000.txt"
    obj.write_text(f"P0: {P2}\nP2: {P2}\nR0_rect: 1 0 0 0 1 0 0 0 1\n")
    assert focal_from_file(obj) == pytest.approx(721.5377)
    raw = tmp_path / "calib_cam_to_cam.txt"
    p_rect = P2.replace("7.215377e+02", "7.0e+02", 1)
    raw.write_text(f"calib_time: 09-Jan-2012 13:57:47\nP_rect_02: {p_rect}\n")
    assert focal_from_file(raw) == pytest.approx(700.0)


def test_ros_opencv_and_plain_files(tmp_path):
    ros = tmp_path / "ost.yaml"
    ros.write_text("image_width: 1280\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
                   "  data: [912.5, 0, 640, 0, 910, 360, 0, 0, 1]\n")
    assert focal_from_file(ros) == 912.5
    fs_path = tmp_path / "opencv.yaml"
    fs = cv2.FileStorage(str(fs_path), cv2.FILE_STORAGE_WRITE)
    fs.write("camera_matrix", np.array([[1000.0, 0, 640], [0, 1000, 360], [0, 0, 1]]))
    fs.release()
    assert focal_from_file(fs_path) == 1000.0
    plain = tmp_path / "cam.json"
    plain.write_text('{"fx": 640.5}')
    assert focal_from_file(plain) == 640.5


def test_a_file_without_a_focal_is_named(tmp_path):
    bad = tmp_path / "cam.yaml"
    bad.write_text("width: 1280\n")
    with pytest.raises(ValueError, match=r"cam\.yaml: no fx and no camera matrix"):
        focal_from_file(bad)
    kitti = tmp_path / "calib.txt"
    kitti.write_text("P0: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(ValueError, match=r"calib\.txt: calibration has no P2 or P_rect_02"):
        focal_from_file(kitti)
    negative = tmp_path / "neg.json"
    negative.write_text('{"fx": -3}')
    with pytest.raises(ValueError, match="not a positive number"):
        focal_from_file(negative)


@pytest.mark.skipif(not (SHARED_DATA / "real_dev" / "kitti_tracking").is_dir(), reason="../shared absent")
def test_the_real_kitti_tracking_calibration():
    assert focal_from_file(SHARED_DATA / "real_dev" / "kitti_tracking" / "calib" / "0001.txt") == \
        pytest.approx(721.5377)
