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

import json
import os
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from edge_mtl.types import CLASSES, TASKS, Camera, Sample

FORMAT = "edge_mtl.dataset/1"
DEPTH_SCALE = 256.0
JPEG_QUALITY = 95


class DatasetError(ValueError):
    """A dataset file is missing or malformed; the message names the file."""


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
    return Sample(image=sample.image,
                  boxes=sample.boxes if kept["det"] else None,
                  classes=sample.classes if kept["det"] else None,
                  lane=sample.lane if kept["lane"] else None,
                  depth=sample.depth if kept["depth"] else None,
                  camera=sample.camera, name=sample.name)


def _render_and_write(args: tuple[str, int, int, Mapping[str, float]]) -> int:
    from edge_mtl.data.world import render_random

    root, index, seed, drops = args
    sample = render_random(seed, name=f"{index:06d}").sample
    write_sample(Path(root), index, drop_labels(sample, drops, seed))
    return index


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


class DatasetReader:
    """Random access to a dataset folder written by :func:`synthesize` or an adapter."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise DatasetError(f"{meta_path}: not found; is {self.root} a dataset folder "
                               "(made by `edge-mtl synth`)?")
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise DatasetError(f"{meta_path}: invalid JSON ({e})") from None
        if self.meta.get("format") != FORMAT:
            raise DatasetError(f"{meta_path}: format {self.meta.get('format')!r}, expected {FORMAT!r}")
        self.label_paths = sorted((self.root / "labels").glob("*.json"))
        if not self.label_paths:
            raise DatasetError(f"{self.root / 'labels'}: no label files")

    def __len__(self) -> int:
        return len(self.label_paths)

    def record(self, index: int) -> dict:
        path = self.label_paths[index]
        try:
            rec = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}: invalid JSON ({e})") from None
        for key in ("image", "has_label"):
            if key not in rec:
                raise DatasetError(f"{path}: missing key {key!r}")
        return rec

    def __getitem__(self, index: int) -> Sample:
        import cv2

        rec = self.record(index)
        path = self.label_paths[index]
        image = self._read(rec["image"], cv2.IMREAD_COLOR, path)
        has = rec["has_label"]
        lane = depth = boxes = classes = None
        if has.get("lane"):
            lane = self._read(rec["lane"], cv2.IMREAD_UNCHANGED, path)
        if has.get("depth"):
            depth = self._read(rec["depth"], cv2.IMREAD_UNCHANGED, path).astype(np.float32)
            depth /= float(self.meta.get("depth_scale", DEPTH_SCALE))
        if has.get("det"):
            boxes = np.asarray(rec["boxes"], np.float32).reshape(-1, 4)
            classes = np.asarray(rec["classes"], np.int64)
            if len(boxes) != len(classes):
                raise DatasetError(f"{path}: {len(boxes)} boxes but {len(classes)} classes")
            if len(classes) and (classes.min() < 0 or classes.max() >= len(CLASSES)):
                raise DatasetError(f"{path}: class id out of range 0..{len(CLASSES) - 1}")
        cam = Camera(**rec["camera"]) if rec.get("camera") else Camera()
        return Sample(image=image, boxes=boxes, classes=classes, lane=lane, depth=depth,
                      camera=cam, name=path.stem)

    def _read(self, rel: str | None, flags: int, label_path: Path) -> np.ndarray:
        import cv2

        if not rel:
            raise DatasetError(f"{label_path}: has_label says labelled but the file field is null")
        full = self.root / rel
        array = cv2.imread(str(full), flags)
        if array is None:
            raise DatasetError(f"{full}: missing or unreadable (referenced by {label_path})")
        return array
