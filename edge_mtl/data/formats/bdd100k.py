"""``bdd100k``: BDD100K labels in the Scalabel JSON format, read in place (tasks det and lane).

PATH is one of
- a label file holding a list of frames (``det_20/det_train.json``, ``lane/polygons/lane_train.json``,
  the 2018 ``bdd100k_labels_images_train.json``; also a Scalabel ``{"frames": [...]}`` file or one
  frame object);
- a folder of per-image ``*.json`` files: each a Scalabel frame object (or a list of them), or the
  2018 per-image layout ``{"name", "frames": [{"objects": [...]}]}`` whose ``poly2d`` is a list of
  ``[x, y, "L"|"C"]`` points;
- a folder of BDD100K lane-mask PNGs (``labels/lane/masks/train``): lane-only samples;
- the BDD100K root (the folder holding ``labels/`` and ``images/``) with ``split`` (default train):
  ``labels/det_20/det_<split>.json`` and ``labels/lane/polygons/lane_<split>.json`` merged by image
  name (``labels/lane/masks/<split>/`` instead of the lane polygons when those are absent); else the
  2018 ``labels/bdd100k_labels_images_<split>.json``; else the per-image ``labels/100k/<split>/``.

Images are found by the frame's ``name`` (under ``videoName/`` too) in the ``images`` option, else in
the first of: the label file's folder, then ``images/100k/<split>``, ``images/10k/<split>`` and
``images/`` under that folder or any of its 4 parents, where ``<split>`` is the one the label path
names (``*_train.json``, a ``train``/``val``/``test`` folder), all three when it names none.

Conventions. ``box2d`` {x1, y1, x2, y2} counts x2, y2 as the last pixel inside the box (as the
bdd100k and Scalabel COCO converters do: width = x2 - x1 + 1), so our xyxy box is
[x1, y1, x2 + 1, y2 + 1]. A class-mapped label without ``box2d`` but with ``poly2d`` (the instance
segmentation files) gets the extent of its polygons. A ``poly2d`` is vertices with a ``types``
string: ``L`` a vertex, ``CC`` the two control points of a cubic Bezier curve from the vertex
before them to the vertex after them (matplotlib's CURVE4, as bdd100k's ``to_mask`` draws them);
``closed`` joins the last vertex back to the first. Lane labels are the lane-marking categories
of bdd100k/label/label.py in any of their spellings: ``single white`` (2020 lane files),
``lane/single white`` (2018 per-image files) or category ``lane`` with attribute ``laneType``
(2018 list files). Those in ``lane_categories`` are drawn ``lane_width`` px wide; the rest
(default: crosswalk and road curb) are no lane marking but still show that lanes were labelled.
A lane-mask PNG ``NAME.png`` (one uint8 channel, bdd100k/eval/lane.py: bits 0-2 the category in
label.py's order, bit 3 set = background, bit 4 style, bit 5 direction; background 255) replaces
the frame's poly2d lanes: its pixels of a ``lane_categories`` category are the marking. The
``lane_masks`` option names such a folder for any PATH (frames only it knows become lane-only
samples); ``lane_masks=False`` keeps a root from using its own.

What is labelled. A label file labels ``det`` when any of its frames holds a ``box2d`` (or a
class-mapped ``poly2d``, with ``poly2d_boxes``), ``lane`` when any holds a lane label; then every
frame of it is labelled for that task, one without such labels being a negative (no boxes, an
empty lane mask). Files of a folder decide alone: a 2018 per-image file labels both, a Scalabel
frame file the tasks its own labels show. A frame with a lane-mask PNG is lane-labelled. The
``tasks`` option replaces the inference: every frame is labelled for those tasks.

Class map (``class_map``: BDD100K category -> one of CLASSES or "ignore"; unlisted categories are
dropped, e.g. traffic light/sign): see DEFAULT_CLASS_MAP. A label with attribute ``crowd`` (or
Scalabel's ``ignored``) true becomes an ignore region, as do the categories mapped to "ignore".
BDD100K has no calibration: the camera is `Camera.assumed` unless a Scalabel frame carries
``intrinsics`` {focal: [fx, fy], center: [cx, cy]}.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edge_mtl.compat import removeprefix
from edge_mtl.data.checks import DatasetError
from edge_mtl.data.reader import (
    DEFAULT_LANE_WIDTH,
    IGNORE,
    Reader,
    check_class_map,
    class_index,
    draw_lanes,
    load_image,
)
from edge_mtl.imageio import CorruptImageError, read_image
from edge_mtl.types import Camera, Sample

__all__ = ["DEFAULT_CLASS_MAP", "LANE_CATEGORIES", "PAINTED_LINES", "Bdd100kReader", "decode_lane_mask"]

# bdd100k/label/label.py `lane_categories`, in the order of their lane-mask id (0..7).
LANE_CATEGORIES: tuple[str, ...] = ("crosswalk", "double other", "double white", "double yellow",
                                    "road curb", "single other", "single white", "single yellow")
PAINTED_LINES: tuple[str, ...] = ("double other", "double white", "double yellow",
                                  "single other", "single white", "single yellow")

DEFAULT_CLASS_MAP: dict[str, str] = {
    "car": "car", "van": "car", "caravan": "car",  # van, caravan: bdd100k det.toml name_mapping
    "bus": "truck", "truck": "truck",
    "pedestrian": "pedestrian", "person": "pedestrian", "rider": "pedestrian",
    **dict.fromkeys(("motorcycle", "motor", "bicycle", "bike", "train", "trailer",
                     "other vehicle", "other person"), IGNORE),
}

_SPLITS = ("train", "val", "test")
_BACKGROUND_BIT = 8  # lane-mask bit 3: set on background pixels
_CATEGORY_BITS = 7  # lane-mask bits 0-2: the category id
_PARENTS_SEARCHED = 4


@dataclass
class _Part:
    """One label source's record of a frame: a frame dict (``raw``) or a file read lazily."""

    where: str
    raw: Any = None
    file: Path | None = None  # a per-image JSON file, parsed in `read`
    tasks: frozenset[str] | None = None  # the tasks its file labels; None: from the frame itself
    image_dirs: tuple[Path, ...] = ()


