"""The bdd100k reader: Scalabel frames (det_20, lane polygons, the 2018 files), lane masks, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.formats.bdd100k import Bdd100kReader, decode_lane_mask
from edge_mtl.data.reader import draw_lanes
from edge_mtl.types import CLASSES, Camera
from tests.data.formats.make_bdd100k import (
    box,
    det_frames,
    frame_name,
    write_bdd100k,
    write_images,
    write_json,
)
from tests.helpers import SHARED_DATA

REAL = SHARED_DATA / "real_dev" / "bdd100k_format"
needs_real = pytest.mark.skipif(not REAL.is_dir(),
                                reason="shared/data/real_dev/bdd100k_format not beside the checkout")
CAR, TRUCK, PED = (CLASSES.index(c) for c in ("car", "truck", "pedestrian"))
W, H = 128, 64


def _cubic(p0, p1, p2, p3, t):
    p0, p1, p2, p3 = (np.asarray(p, float) for p in (p0, p1, p2, p3))
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3


def _folder(tmp_path: Path, name: str = "labels") -> Path:
    write_images(tmp_path / "images", [frame_name(i) for i in range(4)], W, H)
    return tmp_path / name


def test_root_merges_det_and_lane_files_by_image(tmp_path):
    root = write_bdd100k(tmp_path / "bdd100k", count=3)
    reader = Bdd100kReader(root)
    assert len(reader) == 3
    assert "det_20/det_train.json frame 1" in reader.source(1)
    assert "lane/polygons/lane_train.json frame 1" in reader.source(1)
    s = reader[1]
    assert s.name == frame_name(1) and s.image.shape == (H, W, 3)
    assert s.camera == Camera.assumed(W, H) and s.depth is None
    # box2d x2, y2 are the last pixel inside: +1; bus -> truck; traffic light dropped
    np.testing.assert_array_equal(s.boxes, [[11, 30, 42, 51], [60, 20, 67, 41], [80, 10, 121, 46]])
    assert s.classes.tolist() == [CAR, PED, TRUCK]
    # the crowd car and the motorcycle are ignore regions
    np.testing.assert_array_equal(s.ignore, np.float32([[2, 40, 21, 61], [45, 35, 56, 56]]))
    # painted lines only (crosswalk and road curb are not markings); the Bezier curve is sampled
    t = np.linspace(0, 1, 64)[:, None]
    curve = _cubic([110, 63], [100, 50], [90, 40], [80, 30], t)
    expected = draw_lanes((H, W), [np.float64([[20, 63], [50, 30]]), curve], 8)
    assert s.lane.dtype == np.uint8 and set(np.unique(s.lane)) == {0, 1}
    assert (s.lane != expected).mean() < 0.01
    assert s.lane[55, 64] == 0 and s.lane[36, 10] == 0  # crosswalk, road curb
    # a negative frame: no det labels and no lanes, but labelled for both
    last = reader[2]
    assert last.boxes.shape == (0, 4) and last.ignore.shape == (0, 4) and last.lane.sum() == 0


def test_a_cubic_bezier_follows_the_curve_not_the_chord(tmp_path):
    p = [[10.0, 60.0], [10.0, 0.0], [118.0, 0.0], [118.0, 60.0]]
    frames = [{"name": frame_name(0), "labels": [{"id": "0", "category": "single white", "poly2d": [
        {"vertices": p, "types": "LCCL", "closed": False}]}]}]
    reader = Bdd100kReader(write_json(_folder(tmp_path) / "lane_train.json", frames),
                           images=tmp_path / "images", lane_width=3)
    lane = reader[0].lane
    x, y = _cubic(*p, 0.5)  # (64, 15): the curve's apex
    assert lane[round(y), round(x)] == 1
    assert lane[60, 64] == 0  # the chord from the first to the last vertex
    assert lane[2, 64] == 0  # the control polygon's top


def test_det_file_has_no_lanes_and_lane_file_no_boxes(tmp_path):
    root = write_bdd100k(tmp_path / "bdd100k", count=2)
    det = Bdd100kReader(root / "labels" / "det_20" / "det_train.json")
    assert det[0].lane is None and det[0].has_label == {"det": True, "lane": False, "depth": False}
    assert det[1].boxes.shape == (0, 4)  # no 'labels' key: a negative, still det-labelled
    lane = Bdd100kReader(root / "labels" / "lane" / "polygons" / "lane_train.json")
    assert lane[0].boxes is None and lane[0].ignore is None and lane[0].lane.any()
    assert lane[1].lane is not None and not lane[1].lane.any()  # labelled, no markings


def test_the_2018_list_file_spells_lanes_as_category_lane_with_a_type(tmp_path):
    frames = [{"name": frame_name(0), "attributes": {}, "labels": [
        {"id": 1, "category": "person", "attributes": {"occluded": False, "truncated": False,
                                                        "trafficLightColor": "none"},
         "manualShape": True, "box2d": box(5, 5, 15, 30)},
        {"id": 2, "category": "drivable area", "attributes": {"areaType": "direct"},
         "poly2d": [{"vertices": [[0, 63], [127, 63], [64, 30]], "types": "LLL", "closed": True}]},
        {"id": 3, "category": "lane", "attributes": {"laneDirection": "parallel", "laneStyle": "solid",
                                                      "laneType": "double yellow"},
         "poly2d": [{"vertices": [[64, 63], [64, 32]], "types": "LL", "closed": False}]},
        {"id": 4, "category": "lane", "attributes": {"laneDirection": "vertical", "laneStyle": "solid",
                                                      "laneType": "crosswalk"},
         "poly2d": [{"vertices": [[0, 50], [127, 50]], "types": "LL", "closed": False}]},
    ]}]
    path = write_json(_folder(tmp_path) / "bdd100k_labels_images_train.json", frames)
    s = Bdd100kReader(path, images=tmp_path / "images")[0]
    np.testing.assert_array_equal(s.boxes, [[5, 5, 16, 31]])
    assert s.classes.tolist() == [PED]  # the old name 'person'
    assert s.lane[40, 64] == 1 and s.lane[50, 10] == 0 and s.lane[62, 20] == 0  # not the drivable area


def test_2018_per_image_folder_with_point_triples(tmp_path):
    labels = _folder(tmp_path) / "100k" / "train"
    for i in range(2):
        objects = [{"category": "car", "id": 0, "attributes": {"occluded": False},
                    "box2d": box(1, 2, 30, 40)},
                   {"category": "lane/single white", "id": 1, "attributes": {"direction": "parallel",
                                                                            "style": "solid"},
                    "poly2d": [[20, 63, "L"], [20, 40, "C"], [40, 30, "C"], [60, 30, "L"]]},
                   {"category": "area/drivable", "id": 2, "poly2d": [[0, 63, "L"], [127, 63, "L"]]}]
        data = {"name": frame_name(i)[:-4], "attributes": {},
                "frames": [{"timestamp": 10000, "index": 0, "objects": objects if i == 0 else []}]}
        write_json(labels / f"{frame_name(i)[:-4]}.json", data)
    reader = Bdd100kReader(labels, images=tmp_path / "images")
    s, empty = reader[0], reader[1]
    assert s.name == frame_name(0)  # the image is NAME.jpg
    np.testing.assert_array_equal(s.boxes, [[1, 2, 31, 41]])
    assert s.lane[62, 20] == 1 and s.lane.sum() > 100
    # the 2018 release labelled every image for both tasks
    assert empty.boxes.shape == (0, 4) and empty.lane is not None and not empty.lane.any()


def test_per_image_scalabel_frames_label_what_they_hold_unless_tasks_say(tmp_path):
    labels = _folder(tmp_path)
    write_json(labels / "a.json", {"name": frame_name(0), "labels": [
        {"id": "0", "category": "car", "box2d": box(1, 1, 10, 10)}]})
    write_json(labels / "b.json", {"name": frame_name(1), "labels": [
        {"id": "0", "category": "single white", "poly2d": [{"vertices": [[0, 0], [9, 9]], "types": "LL"}]}]})
    write_json(labels / "c.json", {"name": frame_name(2)})
    a, b, c = Bdd100kReader(labels, images=tmp_path / "images")
    assert (a.boxes is not None, a.lane is None) == (True, True)
    assert (b.boxes is None, b.lane is not None) == (True, True)
    assert c.boxes is None and c.lane is None
    both = Bdd100kReader(labels, images=tmp_path / "images", tasks=["det", "lane"])
    assert all(s.boxes is not None and s.lane is not None for s in both)


def test_lane_mask_bits_follow_the_devkit():
    # bits 0-2 category (label.py order), bit 3 background, bit 4 style (dashed), bit 5 direction
    mask = np.uint8([[255, 6, 6 | 16 | 32, 7 | 16, 4, 0, 2, 6 | 8, 1 | 32, 5, 3]])
    painted = [1, 2, 3, 5, 6, 7]
    assert decode_lane_mask(mask, painted).tolist() == [[0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1]]
    assert decode_lane_mask(mask, [0, 4]).tolist() == [[0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]]


def test_lane_masks_replace_the_polygons_and_add_their_frames(tmp_path):
    import cv2

    root = write_bdd100k(tmp_path / "bdd100k", count=2)
    masks = root / "labels" / "lane" / "masks" / "train"
    masks.mkdir(parents=True)
    mask = np.full((H, W), 255, np.uint8)
    mask[10:12, 5:50] = 6 | 16  # single white, dashed
    mask[20:22, 5:50] = 4  # road curb
    cv2.imwrite(str(masks / f"{frame_name(0)[:-4]}.png"), mask)
    cv2.imwrite(str(masks / f"{frame_name(3)[:-4]}.png"), mask)  # a frame only the masks know
    write_images(root / "images" / "100k" / "train", [frame_name(3)], W, H)

    reader = Bdd100kReader(root, lane_masks=str(masks))
    assert len(reader) == 3 and reader.source(0).endswith(f"{frame_name(0)[:-4]}.png")
    s = reader[0]
    assert s.lane.sum() == 2 * 45 and s.lane[10:12, 5:50].all()
    assert s.boxes is not None  # still from det_20
    only = reader[2]
    assert only.name == frame_name(3) and only.boxes is None and only.lane.sum() == 90
    curbs = Bdd100kReader(root, lane_masks=str(masks), lane_categories=["lane/road curb"])
    assert curbs[0].lane[20:22, 5:50].all() and curbs[0].lane.sum() == 90
    # the root without lane polygons takes the masks by itself
    (root / "labels" / "lane" / "polygons" / "lane_train.json").unlink()
    auto = Bdd100kReader(root)
    assert auto[0].lane.sum() == 90 and auto[1].boxes is not None and auto[1].lane is None
    assert Bdd100kReader(root, lane_masks=False)[0].lane is None
    # a folder of masks alone: lane-only samples
    assert Bdd100kReader(masks)[0].lane.sum() == 90


def test_options_class_map_lane_width_and_images(tmp_path):
    root = write_bdd100k(tmp_path / "bdd100k", count=2)
    det = root / "labels" / "det_20" / "det_train.json"
    s = Bdd100kReader(det, class_map={"motorcycle": "car", "traffic light": "ignore"})[0]
    assert s.classes.tolist() == [CAR]  # only the motorcycle
    np.testing.assert_array_equal(s.ignore, [[100, 2, 105, 11]])
    lane = root / "labels" / "lane" / "polygons" / "lane_train.json"
    thin, thick = Bdd100kReader(lane, lane_width=2)[0].lane, Bdd100kReader(lane, lane_width=12)[0].lane
    assert 0 < thin.sum() < thick.sum()
    moved = tmp_path / "elsewhere"
    shutil.move(root / "images" / "100k" / "train", moved)
    with pytest.raises(DatasetError, match=f"image '{frame_name(0)}' not found"):
        Bdd100kReader(det)[0]
    assert Bdd100kReader(det, images=str(moved))[0].boxes.shape == (3, 4)
    for bad in ({"car": "vehicle"}, {"lane_categories": ["zebra"]}, {"lane_width": 0},
                {"tasks": ["depth"]}, {"split": "training"}, {"images": str(tmp_path / "none")}):
        kwargs = bad if "car" not in bad else {"class_map": bad}
        with pytest.raises(DatasetError, match=str(det)):
            Bdd100kReader(det, **kwargs)


def test_not_the_format_fails_when_opened_naming_the_path(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "number.json").write_text("42")
    (tmp_path / "numbers.json").write_text("[1, 2]")
    (tmp_path / "coco.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    (tmp_path / "broken.json").write_text("[{")
    (tmp_path / "root" / "labels").mkdir(parents=True)
    for path, match in [(tmp_path / "empty", "not a BDD100K"), (tmp_path / "number.json", "list of frames"),
                        (tmp_path / "numbers.json", "a list of int"),
                        (tmp_path / "coco.json", r"keys \['annotations', 'categories', 'images'\]"),
                        (tmp_path / "broken.json", "not readable JSON"), (tmp_path / "missing", "not found"),
                        (tmp_path / "root", "det_train.json")]:
        with pytest.raises(DatasetError, match=match) as e:
            Bdd100kReader(path)
        assert str(path) in str(e.value)


@pytest.mark.parametrize(("label", "field"), [
    ({"category": "car", "box2d": {"x1": 1, "y1": 1, "x2": 5}}, r"labels\[1\].*box2d lacks \['y2'\]"),
    ({"category": "car", "box2d": {"x1": "1", "y1": 1, "x2": 5, "y2": 5}}, r"labels\[1\].*box2d.x1"),
    ({"category": "car"}, r"labels\[1\].*needs box2d"),
    ({"category": 7, "box2d": box(1, 1, 5, 5)}, r"labels\[1\].category"),
    ({"category": "car", "attributes": {"crowd": "yes"}, "box2d": box(1, 1, 5, 5)}, "attributes.crowd"),
    ({"category": "single white", "poly2d": [{"vertices": [[0, 0], [1, 1]], "types": "L"}]},
     r"poly2d\[0\].types"),
    ({"category": "single white", "poly2d": [{"vertices": [[0, 0], [1, 1], [2, 2]], "types": "LCL"}]},
     "control points come in pairs"),
    ({"category": "single white", "poly2d": [{"vertices": [[0, "a"]], "types": "L"}]}, "vertices"),
    ({"category": "lane", "attributes": {}, "poly2d": [{"vertices": [[0, 0]], "types": "L"}]}, "laneType"),
    ({"category": "single white"}, "poly2d must be a non-empty list"),
])
def test_a_bad_label_fails_only_its_frame_naming_file_entry_and_field(tmp_path, label, field):
    frames = det_frames(3, W, H)
    frames[1]["labels"].insert(1, {"id": "x", **label})
    path = write_json(_folder(tmp_path) / "det_train.json", frames)
    reader = Bdd100kReader(path, images=tmp_path / "images")
    assert reader[0].boxes.shape == (3, 4) and reader[2].boxes.shape == (0, 4)
    with pytest.raises(DatasetError, match=field) as e:
        reader[1]
    assert f"{path} frame 1 ({frame_name(1)})" in str(e.value)


def test_bad_frames_and_files_fail_only_their_sample(tmp_path):
    frames = det_frames(4, W, H)
    frames[1] = ["not", "a", "frame"]
    frames[2] = {"labels": []}
    frames[3]["name"] = "missing.jpg"
    path = write_json(_folder(tmp_path) / "det_train.json", frames)
    reader = Bdd100kReader(path, images=tmp_path / "images")
    assert reader[0].boxes.shape == (3, 4)
    for index, match in [(1, "frame 1: a frame must be a JSON object"), (2, "frame 2: frame field 'name'"),
                         (3, "frame 3 .missing.jpg.: image 'missing.jpg' not found")]:
        with pytest.raises(DatasetError, match=match):
            reader[index]
    folder = tmp_path / "labels" / "per_image"
    write_json(folder / "a.json", {"name": frame_name(0), "labels": []})
    (folder / "b.json").write_text('{"name": ')
    (folder / "c.json").write_text("[1, ")
    per_image = Bdd100kReader(folder, images=tmp_path / "images", tasks=["det"])
    assert len(per_image) == 3 and per_image[0].boxes.shape == (0, 4)
    for index, name in [(1, "b.json"), (2, "c.json")]:
        with pytest.raises(DatasetError, match=f"{name}: not readable JSON"):
            per_image[index]


@needs_real
def test_the_real_instance_annotation_gives_boxes_around_its_bezier_polygons(tmp_path):
    import cv2
    from matplotlib.path import Path as MplPath

    frames = json.loads((REAL / "example_annotation.json").read_text())
    cv2.imwrite(str(tmp_path / frames[0]["name"]), np.zeros((720, 1280, 3), np.uint8))
    reader = Bdd100kReader(REAL / "example_annotation.json", images=str(tmp_path))
    assert len(reader) == 1
    s = reader[0]
    assert s.lane is None and s.classes.tolist() == [CAR] * 4 and s.ignore.shape == (0, 4)
    codes = {"L": MplPath.LINETO, "C": MplPath.CURVE4}
    for got, label in zip(s.boxes, frames[0]["labels"], strict=True):
        extents = []
        for poly in label["poly2d"]:  # bdd100k's own drawing: matplotlib paths, CURVE4 for "CC"
            vertices = [*poly["vertices"], poly["vertices"][0]]
            kinds = [MplPath.MOVETO] + [codes[t] for t in poly["types"][1:]] + [MplPath.LINETO]
            extents.append(MplPath(vertices, kinds).get_extents().get_points().ravel())
        expected = np.r_[np.min(extents, 0)[:2], np.max(extents, 0)[2:]]
        np.testing.assert_allclose(got, expected, atol=0.5)
    # the Bezier curves stay inside their control points: the boxes are tighter than the vertices
    v = np.vstack(frames[0]["labels"][0]["poly2d"][0]["vertices"])
    assert s.boxes[0, 3] < v[:, 1].max() - 5
    # without poly2d_boxes the file labels no boxes at all
    plain = Bdd100kReader(REAL / "example_annotation.json", images=str(tmp_path), poly2d_boxes=False)
    assert plain[0].boxes is None


@needs_real
def test_the_real_lane_masks_decode_to_thin_painted_lines(tmp_path):
    import cv2

    pngs = sorted(REAL.glob("lane_mask_*.png"))
    assert len(pngs) == 4
    painted = {"fe189115-9981a740": 5104, "fe189115-9cc4a501": 2865, "fe189115-adbd209a": 0,
               "fe189115-c31cac5a": 6144}  # pixels of categories 1-3, 5-7 (no crosswalk 0, road curb 4)
    masks = tmp_path / "masks"
    masks.mkdir()
    for png in pngs:
        name = png.stem.removeprefix("lane_mask_")
        shutil.copy(png, masks / f"{name}.png")  # into the test's temporary folder only
        cv2.imwrite(str(tmp_path / f"{name}.jpg"), np.zeros((720, 1280, 3), np.uint8))
    reader = Bdd100kReader(masks, images=str(tmp_path))
    assert len(reader) == 4
    for s in reader:
        raw = cv2.imread(str(masks / f"{s.name[:-4]}.png"), cv2.IMREAD_UNCHANGED)
        assert s.lane.shape == (720, 1280) and s.boxes is None
        assert s.lane.sum() == painted[s.name[:-4]]
        assert (s.lane <= ((raw & 8) == 0)).all()  # never background
        rows = [np.diff(np.flatnonzero(np.diff(np.r_[0, r, 0])))[::2] for r in s.lane if r.any()]
        if rows:  # thin lines: a few pixels across, a small part of the frame
            assert np.median(np.concatenate(rows)) <= 12 and s.lane.mean() < 0.01
    curbs = Bdd100kReader(masks, images=str(tmp_path), lane_categories=["road curb"])
    assert curbs[2].name.startswith("fe189115-adbd209a") and curbs[2].lane.sum() == 2482


def test_bad_lane_masks_fail_their_sample_by_name(tmp_path):
    import cv2

    masks = tmp_path / "masks"
    masks.mkdir()
    write_images(tmp_path / "images", [frame_name(i) for i in range(3)], W, H)
    cv2.imwrite(str(masks / f"{frame_name(0)[:-4]}.png"), np.full((H, W, 3), 255, np.uint8))  # a colormap
    cv2.imwrite(str(masks / f"{frame_name(1)[:-4]}.png"), np.full((H // 2, W), 255, np.uint8))
    good = cv2.imencode(".png", np.full((H, W), 255, np.uint8))[1].tobytes()
    (masks / f"{frame_name(2)[:-4]}.png").write_bytes(good[:-20])  # truncated
    reader = Bdd100kReader(masks, images=tmp_path / "images")
    for index, match in [(0, "one 8-bit channel"), (1, f"lane mask is {W}x{H // 2}, image is {W}x{H}"),
                         (2, "truncated PNG")]:
        with pytest.raises(DatasetError, match=match) as e:
            reader[index]
        assert f"{frame_name(index)[:-4]}.png" in str(e.value)


def test_scalabel_intrinsics_are_the_camera_when_a_frame_has_them(tmp_path):
    frames = [{"name": frame_name(0), "intrinsics": {"focal": [100.0, 101.0], "center": [60.0, 30.0]},
               "labels": []},
              {"name": frame_name(1), "intrinsics": {"focal": 100}, "labels": []}]
    reader = Bdd100kReader(write_json(_folder(tmp_path) / "det_val.json", frames),
                           images=tmp_path / "images", tasks=["det"])
    assert reader[0].camera == Camera(W, H, 100.0, 101.0, 60.0, 30.0)
    with pytest.raises(DatasetError, match=r"frame 1 .*intrinsics must be"):
        reader[1]
