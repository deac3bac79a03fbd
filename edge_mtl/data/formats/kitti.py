"""``kitti`` (object detection) and ``kitti-tracking``: boxes from KITTI label files, metric depth
from the Velodyne scans projected into the left colour camera (image_2 / image_02).

Layouts read (PATH is the dataset root or its ``training/`` folder)::

    kitti            training/image_2/NNNNNN.png   training/label_2/NNNNNN.txt
                     training/calib/NNNNNN.txt     training/velodyne/NNNNNN.bin (optional)
    kitti-tracking   training/image_02/SEQ/FFFFFF.png   training/label_02/SEQ.txt
                     training/calib/SEQ.txt             training/velodyne/SEQ/FFFFFF.bin (optional)

A label line is ``type truncated occluded alpha x1 y1 x2 y2 h w l X Y Z rotation_y [score]``
(tracking lines start with ``frame track_id``): the 2-D box is in 0-based pixels of image_2 and
is used as given (left, top, right, bottom); dimensions and location (the bottom centre of the
3-D box) are metres in the rectified camera-0 frame (x right, y down, z forward). The testing
splits hold no labels and are refused. Types become our classes by ``class_map``; ``ignore``
(the default for Cyclist, Tram, Misc and DontCare) makes the box an ignore region, a type the
map lacks is dropped. Every listed frame is det-labelled (a tracking frame without label lines
has zero boxes).

Depth: with ``depth=True`` and the frame's Velodyne scan present, the scan is projected through
``P2 @ R0_rect @ Tr_velo_to_cam`` (`kitti_calib.project_depth`): metres, z in camera 2's
rectified frame, 0 where no point fell; without a scan the frame has no depth label. Intrinsics
are P2's (fx, fy, cx, cy); the camera stands 1.65 m above the road.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.formats.kitti_calib import (
    P2_KEYS,
    R_RECT_KEYS,
    VELO_TO_CAM_KEYS,
    calib_matrix,
    camera_from_projection,
    load_velodyne,
    project_depth,
    read_calib,
    velo_to_image,
)
from edge_mtl.data.reader import IGNORE, Reader, check_class_map, load_image, split_boxes
from edge_mtl.types import Sample

DEFAULT_CLASS_MAP: dict[str, str] = {
    "Car": "car", "Van": "car", "Truck": "truck",
    "Pedestrian": "pedestrian", "Person_sitting": "pedestrian",
    "Cyclist": IGNORE, "Tram": IGNORE, "Misc": IGNORE, "DontCare": IGNORE,
}
OBJECT_FIELDS = ("type", "truncated", "occluded", "alpha", "x1", "y1", "x2", "y2",
                 "height", "width", "length", "x", "y", "z", "rotation_y")  # then optional score
TRACKING_PREFIX = ("frame", "track_id")


@dataclass(frozen=True)
class KittiObject:
    """One label line, values as written (DontCare lines carry -1 / -10 / -1000 placeholders)."""

    type: str
    truncated: float  # object set: 0..1 fraction; tracking set: level 0, 1, 2
    occluded: int  # 0 fully visible, 1 partly, 2 largely occluded, 3 unknown
    alpha: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2: 0-based pixels
    dimensions: tuple[float, float, float]  # height, width, length (m)
    location: tuple[float, float, float]  # x, y, z of the box's bottom centre, camera-0 frame (m)
    rotation_y: float
    score: float | None = None  # result files only
    track_id: int | None = None  # tracking set only


def parse_object(fields: Sequence[str], where: str, prefix: Sequence[str] = ()) -> KittiObject:
    """A `KittiObject` from one line's fields (``prefix`` names the leading tracking fields);
    `DatasetError` naming ``where`` (file:line) and the field."""
    names = (*prefix, *OBJECT_FIELDS)
    if len(fields) not in (len(names), len(names) + 1):
        raise DatasetError(f"{where}: expected {len(names)} fields ({len(names) + 1} with score), "
                           f"got {len(fields)}")
    values: dict[str, float] = {}
    for name, text in zip((*names, "score"), fields):
        if name == "type":
            continue
        try:
            value = float(text)
        except ValueError:
            raise DatasetError(f"{where}: field {name} {text!r} is not a number") from None
        if not math.isfinite(value):
            raise DatasetError(f"{where}: field {name} {text!r} is not a finite number")
        values[name] = value
    for name in ("frame", "track_id"):
        if name in values and not values[name].is_integer():
            raise DatasetError(f"{where}: field {name} {fields[names.index(name)]!r} is not an integer")
    v = values
    return KittiObject(
        type=fields[len(prefix)], truncated=v["truncated"], occluded=int(v["occluded"]),
        alpha=v["alpha"], box=(v["x1"], v["y1"], v["x2"], v["y2"]),
        dimensions=(v["height"], v["width"], v["length"]), location=(v["x"], v["y"], v["z"]),
        rotation_y=v["rotation_y"], score=v.get("score"),
        track_id=int(v["track_id"]) if "track_id" in v else None)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{path}: label file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read the label file ({e})") from None


def _split_root(path: Path, images: str, labels: str, fmt: str) -> Path:
    """The folder holding ``images`` and ``labels``: ``path`` itself or ``path/training``."""
    for root in (path, path / "training"):
        if (root / images).is_dir():
            if not (root / labels).is_dir():
                raise DatasetError(f"{root}: has {images}/ but no {labels}/ ({fmt} reads the labelled "
                                   f"training split; the testing split has no labels)")
            if not (root / "calib").is_dir():
                raise DatasetError(f"{root}: no calib/ folder (the {fmt} calibration download)")
            return root
    hint = "; testing/ has no labels" if (path / "testing").is_dir() else ""
    raise DatasetError(f"{path}: not a {fmt} dataset (no {images}/ folder here or in training/{hint})")


def _check_bool(value: object, name: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise DatasetError(f"{where}: option {name} must be true or false, got {value!r}")
    return value


class _KittiBase(Reader):
    """What both label layouts share: the class map, the calibration and the Sample."""

    tasks = ("det", "depth")

    def __init__(self, path: str | os.PathLike, class_map: Mapping[str, str] | None, depth: bool):
        super().__init__(path)
        self.class_map = check_class_map(DEFAULT_CLASS_MAP if class_map is None else class_map,
                                         f"{self.format}:{self.path}")
        self.depth = _check_bool(depth, "depth", f"{self.format}:{self.path}")

    def _sample(self, index: int, image_path: Path, objects: list[KittiObject], calib_path: Path,
                velodyne_path: Path, name: str) -> Sample:
        image = load_image(image_path, self.source(index))
        h, w = image.shape[:2]
        calib = read_calib(calib_path)
        p2 = calib_matrix(calib, calib_path, P2_KEYS, (3, 4))
        depth = None
        if self.depth and velodyne_path.exists():
            projection = velo_to_image(p2, calib_matrix(calib, calib_path, R_RECT_KEYS, (3, 3)),
                                       calib_matrix(calib, calib_path, VELO_TO_CAM_KEYS, (3, 4)))
            depth = project_depth(load_velodyne(velodyne_path), projection, (h, w))
        boxes, classes, ignore = split_boxes([(o.type, o.box) for o in objects], self.class_map)
        return Sample(image=image, boxes=boxes, classes=classes, lane=None, depth=depth,
                      camera=camera_from_projection(p2, w, h), name=name, ignore=ignore)


class KittiReader(_KittiBase):
    """KITTI object detection (``training/{image_2,label_2,calib[,velodyne]}``)."""

    format = "kitti"

    def __init__(self, path: str | os.PathLike, *, class_map: Mapping[str, str] | None = None,
                 depth: bool = True):
        super().__init__(path, class_map, depth)
        self.root = _split_root(self.path, "image_2", "label_2", self.format)
        self.images = sorted((self.root / "image_2").glob("*.png"))
        if not self.images:
            raise DatasetError(f"{self.root / 'image_2'}: no .png images ({self.format} dataset)")

    def __len__(self) -> int:
        return len(self.images)

    def source(self, index: int) -> str:
        return str(self.root / "label_2" / f"{self.images[index].stem}.txt")

    def objects(self, index: int) -> list[KittiObject]:
        """The label file's objects, all types (DontCare included)."""
        path = Path(self.source(index))
        return [parse_object(line.split(), f"{path}:{n}")
                for n, line in enumerate(_read_lines(path), 1) if line.strip()]

    def read(self, index: int) -> Sample:
        stem = self.images[index].stem
        return self._sample(index, self.images[index], self.objects(index),
                            self.root / "calib" / f"{stem}.txt",
                            self.root / "velodyne" / f"{stem}.bin", stem)


