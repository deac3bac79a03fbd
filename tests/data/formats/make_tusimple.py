"""Writes a tiny TuSimple-format dataset (label JSON lines + ``clips/``) for the reader tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LABEL_FILE = "label_data_0313.json"


def frame_record(index: int, width: int, height: int) -> dict:
    """The label line of frame ``index``: rows every ``height // 16`` px over the lower 3/4, a lane
    slanting left and one slanting right that has no point (-2) on the first two rows."""
    step = max(1, height // 16)
    h_samples = list(range(height // 4, height, step))
    cx = width // 2 + 2 * index
    left = [cx - 2 - (y - height // 4) for y in h_samples]
    right = [cx + 2 + (y - height // 4) // 2 for y in h_samples]
    left = [x if 0 <= x < width else -2 for x in left]
    right = [-2 if i < 2 or not 0 <= x < width else x for i, x in enumerate(right)]
    return {"lanes": [left, right], "h_samples": h_samples,
            "raw_file": f"clips/0313-1/{6040 + 20 * index}/20.jpg"}


def write_tusimple(root: Path, num: int = 3, width: int = 128, height: int = 64,
                   label_file: str = LABEL_FILE) -> Path:
    """A TuSimple root with ``num`` labelled frames (JPEG, lanes painted) listed in ``label_file``;
    returns the root (the PATH of ``tusimple:PATH``)."""
    import cv2

    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(num):
        record = frame_record(i, width, height)
        image = np.full((height, width, 3), 60, np.uint8)
        for lane in record["lanes"]:
            pts = [(x, y) for x, y in zip(lane, record["h_samples"], strict=True) if x >= 0]
            cv2.polylines(image, [np.int32(pts).reshape(-1, 1, 2)], False, (230, 230, 230), 2)
        path = root / record["raw_file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)
        lines.append(json.dumps(record))
    (root / label_file).write_text("\n".join(lines) + "\n")
    return root
