"""The ``kitti-depth`` reader: benchmark PNGs read exactly, LiDAR projected where they are missing,
the three PATH forms and ``depth_root``, bad files refused by name."""

from __future__ import annotations

import re
import shutil

import cv2
import numpy as np
import pytest

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.formats import open_reader
from edge_mtl.data.formats.kitti_calib import project_depth, velo_to_image
from edge_mtl.data.formats.kitti_depth import KittiDepthReader

from .make_kitti import (
    CAR_DIMENSIONS,
    DATE,
    DRIVE,
    calibration,
    car_label,
    velodyne_points,
    write_kitti_depth,
)

GT = ("proj_depth", "groundtruth", "image_02")


def gt_path(root, frame: int):
    return root.joinpath(DATE, DRIVE, *GT, f"{frame:010d}.png")


def test_benchmark_pngs_are_read_exactly_and_lidar_fills_the_frames_without_one(tmp_path):
    root = write_kitti_depth(tmp_path / "raw", frames=4)
    stored = np.zeros((64, 128), np.uint16)
    stored[10, 20], stored[63, 127], stored[0, 0] = 2560, 65535, 1  # 10 m, the largest, 1/256 m
    cv2.imwrite(str(gt_path(root, 1)), stored)
    reader = open_reader(f"kitti-depth:{root}")
    assert isinstance(reader, KittiDepthReader) and len(reader) == 4 and reader.left_out == 0
    drive = root / DATE / DRIVE
    assert [reader.source(i) for i in range(4)] == [
        str(drive / "velodyne_points" / "data" / "0000000000.bin"), str(gt_path(root, 1)),
        str(gt_path(root, 2)), str(drive / "velodyne_points" / "data" / "0000000003.bin")]
    sample = reader[1]
    assert sample.name == f"{DRIVE}/0000000001"
    assert sample.has_label == {"det": False, "lane": False, "depth": True}
    assert sample.depth.dtype == np.float32 and np.count_nonzero(sample.depth) == 3
    assert (sample.depth[10, 20], sample.depth[63, 127], sample.depth[0, 0]) == (10.0, 65535 / 256, 1 / 256)
    cam = sample.camera
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.mount_height) == \
        pytest.approx((102.4, 102.4, 63.5, 31.5, 1.65))
    # frame 0 has no PNG: its scan through P_rect_02 @ R_rect_00 @ [R|T]
    c = calibration(128, 64)
    expected = project_depth(velodyne_points(0, 128, 64), velo_to_image(c["P2"], c["R_rect"],
                                                                        c["Tr_velo_to_cam"]), (64, 128))
    assert np.array_equal(reader[0].depth, expected)
    car = car_label(0, 128, 64)
    x1, y1, x2, y2 = (round(float(v)) for v in car[4:8])
    inside = expected[y1:y2 + 1, x1:x2 + 1]
    assert np.median(inside[inside > 0]) == pytest.approx(float(car[13]) - CAR_DIMENSIONS[2] / 2 + 0.003,
                                                          abs=1e-3)


def test_without_lidar_fallback_the_frames_lacking_ground_truth_are_left_out(tmp_path):
    root = write_kitti_depth(tmp_path / "raw", frames=4)
    reader = KittiDepthReader(root, lidar_fallback=False)
    assert len(reader) == 2 and reader.left_out == 2
    assert [reader[i].name for i in range(2)] == [f"{DRIVE}/0000000001", f"{DRIVE}/0000000002"]
    scans = root / DATE / DRIVE / "velodyne_points"
    shutil.rmtree(scans)
    assert (len(KittiDepthReader(root)), KittiDepthReader(root).left_out) == (2, 2)
    with pytest.raises(DatasetError, match="option lidar_fallback must be true or false"):
        KittiDepthReader(root, lidar_fallback=1)


