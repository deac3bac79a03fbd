from __future__ import annotations

import pytest

from edge_mtl.quantize.calibset import load_calibration_set
from edge_mtl.quantize.sensitivity import candidate_groups, headline_losses, sweep
from edge_mtl.report.tables import METRICS, relative_loss


def test_relative_loss_knows_which_way_is_better():
    map50, abs_rel = (next(m for m in METRICS if m.key == k) for k in ("map50", "abs_rel"))
    assert relative_loss(map50, 0.9, 1.0) == pytest.approx(0.1)
    assert relative_loss(abs_rel, 0.11, 0.10) == pytest.approx(0.1)
    assert relative_loss(abs_rel, 0.09, 0.10) == pytest.approx(-0.1)
    fp32 = {"det": {"map50": 0.8}, "lane": {"iou": 0.5}, "depth": {"abs_rel": 0.1}}
    int8 = {"det": {"map50": 0.4}, "lane": {"iou": 0.5}, "depth": {"abs_rel": 0.2}}
    assert headline_losses(int8, fp32) == pytest.approx({"det": 0.5, "lane": 0.0, "depth": 1.0})


def test_sweep_leaves_each_group_in_float(tiny_onnx, tiny_dataset, tmp_path):
    import cv2

    from edge_mtl.data.world import render_random

    folder = tmp_path / "calib"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.jpg"), render_random(700 + i).sample.image)
    groups = candidate_groups(tiny_onnx)
    assert groups[0].startswith("/backbone/") and "/depth_head/out/" in groups
    picked = ["/backbone/features.0/", "/depth_head/out/"]
    result = sweep(tiny_onnx, load_calibration_set(folder), tiny_dataset, groups=picked, limit=2,
                   method="minmax", cache_dir=tmp_path / "ranges", log=lambda m: None)
    rows = result["rows"]
    assert [r["group"] for r in rows] == [None, *picked]
    assert rows[0]["kept_nodes"] == 0 and all(r["kept_nodes"] >= 1 for r in rows[1:])
    assert all(set(r["loss"]) == {"det", "lane", "depth"} for r in rows)
    # keeping the depth output conv in float changes the depth output, hence its metric
    assert rows[2]["metrics"]["depth"] != rows[0]["metrics"]["depth"]
    if (tmp_path / "ranges").exists():  # onnxruntime with a calibration cache: one for all rows
        assert len(list((tmp_path / "ranges").iterdir())) == 1


def test_candidate_groups_of_a_corrupt_model_name_it(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match=r"bad\.onnx: not a readable ONNX model"):
        candidate_groups(bad)
