"""Writes tiny KITTI object, tracking and raw/depth-benchmark datasets for the reader tests.

Every frame shows one car whose label (2-D box, dimensions, location) and Velodyne points agree:
the points lie on the car's near face and on the road, in a calibration shaped like KITTI's
(Velodyne x forward / y left / z up, a small rectifying rotation, camera 2 offset from camera 0).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

CAR_DIMENSIONS = (1.5, 1.6, 3.9)  # height, width, length (m)
CAMERA_HEIGHT = 1.65
DATE = "2011_09_26"
DRIVE = f"{DATE}_drive_0001_sync"


def calibration(width: int, height: int) -> dict[str, np.ndarray]:
    """P0..P3 (3x4), R_rect (3x3), Tr_velo_to_cam and Tr_imu_to_velo (3x4) for a ``width`` x
    ``height`` camera of focal ``0.8 * width``."""
    f = 0.8 * width
    k = np.array([[f, 0, width / 2 - 0.5], [0, f, height / 2 - 0.5], [0, 0, 1]])
    offsets = {"P0": (0, 0, 0), "P1": (-0.54, 0, 0), "P2": (0.06, -0.001, 0.003),
               "P3": (-0.48, 0.002, 0.003)}  # camera i's position in camera 0's frame, as KITTI's
    calib = {name: np.hstack([k, k @ np.reshape(t, (3, 1))]) for name, t in offsets.items()}
    a = 0.01  # the rectifying rotation: about x, like KITTI's ~0.5 degree
    calib["R_rect"] = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    calib["Tr_velo_to_cam"] = np.array([[0, -1, 0, 0.01], [0, 0, -1, -0.08], [1, 0, 0, -0.27]], float)
    calib["Tr_imu_to_velo"] = np.array([[1, 0, 0, -0.81], [0, 1, 0, 0.32], [0, 0, 1, -0.8]], float)
    return calib


def car_label(index: int, width: int, height: int) -> list[str]:
    """The 15 object fields of frame ``index``'s car (seen from behind, nearer each frame)."""
    h, w, length = CAR_DIMENSIONS
    x, y, z, ry = 1.0 - 0.5 * index, CAMERA_HEIGHT, 12.0 - 2.0 * index, -math.pi / 2
    corners = np.array([[sx * w / 2 + x, y - sy * h, sz * length / 2 + z]  # ry = -pi/2: length along z
                        for sx in (-1, 1) for sy in (0, 1) for sz in (-1, 1)])
    uvw = np.c_[corners, np.ones(8)] @ calibration(width, height)["P2"].T
    u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    box = (max(u.min(), 0), max(v.min(), 0), min(u.max(), width - 1), min(v.max(), height - 1))
    values = (0.0, 0, -math.pi / 2 - math.atan2(x, z), *box, h, w, length, x, y, z, ry)
    return ["Car", *(f"{v:.2f}" if isinstance(v, float) else str(v) for v in values)]


def velodyne_points(index: int, width: int, height: int) -> np.ndarray:
    """float32 [N, 4] Velodyne points of frame ``index``: the car's near face, the road ahead, and
    road behind the camera (which no image shows)."""
    fields = car_label(index, width, height)
    h, w, length = CAR_DIMENSIONS
    x, y, z = (float(v) for v in fields[11:14])
    face = [(px, py, z - length / 2) for px in np.linspace(x - w / 2, x + w / 2, 33)
            for py in np.linspace(y - h, y - 0.02, 31)]
    road = [(px, CAMERA_HEIGHT, pz) for px in np.linspace(-8, 8, 33) for pz in np.linspace(3, 40, 75)
            if not (abs(px - x) <= w / 2 and abs(pz - z) <= length / 2)]
    behind = [(px, CAMERA_HEIGHT, -pz) for px in (-2.0, 0.0, 2.0) for pz in (3.0, 6.0)]
    rect = np.array(face + road + behind, np.float64)
    calib = calibration(width, height)
    to_rect = np.eye(4)
    to_rect[:3, :3] = calib["R_rect"]
    tr = np.eye(4)
    tr[:3] = calib["Tr_velo_to_cam"]
    velo = (np.c_[rect, np.ones(len(rect))] @ np.linalg.inv(to_rect @ tr).T)[:, :3]
    return np.c_[velo, np.full(len(velo), 0.5)].astype(np.float32)


