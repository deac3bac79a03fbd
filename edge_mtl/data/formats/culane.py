"""``culane``: the CULane lane dataset as distributed, read in place.

```
ROOT/list/train.txt, val.txt, test.txt    one image per line: /driver_23_30frame/<video>.MP4/00000.jpg
ROOT/list/train_gt.txt, val_gt.txt        image mask exist1 exist2 exist3 exist4 (only the image is read)
ROOT/list/test_split/test0_normal.txt ... the test categories (paths with or without the leading /)
ROOT/driver_*/<video>.MP4/00000.jpg       1640x590 BGR frame
ROOT/driver_*/<video>.MP4/00000.lines.txt one lane per line: x1 y1 x2 y2 ... (floats, source pixels)
```
PATH is ROOT (option ``split``: train|val|test reads ``list/<split>.txt``; option ``list`` names
another list file, relative to ROOT or absolute) or a list file (ROOT is the folder above the
nearest ``list`` folder it lies in, else its own folder). Listed paths are relative to ROOT; a
leading ``/`` is CULane's own and is dropped. Only the first column of a line is read, so the
``*_gt.txt`` lists work too.

Conventions (CULane devkit ``tools/lane_evaluation``: ``evaluate.cpp`` reads a lane as the x, y
pairs of one line, as written): points are image pixels at source resolution, usually from the
bottom row up in 10 px steps; x may lie outside the image (negative, or past the right edge, where
a lane leaves the frame) and is kept: drawing clips it. The lane mask joins consecutive points of
each lane with `draw_lanes` at ``lane_width`` px (the devkit draws its evaluation masks the same
way, 30 px wide after spline interpolation). Blank lines carry no lane and are skipped. Every
listed frame has a ``.lines.txt`` in the distribution (an empty one when it has no lanes), so a
missing one is an error naming it by default; ``missing_lines="empty"`` reads it as a frame without
lanes, as the devkit's ``evaluate`` does. Only the lane task is labelled; no intrinsics, so the
camera is `Camera.assumed` at the image's real size. `lanes` gives the ground truth lanes (the
test split's are the benchmark's evaluation ground truth).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.reader import DEFAULT_LANE_WIDTH, Reader, draw_lanes, load_image, read_text
from edge_mtl.types import Camera, Sample

__all__ = ["CulaneReader"]

SPLITS = ("train", "val", "test")
MISSING_LINES = ("error", "empty")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_COORDINATE = 1e5  # px; farther is no pixel position (and would overflow the drawing)


class CulaneReader(Reader):
    """The images of one CULane list file; each ``.lines.txt`` is parsed when its frame is read."""

    format = "culane"
    tasks = ("lane",)

    def __init__(self, path: str | os.PathLike, *, split: str = "train", list: str | None = None,
                 lane_width: int = DEFAULT_LANE_WIDTH, missing_lines: str = "error"):
        super().__init__(path)
        self.lane_width = _check_lane_width(lane_width, self.path)
        if missing_lines not in MISSING_LINES:
            raise DatasetError(f"{self.path}: missing_lines must be one of {MISSING_LINES}, "
                               f"got {missing_lines!r}")
        self.missing_lines = missing_lines
        if self.path.is_dir():
            self.root = self.path
            if list is None:
                if split not in SPLITS:
                    raise DatasetError(f"{self.path}: split must be one of {SPLITS}, got {split!r}")
                list_file = self.root / "list" / f"{split}.txt"
            elif isinstance(list, str) and list.strip():
                list_file = self.root / list
            else:
                raise DatasetError(f"{self.path}: list must name a list file, got {list!r}")
            if not list_file.is_file():
                raise DatasetError(f"{self.path}: not a CULane folder (no list file {list_file})")
        else:
            if list is not None:
                raise DatasetError(f"{self.path}: option list names a list file in a CULane folder, "
                                   f"but PATH is a list file")
            list_file = self.path
            self.root = _root_of(list_file)
        self.list_file = list_file
        self._entries = _list_entries(list_file)

    def __len__(self) -> int:
        return len(self._entries)

    def source(self, index: int) -> str:
        return f"{self.list_file}:{self._entries[index][0]}"

    def lines_file(self, index: int) -> Path:
        """The ``.lines.txt`` beside frame ``index``'s image (its lane annotation)."""
        return (self.root / self._entries[index][1]).with_suffix(".lines.txt")

    def lanes(self, index: int) -> list[np.ndarray]:
        """Frame ``index``'s lanes in file order, each float32 [N, 2] x, y in the file's point order
        (CULane's: bottom to top), or `DatasetError` naming the ``.lines.txt`` and its line."""
        image = self._entries[index][1]
        if Path(image).suffix.lower() not in IMAGE_SUFFIXES or "\0" in image:
            raise DatasetError(f"{self.source(index)}: {image!r} is not an image path "
                               f"(expected one of {IMAGE_SUFFIXES})")
        path = self.lines_file(index)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if self.missing_lines == "empty":
                return []
            raise DatasetError(f"{path}: lane annotation not found (for {image}, listed in "
                               f"{self.source(index)}); missing_lines='empty' reads such frames as "
                               f"having no lanes") from None
        except (OSError, UnicodeDecodeError) as e:
            raise DatasetError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
        return [lane for n, line in enumerate(text.split("\n"), 1)
                if (lane := _parse_lane(line, f"{path}:{n}")) is not None]

    def read(self, index: int) -> Sample:
        lanes = self.lanes(index)
        image_name = self._entries[index][1]
        image = load_image(self.root / image_name, self.source(index))
        h, w = image.shape[:2]
        return Sample(image=image, boxes=None, classes=None, lane=draw_lanes((h, w), lanes, self.lane_width),
                      depth=None, camera=Camera.assumed(w, h), name=image_name)