def test_the_raw_root_a_date_folder_and_a_drive_folder_read_the_same_frames(tmp_path):
    root = write_kitti_depth(tmp_path / "raw", frames=3)
    names = [[r[i].name for i in range(len(r))]
             for r in (KittiDepthReader(p) for p in (root, root / DATE, root / DATE / DRIVE))]
    assert names[0] == names[1] == names[2] == [f"{DRIVE}/{i:010d}" for i in range(3)]
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path}: not a kitti-depth dataset")):
        KittiDepthReader(tmp_path)
    with pytest.raises(DatasetError, match="benchmark's own folders hold no images"):
        KittiDepthReader(root / DATE / DRIVE / "proj_depth")


def test_depth_root_holds_the_ground_truth_and_chooses_the_drives(tmp_path):
    bench = tmp_path / "data_depth_annotated"
    root = write_kitti_depth(tmp_path / "raw", frames=4, depth_root=bench)
    other = root / DATE / f"{DATE}_drive_0002_sync"  # a raw drive the benchmark split does not hold
    shutil.copytree(root / DATE / DRIVE, other)
    assert len(KittiDepthReader(root)) == 8  # no depth_root: every drive, all from LiDAR here
    for depth_root in (bench, bench / "train"):
        reader = KittiDepthReader(root, depth_root=depth_root)
        assert len(reader) == 4 and {reader[i].name.split("/")[0] for i in range(4)} == {DRIVE}
        assert reader.source(1) == str(bench.joinpath("train", DRIVE, *GT, "0000000001.png"))
    only_gt = KittiDepthReader(root, depth_root=bench / "train", lidar_fallback=False)
    assert len(only_gt) == 2 and only_gt.left_out == 2
    with pytest.raises(DatasetError, match="option depth_root must be a folder path"):
        KittiDepthReader(root, depth_root=3)
    with pytest.raises(DatasetError, match="depth_root not found"):
        KittiDepthReader(root, depth_root=tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no frame has a depth ground-truth PNG or a Velodyne scan under"):
        KittiDepthReader(root, depth_root=root)


def test_bad_calibration_ground_truth_scans_and_images_fail_their_sample_by_name(tmp_path):
    root = write_kitti_depth(tmp_path / "raw", frames=4)
    date = root / DATE
    velo = date / "calib_velo_to_cam.txt"
    velo_text = velo.read_text()
    velo.write_text("".join(s for s in velo_text.splitlines(True) if not s.startswith("T:")))
    reader = KittiDepthReader(root)
    with pytest.raises(DatasetError, match=re.escape(f"{velo}: calibration has no T")):
        reader[0]
    assert reader[1].depth is not None  # ground-truth frames need no Velodyne calibration
    cv2.imwrite(str(gt_path(root, 2)), np.zeros((64, 128), np.uint8))
    with pytest.raises(DatasetError, match=re.escape(f"{gt_path(root, 2)}: depth ground truth must be a "
                                                     "single-channel uint16 PNG")):
        reader[2]
    scan = date / DRIVE / "velodyne_points" / "data" / "0000000003.bin"
    scan.write_bytes(scan.read_bytes()[:-4])
    velo.write_text(velo_text)
    with pytest.raises(DatasetError, match=re.escape(f"{scan}: Velodyne scan is")):
        reader[3]
    cam = date / "calib_cam_to_cam.txt"
    text = cam.read_text()
    cam.write_text(text.replace("S_rect_02: 1.28", "S_rect_02: 1.30"))
    with pytest.raises(DatasetError, match=r"image is 128x64 but S_rect_02 .* says 130x64 .*rectified _sync"):
        reader[1]
    cam.write_text("\n".join(s for s in text.splitlines() if not s.startswith("P_rect_02")))
    with pytest.raises(DatasetError, match=re.escape(f"{cam}: calibration has no P_rect_02")):
        reader[1]
    (date / DRIVE / "image_02" / "data" / "0000000001.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    cam.write_text(text)
    with pytest.raises(DatasetError, match=re.escape("0000000001.png: truncated PNG")):
        reader[1]
