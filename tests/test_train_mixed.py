"""One training run over BDD100K-, KITTI- (boxes + LiDAR depth) and TuSimple-format data plus a
synthetic set: per-sample masking across formats, and the log of what each dataset gave."""

from __future__ import annotations

import csv
import json

import pytest

from edge_mtl.cli import main
from tests.data.formats.make_bdd100k import write_bdd100k
from tests.data.formats.make_kitti import write_kitti
from tests.data.formats.make_tusimple import write_tusimple


@pytest.fixture
def mix(tmp_path, tiny_dataset) -> list[str]:
    return [f"bdd100k:{write_bdd100k(tmp_path / 'bdd', count=4)}",
            f"kitti:{write_kitti(tmp_path / 'kitti', num=3)}",
            f"tusimple:{write_tusimple(tmp_path / 'tusimple', num=3)}@2",
            tiny_dataset]


def test_a_mixed_run_completes_and_logs_samples_per_dataset_and_task(tmp_path, mix):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--steps", "6"]
    for spec in mix:
        args += ["--data", spec]
    settings = ["model.input_height=64", "model.input_width=128", "model.backbone=mobilenet_v3_small",
                "model.pretrained=null", "model.tf_padding=false", "model.freeze_backbone=0",
                "model.fpn_channels=16", "model.head_channels=16", "model.seg_channels=8",
                "train.batch_size=4", "train.workers=0", "train.crop_width=null", "train.log_every=2",
                "train.bn_batches=2", "weighting.warmup_steps=2"]
    for setting in settings:
        args += ["--set", setting]
    assert main(args) == 0
    report = json.loads((out / "data_check.json").read_text())
    assert [d["num_samples"] for d in report["datasets"]] == [4, 3, 3, 6]
    seen = report["seen"]
    bdd, kitti, tusimple, synth = (seen[k] for k in seen)
    assert sum(v["samples"] for v in seen.values()) == 6 * 4
    assert bdd["det"] == bdd["lane"] == bdd["samples"] and bdd["depth"] == 0
    assert kitti["det"] == kitti["depth"] == kitti["samples"] and kitti["lane"] == 0
    assert tusimple["lane"] == tusimple["samples"] and tusimple["det"] == tusimple["depth"] == 0
    assert synth["samples"] > 0
    with open(out / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    last = rows[-1]
    assert int(last["seen_det"]) == bdd["det"] + kitti["det"] + synth["det"]
    assert int(last["seen_lane"]) == bdd["lane"] + tusimple["lane"] + synth["lane"]
    assert int(last["seen_depth"]) == kitti["depth"] + synth["depth"]
    cfg = (out / "config.yaml").read_text()
    assert "tusimple:" in cfg and "@2" in cfg  # the mix, weights included, is the run's own record