class KittiTrackingReader(_KittiBase):
    """KITTI tracking (``training/{image_02/SEQ,label_02/SEQ.txt,calib/SEQ.txt[,velodyne/SEQ]}``)."""

    format = "kitti-tracking"

    def __init__(self, path: str | os.PathLike, *, class_map: Mapping[str, str] | None = None,
                 depth: bool = True, sequences: Sequence[str | int] | None = None):
        super().__init__(path, class_map, depth)
        self.root = _split_root(self.path, "image_02", "label_02", self.format)
        present = sorted(p.name for p in (self.root / "image_02").iterdir() if p.is_dir())
        if sequences is None:
            chosen = present
        else:
            if isinstance(sequences, (str, int)) or not isinstance(sequences, Sequence):
                raise DatasetError(f"{self.format}:{self.path}: option sequences must be a list of "
                                   f"sequence names such as ['0000', '0001'], got {sequences!r}")
            chosen = [_sequence_name(s, self.format, self.path) for s in sequences]
            missing = sorted(set(chosen) - set(present))
            if missing:
                raise DatasetError(f"{self.root / 'image_02'}: no sequence {missing} "
                                   f"(present: {present})")
        self.frames: list[tuple[str, int]] = []
        for seq in chosen:
            stems = sorted(p.stem for p in (self.root / "image_02" / seq).glob("*.png"))
            self.frames += [(seq, int(s)) for s in stems if s.isdigit()]
        if not self.frames:
            raise DatasetError(f"{self.root / 'image_02'}: no SEQ/FFFFFF.png frames "
                               f"({self.format} dataset)")
        self._lines: dict[str, dict[int, list[tuple[int, list[str]]]] | DatasetError] = {}

    def __len__(self) -> int:
        return len(self.frames)

    def source(self, index: int) -> str:
        seq, frame = self.frames[index]
        return f"{self.root / 'label_02' / seq}.txt frame {frame}"

    def objects(self, index: int) -> list[KittiObject]:
        """The frame's objects from its sequence's label file, all types (DontCare included)."""
        seq, frame = self.frames[index]
        if seq not in self._lines:
            try:
                self._lines[seq] = _lines_by_frame(self.root / "label_02" / f"{seq}.txt")
            except DatasetError as e:
                self._lines[seq] = e
        lines = self._lines[seq]
        if isinstance(lines, DatasetError):
            raise DatasetError(str(lines))
        path = self.root / "label_02" / f"{seq}.txt"
        return [parse_object(fields, f"{path}:{n}", TRACKING_PREFIX) for n, fields in lines.get(frame, [])]

    def read(self, index: int) -> Sample:
        seq, frame = self.frames[index]
        return self._sample(index, self.root / "image_02" / seq / f"{frame:06d}.png", self.objects(index),
                            self.root / "calib" / f"{seq}.txt",
                            self.root / "velodyne" / seq / f"{frame:06d}.bin", f"{seq}/{frame:06d}")


def _lines_by_frame(path: Path) -> dict[int, list[tuple[int, list[str]]]]:
    """A tracking label file's (line number, fields) by frame. A line whose frame field is not an
    integer could belong to any frame, so it fails every frame of the file."""
    frames: dict[int, list[tuple[int, list[str]]]] = {}
    for n, line in enumerate(_read_lines(path), 1):
        fields = line.split()
        if fields:
            if not fields[0].isdigit():
                raise DatasetError(f"{path}:{n}: field frame {fields[0]!r} is not a frame number "
                                   f"(so no frame of this file can be trusted)")
            frames.setdefault(int(fields[0]), []).append((n, fields))
    return frames


def _sequence_name(value: object, fmt: str, path: Path) -> str:
    """``1``, ``"1"`` or ``"0001"`` -> ``"0001"``."""
    text = str(value)
    if isinstance(value, bool) or not text.isdigit():
        raise DatasetError(f"{fmt}:{path}: option sequences: {value!r} is not a sequence number")
    return text.zfill(4)


__all__ = ["DEFAULT_CLASS_MAP", "KittiObject", "KittiReader", "KittiTrackingReader", "parse_object"]
