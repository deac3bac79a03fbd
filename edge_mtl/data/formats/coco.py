"""``coco``: a COCO object-detection annotation file, read in place (task det).

PATH is the annotation JSON (e.g. ``annotations/instances_val2017.json``)::

    {"images":      [{"id", "file_name", "width", "height"}, ...],
     "annotations": [{"id", "image_id", "category_id", "bbox": [x, y, w, h], "iscrowd"}, ...],
     "categories":  [{"id", "name"}, ...]}

``bbox`` is in pixels from the image's top-left corner, [x, y, width, height] (continuous
coordinates, so our xyxy box is [x, y, x + w, y + h]). Each image is one sample, in the order of
``images``; an image without annotations is a detection-labelled negative (no boxes). Images are
``file_name`` under the ``images`` option, else the first folder holding it of: ``<root>/<split>``
and ``<root>/images/<split>`` for the COCO layout ``<root>/annotations/<kind>_<split>.json``
(``instances_train2017.json`` -> ``<root>/train2017``), ``<root>/images``, the JSON's folder.

Class map (``class_map``: COCO category ``name`` -> one of CLASSES or "ignore"; unlisted
categories are dropped): see DEFAULT_CLASS_MAP. Ignore regions: ``iscrowd`` 1 (and the
``ignore`` 1 flag some COCO-style files carry), and categories mapped to "ignore". A box of zero
width or height is dropped (it covers no pixel). COCO has no calibration: ``Camera.assumed``.

The file is parsed in ``__init__`` (malformed top level or categories fail there); each image's
entry and annotations are checked in `read`, so a bad annotation fails only its image's sample,
naming the file, the annotation id and the field. Annotations whose ``image_id`` names no image
of the file are ignored with a warning.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.reader import IGNORE, Reader, check_class_map, class_index, load_image
from edge_mtl.types import Camera, Sample

__all__ = ["DEFAULT_CLASS_MAP", "CocoReader"]

DEFAULT_CLASS_MAP: dict[str, str] = {
    "car": "car", "bus": "truck", "truck": "truck", "person": "pedestrian",
    "motorcycle": IGNORE, "bicycle": IGNORE, "train": IGNORE,
}


class CocoReader(Reader):
    """COCO detection boxes by image; crowds and unmodelled vehicles as ignore regions."""

    format = "coco"
    tasks = ("det",)

    def __init__(self, path: str | os.PathLike, *, images: str | None = None,
                 class_map: Mapping[str, str] | None = None):
        super().__init__(path)
        where = str(self.path)
        self.class_map = check_class_map(DEFAULT_CLASS_MAP if class_map is None else class_map, where)
        if not self.path.is_file():
            raise DatasetError(f"{where}: a coco dataset is its annotation JSON file, not a folder")
        data = _load_json(self.path)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise DatasetError(f"{where}: not a COCO annotation file (no 'images' list)")
        if not isinstance(data.get("annotations"), list):
            raise DatasetError(f"{where}: no 'annotations' list (an image-info file holds no "
                               f"detection labels)")
        self.categories = _categories(data.get("categories"), where)
        self.images: list[Any] = data["images"]
        self.image_dirs = _image_dirs(self.path, images)

        self._first: dict[Any, int] = {}  # image id -> index of its first entry
        for i, image in enumerate(self.images):
            image_id = image.get("id") if isinstance(image, dict) else None
            if _is_id(image_id):
                self._first.setdefault(image_id, i)
        self._annotations: dict[Any, list[Any]] = {}
        orphans = []
        for ann in data["annotations"]:
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            if not _is_id(image_id) or image_id not in self._first:
                orphans.append(ann)
                continue
            ann.pop("segmentation", None)  # the masks are not used; they are most of the memory
            self._annotations.setdefault(image_id, []).append(ann)
        if orphans:
            first = orphans[0].get("id") if isinstance(orphans[0], dict) else orphans[0]
            warnings.warn(f"{where}: {len(orphans)} annotation(s) name no image of the file (first: id "
                          f"{first!r}); they are ignored", stacklevel=2)

    def __len__(self) -> int:
        return len(self.images)

    def source(self, index: int) -> str:
        image = self.images[index]
        if isinstance(image, dict):
            return f"{self.path} (image id {image.get('id')!r}: {image.get('file_name')})"
        return f"{self.path} (images[{index}])"

    def read(self, index: int) -> Sample:
        where = self.source(index)
        entry = self.images[index]
        if not isinstance(entry, dict):
            raise DatasetError(f"{where}: an image entry must be an object, got {type(entry).__name__}")
        image_id, file_name = entry.get("id"), entry.get("file_name")
        if not _is_id(image_id) or self._first[image_id] != index:
            raise DatasetError(f"{where}: image 'id' must be a number or string unique in the file, "
                               f"got {image_id!r}" + (" (a duplicate)" if image_id in self._first else ""))
        if not isinstance(file_name, str) or not file_name:
            raise DatasetError(f"{where}: image 'file_name' must be a file name, got {file_name!r}")
        image = load_image(_find_image(file_name, self.image_dirs, where), where)
        h, w = image.shape[:2]
        said = entry.get("width"), entry.get("height")
        if all(isinstance(v, int) for v in said) and said != (w, h):
            raise DatasetError(f"{where}: image file is {w}x{h} but the entry says {said[0]}x{said[1]}")
        boxes, classes, ignore = [], [], []
        for k, ann in enumerate(self._annotations.get(image_id, [])):
            label = f"{where}: annotation id {ann.get('id', f'#{k}')!r}"
            name = self._category(ann, label)
            xyxy = _bbox(ann.get("bbox"), label)
            crowd = _flag(ann, "iscrowd", label) or _flag(ann, "ignore", label)
            cls = class_index(name, self.class_map)
            if cls is None or xyxy[2] <= xyxy[0] or xyxy[3] <= xyxy[1]:
                continue
            if crowd or cls == IGNORE:
                ignore.append(xyxy)
            else:
                boxes.append(xyxy)
                classes.append(int(cls))
        return Sample(image=image, boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                      classes=np.asarray(classes, np.int64), lane=None, depth=None,
                      camera=Camera.assumed(w, h), name=file_name,
                      ignore=np.asarray(ignore, np.float32).reshape(-1, 4))

    def _category(self, ann: dict, where: str) -> str:
        category_id = ann.get("category_id")
        if not _is_id(category_id) or category_id not in self.categories:
            raise DatasetError(f"{where}: category_id {category_id!r} is none of the file's categories")
        return self.categories[category_id]


def _is_id(value: Any) -> bool:
    """A COCO id: a number or a string (hashable, not a bool)."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: not readable JSON ({e})") from None


