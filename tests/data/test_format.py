"""On-disk dataset format: round trip, label dropping, determinism and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_mtl.data.format import DatasetError, DatasetReader, parse_drop_labels, synthesize
from edge_mtl.data.world import render_random


def test_round_trip_matches_renderer(tiny_dataset):
    reader = DatasetReader(tiny_dataset)
    assert len(reader) == 6
    seeds = np.random.SeedSequence(11).generate_state(6, dtype=np.uint32)
    s = reader[2]
    ref = render_random(int(seeds[2])).sample
    assert s.image.shape == ref.image.shape
    assert np.abs(s.image.astype(int) - ref.image).mean() < 3  # JPEG, quality 95
    assert np.array_equal(s.lane, ref.lane)
    assert np.abs(s.depth - ref.depth).max() <= 0.5 / 256 + 1e-6  # KITTI 1/256 m
    assert np.allclose(s.boxes, ref.boxes, atol=0.01)
    assert np.array_equal(s.classes, ref.classes)


def test_depth_png_uses_kitti_convention(tiny_dataset):
    import cv2

    raw = cv2.imread(f"{tiny_dataset}/depth/000000.png", cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    assert np.allclose(DatasetReader(tiny_dataset)[0].depth, raw / 256.0)
    assert (raw == 0).any()  # sky pixels are invalid


def test_drop_labels_writes_per_sample_flags(dropped_dataset):
    reader = DatasetReader(dropped_dataset)
    flags = [reader.record(i)["has_label"] for i in range(len(reader))]
    for task in ("det", "lane", "depth"):
        assert any(f[task] for f in flags) and not all(f[task] for f in flags)
    for i, f in enumerate(flags):
        s = reader[i]
        assert s.has_label == f
        assert (s.depth is None) == (not f["depth"])


def test_same_data_for_any_worker_count(tmp_path):
    synthesize(tmp_path / "a", 2, seed=4, workers=1, progress=False)
    synthesize(tmp_path / "b", 2, seed=4, workers=2, progress=False)
    for i in range(2):
        la = json.loads((tmp_path / "a" / "labels" / f"{i:06d}.json").read_text())
        lb = json.loads((tmp_path / "b" / "labels" / f"{i:06d}.json").read_text())
        assert la == lb


def test_parse_drop_labels():
    assert parse_drop_labels("det=0.3,depth=0.5") == {"det": 0.3, "lane": 0.0, "depth": 0.5}
    for bad in ("foo=0.1", "det", "det=x", "lane=1.5"):
        with pytest.raises(ValueError, match="--drop-labels"):
            parse_drop_labels(bad)


def test_refuses_to_overwrite_unless_forced(tmp_path):
    root = synthesize(tmp_path / "d", 3, seed=0, workers=1, progress=False)
    with pytest.raises(FileExistsError, match="already holds a dataset"):
        synthesize(root, 1, seed=1, workers=1, progress=False)
    assert len(DatasetReader(root)) == 3  # nothing lost
    synthesize(root, 1, seed=1, workers=1, progress=False, force=True)
    assert len(DatasetReader(root)) == 1


def test_errors_name_the_file(tmp_path, tiny_dataset):
    with pytest.raises(DatasetError, match=r"meta\.json"):
        DatasetReader(tmp_path)
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    (broken / "labels" / "000001.json").write_text("{not json")
    (broken / "images" / "000002.jpg").unlink()
    reader = DatasetReader(broken)
    with pytest.raises(DatasetError, match=r"000001\.json"):
        reader[1]
    with pytest.raises(DatasetError, match=r"000002\.jpg"):
        reader[2]
    assert reader[0].image is not None  # the rest stays readable


def test_sequence_mode_writes_a_coherent_drive(tmp_path):
    root = synthesize(tmp_path / "seq", 3, seed=5, sequence=True, progress=False)
    reader = DatasetReader(root)
    a, b = reader[0].image.astype(int), reader[1].image.astype(int)
    assert 0 < np.abs(a - b).mean() < 12
    assert json.loads((root / "meta.json").read_text())["sequence"] is True


DROP_TOKENS = ["det", "lane", "depth", "=", ",", "0.5", "1", "-1", "x", "nan", "inf", " "]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.lists(st.sampled_from(DROP_TOKENS), max_size=12).map("".join))
def test_any_drop_labels_text_is_parsed_or_refused_by_name(text):
    try:
        drops = parse_drop_labels(text)
    except ValueError as e:
        assert "--drop-labels" in str(e)
    else:
        assert set(drops) == {"det", "lane", "depth"} and all(0.0 <= p <= 1.0 for p in drops.values())
