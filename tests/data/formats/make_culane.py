"""Writes a tiny CULane-format dataset (``list/``, frames, ``.lines.txt``) for the reader tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

VIDEO = "driver_23_30frame/05151649_0422.MP4"


def frame_lanes(index: int, width: int, height: int) -> list[list[tuple[float, float]]]:
    """Frame ``index``'s lanes as CULane writes them: x, y floats from the bottom row up every
    ``height // 16`` px; the left lane starts left of the image (negative x) as CULane's do."""
    step = max(1, height // 16)
    ys = list(range(height, height // 3, -step))
    cx = width / 2 + 1.5 * index
    left = [(cx - 0.75 * width + 1.25 * (height - y) + 0.5, float(y)) for y in ys]
    right = [(cx + 0.4 * width - 0.9 * (height - y) + 0.25, float(y)) for y in ys[1:]]
    return [left, right]


def write_culane(root: Path, num: int = 3, width: int = 128, height: int = 64,
                 split: str = "train") -> Path:
    """A CULane root with ``num`` frames (JPEG, lanes painted) listed in ``list/<split>.txt`` (and,
    for train/val, ``list/<split>_gt.txt``); returns the root (the PATH of ``culane:PATH``)."""
    import cv2

    list_dir = root / "list"
    list_dir.mkdir(parents=True, exist_ok=True)
    names, gt_lines = [], []
    for i in range(num):
        name = f"/{VIDEO}/{30 * i:05d}.jpg"
        lanes = frame_lanes(i, width, height)
        image = np.full((height, width, 3), 60, np.uint8)
        for lane in lanes:
            pts = np.round(lane).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(image, [pts], False, (230, 230, 230), 2)
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)
        path.with_suffix(".lines.txt").write_text(
            "".join(" ".join(f"{x:g} {y:g}" for x, y in lane) + " \n" for lane in lanes))
        names.append(name)
        gt_lines.append(f"{name} /laneseg_label_w16{name[:-4]}.png 0 1 1 0")
    (list_dir / f"{split}.txt").write_text("\n".join(names) + "\n")
    if split in ("train", "val"):
        (list_dir / f"{split}_gt.txt").write_text("\n".join(gt_lines) + "\n")
    return root
