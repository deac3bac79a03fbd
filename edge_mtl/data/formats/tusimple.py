"""``tusimple``: the TuSimple lane benchmark's label files, read in place.

```
ROOT/label_data_0313.json    one JSON object per line, one line per labelled frame: {"lanes":
ROOT/label_data_0531.json      [[x, ...], ...], "h_samples": [y, ...], "raw_file": "clips/.../20.jpg"}
ROOT/label_data_0601.json
ROOT/test_label.json         the test split's ground truth, same format
ROOT/clips/<date>/<clip>/20.jpg   the labelled (20th) frame of each clip, 1280x720 in the benchmark
```
PATH is ROOT (every ``*.json`` at its top level except the benchmark's ``test_tasks*.json``
submission template and ``*baseline*.json`` predictions; option ``labels`` picks files or glob
patterns relative to ROOT) or one label file (its folder is ROOT). ``raw_file`` is relative to ROOT.

Conventions (TuSimple's ``doc/lane_detection/readme.md`` and ``evaluate/lane.py``): ``lanes[j][i]``
is the x pixel of lane j on image row ``h_samples[i]``, at source resolution; a negative x (the
files write -2) means lane j has no point on that row, as ``lane.py`` treats every x < 0. The lane
mask joins consecutive present points of a lane with `draw_lanes` at ``lane_width`` px, bridging
rows without a point between them, as the benchmark's demo notebook and the common segmentation
label generators (RESA / lanedet ``generate_seg_tusimple.py``) draw them. Only the lane task is
labelled, on every frame (a frame without lanes has an all-zero mask); no intrinsics, so the camera
is `Camera.assumed` at the image's real size. `lanes` and `h_samples` give the ground truth as the
benchmark metrics need it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.reader import DEFAULT_LANE_WIDTH, Reader, draw_lanes, load_image, read_text
from edge_mtl.types import Camera, Sample

__all__ = ["TusimpleReader"]

# Top-level JSON files of a TuSimple folder that are not ground truth: the test submission template
# (test_tasks_0627.json, no lanes) and the baseline's predictions (test_baseline.json).
NOT_LABELS = ("test_tasks*.json", "*baseline*.json")
_SNIFF_LINES = 10  # a file is a TuSimple label file if one of its first lines is a frame record
MAX_COORDINATE = 1e5  # px; farther is no pixel position (and would overflow the drawing)


class _Frame(NamedTuple):
    raw_file: str
    h_samples: np.ndarray  # float32 [R]
    lanes: list[np.ndarray]  # float32 [N, 2] x, y of the present points, one per JSON lane


class TusimpleReader(Reader):
    """TuSimple label lines; each line is parsed only when its frame is read."""

    format = "tusimple"
    tasks = ("lane",)

    def __init__(self, path: str | os.PathLike, *, labels: str | Sequence[str] | None = None,
                 lane_width: int = DEFAULT_LANE_WIDTH):
        super().__init__(path)
        self.lane_width = _check_lane_width(lane_width, self.path)
        if self.path.is_dir():
            self.root = self.path
            files = _label_files(self.path, labels)
        else:
            if labels is not None:
                raise DatasetError(f"{self.path}: option labels picks files in a TuSimple root folder, "
                                   f"but PATH is a label file")
            self.root = self.path.parent
            files = [self.path]
        self._lines = [entry for file in files for entry in _frame_lines(file)]
        if not self._lines:
            raise DatasetError(f"{self.path}: no labelled frames in {', '.join(f.name for f in files)}")

    def __len__(self) -> int:
        return len(self._lines)

    def source(self, index: int) -> str:
        file, number, _ = self._lines[index]
        return f"{file}:{number}"

    def h_samples(self, index: int) -> np.ndarray:
        """The image rows (float32 [R], source pixels) that frame ``index`` is labelled on."""
        return self._parse(index).h_samples

    def lanes(self, index: int) -> list[np.ndarray]:
        """Frame ``index``'s lanes in file order, each float32 [N, 2] x, y of its present points
        in ``h_samples`` order (rows with x < 0 left out; a lane may have none)."""
        return self._parse(index).lanes

    def read(self, index: int) -> Sample:
        frame = self._parse(index)
        where = self.source(index)
        image = load_image(self.root / frame.raw_file, where)
        h, w = image.shape[:2]
        for j, lane in enumerate(frame.lanes):
            outside = lane[(lane[:, 1] < 0) | (lane[:, 1] > h), 1]
            if outside.size:
                raise DatasetError(f"{where}: lanes[{j}] has a point on row {float(outside[0]):g}, outside "
                                   f"the {w}x{h} image {frame.raw_file} (labels for another resolution?)")
        lane = draw_lanes((h, w), frame.lanes, self.lane_width)
        return Sample(image=image, boxes=None, classes=None, lane=lane, depth=None,
                      camera=Camera.assumed(w, h), name=frame.raw_file)

    def _parse(self, index: int) -> _Frame:
        """The record on line ``index``, checked, or `DatasetError` naming the line and field."""
        where = self.source(index)
        try:
            record = json.loads(self._lines[index][2])
        except ValueError as e:
            raise DatasetError(f"{where}: not valid JSON ({getattr(e, 'msg', e)})") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(record).__name__}")
        missing = [k for k in ("lanes", "h_samples", "raw_file") if k not in record]
        if missing:
            raise DatasetError(f"{where}: missing field {missing[0]!r}")
        raw_file = record["raw_file"]
        if not isinstance(raw_file, str) or not raw_file.strip() or "\0" in raw_file:
            raise DatasetError(f"{where}: raw_file must be a non-empty path, got {raw_file!r}")
        ys = _numbers(record["h_samples"])
        if ys is None or (np.abs(ys) > MAX_COORDINATE).any():
            raise DatasetError(f"{where}: h_samples must be a list of pixel rows (finite numbers)")
        lanes = record["lanes"]
        if not isinstance(lanes, list):
            raise DatasetError(f"{where}: lanes must be a list of lanes, got {type(lanes).__name__}")
        points = []
        for j, lane in enumerate(lanes):
            xs = _numbers(lane)
            if xs is None or (xs > MAX_COORDINATE).any():
                raise DatasetError(f"{where}: lanes[{j}] must be a list of x pixels (finite numbers)")
            if len(xs) != len(ys):
                raise DatasetError(f"{where}: lanes[{j}] has {len(xs)} values but h_samples has {len(ys)}")
            present = xs >= 0
            points.append(np.stack([xs[present], ys[present]], axis=1).astype(np.float32))
        return _Frame(raw_file, ys.astype(np.float32), points)


def _numbers(values: object) -> np.ndarray | None:
    """A JSON list of finite numbers as float64, or None (a bool is not a number here)."""
    if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    try:
        array = np.array(values, dtype=np.float64).reshape(-1)
    except OverflowError:  # an integer beyond float range
        return None
    return array if np.isfinite(array).all() else None


def _check_lane_width(width: object, where: Path) -> int:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) \
            or width < 1 or width != int(width):
        raise DatasetError(f"{where}: lane_width must be a positive whole number of pixels, got {width!r}")
    return int(width)


def _label_files(root: Path, labels: str | Sequence[str] | None) -> list[Path]:
    """The label files of a TuSimple root: all top-level ``*.json`` but `NOT_LABELS`, or ``labels``."""
    if labels is None:
        files = sorted(p for p in root.glob("*.json")
                       if p.is_file() and not any(fnmatch(p.name, pattern) for pattern in NOT_LABELS))
        if not files:
            raise DatasetError(f"{root}: not a TuSimple folder (no label *.json files at its top level)")
        return files
    names = [labels] if isinstance(labels, str) else labels
    if not isinstance(names, Sequence) or not names or \
            not all(isinstance(n, str) and n.strip() for n in names):
        raise DatasetError(f"{root}: labels must name one or more label files, got {labels!r}")
    files: list[Path] = []
    for name in names:
        if any(c in name for c in "*?[") and not Path(name).is_absolute():
            matched = sorted(p for p in root.glob(name) if p.is_file())
        else:
            matched = [root / name] if (root / name).is_file() else []
        if not matched:
            raise DatasetError(f"{root}: labels entry {name!r} matches no file")
        files.extend(p for p in matched if p not in files)
    return files


def _frame_lines(file: Path) -> list[tuple[Path, int, str]]:
    """(file, line number, text) of each non-blank line, once the file looks like TuSimple labels."""
    text = read_text(file, "TuSimple label file", "utf-8-sig")
    lines = [(file, n, line) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    if lines and not any(_is_frame_record(line) for _, _, line in lines[:_SNIFF_LINES]):
        raise DatasetError(f"{file}: not a TuSimple label file (expected one JSON object per line "
                           f"with lanes, h_samples and raw_file)")
    return lines


def _is_frame_record(line: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and "raw_file" in record