def other_labels(width: int, height: int) -> list[list[str]]:
    """A pedestrian, a cyclist (an ignore region by default) and a DontCare area (15 fields each)."""
    ped = ["Pedestrian", "0.00", "1", "0.30", "2.00", f"{height * 0.3:.2f}", "9.00", f"{height * 0.6:.2f}",
           "1.70", "0.60", "0.80", "-6.00", "1.65", "15.00", "0.10"]
    cyc = ["Cyclist", "0.10", "2", "-1.20", f"{width * 0.75:.2f}", "20.00", f"{width * 0.85:.2f}", "40.00",
           "1.75", "0.55", "1.80", "5.00", "1.65", "20.00", "-1.50"]
    dontcare = ["DontCare", "-1", "-1", "-10", f"{width * 0.4:.2f}", "25.00", f"{width * 0.5:.2f}", "30.00",
                "-1", "-1", "-1", "-1000", "-1000", "-1000", "-10"]
    return [ped, cyc, dontcare]


def _matrix_line(key: str, m: np.ndarray, colon: bool = True) -> str:
    return f"{key}{':' if colon else ''} " + " ".join(f"{v:.12e}" for v in np.ravel(m))


def _write_frame(image_path: Path, velo_path: Path | None, index: int, width: int, height: int) -> None:
    import cv2

    image = np.full((height, width, 3), 90, np.uint8)
    image[height // 2:] = 60  # road
    x1, y1, x2, y2 = (round(float(v)) for v in car_label(index, width, height)[4:8])
    image[y1:y2 + 1, x1:x2 + 1] = (40, 40, 160)
    image_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(image_path), image)
    if velo_path is not None:
        velo_path.parent.mkdir(parents=True, exist_ok=True)
        velodyne_points(index, width, height).tofile(velo_path)


def object_calib_text(width: int, height: int) -> str:
    """A KITTI object ``calib/NNNNNN.txt`` (``KEY: values``)."""
    c = calibration(width, height)
    return "\n".join([*(_matrix_line(k, c[k]) for k in ("P0", "P1", "P2", "P3")),
                      _matrix_line("R0_rect", c["R_rect"]),
                      _matrix_line("Tr_velo_to_cam", c["Tr_velo_to_cam"]),
                      _matrix_line("Tr_imu_to_velo", c["Tr_imu_to_velo"])]) + "\n\n"


def tracking_calib_text(width: int, height: int) -> str:
    """A KITTI tracking ``calib/SEQ.txt``: ``P0:`` .. ``P3:`` and, colon-less, ``R_rect``,
    ``Tr_velo_cam``, ``Tr_imu_velo``."""
    c = calibration(width, height)
    return "\n".join([*(_matrix_line(k, c[k]) for k in ("P0", "P1", "P2", "P3")),
                      _matrix_line("R_rect", c["R_rect"], False),
                      _matrix_line("Tr_velo_cam", c["Tr_velo_to_cam"], False),
                      _matrix_line("Tr_imu_velo", c["Tr_imu_to_velo"], False)]) + "\n"


def write_kitti(root: Path, num: int = 3, width: int = 128, height: int = 64,
                velodyne: bool = True) -> Path:
    """A KITTI object root (``training/{image_2,label_2,calib,velodyne}``) with ``num`` frames, each
    a car, a pedestrian, a cyclist and a DontCare area; returns the root (``kitti:PATH``)."""
    train = root / "training"
    for sub in ("label_2", "calib"):
        (train / sub).mkdir(parents=True, exist_ok=True)
    for i in range(num):
        stem = f"{i:06d}"
        _write_frame(train / "image_2" / f"{stem}.png",
                     train / "velodyne" / f"{stem}.bin" if velodyne else None, i, width, height)
        lines = [car_label(i, width, height), *other_labels(width, height)]
        (train / "label_2" / f"{stem}.txt").write_text("\n".join(" ".join(f) for f in lines) + "\n")
        (train / "calib" / f"{stem}.txt").write_text(object_calib_text(width, height))
    return root


