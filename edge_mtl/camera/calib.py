"""The camera's focal length from a calibration file, for metric depth in the camera loop.

Read: KITTI calibration text (``P2`` of the object/tracking sets, or ``P_rect_02`` of a raw
drive's ``calib_cam_to_cam.txt``); ROS ``camera_info`` YAML (``camera_matrix.data`` or ``K``);
OpenCV ``FileStorage`` YAML/JSON (``camera_matrix`` / ``K``, as `cv2.calibrateCamera` examples
save it); or any YAML/JSON mapping with ``fx``. The focal is in pixels of the frames the camera
delivers (calibrate at the resolution you stream).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

_MATRIX_KEYS = ("camera_matrix", "K", "intrinsics", "P")


def focal_from_file(path: str | os.PathLike) -> float:
    """fx in pixels; a ValueError naming the file and what it lacks otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file {path} not found")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() in (".yaml", ".yml", ".json") or text.lstrip().startswith(("%YAML", "{")):
        fx = _from_opencv(path) if text.lstrip().startswith("%YAML") else _from_mapping(path)
    else:
        fx = _from_kitti(path)
    if not (math.isfinite(fx) and fx > 0):
        raise ValueError(f"{path}: focal length {fx!r} is not a positive number")
    return fx


def _from_kitti(path: Path) -> float:
    from edge_mtl.data.formats.kitti_calib import calib_matrix, read_calib

    calib = read_calib(path)
    return float(calib_matrix(calib, path, ("P2", "P_rect_02"), (3, 4))[0, 0])


def _from_mapping(path: Path) -> float:
    from edge_mtl.config import read_yaml  # JSON is YAML

    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with fx or a camera matrix")
    if "fx" in data:
        return _number(data["fx"], path, "fx")
    for key in _MATRIX_KEYS:
        if key in data:
            m = data[key]
            values = m.get("data") if isinstance(m, dict) else m
            if isinstance(values, list) and values and isinstance(values[0], list):
                values = [v for row in values for v in row]
            if not isinstance(values, list) or len(values) not in (9, 12):
                raise ValueError(f"{path}: {key} must hold 9 (3x3) or 12 (3x4) numbers")
            return _number(values[0], path, f"{key}[0]")
    raise ValueError(f"{path}: no fx and no camera matrix ({', '.join(_MATRIX_KEYS)})")


def _from_opencv(path: Path) -> float:
    import cv2

    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    try:
        for key in _MATRIX_KEYS:
            node = fs.getNode(key)
            if not node.empty():
                m = node.mat()
                if m is None or m.size < 9:
                    raise ValueError(f"{path}: {key} is not a 3x3 matrix")
                return float(m.reshape(-1)[0])
    finally:
        fs.release()
    raise ValueError(f"{path}: no camera matrix ({', '.join(_MATRIX_KEYS)})")


def _number(value: Any, path: Path, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{path}: {key}={value!r} is not a number")
    return float(value)