@dataclass
class _Frame:
    key: str  # the image name without suffix: what parts and lane masks are merged by
    parts: list[_Part] = field(default_factory=list)
    mask: Path | None = None
    mask_dirs: tuple[Path, ...] = ()  # where a mask-only frame's image is looked for


@dataclass
class _Parsed:
    name: str
    boxes: list[list[float]]
    classes: list[int]
    ignore: list[list[float]]
    lanes: list[np.ndarray]
    tasks: set[str]
    camera: dict[str, float] | None


def decode_lane_mask(mask: np.ndarray, categories: Sequence[int]) -> np.ndarray:
    """BDD100K lane-mask bytes -> uint8 0/1: foreground pixels whose category id is in ``categories``."""
    foreground = (mask & _BACKGROUND_BIT) == 0
    return (foreground & np.isin(mask & _CATEGORY_BITS, list(categories))).astype(np.uint8)


class Bdd100kReader(Reader):
    """BDD100K Scalabel labels (boxes, lane polylines) and lane-mask PNGs, by frame."""

    format = "bdd100k"
    tasks = ("det", "lane")

    def __init__(self, path: str | os.PathLike, *, images: str | None = None,
                 class_map: Mapping[str, str] | None = None,
                 lane_categories: Sequence[str] = PAINTED_LINES,
                 lane_width: int = DEFAULT_LANE_WIDTH, lane_masks: str | bool | None = None,
                 tasks: Sequence[str] | None = None, split: str = "train",
                 poly2d_boxes: bool = True):
        super().__init__(path)
        where = str(self.path)
        self.class_map = check_class_map(DEFAULT_CLASS_MAP if class_map is None else class_map, where)
        self.lane_ids = _lane_ids(lane_categories, where)
        if isinstance(lane_width, bool) or not isinstance(lane_width, int) or lane_width < 1:
            raise DatasetError(f"{where}: lane_width must be a whole number of pixels >= 1, "
                               f"got {lane_width!r}")
        self.lane_width = lane_width
        self.task_override = None if tasks is None else _check_tasks(tasks, where)
        if split not in _SPLITS:
            raise DatasetError(f"{where}: split must be one of {list(_SPLITS)}, got {split!r}")
        self.poly2d_boxes = bool(poly2d_boxes)
        self.images = None if images is None else Path(images)
        if self.images is not None and not self.images.is_dir():
            raise DatasetError(f"{where}: images folder {self.images} not found")

        sources, masks = self._layout(split, lane_masks)
        self.frames: dict[str, _Frame] = {}
        for source in sources:
            self._add_source(source)
        if masks is not None:
            self._add_masks(masks)
        self._order = list(self.frames.values())

    # ---- listing ----------------------------------------------------------------------------

    def _layout(self, split: str, lane_masks: str | bool | None) -> tuple[list[Path], Path | None]:
        """The label sources and the lane-mask folder that PATH (and the options) stand for."""
        path = self.path
        if lane_masks is True:
            lane_masks = None  # the same as auto
        masks = None if lane_masks is None or lane_masks is False else Path(lane_masks)
        if masks is not None and not masks.is_dir():
            raise DatasetError(f"{path}: lane_masks folder {masks} not found")
        if path.is_file():
            return [path], masks
        root = path / "bdd100k" if (path / "bdd100k" / "labels").is_dir() else path
        labels = root / "labels"
        if labels.is_dir():
            det = labels / "det_20" / f"det_{split}.json"
            lane = labels / "lane" / "polygons" / f"lane_{split}.json"
            found_masks = labels / "lane" / "masks" / split
            auto_masks = found_masks if found_masks.is_dir() and lane_masks is None else None
            if det.is_file() or lane.is_file():
                sources = [p for p in (det, lane) if p.is_file()]
                return sources, masks or (auto_masks if not lane.is_file() else None)
            for old in (labels / f"bdd100k_labels_images_{split}.json", labels / "100k" / split):
                if old.exists():
                    return [old], masks
            if masks or auto_masks:
                return [], masks or auto_masks
            raise DatasetError(f"{path}: a BDD100K root but none of {det}, {lane}, {found_masks}, "
                               f"labels/bdd100k_labels_images_{split}.json, labels/100k/{split} exists "
                               f"(split={split!r})")
        if any(path.glob("*.json")):
            return [path], masks
        if any(path.glob("*.png")):
            return [], masks or path
        raise DatasetError(f"{path}: not a BDD100K label file, per-image label folder, lane-mask "
                           f"folder or root (no *.json, *.png or labels/ there)")

    def _add_source(self, source: Path) -> None:
        dirs = self._image_dirs(source)
        if source.is_dir():
            files = sorted(source.glob("*.json"))
            if not files:
                raise DatasetError(f"{source}: no *.json label files")
            for file in files:
                if _first_char(file) != "[":  # one frame: parsed in `read`
                    self._frame(file.stem, _Part(str(file), file=file, image_dirs=dirs))
                    continue
                try:  # a list of frames (one video's): listed now
                    data = _load_json(file)
                except DatasetError as e:  # fails its own sample only
                    self._frame(file.stem, _Part(str(file), raw=e, image_dirs=dirs))
                    continue
                self._add_frames(file, data, dirs)
            return
        self._add_frames(source, _load_json(source), dirs)

    def _add_frames(self, file: Path, data: Any, dirs: tuple[Path, ...]) -> None:
        """Every frame of one parsed label file, with the tasks the whole file labels."""
        if isinstance(data, dict) and isinstance(data.get("frames"), list) and not _is_v1(data):
            data = data["frames"]  # a Scalabel dataset {"frames": [...], "config": ...}
        if isinstance(data, dict) and (_is_v1(data) or "name" in data or "labels" in data):
            data = [data]  # one frame
        if not isinstance(data, list) or (data and not any(isinstance(f, dict) for f in data)):
            raise DatasetError(f"{file}: not a BDD100K/Scalabel label file (expected a list of frames "
                               f"{{name, labels}}, got {_describe(data)})")
        tasks = self.task_override or frozenset(self._scan(data))
        for i, raw in enumerate(data):
            name = raw.get("name") if isinstance(raw, dict) else None
            key = _key(name) if isinstance(name, str) and name else f"{file}#{i}"
            label = f" ({name})" if isinstance(name, str) else ""
            self._frame(key, _Part(f"{file} frame {i}{label}", raw=raw, tasks=tasks, image_dirs=dirs))

    def _add_masks(self, folder: Path) -> None:
        dirs = self._image_dirs(folder)
        pngs = sorted(folder.glob("*.png"))
        if not pngs:
            raise DatasetError(f"{folder}: no lane-mask *.png files")
        for png in pngs:
            frame = self.frames.get(png.stem) or self._frame(png.stem, None)
            frame.mask, frame.mask_dirs = png, dirs

    def _frame(self, key: str, part: _Part | None) -> _Frame:
        frame = self.frames.setdefault(key, _Frame(key))
        if part is not None:
            frame.parts.append(part)
        return frame

    def _scan(self, frames: list[Any]) -> set[str]:
        """The tasks a label file labels, from what its frames hold (never raises on bad entries)."""
        found: set[str] = set()
        for raw in frames:
            for label in _raw_labels(raw):
                if not isinstance(label, dict) or not isinstance(label.get("category"), str):
                    continue
                category = label["category"]
                if _is_lane(category):
                    found.add("lane")
                elif label.get("box2d") is not None or (
                        self.poly2d_boxes and label.get("poly2d") and category in self.class_map):
                    found.add("det")
            if len(found) == 2:
                break
        return found

    def _image_dirs(self, source: Path) -> tuple[Path, ...]:
        if self.images is not None:
            return (self.images,)
        start = source if source.is_dir() else source.parent
        named = [s for s in _SPLITS if re.search(rf"(^|_){s}\.json$", source.name)]
        named = named or [part for part in source.parts if part in _SPLITS][-1:]
        splits = named or list(_SPLITS)
        dirs = [start]
        for folder in [start, *list(start.parents)[:_PARENTS_SEARCHED]]:
            for s in splits:
                dirs += [folder / "images" / "100k" / s, folder / "images" / "10k" / s]
            dirs.append(folder / "images")
        unique = dict.fromkeys(d for d in dirs if d.is_dir())
        return tuple(unique)

    # ---- reading ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._order)

    def source(self, index: int) -> str:
        frame = self._order[index]
        wheres = [p.where for p in frame.parts] + ([str(frame.mask)] if frame.mask else [])
        return " + ".join(wheres)

    def read(self, index: int) -> Sample:
        frame = self._order[index]
        parsed = [self._parse(part) for part in frame.parts]
        tasks = set().union(*(p.tasks for p in parsed))
        if parsed:
            name, image_dirs, where = parsed[0].name, frame.parts[0].image_dirs, frame.parts[0].where
            video = _video_name(frame.parts[0])
        else:
            name, image_dirs, where, video = f"{frame.key}.jpg", frame.mask_dirs, str(frame.mask), None
        image = load_image(_find_image(name, video, image_dirs, where), where)
        h, w = image.shape[:2]
        lane = None
        if frame.mask is not None:
            lane = self._read_mask(frame.mask, (h, w))
        elif "lane" in tasks:
            lane = draw_lanes((h, w), [line for p in parsed for line in p.lanes], self.lane_width)
        boxes = classes = ignore = None
        if "det" in tasks:
            boxes = np.asarray([b for p in parsed for b in p.boxes], np.float32).reshape(-1, 4)
            classes = np.asarray([c for p in parsed for c in p.classes], np.int64)
            ignore = np.asarray([b for p in parsed for b in p.ignore], np.float32).reshape(-1, 4)
        intrinsics = next((p.camera for p in parsed if p.camera), None)
        camera = Camera(w, h, **intrinsics) if intrinsics else Camera.assumed(w, h)
        return Sample(image=image, boxes=boxes, classes=classes, lane=lane, depth=None,
                      camera=camera, name=name, ignore=ignore)

    def _read_mask(self, path: Path, size: tuple[int, int]) -> np.ndarray:
        import cv2

        try:
            mask = read_image(path, cv2.IMREAD_UNCHANGED)
        except CorruptImageError as e:
            raise DatasetError(f"{e} (lane mask)") from None
        if mask.ndim != 2 or mask.dtype != np.uint8:
            raise DatasetError(f"{path}: a BDD100K lane mask is one 8-bit channel, got {mask.dtype} "
                               f"{list(mask.shape)} (a colormap?)")
        if mask.shape != size:
            raise DatasetError(f"{path}: lane mask is {mask.shape[1]}x{mask.shape[0]}, "
                               f"image is {size[1]}x{size[0]}")
        return decode_lane_mask(mask, self.lane_ids)

    def _parse(self, part: _Part) -> _Parsed:
        """One record's name, boxes, ignore regions, lane polylines and labelled tasks."""
        where = part.where
        raw = _load_json(part.file) if part.file is not None else part.raw
        if isinstance(raw, DatasetError):
            raise raw
        whole_file = part.tasks  # a list file's tasks; None for a per-image file
        if isinstance(raw, dict) and _is_v1(raw):
            labels, name = _v1_objects(raw, where), raw.get("name")
            whole_file = frozenset(self.tasks)  # the 2018 release labelled every image for both
            if part.file is not None and not isinstance(name, str):
                name = part.file.stem
        elif isinstance(raw, dict):
            if isinstance(raw.get("frames"), list):
                raise DatasetError(f"{where}: holds {len(raw['frames'])} frames; pass this file as PATH")
            labels, name = raw.get("labels"), raw.get("name")
            if labels is None:
                labels = []  # a frame without objects
        else:
            raise DatasetError(f"{where}: a frame must be a JSON object, got {type(raw).__name__}")
        if not isinstance(name, str) or not name:
            raise DatasetError(f"{where}: frame field 'name' must be the image file name, got {name!r}")
        if not PurePosixPath(name).suffix:
            name += ".jpg"  # the 2018 per-image files name the image without its suffix
        if not isinstance(labels, list):
            raise DatasetError(f"{where}: 'labels' must be a list, got {type(labels).__name__}")
        out = _Parsed(name, [], [], [], [], set(), _intrinsics(raw, where))
        for j, label in enumerate(labels):
            self._parse_label(label, f"{where}: labels[{j}]", out)
        out.tasks = set(self.task_override or whole_file or out.tasks)
        return out

    def _parse_label(self, label: Any, where: str, out: _Parsed) -> None:
        if not isinstance(label, dict):
            raise DatasetError(f"{where} must be an object, got {type(label).__name__}")
        category = label.get("category")
        if not isinstance(category, str):
            raise DatasetError(f"{where}.category must be a string, got {category!r}")
        attributes = label.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise DatasetError(f"{where}.attributes must be an object, got {type(attributes).__name__}")
        where = f"{where} (id {label.get('id')!r}, {category})"
        if _is_lane(category):
            out.tasks.add("lane")
            if _lane_type(category, attributes, where) in self.lane_ids:
                out.lanes.extend(_polys(label.get("poly2d"), where))
            return
        cls = class_index(category, self.class_map)
        box, poly2d = label.get("box2d"), label.get("poly2d")
        use_polygon = bool(self.poly2d_boxes and cls is not None and poly2d)
        if box is not None or use_polygon:
            out.tasks.add("det")
        if cls is None:
            return
        if box is not None:
            xyxy = _box2d(box, where)
        elif use_polygon:
            points = np.vstack(_polys(poly2d, where))
            xyxy = [*points.min(0).tolist(), *points.max(0).tolist()]
        elif poly2d:
            return  # a polygon, and poly2d_boxes is off
        else:
            raise DatasetError(f"{where}: a {category} label needs box2d or poly2d")
        if cls == IGNORE or _flag(attributes, "crowd", where) or _flag(attributes, "ignored", where):
            out.ignore.append(xyxy)
        else:
            out.boxes.append(xyxy)
            out.classes.append(int(cls))


