"""The ``tusimple`` reader: label lines parsed exactly, lanes drawn, bad lines refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.formats import open_reader
from edge_mtl.data.formats.tusimple import TusimpleReader
from edge_mtl.types import Camera
from tests.helpers import SHARED_DATA

from .make_tusimple import LABEL_FILE, frame_record, write_tusimple

# shared/ beside the checkout, or inside it where a copy of the checkout carries one
REAL = SHARED_DATA / "real_dev" / "tusimple_format" / "test_label_head40.json"


def test_frames_parse_exactly_and_draw_their_lanes(tmp_path):
    root = write_tusimple(tmp_path / "tusimple", num=2, width=128, height=64)
    reader = open_reader(f"tusimple:{root}", {"tusimple": {"lane_width": 3}})
    assert isinstance(reader, TusimpleReader) and len(reader) == 2
    assert reader.source(1) == f"{root / LABEL_FILE}:2"
    record = frame_record(1, 128, 64)
    assert np.array_equal(reader.h_samples(1), np.float32(record["h_samples"]))
    left, right = reader.lanes(1)
    assert left.dtype == np.float32 and left.shape == (len(record["h_samples"]), 2)
    ys = record["h_samples"]
    assert np.array_equal(left, np.float32(list(zip(record["lanes"][0], ys, strict=True))))
    # the right lane's first two rows are -2: left out, the rest kept in h_samples order
    assert np.array_equal(right, np.float32(list(zip(record["lanes"][1][2:], ys[2:], strict=True))))

    s = reader[1]
    assert s.image.shape == (64, 128, 3) and s.lane.shape == (64, 128) and s.lane.dtype == np.uint8
    assert s.has_label == {"det": False, "lane": True, "depth": False}
    assert s.boxes is s.classes is s.depth is s.ignore is None
    assert s.camera == Camera.assumed(128, 64)
    assert s.name == record["raw_file"]
    for x, y in np.concatenate([left, right]).astype(int):
        assert s.lane[y, x] == 1
    assert s.lane[5, 5] == 0 and s.lane[record["h_samples"][0], 127] == 0
    assert 0.02 < s.lane.mean() < 0.2


def test_absent_rows_are_any_negative_x_and_gaps_between_points_are_bridged(tmp_path):
    (tmp_path / "clips").mkdir()
    _write_image(tmp_path / "clips/a.jpg", 64, 40)
    ys = [8, 12, 16, 20, 24, 28, 32]
    line = {"lanes": [[-2, 10, -2, -1, -2, 10, -5], [-2] * 7], "h_samples": ys, "raw_file": "clips/a.jpg"}
    (tmp_path / "one.json").write_text(json.dumps(line) + "\n")
    reader = TusimpleReader(tmp_path / "one.json", lane_width=1)  # PATH a label file: its folder is ROOT
    lane, empty = reader.lanes(0)
    assert np.array_equal(lane, np.float32([[10, 12], [10, 28]])) and empty.shape == (0, 2)
    mask = reader[0].lane
    assert mask[12:29, 10].all() and mask[20, 10] == 1  # joined across the rows without points
    assert mask[:12].sum() == 0 and mask[29:].sum() == 0 and mask.sum() == 17


def test_root_reads_every_label_file_but_the_test_template_and_baseline(tmp_path):
    root = write_tusimple(tmp_path, num=2)
    write_tusimple(tmp_path, num=1, label_file="test_label.json")
    template = {"lanes": [], "h_samples": [16, 20], "raw_file": "clips/0313-1/6040/20.jpg"}
    for name in ("test_tasks_0627.json", "test_baseline.json"):
        (root / name).write_text(json.dumps(template) + "\n")
    reader = TusimpleReader(root)
    assert [reader.source(i).rsplit("/", 1)[1] for i in range(len(reader))] == \
        [f"{LABEL_FILE}:1", f"{LABEL_FILE}:2", "test_label.json:1"]
    assert len(TusimpleReader(root, labels="test_label.json")) == 1
    assert len(TusimpleReader(root, labels=["label_data_*.json", LABEL_FILE])) == 2
    with pytest.raises(DatasetError, match=r"label_data_0601\.json.*matches no file"):
        TusimpleReader(root, labels=["label_data_0601.json"])


@pytest.mark.parametrize(("text", "field"), [
    ('{"lanes": [[1, 2]], "h_samples": [10, 20], "raw_file": "clips/a.jpg"', "not valid JSON"),
    ('[1, 2]', "expected a JSON object"),
    ('{"lanes": [[1, 2]], "raw_file": "clips/a.jpg"}', "missing field 'h_samples'"),
    ('{"lanes": [[1, 2]], "h_samples": [10, 20]}', "missing field 'raw_file'"),
    ('{"lanes": [[1, 2], [3]], "h_samples": [10, 20], "raw_file": "clips/a.jpg"}',
     r"lanes\[1\] has 1 values but h_samples has 2"),
    *[(f'{{"lanes": [[1, {bad}]], "h_samples": [10, 20], "raw_file": "clips/a.jpg"}}',
       r"lanes\[0\] must be a list") for bad in ('"2"', "true", "NaN", "1e999", "null")],
    ('{"lanes": [[1, 2]], "h_samples": [10, 1e999], "raw_file": "clips/a.jpg"}', "h_samples must be a list"),
    ('{"lanes": {"0": [1, 2]}, "h_samples": [10, 20], "raw_file": "clips/a.jpg"}', "lanes must be a list"),
    ('{"lanes": [[1, 2]], "h_samples": [10, 20], "raw_file": ""}', "raw_file must be a non-empty path"),
    ('{"lanes": [[1, 2]], "h_samples": [10, 99], "raw_file": "clips/a.jpg"}',
     r"lanes\[0\] has a point on row 99, outside the 64x40 image"),
])
def test_a_bad_line_is_refused_naming_the_file_line_and_field(tmp_path, text, field):
    (tmp_path / "clips").mkdir()
    _write_image(tmp_path / "clips/a.jpg", 64, 40)
    good = json.dumps({"lanes": [[1, 2]], "h_samples": [10, 20], "raw_file": "clips/a.jpg"})
    (tmp_path / "labels.json").write_text(f"{good}\n\n{text}\n")
    reader = TusimpleReader(tmp_path)
    assert len(reader) == 2 and reader[0].lane.any()  # the good line still reads; blank lines skipped
    with pytest.raises(DatasetError, match=rf"labels\.json:3: .*{field}"):
        reader[1]


def test_a_missing_image_is_named_with_its_label_line(tmp_path):
    root = write_tusimple(tmp_path, num=2)
    (root / frame_record(1, 128, 64)["raw_file"]).unlink()
    with pytest.raises(DatasetError, match=rf"20\.jpg: image not found \(referenced by .*{LABEL_FILE}:2\)"):
        TusimpleReader(root)[1]


def test_what_is_not_tusimple_is_refused_when_opened(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        TusimpleReader(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="no label"):
        TusimpleReader(tmp_path)
    coco = tmp_path / "instances.json"
    coco.write_text(json.dumps({"images": [], "annotations": []}, indent=2))
    with pytest.raises(DatasetError, match=r"instances\.json: not a TuSimple label file"):
        TusimpleReader(coco)
    coco.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(DatasetError, match=r"instances\.json: not a TuSimple label file"):
        TusimpleReader(tmp_path)
    coco.write_text("\n\n")
    with pytest.raises(DatasetError, match="no labelled frames"):
        TusimpleReader(coco)
    with pytest.raises(DatasetError, match="lane_width"):
        TusimpleReader(coco, lane_width=0)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)
_GOOD = {"lanes": [[-2, 10, 20, 30], [40, -2, 45, 50]], "h_samples": [8, 16, 24, 32],
         "raw_file": "clips/a.jpg"}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutated_line_is_a_valid_sample_or_a_named_error(tmp_path, data):
    record = json.loads(json.dumps(_GOOD))
    for key in data.draw(st.sets(st.sampled_from([*_GOOD, "extra"]))):
        record[key] = data.draw(_JSON)
    if data.draw(st.booleans()) and isinstance(record.get("lanes"), list) and record["lanes"]:
        record["lanes"][0] = data.draw(st.lists(st.integers(-5, 10**6) | st.floats(), min_size=4, max_size=4))
    text = json.dumps(record) if data.draw(st.booleans()) else data.draw(st.text(max_size=60))
    (tmp_path / "clips").mkdir(exist_ok=True)
    _write_image(tmp_path / "clips/a.jpg", 64, 40)
    (tmp_path / "labels.json").write_text(json.dumps(_GOOD) + "\n" + " ".join(text.splitlines()) + "\n")
    reader = TusimpleReader(tmp_path)
    for i in range(len(reader)):
        try:
            sample = reader[i]
        except DatasetError as e:
            assert "labels.json:2" in str(e)
        else:
            assert sample.lane.shape == (40, 64) and set(np.unique(sample.lane)) <= {0, 1}


@pytest.mark.skipif(not REAL.exists(), reason="shared/data/real_dev/tusimple_format not beside the checkout")
def test_real_tusimple_test_labels_parse():
    """The head of the benchmark's own test_label.json (images not shipped): labels only."""
    reader = TusimpleReader(REAL)
    assert len(reader) == 40
    assert np.array_equal(reader.h_samples(0), np.arange(160, 720, 10, dtype=np.float32))
    first = json.loads(REAL.read_text().split("\n")[0])
    lanes = reader.lanes(0)
    assert len(lanes) == len(first["lanes"]) == 4
    assert lanes[0][0].tolist() == [648, 260] and lanes[0][-1].tolist() == [219, 710]
    present = [sum(x >= 0 for x in xs) for xs in first["lanes"]]
    assert [len(lane) for lane in lanes] == present == [46, 46, 16, 11]
    for i in range(len(reader)):
        assert reader.h_samples(i).shape == (56,)
        assert 3 <= len(reader.lanes(i)) <= 5
        assert all(lane.shape[1] == 2 and (lane[:, 0] >= 0).all() for lane in reader.lanes(i))
    with pytest.raises(DatasetError, match=r"1492626760788443246_0/20\.jpg: image not found"):
        reader[0]


def _write_image(path: Path, width: int, height: int) -> None:
    import cv2

    cv2.imwrite(str(path), np.full((height, width, 3), 90, np.uint8))
