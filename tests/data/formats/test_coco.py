"""The coco reader: boxes, crowds and class mapping, the COCO layout, lazy per-image errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.formats.coco import CocoReader
from edge_mtl.types import CLASSES, Camera
from tests.data.formats.make_coco import file_name, write_coco

CAR, TRUCK, PED = (CLASSES.index(c) for c in ("car", "truck", "pedestrian"))
W, H = 128, 64


def _edit(path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_boxes_classes_and_ignore_regions(tmp_path):
    path = write_coco(tmp_path / "coco", count=3)
    reader = CocoReader(path)
    assert len(reader) == 3
    assert reader.source(1) == f"{path} (image id 101: {file_name(1)})"
    s = reader[1]
    assert s.name == file_name(1) and s.image.shape == (H, W, 3)
    assert s.camera == Camera.assumed(W, H) and s.lane is None and s.depth is None
    # [x, y, w, h] -> xyxy; car, person -> pedestrian, bus -> truck; the kite is dropped
    np.testing.assert_array_equal(s.boxes, [[11, 30, 41.5, 50], [60, 20, 66, 40], [80, 10, 120, 45]])
    assert s.classes.tolist() == [CAR, PED, TRUCK]
    # the person crowd and the motorcycle are ignore regions
    np.testing.assert_array_equal(s.ignore, [[2, 40, 20, 60], [45, 35, 55, 55]])
    assert s.has_label == {"det": True, "lane": False, "depth": False}
    # an image without annotations is a negative
    last = reader[2]
    assert last.boxes.shape == (0, 4) and last.classes.shape == (0,) and last.ignore.shape == (0, 4)


def test_class_map_option(tmp_path):
    path = write_coco(tmp_path / "coco", count=2)
    s = CocoReader(path, class_map={"kite": "car", "person": "ignore"})[0]
    np.testing.assert_array_equal(s.boxes, [[100, 2, 104, 10]])
    assert s.classes.tolist() == [CAR] and len(s.ignore) == 2  # both persons (one a crowd)
    with pytest.raises(DatasetError, match=rf"{path}: class_map values"):
        CocoReader(path, class_map={"car": "automobile"})


def test_images_are_found_by_the_coco_layout_or_the_option(tmp_path):
    path = write_coco(tmp_path / "coco", count=2, split="train2017")
    assert CocoReader(path)[0].boxes.shape == (3, 4)  # annotations/instances_train2017.json -> train2017/
    moved = tmp_path / "pictures"
    shutil.move(tmp_path / "coco" / "train2017", moved)
    missing = rf"image id 100: {file_name(0)}\): image '{file_name(0)}' not found"
    with pytest.raises(DatasetError, match=missing):
        CocoReader(path)[0]
    assert CocoReader(path, images=str(moved))[0].boxes.shape == (3, 4)
    beside = shutil.copy(path, moved / "labels.json")  # elsewhere: the JSON's own folder
    assert CocoReader(beside)[1].boxes.shape == (0, 4)
    with pytest.raises(DatasetError, match="images folder"):
        CocoReader(path, images=str(tmp_path / "none"))


@pytest.mark.parametrize(("change", "field"), [
    (lambda a: a.update(bbox=[1, 2, 3]), "bbox must be 4 finite numbers"),
    (lambda a: a.pop("bbox"), "bbox must be 4 finite numbers"),
    (lambda a: a.update(bbox=[1, 2, "3", 4]), "bbox must be 4 finite numbers"),
    (lambda a: a.update(bbox=[1, 2, -3, 4]), "must not be negative"),
    (lambda a: a.update(category_id=99), "category_id 99 is none of the file's categories"),
    (lambda a: a.update(iscrowd="no"), "iscrowd must be 0 or 1"),
])
def test_a_bad_annotation_fails_only_its_image_naming_file_id_and_field(tmp_path, change, field):
    path = write_coco(tmp_path / "coco", count=3)

    def spoil(data):
        ann = next(a for a in data["annotations"] if a["image_id"] == 101 and a["category_id"] == 6)
        change(ann)

    _edit(path, spoil)
    reader = CocoReader(path)
    assert reader[0].boxes.shape == (3, 4) and reader[2].boxes.shape == (0, 4)
    with pytest.raises(DatasetError, match=field) as e:
        reader[1]
    assert f"{path} (image id 101: {file_name(1)}): annotation id 1008" in str(e.value)


def test_bad_image_entries_fail_only_their_sample(tmp_path):
    path = write_coco(tmp_path / "coco", count=4)

    def spoil(data):
        data["images"][0]["width"] = W * 2
        data["images"][1]["id"] = 100  # a duplicate
        data["images"][2].pop("file_name")
        data["images"].append("nonsense")

    _edit(path, spoil)
    with pytest.warns(UserWarning, match="6 annotation"):  # image 101's, now that no image has that id
        reader = CocoReader(path)
    assert len(reader) == 5 and reader[3].boxes.shape == (0, 4)
    for index, match in [(0, f"{W}x{H} but the entry says {2 * W}x{H}"), (1, "unique.*a duplicate"),
                         (2, "'file_name' must be a file name"), (4, r"images\[4\].*must be an object")]:
        with pytest.raises(DatasetError, match=match) as e:
            reader[index]
        assert str(path) in str(e.value)


def test_zero_size_boxes_are_dropped_and_orphans_warned(tmp_path):
    path = write_coco(tmp_path / "coco", count=2)

    def change(data):
        data["annotations"][0]["bbox"][2] = 0  # the car of image 100
        data["annotations"].append({"id": 7, "image_id": 555, "category_id": 3, "bbox": [0, 0, 5, 5]})

    _edit(path, change)
    with pytest.warns(UserWarning, match=r"1 annotation\(s\) name no image .*id 7"):
        reader = CocoReader(path)
    assert reader[0].classes.tolist() == [PED, TRUCK]


def test_not_the_format_fails_when_opened_naming_the_path(tmp_path):
    cases = {"list.json": "[]", "info.json": json.dumps({"images": [], "categories": []}),
             "nocats.json": json.dumps({"images": [], "annotations": []}),
             "badcat.json": json.dumps({"images": [], "annotations": [], "categories": [{"id": 1}]}),
             "broken.json": "{", "binary.json": b"\xff\xfe"}
    for name, text in cases.items():
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(DatasetError, match=str(path)):
            CocoReader(path)
    with pytest.raises(DatasetError, match="not a folder"):
        CocoReader(tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        CocoReader(tmp_path / "missing.json")