# ---- helpers ----------------------------------------------------------------------------------

def _lane_ids(categories: Sequence[str], where: str) -> tuple[int, ...]:
    if isinstance(categories, str) or not isinstance(categories, Sequence):
        raise DatasetError(f"{where}: lane_categories must be a list of {list(LANE_CATEGORIES)}, "
                           f"got {categories!r}")
    names = [removeprefix(c, "lane/") if isinstance(c, str) else c for c in categories]
    bad = [c for c in names if c not in LANE_CATEGORIES]
    if bad:
        raise DatasetError(f"{where}: lane_categories {bad} are not BDD100K lane categories "
                           f"{list(LANE_CATEGORIES)}")
    return tuple(sorted({LANE_CATEGORIES.index(c) for c in names}))


def _check_tasks(tasks: Sequence[str], where: str) -> frozenset[str]:
    known = set(Bdd100kReader.tasks)
    if isinstance(tasks, str) or not isinstance(tasks, Sequence) or not set(tasks) <= known:
        raise DatasetError(f"{where}: tasks must be a list drawn from {list(Bdd100kReader.tasks)}, "
                           f"got {tasks!r}")
    return frozenset(tasks)


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{path}: label file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: not readable JSON ({e})") from None


def _describe(data: Any) -> str:
    if isinstance(data, dict):
        return f"an object with keys {sorted(data)[:6]}"
    return f"a list of {type(data[0]).__name__}" if isinstance(data, list) and data else type(data).__name__