def _parse_lane(line: str, where: str) -> np.ndarray | None:
    """One ``x1 y1 x2 y2 ...`` line as float32 [N, 2], None for a blank line."""
    tokens = line.split()
    if not tokens:
        return None
    if len(tokens) % 2:
        raise DatasetError(f"{where}: {len(tokens)} values, expected x y pairs")
    try:
        values = np.array([float(t) for t in tokens], np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise DatasetError(f"{where}: {bad!r} is not a number (expected x y pairs)") from None
    if not np.isfinite(values).all():
        raise DatasetError(f"{where}: a coordinate is NaN or inf")
    if (np.abs(values) > MAX_COORDINATE).any():
        raise DatasetError(f"{where}: a coordinate lies beyond {MAX_COORDINATE:g} px")
    return values.reshape(-1, 2).astype(np.float32)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _list_entries(list_file: Path) -> list[tuple[int, str]]:
    """(line number, image path relative to ROOT) of each non-blank line of a CULane list."""
    text = read_text(list_file, "CULane list file")
    entries = [(n, line.split()[0].lstrip("/"))
               for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not entries:
        raise DatasetError(f"{list_file}: no images listed (CULane list file)")
    number, first = entries[0]
    if Path(first).suffix.lower() not in IMAGE_SUFFIXES:
        raise DatasetError(f"{list_file}:{number}: not a CULane list file (expected image paths such as "
                           f"/driver_23_30frame/05151649_0422.MP4/00000.jpg, got {first!r})")
    return entries


def _root_of(list_file: Path) -> Path:
    """The CULane root of a list file: the folder holding the nearest ``list`` folder above it."""
    absolute = Path(os.path.abspath(list_file))  # not resolve(): keep symlinked dataset folders
    for folder in absolute.parents:
        if folder.name == "list":
            return folder.parent
    return absolute.parent


def _check_lane_width(width: object, where: Path) -> int:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) \
            or width < 1 or width != int(width):
        raise DatasetError(f"{where}: lane_width must be a positive whole number of pixels, got {width!r}")
    return int(width)