def write_kitti_tracking(root: Path, sequences: tuple[str, ...] = ("0000", "0001"), frames: int = 3,
                         width: int = 128, height: int = 64, velodyne: bool = True) -> Path:
    """A KITTI tracking root (``training/{image_02,label_02,calib,velodyne}``): ``frames`` frames per
    sequence, the last one without label lines (zero boxes); returns the root."""
    train = root / "training"
    for sub in ("label_02", "calib"):
        (train / sub).mkdir(parents=True, exist_ok=True)
    for seq in sequences:
        lines = []
        for i in range(frames):
            _write_frame(train / "image_02" / seq / f"{i:06d}.png",
                         train / "velodyne" / seq / f"{i:06d}.bin" if velodyne else None, i, width, height)
            if i < frames - 1:
                objects = [car_label(i, width, height), *other_labels(width, height)]
                ids = ["0", "1", "2", "-1"]
                lines += [" ".join([str(i), tid, *obj]) for tid, obj in zip(ids, objects, strict=True)]
        (train / "label_02" / f"{seq}.txt").write_text("\n".join(lines) + "\n")
        (train / "calib" / f"{seq}.txt").write_text(tracking_calib_text(width, height))
    return root


def raw_calib_texts(width: int, height: int) -> tuple[str, str]:
    """``calib_cam_to_cam.txt`` and ``calib_velo_to_cam.txt`` of a raw DATE folder."""
    c = calibration(width, height)
    cam = ["calib_time: 09-Jan-2012 13:57:47", "corner_dist: 9.950000e-02"]
    for i in range(4):
        p = c[f"P{i}"]
        cam += [_matrix_line(f"S_0{i}", np.array([width + 150, height + 137])),
                _matrix_line(f"K_0{i}", p[:, :3]), _matrix_line(f"D_0{i}", np.zeros(5)),
                _matrix_line(f"R_0{i}", np.eye(3)), _matrix_line(f"T_0{i}", p[:, 3] / p[0, 0]),
                _matrix_line(f"S_rect_0{i}", np.array([width, height])),
                _matrix_line(f"R_rect_0{i}", c["R_rect"] if i == 0 else np.eye(3)),
                _matrix_line(f"P_rect_0{i}", p)]
    tr = c["Tr_velo_to_cam"]
    velo = ["calib_time: 15-Mar-2012 11:37:16", _matrix_line("R", tr[:, :3]), _matrix_line("T", tr[:, 3]),
            "delta_f: 0.000000e+00 0.000000e+00", "delta_c: 0.000000e+00 0.000000e+00"]
    return "\n".join(cam) + "\n", "\n".join(velo) + "\n"


def write_kitti_depth(root: Path, frames: int = 4, width: int = 128, height: int = 64,
                      depth_root: Path | None = None) -> Path:
    """A KITTI raw root (``DATE/DRIVE/{image_02,velodyne_points}/data``, calibration files) whose
    interior frames (all but the first and last) have a depth-benchmark ground-truth PNG, inside
    the drive or under ``depth_root/train``; returns the raw root (``kitti-depth:PATH``)."""
    import cv2

    from edge_mtl.data.formats.kitti_calib import project_depth, velo_to_image

    date = root / DATE
    drive = date / DRIVE
    date.mkdir(parents=True, exist_ok=True)
    cam_text, velo_text = raw_calib_texts(width, height)
    (date / "calib_cam_to_cam.txt").write_text(cam_text)
    (date / "calib_velo_to_cam.txt").write_text(velo_text)
    c = calibration(width, height)
    projection = velo_to_image(c["P2"], c["R_rect"], c["Tr_velo_to_cam"])
    gt_dir = (drive if depth_root is None else depth_root / "train" / DRIVE) / "proj_depth" / "groundtruth" \
        / "image_02"
    gt_dir.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        stem = f"{i:010d}"
        _write_frame(drive / "image_02" / "data" / f"{stem}.png",
                     drive / "velodyne_points" / "data" / f"{stem}.bin", i, width, height)
        if 0 < i < frames - 1:
            depth = project_depth(velodyne_points(i, width, height), projection, (height, width))
            cv2.imwrite(str(gt_dir / f"{stem}.png"), np.round(depth * 256).astype(np.uint16))
    return root
