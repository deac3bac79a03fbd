"""FORMAT:PATH[@WEIGHT] specs, reader options, and pre-flight over a real format."""

from __future__ import annotations

import pytest

from edge_mtl.cli import main
from edge_mtl.data.checks import DatasetError
from edge_mtl.data.formats import READERS, DataSpec, open_reader
from edge_mtl.data.preflight import check_dataset
from tests.data.formats.make_kitti import write_kitti


def test_specs_parse_format_path_and_weight():
    assert DataSpec.parse("kitti:/data/kitti") == DataSpec("kitti", "/data/kitti", 1.0)
    assert DataSpec.parse("bdd100k:/d/bdd@2.5") == DataSpec("bdd100k", "/d/bdd", 2.5)
    assert DataSpec.parse("data/train") == DataSpec("synth", "data/train", 1.0)  # a bare path is synth
    assert DataSpec.parse("kitti-depth:/d/me@home") == DataSpec("kitti-depth", "/d/me@home", 1.0)
    assert str(DataSpec.parse("tusimple:/t@3")) == "tusimple:/t@3"
    with pytest.raises(ValueError, match=r"unknown format 'kitty'; known: \['bdd100k'"):
        DataSpec.parse("kitty:/data")
    with pytest.raises(ValueError, match="weight '0' must be a positive number"):
        DataSpec.parse("kitti:/data@0")
    with pytest.raises(ValueError, match="no path"):
        DataSpec.parse("coco:")


def test_every_reader_declares_its_format_and_tasks():
    for name, cls in READERS.items():
        assert cls.format == name and set(cls.tasks) <= {"det", "lane", "depth"} and cls.tasks


def test_an_unknown_reader_option_lists_the_formats_options(tmp_path):
    root = write_kitti(tmp_path / "k", num=1)
    with pytest.raises(DatasetError, match=r"kitti: unknown reader option\(s\) \['lane_width'\]; kitti takes "
                                           r"\['class_map', 'depth'\]"):
        open_reader(f"kitti:{root}", {"kitti": {"lane_width": 4}})
    assert open_reader(f"kitti:{root}", {"kitti": {"depth": False}})[0].depth is None


def test_check_data_counts_a_bad_sample_of_a_real_format(tmp_path, capsys):
    root = write_kitti(tmp_path / "k", num=3)
    label = root / "training" / "label_2" / "000001.txt"
    label.write_text("Car 0.0 0 0.1 10 10 20\n")  # a line cut short
    check = check_dataset(f"kitti:{root}", progress=False)
    assert check.good == [0, 2] and len(check.bad) == 1
    assert check.bad[0].file.endswith("000001.txt")
    assert "000001.txt:1: expected 15 fields" in check.bad[0].reason
    assert main(["check-data", f"kitti:{root}", "--json", str(tmp_path / "r.json")]) == 1
    out = capsys.readouterr().out
    assert "000001.txt" in out and "2 of 3 samples readable" in out
    assert main(["check-data", f"kitti:{root}", "--data-option", "depth=false", "--workers", "1"]) == 1
