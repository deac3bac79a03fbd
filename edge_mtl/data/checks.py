"""Checks every reader applies to a `Sample` before it reaches training or evaluation.

A dataset reader (any format) builds a `Sample`, then calls `check_sample`: label values that
would train or score silently wrong (boxes outside the image or degenerate, NaN, lane masks that
are not 0/1, depth of another size or negative) raise `DatasetError` naming the file.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from edge_mtl.types import CLASSES, Sample

BOX_TOLERANCE_PX = 1.0  # coordinates this far outside the image are clipped, farther is an error


class DatasetError(ValueError):
    """A dataset file is missing or malformed; the message names the file."""


def check_sample(sample: Sample, where: str, num_classes: int = len(CLASSES)) -> Sample:
    """``sample`` with boxes clipped to the image (within `BOX_TOLERANCE_PX`), or `DatasetError`
    naming ``where`` and what is wrong."""
    image = sample.image
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DatasetError(f"{where}: image must be uint8 HxWx3 BGR, got {image.dtype} {list(image.shape)}")
    h, w = image.shape[:2]
    cam = sample.camera
    if (cam.width, cam.height) != (w, h):
        raise DatasetError(f"{where}: image is {w}x{h} but the label's camera says {cam.width}x{cam.height}")
    if not (np.isfinite([cam.fx, cam.fy]).all() and cam.fx > 0 and cam.fy > 0):
        raise DatasetError(f"{where}: camera focal length fx={cam.fx}, fy={cam.fy} must be positive")
    boxes = sample.boxes
    if boxes is not None:
        boxes = _check_boxes(boxes, sample.classes, (h, w), where, num_classes)
    if sample.lane is not None:
        _check_lane(sample.lane, (h, w), where)
    if sample.depth is not None:
        _check_depth(sample.depth, (h, w), where)
    ignore = sample.ignore
    if ignore is not None:
        ignore = _check_ignore(ignore, (h, w), where)
    if boxes is sample.boxes and ignore is sample.ignore:
        return sample
    return dataclasses.replace(sample, boxes=boxes, ignore=ignore)


def _check_ignore(regions: np.ndarray, size: tuple[int, int], where: str) -> np.ndarray:
    """Ignore regions clipped to the image; those with no area inside it are dropped."""
    if regions.ndim != 2 or regions.shape[1] != 4:
        raise DatasetError(f"{where}: ignore regions must be [K, 4] x1,y1,x2,y2, got shape "
                           f"{list(regions.shape)}")
    if not np.isfinite(regions).all():
        raise DatasetError(f"{where}: ignore region {_first(~np.isfinite(regions).all(1))} is not finite")
    h, w = size
    clipped = np.clip(regions, 0, [w, h, w, h]).astype(np.float32)
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped[keep]


def _check_boxes(boxes: np.ndarray, classes: np.ndarray | None, size: tuple[int, int], where: str,
                 num_classes: int) -> np.ndarray:
    if classes is None:
        raise DatasetError(f"{where}: boxes without classes")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DatasetError(f"{where}: boxes must be [N, 4] x1,y1,x2,y2, got shape {list(boxes.shape)}")
    if classes.shape != (len(boxes),):
        raise DatasetError(f"{where}: {len(boxes)} boxes but {classes.size} classes")
    if len(classes) and (classes.min() < 0 or classes.max() >= num_classes):
        raise DatasetError(f"{where}: class id out of range 0..{num_classes - 1} "
                           f"(got {sorted(set(classes.tolist()))})")
    if not np.isfinite(boxes).all():
        raise DatasetError(f"{where}: box {_first(~np.isfinite(boxes).all(1))} is not finite")
    degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if degenerate.any():
        i = _first(degenerate)
        raise DatasetError(f"{where}: box {i} {boxes[i].tolist()} is degenerate (needs x2 > x1 and y2 > y1)")
    h, w = size
    t = BOX_TOLERANCE_PX
    outside = (boxes[:, :2] < -t).any(1) | (boxes[:, 2] > w + t) | (boxes[:, 3] > h + t)
    if outside.any():
        i = _first(outside)
        raise DatasetError(f"{where}: box {i} {boxes[i].tolist()} lies outside the {w}x{h} image")
    clipped = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
    if ((clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])).any():
        raise DatasetError(f"{where}: a box has no area inside the {w}x{h} image")
    return clipped if not np.array_equal(clipped, boxes) else boxes


def _check_plane(array: np.ndarray, size: tuple[int, int], what: str, where: str) -> None:
    """One channel of the image's ``size`` (a per-pixel label)."""
    if array.ndim != 2:
        raise DatasetError(f"{where}: {what} must be single-channel, got shape {list(array.shape)}")
    if array.shape != size:
        raise DatasetError(f"{where}: {what} is {array.shape[1]}x{array.shape[0]}, "
                           f"image is {size[1]}x{size[0]}")


def _check_lane(lane: np.ndarray, size: tuple[int, int], where: str) -> None:
    _check_plane(lane, size, "lane mask", where)
    if lane.dtype != np.uint8:
        raise DatasetError(f"{where}: lane mask must be uint8, got {lane.dtype}")
    if lane.size and lane.max() > 1:  # (np.unique, which sorts, only to name what was found)
        values = np.unique(lane)
        hint = " (a 0/255 mask? this format stores 1 = marking)" if values.max() == 255 else ""
        raise DatasetError(f"{where}: lane mask values must be 0 or 1, found {values[:8].tolist()}{hint}")


def _check_depth(depth: np.ndarray, size: tuple[int, int], where: str) -> None:
    _check_plane(depth, size, "depth", where)
    if not np.isfinite(depth).all():
        raise DatasetError(f"{where}: depth holds NaN or inf")
    if (depth < 0).any():
        raise DatasetError(f"{where}: depth holds negative values (min {float(depth.min()):.3g} m)")


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])
