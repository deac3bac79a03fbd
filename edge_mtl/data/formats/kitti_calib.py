"""KITTI calibration files and Velodyne-to-image projection, shared by the KITTI readers.

Calibration files are text, one named matrix per line, row-major: ``KEY: v1 v2 ...`` (object
set ``calib/NNNNNN.txt``, raw ``calib_cam_to_cam.txt`` / ``calib_velo_to_cam.txt``) or
``KEY v1 v2 ...`` (the tracking set writes ``R_rect``, ``Tr_velo_cam`` and ``Tr_imu_velo``
without the colon). Both spellings are read; lines whose values are not numbers (the raw set's
``calib_time``) are kept as text and refused only when a matrix is asked of them.

A Velodyne scan (``.bin``) is float32 x, y, z, reflectance per point, little-endian, in metres in
the scanner's frame (x forward, y left, z up). As in the KITTI devkits, a point X reaches camera
``i``'s rectified image through ``P_i @ R_rect @ Tr_velo_to_cam @ [X, 1]`` (``R_rect`` padded to
4x4); the third component of the result is the point's depth z in that camera's rectified frame
(metres) and the first two divided by it are its 0-based pixel coordinates (u right, v down).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge_mtl.data.checks import DatasetError
from edge_mtl.types import Camera

KITTI_MOUNT_HEIGHT = 1.65  # metres: the KITTI recording car's cameras above the road
P2_KEYS = ("P2",)  # object and tracking sets: the left colour camera's projection
R_RECT_KEYS = ("R0_rect", "R_rect")  # object spelling, tracking spelling
VELO_TO_CAM_KEYS = ("Tr_velo_to_cam", "Tr_velo_cam")
VELODYNE_POINT_BYTES = 16  # 4 x float32


def read_calib(path: Path) -> dict[str, str]:
    """The raw text of every ``KEY: values`` / ``KEY values`` line of a calibration file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{path}: calibration file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read the calibration file ({e})") from None
    entries: dict[str, str] = {}
    for line in text.splitlines():
        head, colon, rest = line.partition(":")
        if colon and head.strip() and len(head.split()) == 1:
            entries[head.strip()] = rest.strip()
        elif line.split():
            key, *values = line.split()
            entries[key] = " ".join(values)
    return entries


def calib_matrix(calib: dict[str, str], path: Path, keys: Sequence[str],
                 shape: tuple[int, ...]) -> np.ndarray:
    """The float64 matrix of the first of ``keys`` in ``calib``; `DatasetError` naming ``path`` and
    the key when none is there, a value is not a number, or the count is not ``shape``'s."""
    key = next((k for k in keys if k in calib), None)
    if key is None:
        raise DatasetError(f"{path}: calibration has no {' or '.join(keys)}")
    try:
        values = np.array([float(v) for v in calib[key].split()], np.float64)
    except ValueError:
        raise DatasetError(f"{path}: calibration {key} holds a value that is not a number") from None
    size = int(np.prod(shape))
    if values.size != size or not np.isfinite(values).all():
        raise DatasetError(f"{path}: calibration {key} must be {size} finite numbers, "
                           f"got {values.size}")
    return values.reshape(shape)


def camera_from_projection(p: np.ndarray, width: int, height: int) -> Camera:
    """Intrinsics of a rectified KITTI camera from its 3x4 projection ``p`` (fx, fy, cx, cy)."""
    return Camera(width=width, height=height, fx=float(p[0, 0]), fy=float(p[1, 1]),
                  cx=float(p[0, 2]), cy=float(p[1, 2]), mount_height=KITTI_MOUNT_HEIGHT)


def velo_to_image(p: np.ndarray, r_rect: np.ndarray, velo_to_cam: np.ndarray) -> np.ndarray:
    """The 3x4 matrix ``P @ R_rect @ Tr_velo_to_cam`` taking Velodyne points to image coordinates."""
    r = np.eye(4)
    r[:3, :3] = r_rect
    tr = np.eye(4)
    tr[:3, :] = velo_to_cam[:3, :]
    return p @ r @ tr


def rigid(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """The 3x4 matrix ``[R | T]`` (raw ``calib_velo_to_cam.txt`` stores R and T apart)."""
    return np.hstack([rotation.reshape(3, 3), translation.reshape(3, 1)])


def load_velodyne(path: Path) -> np.ndarray:
    """A scan's float32 [N, 4] x, y, z, reflectance; `DatasetError` naming ``path`` when it is
    missing or its size is not a multiple of 16 bytes."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: Velodyne scan not found") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the Velodyne scan ({e.strerror or e})") from None
    if len(data) % VELODYNE_POINT_BYTES:
        raise DatasetError(f"{path}: Velodyne scan is {len(data)} bytes, not a multiple of "
                           f"{VELODYNE_POINT_BYTES} (float32 x, y, z, reflectance per point)")
    return np.frombuffer(data, "<f4").reshape(-1, 4)


def project_depth(points: np.ndarray, projection: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float32 [H, W] depth map (metres, 0 = no point) of Velodyne ``points`` ([N, >=3] x, y, z)
    through the 3x4 ``projection`` (`velo_to_image`), ``size`` = (H, W).

    As the devkits and monodepth2's ``generate_depth_map``: points at or behind the camera are
    dropped, the rest rounded to the nearest pixel, those outside the image dropped, and where
    several fall on one pixel the nearest is kept. The value is the projected z. Unlike
    monodepth2, no 1 is subtracted after rounding (that offset reproduces MATLAB's 1-based
    indexing); KITTI image coordinates are 0-based, as its 2-D boxes are.
    """
    h, w = size
    depth = np.zeros((h, w), np.float32)
    xyz = np.asarray(points, np.float64)[:, :3]
    finite = np.isfinite(xyz).all(1)
    img = np.concatenate([xyz[finite], np.ones((int(finite.sum()), 1))], 1) @ projection.T
    z = img[:, 2]
    front = z > 0
    img, z = img[front], z[front]
    u = np.floor(img[:, 0] / z + 0.5)
    v = np.floor(img[:, 1] / z + 0.5)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    pixel = (v[inside] * w + u[inside]).astype(np.int64)
    z = z[inside]
    order = np.lexsort((z, pixel))  # by pixel, nearest first within a pixel
    pixel, z = pixel[order], z[order]
    first = np.ones(len(pixel), bool)
    first[1:] = pixel[1:] != pixel[:-1]
    depth.flat[pixel[first]] = z[first]
    return depth
