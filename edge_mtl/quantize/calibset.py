"""Calibration sets: the frames INT8 calibration sees, pinned by a manifest of paths + sha256.

A set is named by one of
- a recipe ``calibration/NAME.yaml`` (``source: synth``, ``seed``, ``num``): rendered once from
  the synthetic world into ``calibration/cache/NAME/`` (git-ignored) with its manifest;
- a manifest ``*.json`` (schema ``edge_mtl.calib/1``): every image is checked against its hash;
- a folder of frames (``*.jpg``, ``*.png``, ``*.bmp``): taken in sorted order; a truncated
  frame is refused before calibration starts.
The default set is ``calibration/synth_default.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_mtl.config import read_yaml
from edge_mtl.files import sha256
from edge_mtl.imageio import integrity_problem
from edge_mtl.paths import REPO_ROOT

SCHEMA = "edge_mtl.calib/1"
CALIBRATION_DIR = REPO_ROOT / "calibration"
DEFAULT_SET = CALIBRATION_DIR / "synth_default.yaml"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class CalibrationSet:
    name: str
    manifest: Path
    images: tuple[Path, ...]
    hashes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int, size: tuple[int, int], mode: str = "letterbox",
             input_format: str = "float") -> np.ndarray:
        """Image ``index`` as a batch-1 input (``[1, 3, H, W]`` float32, or ``[1, H, W, 3]``
        uint8 for ``input_format`` uint8), through the shared pre-processing (``mode``: the
        model's resize rule)."""
        import cv2

        from edge_mtl.imageio import read_image
        from edge_mtl.runtime.preprocess import preprocess

        try:  # a truncated frame would calibrate the ranges on its grey half
            image = read_image(self.images[index], cv2.IMREAD_UNCHANGED)
        except ValueError as e:
            raise ValueError(f"calibration set {self.name}: {e}") from None
        return preprocess(image, size, mode=mode, input_format=input_format)[None]

    def batches(self, size: tuple[int, int], limit: int | None = None, mode: str = "letterbox",
                input_format: str = "float") -> Iterator[np.ndarray]:
        """``load`` for the first ``limit`` images (all by default), in order."""
        for i in range(len(self.images[:limit])):
            yield self.load(i, size, mode, input_format)


def _write_manifest(path: Path, name: str, images: list[Path], source: dict) -> None:
    entries = [{"path": os.path.relpath(p, path.parent), "sha256": sha256(p)} for p in images]
    path.write_text(json.dumps({"schema": SCHEMA, "name": name, "source": source,
                                "images": entries}, indent=1) + "\n")


def read_manifest(path: Path) -> CalibrationSet:
    """Load a manifest and check every image exists with the recorded hash."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable calibration manifest ({e})") from None
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema != SCHEMA:
        raise ValueError(f"{path}: not a calibration manifest (schema {schema!r}, expected {SCHEMA!r})")
    entries, name = data.get("images"), data.get("name", path.stem)
    if not (isinstance(name, str) and isinstance(entries, list) and all(_is_entry(e) for e in entries)):
        raise ValueError(f"{path}: a calibration manifest needs a 'name' (text) and 'images': a list "
                         "of {path, sha256} entries")
    images, hashes = [], []
    for entry in entries:
        p = (path.parent / entry["path"]).resolve()
        if not p.is_file():
            raise FileNotFoundError(f"{path}: calibration image {p} is missing")
        digest = sha256(p)
        if digest != entry["sha256"]:
            raise ValueError(f"{path}: calibration image {p} changed since the manifest was written "
                             f"(sha256 {digest[:12]}…, manifest {entry['sha256'][:12]}…)")
        images.append(p)
        hashes.append(digest)
    if not images:
        raise ValueError(f"{path}: the calibration manifest lists no images")
    return CalibrationSet(name, path, tuple(images), tuple(hashes))


def _is_entry(entry: object) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("path"), str)
            and isinstance(entry.get("sha256"), str))


def _read_recipe(recipe: Path) -> dict[str, int]:
    """``seed`` and ``num`` of a ``source: synth`` recipe; a ValueError names the file."""
    spec = read_yaml(recipe) or {}
    if not isinstance(spec, dict) or spec.get("source") != "synth" or not {"seed", "num"} <= set(spec):
        raise ValueError(f"{recipe}: a calibration recipe needs 'source: synth', 'seed' and 'num'")
    seed, num = spec["seed"], spec["num"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (seed, num)) or seed < 0 or num < 1:
        raise ValueError(f"{recipe}: seed must be an integer >= 0 and num an integer >= 1 "
                         f"(got seed={seed!r}, num={num!r})")
    return {"seed": seed, "num": num}


def _cache_matches(manifest: Path, source: dict) -> bool:
    """Whether the cached set was rendered from ``source`` (a damaged manifest: no, render again)."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and data.get("source") == source


def _from_recipe(recipe: Path, cache_root: Path, progress: bool) -> CalibrationSet:
    from edge_mtl.data.format import synthesize

    source = {"synth": _read_recipe(recipe)}
    cache = cache_root / recipe.stem
    manifest = cache / "manifest.json"
    if manifest.is_file() and _cache_matches(manifest, source):
        return read_manifest(manifest)
    synthesize(cache, source["synth"]["num"], source["synth"]["seed"], progress=progress, force=True)
    _write_manifest(manifest, recipe.stem, sorted((cache / "images").iterdir()), source)
    return read_manifest(manifest)


def _from_folder(folder: Path) -> CalibrationSet:
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) to calibrate on")
    hashes = []
    for image in images:  # one read serves the hash and the integrity check
        data = image.read_bytes()
        problem = integrity_problem(data)
        if problem:
            raise ValueError(f"calibration set {folder}: {image}: {problem}; remove or replace it")
        hashes.append(hashlib.sha256(data).hexdigest())
    return CalibrationSet(folder.name, folder, tuple(images), tuple(hashes))


def load_calibration_set(spec: str | os.PathLike | None = None, cache_root: Path | None = None,
                         progress: bool = True) -> CalibrationSet:
    """Resolve a recipe, manifest or folder (default: the synthetic default recipe)."""
    path = Path(spec) if spec is not None else DEFAULT_SET
    if not path.exists() and (CALIBRATION_DIR / f"{path}.yaml").is_file():
        path = CALIBRATION_DIR / f"{path}.yaml"  # a bare name such as "synth_default"
    if not path.exists():
        raise FileNotFoundError(f"calibration set {spec} not found (a recipe .yaml, a manifest "
                                ".json or a folder of frames)")
    if path.is_dir():
        return _from_folder(path)
    if path.suffix in (".yaml", ".yml"):
        return _from_recipe(path, cache_root or CALIBRATION_DIR / "cache", progress)
    if path.suffix == ".json":
        return read_manifest(path)
    raise ValueError(f"{path}: a calibration set is a .yaml recipe, a .json manifest or a folder")
