"""A tiny COCO detection dataset in the official layout for the tests.

``write_coco`` writes ``<root>/annotations/instances_<split>.json`` and ``<root>/<split>/*.jpg``
(the COCO 2017 layout) with the fields pycocotools reads: images {id, file_name, width, height},
annotations {id, image_id, category_id, bbox [x, y, w, h], area, iscrowd}, categories
{id, name, supercategory} with COCO's own ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# COCO 2017 category ids
CATEGORIES = [{"id": 1, "name": "person", "supercategory": "person"},
              {"id": 2, "name": "bicycle", "supercategory": "vehicle"},
              {"id": 3, "name": "car", "supercategory": "vehicle"},
              {"id": 4, "name": "motorcycle", "supercategory": "vehicle"},
              {"id": 6, "name": "bus", "supercategory": "vehicle"},
              {"id": 8, "name": "truck", "supercategory": "vehicle"},
              {"id": 38, "name": "kite", "supercategory": "sports"}]


def file_name(i: int) -> str:
    return f"{139 + i:012d}.jpg"


def annotations(count: int, width: int, height: int) -> list[dict]:
    """Per image but the last (a negative): car, person, bus, a person crowd, a motorcycle, a kite."""
    w, h = width / 128, height / 64
    anns, next_id = [], 1000
    for i in range(count - 1):
        for category_id, bbox, crowd in [(3, [10 * w + i, 30 * h, 30.5 * w, 20 * h], 0),
                                          (1, [60 * w, 20 * h, 6 * w, 20 * h], 0),
                                          (6, [80 * w, 10 * h, 40 * w, 35 * h], 0),
                                          (1, [2 * w, 40 * h, 18 * w, 20 * h], 1),
                                          (4, [45 * w, 35 * h, 10 * w, 20 * h], 0),
                                          (38, [100 * w, 2 * h, 4 * w, 8 * h], 0)]:
            anns.append({"id": next_id, "image_id": 100 + i, "category_id": category_id, "bbox": bbox,
                         "area": bbox[2] * bbox[3], "iscrowd": crowd,
                         "segmentation": {"counts": "abc", "size": [height, width]} if crowd else
                         [[bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1], bbox[0], bbox[1] + bbox[3]]]})
            next_id += 1
    return anns


def write_coco(root: Path, count: int = 4, width: int = 128, height: int = 64,
               split: str = "val2017") -> Path:
    """A COCO root with ``count`` images; returns the annotation JSON (the PATH of ``coco:PATH``)."""
    import cv2

    (root / split).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = []
    for i in range(count):
        cv2.imwrite(str(root / split / file_name(i)), rng.integers(0, 256, (height, width, 3), np.uint8))
        images.append({"id": 100 + i, "file_name": file_name(i), "width": width, "height": height,
                       "license": 1, "coco_url": "", "date_captured": "2013-11-14 17:02:52"})
    data = {"info": {"description": "edge_mtl test fixture"}, "licenses": [], "images": images,
            "annotations": annotations(count, width, height), "categories": CATEGORIES}
    path = root / "annotations" / f"instances_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path
