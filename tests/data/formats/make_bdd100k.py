"""Tiny BDD100K datasets in the official layout (2020 release, Scalabel JSON) for the tests.

``write_bdd100k`` writes a root ``images/100k/<split>/NAME.jpg``, ``labels/det_20/det_<split>.json``
and ``labels/lane/polygons/lane_<split>.json`` with the fields bdd100k's devkit reads: frames
``{name, attributes, labels: [{id, category, attributes, box2d | poly2d}]}``; ``box2d`` pixels
{x1, y1, x2, y2} with x2, y2 the last pixel inside; ``poly2d`` ``[{vertices, types, closed}]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FRAME_ATTRIBUTES = {"weather": "clear", "scene": "city street", "timeofday": "daytime"}


def frame_name(i: int) -> str:
    return f"b1c66a42-{i:08x}.jpg"


def box(x1: float, y1: float, x2: float, y2: float) -> dict:
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


def det_frames(count: int, width: int, height: int) -> list[dict]:
    """Detection frames; the last one has no labels (a negative, as in det_20)."""
    w, h = width / 128, height / 64
    frames = []
    for i in range(count):
        frame = {"name": frame_name(i), "attributes": FRAME_ATTRIBUTES, "timestamp": 10000}
        if i < count - 1:
            frame["labels"] = [
                {"id": "1", "category": "car", "attributes": {"occluded": False, "truncated": False,
                                                              "crowd": False},
                 "box2d": box(10 * w + i, 30 * h, 40 * w + i, 50 * h)},
                {"id": "2", "category": "pedestrian", "attributes": {"occluded": True},
                 "box2d": box(60 * w, 20 * h, 66 * w, 40 * h)},
                {"id": "3", "category": "bus", "attributes": {},
                 "box2d": box(80 * w, 10 * h, 120 * w, 45 * h)},
                {"id": "4", "category": "traffic light", "attributes": {"trafficLightColor": "red"},
                 "box2d": box(100 * w, 2 * h, 104 * w, 10 * h)},
                {"id": "5", "category": "car", "attributes": {"crowd": True},
                 "box2d": box(2 * w, 40 * h, 20 * w, 60 * h)},
                {"id": "6", "category": "motorcycle", "attributes": {},
                 "box2d": box(45 * w, 35 * h, 55 * w, 55 * h)},
            ]
        frames.append(frame)
    return frames


def lane_frames(count: int, width: int, height: int) -> list[dict]:
    """Lane frames (2020 lane_<split>.json spelling); the last one has no lane labels."""
    w, h = width / 128, height / 64

    def lane(lane_id: str, category: str, vertices: list, types: str, style: str = "solid") -> dict:
        return {"id": lane_id, "category": category,
                "attributes": {"laneDirection": "parallel", "laneStyle": style, "laneTypes": category},
                "poly2d": [{"vertices": vertices, "types": types, "closed": False}]}

    frames = []
    for i in range(count):
        frame = {"name": frame_name(i), "labels": []}
        if i < count - 1:
            frame["labels"] = [
                lane("0", "single white", [[20 * w, 63 * h], [50 * w, 30 * h]], "LL", "dashed"),
                lane("1", "single yellow", [[110 * w, 63 * h], [100 * w, 50 * h], [90 * w, 40 * h],
                                            [80 * w, 30 * h]], "LCCL"),
                lane("2", "crosswalk", [[10 * w, 55 * h], [120 * w, 55 * h]], "LL"),
                lane("3", "road curb", [[0, 40 * h], [20 * w, 33 * h]], "LL"),
            ]
        frames.append(frame)
    return frames


def write_images(folder: Path, names: list[str], width: int, height: int) -> None:
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        assert cv2.imwrite(str(folder / name), image)


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


def write_bdd100k(root: Path, count: int = 4, width: int = 128, height: int = 64,
                  split: str = "train") -> Path:
    """A BDD100K root with ``count`` frames labelled for det (det_20) and lane (lane polygons)."""
    write_images(root / "images" / "100k" / split, [frame_name(i) for i in range(count)], width, height)
    write_json(root / "labels" / "det_20" / f"det_{split}.json", det_frames(count, width, height))
    write_json(root / "labels" / "lane" / "polygons" / f"lane_{split}.json",
               lane_frames(count, width, height))
    return root
