"""Bad label values and broken files end in a DatasetError naming the file, never in a silent
wrong sample or an unnamed exception (also for random and mutated label records)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_mtl.cli import main
from edge_mtl.data.format import DatasetError, DatasetReader
from edge_mtl.data.preflight import BadDataError, check_dataset
from edge_mtl.imageio import CorruptImageError, read_image


@pytest.fixture()
def copy(tmp_path, tiny_dataset) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset, root)
    return root


def edit_label(root: Path, index: int, **changes) -> Path:
    path = root / "labels" / f"{index:06d}.json"
    rec = json.loads(path.read_text())
    rec.update(changes)
    path.write_text(json.dumps(rec))
    return path


def read_error(root: Path, index: int = 0) -> str:
    with pytest.raises(DatasetError) as info:
        DatasetReader(root)[index]
    return str(info.value)


def labelled_det(root: Path) -> int:
    reader = DatasetReader(root)
    return next(i for i in range(len(reader)) if reader.record(i)["has_label"]["det"]
                and reader.record(i)["boxes"])


@pytest.mark.parametrize(("box", "why"), [
    ([-40.0, 10.0, 50.0, 60.0], "outside the 1280x720 image"),
    ([10.0, 10.0, 1400.0, 60.0], "outside the 1280x720 image"),
    ([50.0, 10.0, 50.0, 60.0], "degenerate"),
    ([60.0, 10.0, 50.0, 60.0], "degenerate"),
    ([10.0, 70.0, 50.0, 60.0], "degenerate"),
    ([10.0, float("nan"), 50.0, 60.0], "not finite"),
    ([10.0, 10.0, float("inf"), 60.0], "not finite"),
])
def test_bad_boxes_are_refused_by_name(copy, box, why):
    i = labelled_det(copy)
    path = copy / "labels" / f"{i:06d}.json"
    rec = json.loads(path.read_text())
    rec["boxes"][0] = box
    path.write_text(json.dumps(rec))  # json writes NaN/Infinity, as careless tools do
    err = read_error(copy, i)
    assert str(path) in err and why in err


def test_a_box_a_rounding_error_outside_is_clipped(copy):
    i = labelled_det(copy)
    path = copy / "labels" / f"{i:06d}.json"
    rec = json.loads(path.read_text())
    rec["boxes"][0] = [-0.4, 10.0, 1280.3, 60.0]
    path.write_text(json.dumps(rec))
    assert DatasetReader(copy)[i].boxes[0].tolist() == [0.0, 10.0, 1280.0, 60.0]


def test_lane_mask_stored_as_0_255_or_with_three_channels_is_refused(copy):
    lane_path = copy / "lanes" / "000000.png"
    lane = cv2.imread(str(lane_path), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(lane_path), lane * 255)
    err = read_error(copy)
    assert "000000.json" in err and "0 or 1" in err and "0/255" in err
    cv2.imwrite(str(lane_path), np.dstack([lane] * 3))
    assert "single-channel" in read_error(copy)


def test_depth_not_uint16_of_another_size_or_another_image_size_is_refused(copy):
    depth_path = copy / "depth" / "000000.png"
    depth = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(depth_path), (depth // 256).astype(np.uint8))
    assert "must be single-channel uint16" in read_error(copy)
    cv2.imwrite(str(depth_path), depth[:, :640])
    assert "depth is 640x720, image is 1280x720" in read_error(copy)
    cv2.imwrite(str(depth_path), depth)
    image = cv2.imread(str(copy / "images" / "000000.jpg"))
    cv2.imwrite(str(copy / "images" / "000000.jpg"), cv2.resize(image, (640, 360)))
    assert "image is 640x360 but the label's camera says 1280x720" in read_error(copy)


ALL_LABELLED = {"det": True, "lane": True, "depth": True}


@pytest.mark.parametrize(("changes", "why"), [
    ({"boxes": None, "has_label": ALL_LABELLED}, "has_label.det is true but boxes is null"),
    ({"lane": None, "has_label": ALL_LABELLED}, "has_label.lane is true but lane is null"),
    ({"colour": "red"}, "unknown key(s) ['colour']"),
    ({"has_label": {"det": "yes"}}, "has_label must map"),
    ({"has_label": {"segm": True}}, "has_label must map"),
    ({"image": 7}, "image must be a relative path"),
    ({"classes": [0.5]}, "classes must be a list of integer"),
    ({"boxes": [[1, 2, 3]]}, "boxes must be a list of [x1, y1, x2, y2]"),
    ({"camera": {"fx": -3}}, "camera.fx=-3 must be a positive"),
    ({"camera": {"lens": "wide"}}, "camera must be an object"),
])
def test_malformed_label_records_are_refused_by_name(copy, changes, why):
    i = labelled_det(copy)
    path = edit_label(copy, i, **changes)
    err = read_error(copy, i)
    assert str(path) in err and why in err


def test_truncated_or_missing_images_are_corrupt(copy, tmp_path):
    jpg = copy / "images" / "000002.jpg"
    data = jpg.read_bytes()
    jpg.write_bytes(data[: len(data) * 2 // 3])
    assert cv2.imread(str(jpg)) is not None  # OpenCV alone would decode it (grey bottom)
    err = read_error(copy, 2)
    assert "000002.jpg: truncated JPEG" in err and "referenced by" in err and "000002.json" in err
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), np.zeros((8, 8), np.uint8))
    png.write_bytes(png.read_bytes()[:-12])
    with pytest.raises(CorruptImageError, match=r"x\.png: truncated PNG"):
        read_image(png)
    with pytest.raises(CorruptImageError, match=r"nope\.jpg: image not found"):
        read_image(tmp_path / "nope.jpg")


def test_check_data_lists_every_bad_sample_and_strict_stops_at_the_first(copy, capsys):
    (copy / "images" / "000001.jpg").write_bytes(b"\xff\xd8 broken")
    edit_label(copy, 4, colour="red")
    result = check_dataset(copy, workers=1, progress=False)
    assert result.good == [0, 2, 3, 5]
    assert [Path(p.file).name for p in result.bad] == ["000001.json", "000004.json"]
    with pytest.raises(BadDataError, match=r"000001\.jpg: truncated JPEG"):
        check_dataset(copy, workers=1, strict=True, progress=False)
    assert main(["check-data", str(copy), "--workers", "1", "--json", str(copy / "report.json")]) == 1
    out = capsys.readouterr().out
    assert "000001.jpg: truncated JPEG" in out and "unknown key(s) ['colour']" in out and "4 of 6" in out
    assert json.loads((copy / "report.json").read_text())["num_bad"] == 2


def test_check_data_passes_a_clean_dataset_in_parallel(tiny_dataset, capsys):
    assert main(["check-data", tiny_dataset, "--workers", "2"]) == 0
    assert "6 of 6 samples readable" in capsys.readouterr().out


def test_eval_skips_a_bad_sample_by_name_and_strict_stops(copy, tiny_checkpoint, capsys):
    from edge_mtl.evaluate import evaluate

    jpg = copy / "images" / "000003.jpg"
    jpg.write_bytes(jpg.read_bytes()[:2000])
    result = evaluate(tiny_checkpoint, copy, progress=False)
    assert result["data"]["num_samples"] == 5
    assert [Path(s["file"]).name for s in result["data"]["skipped"]] == ["000003.json"]
    assert "000003.jpg: truncated JPEG" in capsys.readouterr().err
    assert main(["eval", tiny_checkpoint, "--data", str(copy), "--strict"]) == 2
    assert "000003.jpg: truncated JPEG" in capsys.readouterr().err.strip().splitlines()[-1]


# Property-based: whatever a label record holds, reading it ends in a valid sample or a DatasetError
# naming its file.
def assert_valid(sample) -> None:
    """What every sample that reaches training or evaluation holds."""
    h, w = sample.image.shape[:2]
    assert sample.image.dtype == np.uint8 and sample.image.shape == (h, w, 3)
    assert (sample.camera.width, sample.camera.height) == (w, h)
    if sample.boxes is not None:
        b = sample.boxes
        assert np.isfinite(b).all() and (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        assert (b >= 0).all() and (b[:, [0, 2]] <= w).all() and (b[:, [1, 3]] <= h).all()
        assert sample.classes.shape == (len(b),) and ((sample.classes >= 0) & (sample.classes < 3)).all()
    if sample.lane is not None:
        assert sample.lane.shape == (h, w) and set(np.unique(sample.lane)) <= {0, 1}
    if sample.depth is not None:
        assert sample.depth.shape == (h, w) and np.isfinite(sample.depth).all() and (sample.depth >= 0).all()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8), kids, max_size=5),
    max_leaves=20)
record_keys = st.sampled_from(["image", "lane", "depth", "boxes", "classes", "has_label", "camera", "extra"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(record_keys, json_values, max_size=4), drop=st.lists(record_keys, max_size=2))
def test_any_mutated_label_record_is_a_valid_sample_or_a_named_error(copy, changes, drop):
    path = copy / "labels" / "000000.json"
    original = path.read_text()
    rec = json.loads(original) | changes
    for key in drop:
        rec.pop(key, None)
    path.write_text(json.dumps(rec))
    try:
        assert_valid(DatasetReader(copy)[0])
    except DatasetError as e:
        assert str(path) in str(e)  # the label file, also when one of its images is at fault
    finally:
        path.write_text(original)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_label_or_meta_bytes_are_a_valid_sample_or_a_named_error(copy, text):
    for name in ("labels/000000.json", "meta.json"):
        path = copy / name
        original = path.read_bytes()
        path.write_bytes(text)
        try:
            assert_valid(DatasetReader(copy)[0])
        except DatasetError as e:
            assert str(path) in str(e)
        finally:
            path.write_bytes(original)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 0.999), flips=st.lists(st.integers(0, 10**6), max_size=3))
def test_any_damaged_image_bytes_are_a_valid_sample_or_a_named_error(copy, cut, flips):
    for name in ("images/000000.jpg", "lanes/000000.png", "depth/000000.png"):
        path = copy / name
        original = path.read_bytes()
        data = bytearray(original[: max(1, int(len(original) * cut))] if cut > 0 else original)
        for f in flips:
            data[f % len(data)] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            assert_valid(DatasetReader(copy)[0])
        except DatasetError as e:
            assert str(path) in str(e)
        finally:
            path.write_bytes(original)


def test_eval_refuses_a_model_whose_outputs_are_not_finite(tiny_onnx, tiny_dataset):
    from edge_mtl.evaluate import evaluate
    from edge_mtl.runtime.backend import open_backend

    with open_backend(tiny_onnx) as backend:
        real = backend._run
        backend._run = lambda x: {k: v * np.nan if k == "depth" else v for k, v in real(x).items()}
        with pytest.raises(ValueError, match=r"tiny\.onnx: non-finite depth .* the model is broken"):
            evaluate(backend, tiny_dataset, progress=False)


def test_a_whole_jpeg_with_a_trailer_passes_and_a_thumbnail_marker_does_not_count():
    from edge_mtl.imageio import integrity_problem

    image = np.random.default_rng(0).integers(0, 256, (72, 128, 3), dtype=np.uint8)
    for params in ([], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]):
        data = cv2.imencode(".jpg", image, params)[1].tobytes()
        assert integrity_problem(data) is None
        assert integrity_problem(data + b"MotionPhoto trailer \xff\xd8...") is None
        assert integrity_problem(data[:2] + b"\x00\x00" + data[2:]) is None  # stray bytes: decoder's call
        assert integrity_problem(data[: len(data) * 9 // 10]) == "truncated JPEG (no end-of-image marker)"
        thumb = cv2.imencode(".jpg", image[::4, ::4])[1].tobytes()
        app1 = b"Exif\x00\x00" + thumb
        with_thumb = data[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + data[2:]
        assert integrity_problem(with_thumb) is None
        assert integrity_problem(with_thumb[: len(with_thumb) * 2 // 3]) is not None  # thumbnail ends early
