"""The on-disk dataset format (``edge_mtl.dataset/1``).

```
DIR/meta.json              {"format", "classes", "num", "seed", "sequence", "depth_scale", "drop_labels"}
DIR/labels/000000.json     {"image", "lane", "depth", "boxes", "classes", "has_label", "camera"}
DIR/images/000000.jpg      1280x720 BGR camera frame
DIR/lanes/000000.png       uint8, 1 = lane marking, 0 = not (absent when unlabelled)
DIR/depth/000000.png       uint16, metres x 256, 0 = invalid (KITTI convention; absent when unlabelled)
```
A task without a label for a sample has ``has_label[task] = false`` and null fields.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.reader import Reader
from edge_mtl.imageio import CorruptImageError, read_image
from edge_mtl.types import CLASSES, TASKS, Camera, Sample

__all__ = ["FORMAT", "DatasetError", "DatasetReader", "check_record", "parse_drop_labels", "synthesize",
           "synthesize_once"]

FORMAT = "edge_mtl.dataset/1"
DEPTH_SCALE = 256.0
JPEG_QUALITY = 95


def parse_drop_labels(text: str | None) -> dict[str, float]:
    """Parse ``det=0.3,lane=0.3,depth=0.5`` into per-task drop probabilities."""
    drops = dict.fromkeys(TASKS, 0.0)
    if not text:
        return drops
    for part in text.split(","):
        task, sep, value = part.partition("=")
        task = task.strip()
        if not sep or task not in TASKS:
            raise ValueError(f"--drop-labels: bad entry {part!r}; expected TASK=P with TASK in {TASKS}")
        try:
            p = float(value)
        except ValueError:
            raise ValueError(f"--drop-labels: {task}={value!r} is not a number") from None
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"--drop-labels: {task}={p} must lie in [0, 1]")
        drops[task] = p
    return drops


def write_sample(root: Path, index: int, sample: Sample) -> dict:
    """Write one sample's files; returns its label record."""
    import cv2

    stem = f"{index:06d}"
    record: dict = {"image": f"images/{stem}.jpg", "lane": None, "depth": None,
                    "boxes": None, "classes": None, "has_label": sample.has_label,
                    "camera": sample.camera.to_dict()}
    _imwrite(root / record["image"], sample.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if sample.lane is not None:
        record["lane"] = f"lanes/{stem}.png"
        _imwrite(root / record["lane"], sample.lane.astype(np.uint8))
    if sample.depth is not None:
        record["depth"] = f"depth/{stem}.png"
        d16 = np.clip(np.round(sample.depth * DEPTH_SCALE), 0, 65535).astype(np.uint16)
        _imwrite(root / record["depth"], d16)
    if sample.boxes is not None:
        record["boxes"] = np.round(sample.boxes, 2).tolist()
        record["classes"] = [int(c) for c in sample.classes]
    label_path = root / "labels" / f"{stem}.json"
    label_path.write_text(json.dumps(record))
    return record


def _imwrite(path: Path, array: np.ndarray, params: list[int] | None = None) -> None:
    import cv2

    if not cv2.imwrite(str(path), array, params or []):
        raise OSError(f"could not write {path}")


def drop_labels(sample: Sample, drops: Mapping[str, float], seed: int) -> Sample:
    """Remove each task's label with its probability in ``drops`` (deterministic by seed)."""
    rng = np.random.default_rng([seed, 7919])
    kept = {t: rng.random() >= drops.get(t, 0.0) for t in TASKS}
    return dataclasses.replace(sample, boxes=sample.boxes if kept["det"] else None,
                               classes=sample.classes if kept["det"] else None,
                               ignore=sample.ignore if kept["det"] else None,
                               lane=sample.lane if kept["lane"] else None,
                               depth=sample.depth if kept["depth"] else None)


def _render_and_write(args: tuple[str, int, int, Mapping[str, float]]) -> int:
    from edge_mtl.data.world import render_random

    root, index, seed, drops = args
    sample = render_random(seed, name=f"{index:06d}").sample
    write_sample(Path(root), index, drop_labels(sample, drops, seed))
    return index


def synthesize_once(out: str | os.PathLike, num: int, seed: int, drop: Mapping[str, float] | None = None,
                    progress: bool = True) -> tuple[Path, bool]:
    """``synthesize`` unless ``out`` already holds a complete set of that size, seed and label
    drop (then it is reused: True in the result); anything else there is replaced."""
    root = Path(out)
    try:
        m = json.loads((root / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        m = {}
    images = root / "images"
    if (m.get("num") == num and m.get("seed") == seed and not m.get("sequence")
            and (m.get("drop_labels") or {}) == dict(drop or {}) and images.is_dir()
            and sum(1 for _ in images.iterdir()) == num):
        return root, True
    return synthesize(root, num, seed, drop=drop, progress=progress, force=True), False


def synthesize(out: str | os.PathLike, num: int, seed: int,
               drop: Mapping[str, float] | None = None, workers: int | None = None,
               progress: bool = True, sequence: bool = False, force: bool = False) -> Path:
    """Render ``num`` frames into ``out`` in the dataset format (deterministic by seed).

    Frames are independent random scenes, or with ``sequence`` one continuous drive.
    An existing dataset in ``out`` is an error unless ``force``, which replaces it.
    """
    from tqdm import tqdm

    if num <= 0:
        raise ValueError(f"--num must be positive, got {num}")
    root = Path(out)
    if (root / "meta.json").exists():
        if not force:
            raise FileExistsError(f"{root} already holds a dataset; choose another --out or pass --force")
        import shutil

        for sub in ("images", "lanes", "depth", "labels"):
            shutil.rmtree(root / sub, ignore_errors=True)
        (root / "meta.json").unlink()
    for sub in ("images", "lanes", "depth", "labels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    drops = dict(drop or {})
    # Sample i's scene seed depends on (seed, i) only, so any worker count gives the same data.
    seeds = np.random.SeedSequence(seed).generate_state(num, dtype=np.uint32)
    jobs = [(str(root), i, int(s), drops) for i, s in enumerate(seeds)]
    workers = workers or min(os.cpu_count() or 1, 8)
    bar = tqdm(total=num, desc=f"synth {root}", unit="img", disable=not progress)
    if sequence:
        from edge_mtl.data.drive import drive

        for i, frame in enumerate(drive(seed, num)):
            write_sample(root, i, drop_labels(frame.sample, drops, int(seeds[i])))
            bar.update()
    elif workers == 1:
        for job in jobs:
            _render_and_write(job)
            bar.update()
    else:
        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(_render_and_write, jobs, chunksize=4):
                bar.update()
    bar.close()
    meta = {"format": FORMAT, "classes": list(CLASSES), "num": num, "seed": seed,
            "sequence": sequence, "depth_scale": DEPTH_SCALE, "drop_labels": drops}
    (root / "meta.json").write_text(json.dumps(meta, indent=2))
    return root


RECORD_KEYS = ("image", "lane", "depth", "boxes", "classes", "has_label", "camera")
_LABEL_FIELD = {"det": "boxes", "lane": "lane", "depth": "depth"}


class DatasetReader(Reader):
    """Random access to a dataset folder written by :func:`synthesize` (the ``synth`` format).

    Every label record and sample is validated (`check_record`, `check_sample`); a bad one
    raises `DatasetError` naming its file.
    """

    format = "synth"
    tasks = TASKS

    def __init__(self, root: str | os.PathLike):
        self.root = self.path = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise DatasetError(f"{meta_path}: not found; is {self.root} a dataset folder "
                               "(made by `edge-mtl synth`)?")
        try:
            self.meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{meta_path}: invalid JSON ({e})") from None
        if not isinstance(self.meta, dict) or self.meta.get("format") != FORMAT:
            found = self.meta.get("format") if isinstance(self.meta, dict) else self.meta
            raise DatasetError(f"{meta_path}: format {found!r}, expected {FORMAT!r}")
        scale = self.meta.get("depth_scale", DEPTH_SCALE)
        if not _is_number(scale) or not 0 < scale < float("inf"):
            raise DatasetError(f"{meta_path}: depth_scale must be a positive number, got {scale!r}")
        self.depth_scale = float(scale)
        self.label_paths = sorted((self.root / "labels").glob("*.json"))
        if not self.label_paths:
            raise DatasetError(f"{self.root / 'labels'}: no label files")

    def __len__(self) -> int:
        return len(self.label_paths)

    def source(self, index: int) -> str:
        return str(self.label_paths[index])

    def record(self, index: int) -> dict:
        """The validated label record of sample ``index``."""
        path = self.label_paths[index]
        try:
            rec = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{path}: invalid JSON ({e})") from None
        except OSError as e:
            raise DatasetError(f"{path}: cannot read it ({e.strerror or e})") from None
        check_record(rec, str(path))
        return rec

    def read(self, index: int) -> Sample:
        import cv2

        rec = self.record(index)
        path = self.label_paths[index]
        image = self._read(rec["image"], cv2.IMREAD_COLOR, path)
        has = rec["has_label"]
        lane = depth = boxes = classes = None
        if has.get("lane"):
            lane = self._read(rec["lane"], cv2.IMREAD_UNCHANGED, path)
        if has.get("depth"):
            raw = self._read(rec["depth"], cv2.IMREAD_UNCHANGED, path)
            if raw.dtype != np.uint16 or raw.ndim != 2:
                raise DatasetError(f"{self.root / rec['depth']}: depth PNG must be single-channel uint16 "
                                   f"(metres x {self.depth_scale:g}), got {raw.dtype} {list(raw.shape)} "
                                   f"(referenced by {path})")
            depth = raw.astype(np.float32) / self.depth_scale
        if has.get("det"):
            boxes = np.asarray(rec["boxes"], np.float32).reshape(-1, 4)
            classes = np.asarray(rec["classes"], np.int64).reshape(-1)
        cam = Camera(**rec["camera"]) if rec.get("camera") else Camera.assumed(image.shape[1], image.shape[0])
        return Sample(image=image, boxes=boxes, classes=classes, lane=lane, depth=depth,
                      camera=cam, name=path.stem)

    def _read(self, rel: str, flags: int, label_path: Path) -> np.ndarray:
        try:
            return read_image(self.root / rel, flags)
        except CorruptImageError as e:
            raise DatasetError(f"{e} (referenced by {label_path})") from None


def _is_number(value: object, nan: bool = False) -> bool:
    """An int or float from JSON (a bool is none); NaN only with ``nan``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and (nan or value == value)


def check_record(rec: object, where: str) -> None:
    """A label record's keys and value types (`DatasetError` naming ``where`` otherwise)."""
    if not isinstance(rec, dict):
        raise DatasetError(f"{where}: a label record must be a JSON object, got {type(rec).__name__}")
    unknown = sorted(set(rec) - set(RECORD_KEYS))
    if unknown:
        raise DatasetError(f"{where}: unknown key(s) {unknown}; allowed: {list(RECORD_KEYS)}")
    for key in ("image", "has_label"):
        if key not in rec:
            raise DatasetError(f"{where}: missing key {key!r}")
    if not isinstance(rec["image"], str) or not rec["image"]:
        raise DatasetError(f"{where}: image must be a relative path, got {rec['image']!r}")
    has = rec["has_label"]
    if not isinstance(has, dict) or set(has) - set(TASKS) or \
            not all(isinstance(v, bool) for v in has.values()):
        raise DatasetError(f"{where}: has_label must map tasks {list(TASKS)} to true/false, got {has!r}")
    for task, key in _LABEL_FIELD.items():
        if not has.get(task):
            continue
        value = rec.get(key)
        if value is None:
            raise DatasetError(f"{where}: has_label.{task} is true but {key} is null")
        if key in ("lane", "depth") and (not isinstance(value, str) or not value):
            raise DatasetError(f"{where}: {key} must be a relative path, got {value!r}")
    if has.get("det"):
        _check_box_lists(rec["boxes"], rec.get("classes"), where)
    _check_camera(rec.get("camera"), where)


def _check_box_lists(boxes: object, classes: object, where: str) -> None:
    if not isinstance(boxes, list) or not all(  # NaN and inf pass here; check_sample names them
            isinstance(b, list) and len(b) == 4 and all(_is_number(v, nan=True) for v in b) for b in boxes):
        raise DatasetError(f"{where}: boxes must be a list of [x1, y1, x2, y2] numbers")
    if not isinstance(classes, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in classes):
        raise DatasetError(f"{where}: classes must be a list of integer class ids, got {classes!r}")
    if len(classes) != len(boxes):
        raise DatasetError(f"{where}: {len(boxes)} boxes but {len(classes)} classes")


def _check_camera(camera: object, where: str) -> None:
    if camera is None:
        return
    fields = Camera.__dataclass_fields__
    if not isinstance(camera, dict) or set(camera) - set(fields):
        raise DatasetError(f"{where}: camera must be an object with keys from {list(fields)}, got {camera!r}")
    for key, value in camera.items():
        if not _is_number(value) or abs(value) == float("inf"):
            raise DatasetError(f"{where}: camera.{key} must be a finite number, got {value!r}")
        positive = key in ("width", "height", "fx", "fy")
        if (positive and value <= 0) or (key in ("width", "height") and value != int(value)):
            raise DatasetError(f"{where}: camera.{key}={value!r} must be a positive "
                               f"{'integer' if key in ('width', 'height') else 'number'}")
