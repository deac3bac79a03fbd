"""`edge-mtl eval --data FORMAT:PATH`: our metrics and each dataset's own benchmark."""

from __future__ import annotations

import json

import pytest

from edge_mtl.cli import main
from edge_mtl.evaluate import evaluate
from tests.data.formats.make_bdd100k import write_bdd100k
from tests.data.formats.make_coco import write_coco
from tests.data.formats.make_culane import write_culane
from tests.data.formats.make_kitti import write_kitti, write_kitti_depth
from tests.data.formats.make_tusimple import write_tusimple
from tests.helpers import SHARED_DATA

KITTI_DEPTH_KEYS = {"abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3"}


@pytest.mark.parametrize(("fmt", "write", "tasks"), [
    ("kitti", write_kitti, {"det", "depth"}),
    ("kitti-depth", write_kitti_depth, {"depth"}),
    ("bdd100k", write_bdd100k, {"det", "lane"}),
    ("tusimple", write_tusimple, {"lane"}),
    ("culane", write_culane, {"lane"}),
    ("coco", write_coco, {"det"}),
])
def test_each_format_evaluates_with_its_own_metrics(tmp_path, tiny_checkpoint, fmt, write, tasks):
    result = evaluate(tiny_checkpoint, f"{fmt}:{write(tmp_path / fmt)}", progress=False)
    assert result["data"]["format"] == fmt and result["data"]["skipped"] == []
    assert set(result["metrics"]) == tasks
    if "depth" in tasks:
        depth = result["metrics"]["depth"]
        assert set(depth) >= KITTI_DEPTH_KEYS and depth["max_depth"] == 80.0
        assert depth["crop"] == ("garg" if fmt.startswith("kitti") else None)
    if fmt == "tusimple":
        assert {"accuracy", "fp", "fn"} <= set(result["metrics"]["lane"]["tusimple"])
    if fmt == "culane":
        assert {"f1", "precision", "recall"} <= set(result["metrics"]["lane"]["culane"])
    if fmt in ("kitti", "coco"):
        assert result["metrics"]["det"]["num_ignore_regions"] > 0  # DontCare / crowds reach mAP


@pytest.mark.skipif(not (SHARED_DATA / "real_dev" / "kitti_tracking").is_dir(), reason="../shared absent")
def test_eval_on_the_real_kitti_tracking_frames_prints_map_and_kitti_depth(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "eval.json"
    real = SHARED_DATA / "real_dev" / "kitti_tracking"
    assert main(["eval", tiny_checkpoint, "--data", f"kitti-tracking:{real}", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert '"map50"' in printed and '"abs_rel"' in printed
    result = json.loads(out.read_text())
    assert result["data"]["labelled"] == {"det": 2, "lane": 0, "depth": 2}
    assert result["metrics"]["det"]["num_objects"] > 0 and result["metrics"]["depth"]["num_images"] == 2


def test_the_depth_crop_is_chosen_on_the_command_line(tmp_path, tiny_checkpoint):
    root = write_kitti(tmp_path / "k", num=1)
    for crop, want in (("eigen", "eigen"), ("none", None)):
        out = tmp_path / f"{crop}.json"
        assert main(["eval", tiny_checkpoint, "--data", f"kitti:{root}", "--depth-crop", crop,
                     "--json", str(out)]) == 0
        assert json.loads(out.read_text())["metrics"]["depth"]["crop"] == want
