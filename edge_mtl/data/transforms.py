"""Joint transforms: every geometric change applies to image and all labels at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_mtl.runtime.preprocess import resize_image
from edge_mtl.types import Sample


@dataclass
class Item:
    """One sample at network resolution, before batching (numpy, HWC image)."""

    image: np.ndarray  # uint8 [H, W, 3] BGR
    boxes: np.ndarray  # float32 [M, 4]
    classes: np.ndarray  # int64 [M]
    lane: np.ndarray  # float32 [H, W] marking coverage in [0, 1]
    depth: np.ndarray  # float32 [H, W] metres, 0 = invalid
    has_label: dict[str, bool]


def to_network_size(sample: Sample, size: tuple[int, int]) -> Item:
    """Resize a camera-resolution sample to ``size`` = (height, width).

    Lane masks are area-averaged into coverage (a 1-px line far away stays as 0.5, not
    lost); depth is resized by nearest neighbour so no invalid/valid mixing happens.
    """
    import cv2

    h, w = size
    src_h, src_w = sample.image.shape[:2]
    image = resize_image(sample.image, size)
    has = sample.has_label
    boxes = np.zeros((0, 4), np.float32)
    classes = np.zeros((0,), np.int64)
    if has["det"]:
        scale = np.array([w / src_w, h / src_h, w / src_w, h / src_h], np.float32)
        boxes = sample.boxes.astype(np.float32) * scale
        classes = sample.classes
    lane = np.zeros((h, w), np.float32)
    if has["lane"]:
        lane = cv2.resize(sample.lane.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    depth = np.zeros((h, w), np.float32)
    if has["depth"]:
        depth = cv2.resize(sample.depth, (w, h), interpolation=cv2.INTER_NEAREST)
    return Item(image, boxes, classes, lane, depth, dict(has))


def hflip(item: Item) -> Item:
    w = item.image.shape[1]
    boxes = item.boxes.copy()
    boxes[:, [0, 2]] = w - item.boxes[:, [2, 0]]
    return Item(item.image[:, ::-1], boxes, item.classes, item.lane[:, ::-1],
                item.depth[:, ::-1], item.has_label)


def crop_width(item: Item, x0: int, width: int, min_keep: float = 0.4) -> Item:
    """Keep columns [x0, x0 + width); boxes cut to less than ``min_keep`` of their width go."""
    boxes = item.boxes.copy()
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] - x0, 0, width)
    old_w = item.boxes[:, 2] - item.boxes[:, 0]
    new_w = boxes[:, 2] - boxes[:, 0]
    keep = (new_w >= 2) & (new_w >= min_keep * np.maximum(old_w, 1e-6))
    cols = slice(x0, x0 + width)
    return Item(item.image[:, cols], boxes[keep], item.classes[keep], item.lane[:, cols],
                item.depth[:, cols], item.has_label)
