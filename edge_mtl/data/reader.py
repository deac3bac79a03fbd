"""What every dataset reader shares: the `Reader` interface, class maps, lane rasterising."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from edge_mtl.data.checks import DatasetError, check_sample
from edge_mtl.imageio import CorruptImageError, read_image
from edge_mtl.types import CLASSES, Sample

IGNORE = "ignore"  # a class-map value: the object becomes an ignore region (neither positive nor negative)
DEFAULT_LANE_WIDTH = 8  # px at the source resolution; BDD100K's own lane masks are drawn 8 px wide


class Reader(ABC):
    """Random access to one dataset as distributed, read in place.

    A subclass lists its samples in ``__init__`` (a folder or label file that is not the format
    raises `DatasetError` there) and builds sample ``index`` in `read`; `__getitem__` validates it
    with `check_sample`. Problems of one sample (a bad line, a missing image) raise `DatasetError`
    from `read`, naming `source(index)` and the field, so pre-flight can skip and count them.
    Options are keyword-only arguments of ``__init__`` (`edge_mtl.data.formats.open_reader` checks
    their names).
    """

    format: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]]  # the tasks this format can label

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise DatasetError(f"{self.path}: not found ({self.format} dataset)")

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def source(self, index: int) -> str:
        """The file that describes sample ``index`` (and, for a line of a shared file, the line)."""

    @abstractmethod
    def read(self, index: int) -> Sample:
        """Sample ``index`` at source resolution, not yet validated."""

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.format}:{self.path}: sample {index} of {len(self)}")
        where = self.source(index)
        try:
            sample = self.read(index)
        except CorruptImageError as e:
            raise DatasetError(f"{e} (referenced by {where})") from None
        return check_sample(sample, where)

    def __repr__(self) -> str:
        return f"{self.format}:{self.path}"


def load_image(path: Path, where: str) -> np.ndarray:
    """A BGR uint8 frame, or `DatasetError` naming ``path`` and the label file ``where``."""
    import cv2

    try:
        return read_image(path, cv2.IMREAD_COLOR)
    except CorruptImageError as e:
        raise DatasetError(f"{e} (referenced by {where})") from None


def read_text(path: Path, what: str, encoding: str = "utf-8") -> str:
    """A label file's text; `DatasetError` naming it when it cannot be read or is not text."""
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a {what} (not UTF-8 text)") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read it ({e.strerror or e})") from None


def class_index(category: str, class_map: Mapping[str, str]) -> int | str | None:
    """Our class id for a dataset category, `IGNORE`, or None (the category is not ours: drop it)."""
    target = class_map.get(category)
    if target is None:
        return None
    if target == IGNORE:
        return IGNORE
    return CLASSES.index(target)


def check_class_map(class_map: Mapping[str, str], where: str) -> dict[str, str]:
    """A class map whose every value is one of our classes or ``ignore``."""
    if not isinstance(class_map, Mapping):
        raise DatasetError(f"{where}: class_map must map dataset categories to one of "
                           f"{[*CLASSES, IGNORE]}, got {class_map!r}")
    bad = {k: v for k, v in class_map.items() if v not in (*CLASSES, IGNORE)}
    if bad:
        raise DatasetError(f"{where}: class_map values must be one of {[*CLASSES, IGNORE]}, "
                           f"got {bad}")
    return dict(class_map)


def split_boxes(objects: Sequence[tuple[str, Sequence[float]]], class_map: Mapping[str, str]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(category, xyxy) pairs -> boxes [M, 4], classes [M], ignore regions [K, 4] by ``class_map``."""
    boxes, classes, ignore = [], [], []
    for category, box in objects:
        cls = class_index(category, class_map)
        if cls == IGNORE:
            ignore.append(box)
        elif cls is not None:
            boxes.append(box)
            classes.append(cls)
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64),
            np.asarray(ignore, np.float32).reshape(-1, 4))


def draw_lanes(size: tuple[int, int], lanes: Sequence[np.ndarray], width: int) -> np.ndarray:
    """A uint8 0/1 mask of ``size`` (h, w) with each polyline (float [N, 2] x, y) drawn ``width`` px."""
    import cv2

    mask = np.zeros(size, np.uint8)
    for line in lanes:
        pts = np.round(np.asarray(line, np.float64) * 16).astype(np.int32)  # 4 fractional bits
        if len(pts) >= 2:
            cv2.polylines(mask, [pts.reshape(-1, 1, 2)], False, 1, thickness=max(1, int(width)),
                          lineType=cv2.LINE_8, shift=4)
        elif len(pts) == 1:
            cv2.circle(mask, tuple(int(v) for v in pts[0]), max(1, int(width) // 2) << 4, 1, -1,
                       lineType=cv2.LINE_8, shift=4)
    return mask
