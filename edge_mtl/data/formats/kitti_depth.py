"""``kitti-depth``: metric depth for the left colour camera of the KITTI raw drives.

Layout read (PATH: the raw root holding DATE folders, one DATE folder, or one drive folder)::

    DATE/calib_cam_to_cam.txt       P_rect_02, R_rect_00, S_rect_02
    DATE/calib_velo_to_cam.txt      R, T
    DATE/DATE_drive_NNNN_sync/image_02/data/NNNNNNNNNN.png
    DATE/DATE_drive_NNNN_sync/velodyne_points/data/NNNNNNNNNN.bin        (optional)
    DATE_drive_NNNN_sync/proj_depth/groundtruth/image_02/NNNNNNNNNN.png  (depth benchmark)

The depth benchmark's ground truth (uint16 PNG, metres x 256, 0 = invalid) is looked for inside
the drive folder, or, with ``depth_root``, under that folder (the benchmark's ``train/`` or
``val/``, or the folder holding both); with ``depth_root`` only the drives it holds are read
(it chooses the split). A frame without a ground-truth PNG gets its Velodyne scan projected
through ``P_rect_02 @ R_rect_00 @ [R|T]`` (`kitti_calib.project_depth`) when ``lidar_fallback``
is on; a frame with neither is left out (the benchmark has no ground truth for the first and
last 5 frames of a drive), counted in ``left_out``. Only depth is labelled; intrinsics are
P_rect_02's, the camera stands 1.65 m above the road. The images must be the rectified
``_sync`` ones: an image whose size is not S_rect_02 is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.formats.kitti_calib import (
    calib_matrix,
    camera_from_projection,
    load_velodyne,
    project_depth,
    read_calib,
    rigid,
    velo_to_image,
)
from edge_mtl.data.reader import Reader, load_image
from edge_mtl.imageio import CorruptImageError, read_image
from edge_mtl.types import Sample

DEPTH_SCALE = 256.0  # the benchmark's PNG value per metre
GROUNDTRUTH = Path("proj_depth", "groundtruth", "image_02")
IMAGES = Path("image_02", "data")
VELODYNE = Path("velodyne_points", "data")


class KittiDepthReader(Reader):
    """KITTI raw drives with the depth benchmark's ground truth or projected Velodyne scans."""

    format = "kitti-depth"
    tasks = ("depth",)

    def __init__(self, path: str | os.PathLike, *, depth_root: str | os.PathLike | None = None,
                 lidar_fallback: bool = True):
        super().__init__(path)
        where = f"{self.format}:{self.path}"
        if not isinstance(lidar_fallback, bool):
            raise DatasetError(f"{where}: option lidar_fallback must be true or false, "
                               f"got {lidar_fallback!r}")
        if depth_root is not None and not isinstance(depth_root, (str, os.PathLike)):
            raise DatasetError(f"{where}: option depth_root must be a folder path, got {depth_root!r}")
        self.depth_root = None if depth_root is None else Path(depth_root)
        if self.depth_root is not None and not self.depth_root.is_dir():
            raise DatasetError(f"{self.depth_root}: depth_root not found ({self.format})")
        self.lidar_fallback = lidar_fallback
        drives = _drives(self.path)
        if not drives:
            raise DatasetError(f"{self.path}: not a {self.format} dataset (no DATE_drive_NNNN_sync/"
                               f"image_02/data here, in DATE folders, or in this drive folder; the "
                               f"benchmark's own folders hold no images: pass them as depth_root)")
        # (image, ground-truth PNG or None, Velodyne scan or None)
        self.frames: list[tuple[Path, Path | None, Path | None]] = []
        self.left_out = 0
        for drive in drives:
            gt_dir = self._groundtruth_dir(drive)
            if self.depth_root is not None and gt_dir is None:
                continue
            gts = {p.stem: p for p in gt_dir.glob("*.png")} if gt_dir else {}
            scans = {p.stem: p for p in (drive / VELODYNE).glob("*.bin")} if lidar_fallback else {}
            for image in sorted((drive / IMAGES).glob("*.png")):
                gt, scan = gts.get(image.stem), scans.get(image.stem)
                if gt is None and scan is None:
                    self.left_out += 1
                else:
                    self.frames.append((image, gt, None if gt else scan))
        if not self.frames:
            raise DatasetError(f"{where}: no frame has a depth ground-truth PNG"
                               + (" or a Velodyne scan" if lidar_fallback else "")
                               + (f" under depth_root {self.depth_root}" if self.depth_root else ""))

    def _groundtruth_dir(self, drive: Path) -> Path | None:
        roots = ([drive] if self.depth_root is None else
                 [self.depth_root / drive.name, self.depth_root / "train" / drive.name,
                  self.depth_root / "val" / drive.name])
        return next((r / GROUNDTRUTH for r in roots if (r / GROUNDTRUTH).is_dir()), None)

    def __len__(self) -> int:
        return len(self.frames)

    def source(self, index: int) -> str:
        _, gt, scan = self.frames[index]
        return str(gt or scan)

    def read(self, index: int) -> Sample:
        image_path, gt, scan = self.frames[index]
        drive = image_path.parents[2]
        image = load_image(image_path, self.source(index))
        h, w = image.shape[:2]
        p, projection, size = self._calibration(drive.parent, need_lidar=scan is not None)
        if size is not None and tuple(size) != (w, h):
            raise DatasetError(f"{image_path}: image is {w}x{h} but S_rect_02 in "
                               f"{drive.parent / 'calib_cam_to_cam.txt'} says {size[0]}x{size[1]} "
                               f"({self.format} reads the rectified _sync images)")
        if gt is not None:
            depth = _read_groundtruth(gt)
        else:
            depth = project_depth(load_velodyne(scan), projection, (h, w))
        return Sample(image=image, boxes=None, classes=None, lane=None, depth=depth,
                      camera=camera_from_projection(p, w, h),
                      name=f"{drive.name}/{image_path.stem}", ignore=None)

    def _calibration(self, date: Path, need_lidar: bool
                     ) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int] | None]:
        """P_rect_02, the Velodyne-to-image matrix (when asked) and S_rect_02 of one DATE folder."""
        cam_path = date / "calib_cam_to_cam.txt"
        cam = read_calib(cam_path)
        p = calib_matrix(cam, cam_path, ("P_rect_02",), (3, 4))
        size = None
        if "S_rect_02" in cam:
            s = calib_matrix(cam, cam_path, ("S_rect_02",), (2,))
            size = (round(s[0]), round(s[1]))
        projection = None
        if need_lidar:
            velo_path = date / "calib_velo_to_cam.txt"
            velo = read_calib(velo_path)
            projection = velo_to_image(
                p, calib_matrix(cam, cam_path, ("R_rect_00",), (3, 3)),
                rigid(calib_matrix(velo, velo_path, ("R",), (3, 3)),
                      calib_matrix(velo, velo_path, ("T",), (3,))))
        return p, projection, size


def _drives(path: Path) -> list[Path]:
    """The drive folders (with image_02/data) that ``path`` is, or holds, or holds in DATE folders."""
    if (path / IMAGES).is_dir():
        return [path]
    for pattern in ("*_drive_*", "*/*_drive_*"):
        found = sorted(p for p in path.glob(pattern) if (p / IMAGES).is_dir())
        if found:
            return found
    return []


def _read_groundtruth(path: Path) -> np.ndarray:
    """A benchmark depth PNG in metres (float32, 0 = invalid)."""
    import cv2

    try:
        raw = read_image(path, cv2.IMREAD_UNCHANGED)
    except CorruptImageError as e:
        raise DatasetError(str(e)) from None
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise DatasetError(f"{path}: depth ground truth must be a single-channel uint16 PNG "
                           f"(metres x {DEPTH_SCALE:g}), got {raw.dtype} {list(raw.shape)}")
    return raw.astype(np.float32) / DEPTH_SCALE


__all__ = ["KittiDepthReader"]