def _categories(categories: Any, where: str) -> dict[Any, str]:
    if not isinstance(categories, list):
        raise DatasetError(f"{where}: no 'categories' list (needed to map category_id to names)")
    out = {}
    for k, cat in enumerate(categories):
        if (not isinstance(cat, dict) or not isinstance(cat.get("name"), str)
                or not _is_id(cat.get("id"))):
            raise DatasetError(f"{where}: categories[{k}] must be {{id, name}}, got {cat!r}")
        out[cat["id"]] = cat["name"]
    return out


def _image_dirs(path: Path, images: str | None) -> tuple[Path, ...]:
    if images is not None:
        if not Path(images).is_dir():
            raise DatasetError(f"{path}: images folder {images} not found")
        return (Path(images),)
    folder, dirs = path.parent, []
    split = re.fullmatch(r"[A-Za-z]+_(.+)", path.stem)
    if folder.name == "annotations":
        root = folder.parent
        if split:
            dirs += [root / split.group(1), root / "images" / split.group(1)]
        dirs.append(root / "images")
    dirs.append(folder)
    return tuple(d for d in dirs if d.is_dir())


def _find_image(file_name: str, dirs: tuple[Path, ...], where: str) -> Path:
    for folder in dirs:
        if (folder / file_name).is_file():
            return folder / file_name
    raise DatasetError(f"{where}: image {file_name!r} not found (looked in "
                       f"{', '.join(str(d) for d in dirs)}; set the images option)")


def _bbox(bbox: Any, where: str) -> list[float]:
    """[x, y, w, h] -> [x1, y1, x2, y2]."""
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in bbox):
        raise DatasetError(f"{where}: bbox must be 4 finite numbers [x, y, width, height], got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if w < 0 or h < 0:
        raise DatasetError(f"{where}: bbox width and height must not be negative, got {bbox!r}")
    return [x, y, x + w, y + h]


def _flag(ann: dict, key: str, where: str) -> bool:
    value = ann.get(key, 0)
    if value in (0, 1) and not isinstance(value, float):
        return bool(value)
    raise DatasetError(f"{where}: {key} must be 0 or 1, got {value!r}")
