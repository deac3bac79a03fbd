"""The ``culane`` reader: list files, ``.lines.txt`` parsed exactly, lanes drawn, errors by name."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_mtl.data.checks import DatasetError
from edge_mtl.data.formats import open_reader
from edge_mtl.data.formats.culane import CulaneReader
from edge_mtl.types import Camera

from .make_culane import VIDEO, frame_lanes, write_culane


def test_frames_parse_exactly_and_draw_their_lanes(tmp_path):
    root = write_culane(tmp_path / "CULane", num=2, width=128, height=64)
    reader = open_reader(f"culane:{root}", {"culane": {"lane_width": 3}})
    assert isinstance(reader, CulaneReader) and len(reader) == 2
    assert reader.source(1) == f"{root / 'list' / 'train.txt'}:2"
    assert reader.lines_file(1) == root / VIDEO / "00030.lines.txt"
    lanes = reader.lanes(1)
    expected = [np.float32(lane) for lane in frame_lanes(1, 128, 64)]
    assert len(lanes) == 2 and all(a.dtype == np.float32 for a in lanes)
    assert all(np.allclose(a, b, atol=1e-3) for a, b in zip(lanes, expected, strict=True))
    assert lanes[0][0, 0] < 0 and lanes[0][0, 1] == 64  # bottom row first, left of the image: kept
    assert (np.diff(lanes[0][:, 1]) < 0).all()

    s = reader[1]
    assert s.image.shape == (64, 128, 3) and s.lane.shape == (64, 128) and s.lane.dtype == np.uint8
    assert s.has_label == {"det": False, "lane": True, "depth": False}
    assert s.boxes is s.classes is s.depth is s.ignore is None
    assert s.camera == Camera.assumed(128, 64)
    assert s.name == f"{VIDEO}/00030.jpg"
    for x, y in np.round(np.concatenate(lanes)).astype(int):
        if 0 <= x < 128 and 0 <= y < 64:
            assert s.lane[y, x] == 1
    assert s.lane[:18].sum() == 0 and s.lane[40, 64] == 0
    assert 0.02 < s.lane.mean() < 0.2


def test_splits_list_option_gt_lists_and_a_list_file_as_path(tmp_path):
    root = write_culane(tmp_path, num=3)
    write_culane(tmp_path, num=1, split="test")
    assert len(CulaneReader(root)) == 3 and len(CulaneReader(root, split="test")) == 1
    gt = CulaneReader(root, list="list/train_gt.txt")  # image mask exist1..4: the image column
    assert len(gt) == 3 and np.array_equal(gt[2].lane, CulaneReader(root)[2].lane)
    split_dir = root / "list" / "test_split"
    split_dir.mkdir()
    (split_dir / "test0_normal.txt").write_text(f"{VIDEO}/00030.jpg\n{VIDEO}/00000.jpg\n")  # no leading /
    by_file = CulaneReader(split_dir / "test0_normal.txt")
    assert by_file.root == root and len(by_file) == 2
    assert by_file[0].name == f"{VIDEO}/00030.jpg" and by_file[0].lane.any()
    with pytest.raises(DatasetError, match="split must be one of"):
        CulaneReader(root, split="validation")
    with pytest.raises(DatasetError, match=r"not a CULane folder \(no list file .*list/val\.txt\)"):
        CulaneReader(root, split="val")


def test_a_missing_lines_file_is_an_error_or_no_lanes_by_option(tmp_path):
    root = write_culane(tmp_path, num=2)
    (root / VIDEO / "00030.lines.txt").unlink()
    reader = CulaneReader(root)
    assert reader[0].lane.any()
    with pytest.raises(DatasetError, match=r"00030\.lines\.txt: lane annotation not found .*train\.txt:2"):
        reader[1]
    empty = CulaneReader(root, missing_lines="empty")
    assert empty.lanes(1) == [] and not empty[1].lane.any() and empty[1].has_label["lane"]
    (root / VIDEO / "00000.lines.txt").write_text("")  # an empty file: a frame without lanes
    assert reader.lanes(0) == [] and not reader[0].lane.any()
    with pytest.raises(DatasetError, match="missing_lines must be one of"):
        CulaneReader(root, missing_lines="skip")


@pytest.mark.parametrize(("text", "message"), [
    ("10 590 20 580 30\n", "5 values, expected x y pairs"),
    ("10 590 abc 580\n", "'abc' is not a number"),
    ("10 590 nan 580\n", "a coordinate is NaN or inf"),
])
def test_a_bad_lines_file_is_refused_naming_the_file_and_line(tmp_path, text, message):
    root = write_culane(tmp_path, num=1)
    lines = root / VIDEO / "00000.lines.txt"
    lines.write_text("1 60 5 50 \n\n" + text)
    with pytest.raises(DatasetError, match=rf"00000\.lines\.txt:3: {message}"):
        CulaneReader(root)[0]


def test_blank_lines_carry_no_lane_and_single_points_are_kept(tmp_path):
    root = write_culane(tmp_path, num=1)
    (root / VIDEO / "00000.lines.txt").write_text("\n  \n-3.5 63 40.25 20\n100 30 \n")
    lanes = CulaneReader(root).lanes(0)
    assert [a.tolist() for a in lanes] == [[[-3.5, 63.0], [40.25, 20.0]], [[100.0, 30.0]]]


def test_a_missing_image_or_a_bad_entry_is_named_with_its_list_line(tmp_path):
    root = write_culane(tmp_path, num=2)
    (root / VIDEO / "00030.jpg").unlink()
    with pytest.raises(DatasetError, match=r"00030\.jpg: image not found \(referenced by .*train\.txt:2\)"):
        CulaneReader(root)[1]
    with (root / "list" / "train.txt").open("a") as f:
        f.write("/driver_23_30frame/notes\n")
    with pytest.raises(DatasetError, match=r"train\.txt:3: 'driver_23_30frame/notes' is not an image path"):
        CulaneReader(root)[2]


def test_what_is_not_culane_is_refused_when_opened(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        CulaneReader(tmp_path / "nothing")
    with pytest.raises(DatasetError, match=r"not a CULane folder \(no list file .*list/train\.txt\)"):
        CulaneReader(tmp_path)
    (tmp_path / "list").mkdir()
    listed = tmp_path / "list" / "train.txt"
    listed.write_text("\n")
    with pytest.raises(DatasetError, match=r"train\.txt: no images listed"):
        CulaneReader(tmp_path)
    lines = tmp_path / "00000.lines.txt"
    lines.write_text("-20.48 580 19.39 570\n")
    with pytest.raises(DatasetError, match=r"00000\.lines\.txt:1: not a CULane list file"):
        CulaneReader(lines)
    lines.write_bytes(b"\xff\xd8\xff\xe0 a jpeg")
    with pytest.raises(DatasetError, match="not UTF-8 text"):
        CulaneReader(lines)
    with pytest.raises(DatasetError, match="lane_width"):
        CulaneReader(tmp_path, lane_width=2.5)


def test_real_size_frames_keep_lanes_that_leave_the_image(tmp_path):
    """A 1640x590 frame with a line of CULane's own distribution (x past both edges, y = 590)."""
    root = write_culane(tmp_path, num=1, width=1640, height=590)
    (root / VIDEO / "00000.lines.txt").write_text(
        "-14.426 560 15.1483 550 44.4982 540 73.848 530 \n1640 460 1598.02 450 1552.13 440 \n"
        "459.603 590 470.888 580 482.172 570 \n")
    s = CulaneReader(root)[0]
    assert s.camera == Camera.assumed(1640, 590) and s.lane.shape == (590, 1640)
    # drawn up to the image edges from the points outside it (left of x = 0, at x = 1640, on y = 590)
    assert s.lane[555, 0] == 1 and s.lane[459, 1636] == 1 and s.lane[589, 461] == 1


_TOKEN = st.sampled_from(["-20.5", "590", "1e999", "nan", "x", "1_0", "-0", "1e6", "3"]) | \
    st.text(max_size=4) | st.floats().map(str)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.lists(_TOKEN, max_size=8).map(" ".join), max_size=4))
def test_any_lines_file_is_a_valid_sample_or_a_named_error(tmp_path, lines):
    root = write_culane(tmp_path, num=1)
    path = root / VIDEO / "00000.lines.txt"
    path.write_text("\n".join(lines))
    try:
        sample = CulaneReader(root)[0]
    except DatasetError as e:
        assert str(e).startswith(f"{path}:")
    else:
        assert sample.lane.shape == (64, 128) and set(np.unique(sample.lane)) <= {0, 1}
