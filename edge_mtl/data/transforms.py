"""A sample fitted to the network input by the one camera geometry, labels following exactly.

`fit_sample` is what evaluation and the camera loop do to a frame (`edge_mtl.runtime.preprocess`),
applied to the labels too; training then augments the result (`edge_mtl.data.augment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from edge_mtl.runtime.geometry import fit_geometry, place
from edge_mtl.runtime.preprocess import fit_image
from edge_mtl.types import Sample

MIN_VISIBLE = 0.4  # a box cut to less than this share of its area becomes an ignore region


@dataclass
class Item:
    """One sample at network resolution, before batching (numpy, HWC image)."""

    image: np.ndarray  # uint8 [H, W, 3] BGR
    boxes: np.ndarray  # float32 [M, 4] xyxy input pixels
    classes: np.ndarray  # int64 [M]
    lane: np.ndarray  # float32 [H, W] marking coverage in [0, 1]
    depth: np.ndarray  # float32 [H, W] metres (canonical-focal metres once the dataset is done), 0 = invalid
    has_label: dict[str, bool]
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # float32 [K, 4]
    focal: float = 0.0  # the camera's focal length in input pixels
    source: int = 0  # which dataset of a mix it came from


def fit_sample(sample: Sample, size: tuple[int, int], mode: str = "letterbox") -> Item:
    """``sample`` placed in a ``size`` (h, w) input by `fit_geometry` (letterbox or crop).

    The image goes through the camera loop's own `fit_image`; lane masks are area-averaged into
    coverage (a 1-px line far away stays as 0.5, not lost); depth is resized by nearest
    neighbour, so no value is ever made up between a valid and an invalid pixel.
    """
    import cv2

    geometry = fit_geometry(sample.image.shape[:2], size, mode)
    h, w = size
    has = sample.has_label
    boxes, classes = np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
    ignore = np.zeros((0, 4), np.float32)
    if has["det"]:
        boxes, classes = geometry.boxes_to_input(sample.boxes), sample.classes
        if sample.ignore is not None and len(sample.ignore):
            ignore = geometry.boxes_to_input(sample.ignore)
        boxes, classes, ignore = clip_boxes(boxes, classes, ignore, _area(boxes), geometry.content())
    lane = np.zeros((h, w), np.float32)
    if has["lane"]:
        lane = place(sample.lane.astype(np.float32), geometry, cv2.INTER_AREA, 0.0)
    depth = np.zeros((h, w), np.float32)
    if has["depth"]:
        depth = place(sample.depth.astype(np.float32), geometry, cv2.INTER_NEAREST_EXACT, 0.0)
    return Item(fit_image(sample.image, geometry), boxes, classes, lane, depth, dict(has), ignore,
                focal=sample.camera.fx * geometry.scale[0])


def crop_rows(sample: Sample, top: int, bottom: int) -> Sample:
    """Rows ``[top, bottom)`` of ``sample``, every label cut with it (boxes by `clip_boxes`) and
    the principal point moved; the focal length, hence metric depth, is unchanged."""
    h, w = sample.image.shape[:2]
    if not 0 <= top < bottom <= h:
        raise ValueError(f"{sample.name}: rows [{top}, {bottom}) outside a frame of height {h}")
    boxes, classes, ignore = sample.boxes, sample.classes, sample.ignore
    if boxes is not None:
        shift = np.array([0, top, 0, top], np.float32)
        cut = np.zeros((0, 4), np.float32) if ignore is None else np.asarray(ignore, np.float32) - shift
        boxes, classes, ignore = clip_boxes(np.asarray(boxes, np.float32) - shift, classes, cut,
                                            _area(np.asarray(boxes, np.float32)), (0, 0, w, bottom - top))
    rows = slice(top, bottom)
    camera = replace(sample.camera, height=bottom - top, cy=sample.camera.cy - top)
    return replace(
        sample, image=sample.image[rows], boxes=boxes, classes=classes, ignore=ignore, camera=camera,
        lane=None if sample.lane is None else sample.lane[rows],
        depth=None if sample.depth is None else sample.depth[rows])


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def clip_boxes(boxes: np.ndarray, classes: np.ndarray, ignore: np.ndarray, full_area: np.ndarray,
               region: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes and ignore regions clipped to ``region`` (x0, y0, x1, y1). A box left with less than
    `MIN_VISIBLE` of ``full_area`` (its area before the cut) turns into an ignore region: a
    sliver of a car is neither an object to find nor background. Empty ones go."""
    x0, y0, x1, y1 = region
    lo, hi = np.array([x0, y0, x0, y0], np.float32), np.array([x1, y1, x1, y1], np.float32)
    boxes = np.clip(boxes, lo, hi).astype(np.float32)
    ignore = np.clip(ignore, lo, hi).astype(np.float32)
    area = _area(boxes)
    keep = (area > 0) & (area >= MIN_VISIBLE * full_area) & (boxes[:, 2] - boxes[:, 0] >= 1) \
        & (boxes[:, 3] - boxes[:, 1] >= 1)
    sliver = ~keep & (area > 0)
    ignore = np.concatenate([ignore, boxes[sliver]])
    ignore = ignore[_area(ignore) > 0]
    return boxes[keep], classes[keep], ignore.reshape(-1, 4).astype(np.float32)