def _first_char(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(256).lstrip()[:1].decode("ascii", "replace")
    except OSError:
        return ""


def _key(name: str) -> str:
    return str(PurePosixPath(name).with_suffix(""))


def _is_v1(data: dict) -> bool:
    """The 2018 per-image layout: {"name", "frames": [{"objects": [...]}]}."""
    frames = data.get("frames")
    return (isinstance(frames, list) and bool(frames) and isinstance(frames[0], dict)
            and "objects" in frames[0])


def _v1_objects(data: dict, where: str) -> list:
    objects = data["frames"][0].get("objects")
    if objects is None:
        return []
    if not isinstance(objects, list):
        raise DatasetError(f"{where}: frames[0].objects must be a list, got {type(objects).__name__}")
    return objects


def _raw_labels(raw: Any) -> list:
    """A frame's labels as they stand (for scanning: anything unexpected is no labels)."""
    if not isinstance(raw, dict):
        return []
    labels = raw["frames"][0].get("objects") if _is_v1(raw) else raw.get("labels")
    return labels if isinstance(labels, list) else []


def _video_name(part: _Part) -> str | None:
    video = part.raw.get("videoName") if isinstance(part.raw, dict) else None
    return video if isinstance(video, str) and video else None


def _find_image(name: str, video: str | None, dirs: tuple[Path, ...], where: str) -> Path:
    for folder in dirs:
        for candidate in ([folder / video / name] if video else []) + [folder / name]:
            if candidate.is_file():
                return candidate
    looked = ", ".join(str(d) for d in dirs) or "no images folder next to the labels"
    raise DatasetError(f"{where}: image {name!r} not found (looked in {looked}; set the images option)")


def _is_lane(category: str) -> bool:
    return category == "lane" or category.startswith("lane/") or category in LANE_CATEGORIES


def _lane_type(category: str, attributes: dict, where: str) -> int | None:
    """The lane-mask category id of a lane label, None for a type outside label.py's list."""
    if category == "lane":  # the 2018 list files: the type is an attribute
        kind = attributes.get("laneType", attributes.get("laneTypes"))
        if not isinstance(kind, str):
            raise DatasetError(f"{where}: a 'lane' label needs attributes.laneType, got {kind!r}")
    else:
        kind = category
    kind = removeprefix(kind, "lane/")
    return LANE_CATEGORIES.index(kind) if kind in LANE_CATEGORIES else None


def _flag(attributes: dict, key: str, where: str) -> bool:
    value = attributes.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise DatasetError(f"{where}: attributes.{key} must be true or false, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise DatasetError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _box2d(box: Any, where: str) -> list[float]:
    if not isinstance(box, dict):
        raise DatasetError(f"{where}: box2d must be an object {{x1, y1, x2, y2}}, got {box!r}")
    missing = [k for k in ("x1", "y1", "x2", "y2") if k not in box]
    if missing:
        raise DatasetError(f"{where}: box2d lacks {missing}")
    x1, y1, x2, y2 = (_number(box[k], f"{where}: box2d.{k}") for k in ("x1", "y1", "x2", "y2"))
    return [x1, y1, x2 + 1.0, y2 + 1.0]  # x2, y2 are the last pixel inside


def _polys(poly2d: Any, where: str) -> list[np.ndarray]:
    """Each polygon/polyline of a label as points [N, 2] (Bezier curves sampled, closed ones closed)."""
    if not isinstance(poly2d, list) or not poly2d:
        raise DatasetError(f"{where}: poly2d must be a non-empty list, got {poly2d!r}")
    if all(isinstance(p, list) and len(p) == 3 and isinstance(p[2], str) for p in poly2d):
        polys = [{"vertices": [p[:2] for p in poly2d], "types": "".join(p[2] for p in poly2d)}]
    else:
        polys = poly2d
    out = []
    for k, poly in enumerate(polys):
        at = f"{where}: poly2d[{k}]"
        if not isinstance(poly, dict):
            raise DatasetError(f"{at} must be an object {{vertices, types, closed}}, got {poly!r}")
        try:
            vertices = np.asarray(poly.get("vertices"), np.float64)
        except (TypeError, ValueError):
            raise DatasetError(f"{at}.vertices must be a list of [x, y]") from None
        if (vertices.ndim != 2 or vertices.shape[1] != 2 or len(vertices) == 0
                or not np.isfinite(vertices).all()):
            raise DatasetError(f"{at}.vertices must be a non-empty list of finite [x, y], "
                               f"got shape {list(vertices.shape)}")
        types = poly.get("types", "L" * len(vertices))
        if not isinstance(types, str) or len(types) != len(vertices) or set(types) - {"L", "C"}:
            raise DatasetError(f"{at}.types must be one 'L' or 'C' per vertex ({len(vertices)}), "
                               f"got {types!r}")
        closed = poly.get("closed", False)
        if not isinstance(closed, bool):
            raise DatasetError(f"{at}.closed must be true or false, got {closed!r}")
        out.append(_sample_path(vertices, types, closed, at))
    return out


def _sample_path(vertices: np.ndarray, types: str, closed: bool, where: str) -> np.ndarray:
    """The path's points: vertices as they are, each ``C C`` pair a cubic Bezier sampled ~4 px apart."""
    if closed:
        vertices, types = np.vstack([vertices, vertices[:1]]), types + "L"
    if types[0] == "C":
        raise DatasetError(f"{where}.types must start with a vertex 'L', got {types!r}")
    points, i = [vertices[0]], 1
    while i < len(types):
        if types[i] == "L":
            points.append(vertices[i])
            i += 1
            continue
        if i + 2 >= len(types) or types[i + 1] != "C":
            raise DatasetError(f"{where}.types: control points come in pairs 'CC' followed by a vertex, "
                               f"got {types!r}")
        p0, p1, p2, p3 = vertices[i - 1], vertices[i], vertices[i + 1], vertices[i + 2]
        steps = int(np.clip(np.ceil((np.linalg.norm(p1 - p0) + np.linalg.norm(p2 - p1)
                                     + np.linalg.norm(p3 - p2)) / 4.0), 4, 64))
        t = np.linspace(0.0, 1.0, steps + 1)[1:, None]
        points.extend((1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3)
        i += 3
    return np.asarray(points, np.float64)


def _intrinsics(raw: Any, where: str) -> dict[str, float] | None:
    """A Scalabel frame's ``intrinsics`` {focal: [fx, fy], center: [cx, cy]} (BDD100K has none)."""
    intr = raw.get("intrinsics") if isinstance(raw, dict) else None
    if intr is None:
        return None
    try:
        fx, fy = (_number(v, f"{where}: intrinsics.focal") for v in intr["focal"])
        cx, cy = (_number(v, f"{where}: intrinsics.center") for v in intr["center"])
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{where}: intrinsics must be {{focal: [fx, fy], center: [cx, cy]}}, "
                           f"got {intr!r}") from None
    if fx <= 0 or fy <= 0:
        raise DatasetError(f"{where}: intrinsics.focal must be positive, got {[fx, fy]}")
    return {"fx": fx, "fy": fy, "cx": cx, "cy": cy}
